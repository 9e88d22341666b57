package tokenizer

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestStreamDecoderMatchesDecode(t *testing.T) {
	tok := qwen(t)
	var sequences [][]int
	for _, row := range readJSONL[decodeRow](t, filepath.Join("testdata", "qwen3", "decode.jsonl.zst")) {
		sequences = append(sequences, row.IDs)
	}
	for _, row := range readJSONL[encodeRow](t, filepath.Join("testdata", "qwen3", "encode.jsonl.zst"))[:300] {
		sequences = append(sequences, row.IDs)
	}
	for i, ids := range sequences {
		d := tok.NewStreamDecoder()
		var b strings.Builder
		for _, id := range ids {
			b.WriteString(d.Add(id))
		}
		b.WriteString(d.Flush())
		if want := tok.Decode(ids); b.String() != want {
			t.Errorf("sequence %d %v: streamed %q, Decode %q", i, ids, b.String(), want)
		}
	}
}

func TestStreamDecoderHoldsBackPartialUTF8(t *testing.T) {
	tok := qwen(t)
	byteID := func(b byte) int {
		id, ok := tok.TokenID(string(byteLevel.byteToRune[b]))
		if !ok {
			t.Fatalf("no token for byte %#x", b)
		}
		return id
	}
	// "中" is E4 B8 AD; "😀" is F0 9F 98 80.
	tests := []struct {
		name  string
		bytes []byte
		want  []string // text returned by each Add
		flush string
	}{
		{"3-byte char", []byte{0xE4, 0xB8, 0xAD}, []string{"", "", "中"}, ""},
		{"4-byte char", []byte{0xF0, 0x9F, 0x98, 0x80}, []string{"", "", "", "😀"}, ""},
		{"ascii then partial", []byte{'a', 0xE4, 0xB8}, []string{"a", "", ""}, "\uFFFD"},
		{"broken sequence", []byte{0xE4, 'x'}, []string{"", "\uFFFDx"}, ""},
		{"stray continuation", []byte{0x80, 'y'}, []string{"\uFFFD", "y"}, ""},
		{"invalid lead", []byte{0xFF}, []string{"\uFFFD"}, ""},
		{"surrogate half", []byte{0xED, 0xA0}, []string{"", "\uFFFD\uFFFD"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tok.NewStreamDecoder()
			for i, b := range tt.bytes {
				if got := d.Add(byteID(b)); got != tt.want[i] {
					t.Errorf("Add(%#x) = %q, want %q", b, got, tt.want[i])
				}
			}
			if got := d.Flush(); got != tt.flush {
				t.Errorf("Flush = %q, want %q", got, tt.flush)
			}
		})
	}
}
