package tokenizer

import (
	"path/filepath"
	"testing"
)

// TestQwenEncodeMatchesHF checks every fixture string against the ids HF
// `tokenizers` produced on the real Qwen tokenizer.json.
func TestQwenEncodeMatchesHF(t *testing.T) {
	tok := qwen(t)
	rows := readJSONL[encodeRow](t, filepath.Join("testdata", "qwen3", "encode.jsonl.zst"))
	if len(rows) < 1000 {
		t.Fatalf("only %d fixture strings, want at least 1000", len(rows))
	}
	failed := 0
	for i, row := range rows {
		got := tok.Encode(row.Text)
		if !equalIDs(got, row.IDs) {
			failed++
			if failed <= 10 {
				t.Errorf("row %d %q:\n got  %v\n want %v", i, row.Text, got, row.IDs)
			}
			continue
		}
		if dec := tok.Decode(got); dec != row.Decoded {
			t.Errorf("row %d: Decode = %q, want %q", i, dec, row.Decoded)
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d strings differ from HF", failed, len(rows))
	}
}

func TestQwenDecodeMatchesHF(t *testing.T) {
	tok := qwen(t)
	for i, row := range readJSONL[decodeRow](t, filepath.Join("testdata", "qwen3", "decode.jsonl.zst")) {
		if got := tok.Decode(row.IDs); got != row.Text {
			t.Errorf("row %d %v: Decode = %q, want %q", i, row.IDs, got, row.Text)
		}
		var kept []int
		for _, id := range row.IDs {
			if !tok.IsSpecial(id) {
				kept = append(kept, id)
			}
		}
		if got := tok.Decode(kept); got != row.SkipSpecial {
			t.Errorf("row %d %v: Decode without specials = %q, want %q", i, row.IDs, got, row.SkipSpecial)
		}
	}
}

// TestInvalidUTF8KeptByteForByte: invalid bytes in the input survive
// encoding as byte tokens (HF cannot be asked: Python strings are Unicode).
func TestInvalidUTF8KeptByteForByte(t *testing.T) {
	tok := qwen(t)
	tests := []struct{ in, want string }{
		{"\xff abc \xe4\xb8", "\xff abc \xe4\xb8"},
		{"\xed\xa0\x80x", "\xed\xa0\x80x"},
		{"中\x80文<|im_end|>\xc3", "中\x80文<|im_end|>\xc3"},
		{"e\u0301\xff", "\u00e9\xff"}, // the valid stretch is still NFC-normalised
	}
	for _, tt := range tests {
		var got []byte
		for _, id := range tok.Encode(tt.in) {
			got = append(got, tok.tokenBytes(id)...)
		}
		if string(got) != tt.want {
			t.Errorf("Encode(%q) holds %q, want %q", tt.in, got, tt.want)
		}
	}
}
