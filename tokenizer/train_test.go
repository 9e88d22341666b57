package tokenizer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func trainCorpus(t testing.TB) []string {
	t.Helper()
	data, err := readMaybeCompressed(filepath.Join("testdata", "trained", "corpus.txt.zst"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(data), "\n")
}

var trainedPath = filepath.Join("testdata", "trained", "tokenizer.json")

// TestTrainGolden trains on the committed corpus and compares the saved
// file with the committed one, which HF `tokenizers` loaded to make the
// fixtures of TestTrainedMatchesHF.
func TestTrainGolden(t *testing.T) {
	tok, err := Train(trainCorpus(t), TrainOptions{VocabSize: 1024, AddedTokens: QwenAddedTokens()})
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != 1024 {
		t.Errorf("VocabSize = %d, want 1024", tok.VocabSize())
	}
	got, err := tok.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("TOKENIZER_UPDATE_GOLDEN") != "" {
		if err := tok.Save(trainedPath); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(trainedPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("trained tokenizer.json differs from %s (rerun with TOKENIZER_UPDATE_GOLDEN=1, then gen_fixtures.py)", trainedPath)
	}
	for _, special := range ChatMLSpecialTokens() {
		id, ok := tok.TokenID(special)
		if !ok || !tok.IsSpecial(id) {
			t.Errorf("%s: id %d ok %v special %v", special, id, ok, tok.IsSpecial(id))
		}
	}
	if id, ok := tok.TokenID("<think>"); !ok || tok.IsSpecial(id) {
		t.Errorf("<think> should be a non-special added token")
	}
}

func TestTrainedMatchesHF(t *testing.T) {
	tests := []struct{ json, fixture string }{
		{"tokenizer.json", "encode.jsonl.zst"},
		{"variant_llama3_nfkc.json", "variant_llama3_nfkc.jsonl.zst"},
		{"variant_gpt2.json", "variant_gpt2.jsonl.zst"},
	}
	for _, tt := range tests {
		t.Run(tt.json, func(t *testing.T) {
			tok, err := Load(filepath.Join("testdata", "trained", tt.json))
			if err != nil {
				t.Fatal(err)
			}
			failed := 0
			for i, row := range readJSONL[encodeRow](t, filepath.Join("testdata", "trained", tt.fixture)) {
				got := tok.Encode(row.Text)
				if !equalIDs(got, row.IDs) {
					if failed++; failed <= 5 {
						t.Errorf("row %d %q:\n got  %v\n want %v", i, row.Text, got, row.IDs)
					}
					continue
				}
				if dec := tok.Decode(got); dec != row.Decoded {
					t.Errorf("row %d: Decode = %q, want %q", i, dec, row.Decoded)
				}
			}
			if failed > 0 {
				t.Errorf("%d strings differ from HF", failed)
			}
		})
	}
}

func TestTrainErrors(t *testing.T) {
	tests := []struct {
		name string
		opts TrainOptions
		want string
	}{
		{"too small", TrainOptions{VocabSize: 258}, "no room"},
		{"repeated token", TrainOptions{VocabSize: 300, SpecialTokens: []string{"<a>", "<a>"}}, "repeated"},
		{"empty token", TrainOptions{VocabSize: 300, AddedTokens: []string{""}}, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Train([]string{"hello world"}, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := TrainContext(ctx, []string{"hello world"}, TrainOptions{VocabSize: 400}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled training: err = %v", err)
	}
}

func TestTrainSmallCorpus(t *testing.T) {
	var calls int
	tok, err := Train([]string{"low lower lowest", "low low newer newest wider"}, TrainOptions{
		VocabSize: 300, MinFrequency: 2, Progress: func(done, total int) { calls++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	// Few pairs repeat, so training stops before 300 ids.
	if tok.VocabSize() >= 300 || calls == 0 {
		t.Errorf("VocabSize %d, progress calls %d", tok.VocabSize(), calls)
	}
	for _, s := range []string{"low lowest", "unseen ✓ text", "<|im_end|>"} {
		if got := tok.Decode(tok.Encode(s)); got != s {
			t.Errorf("round trip %q -> %q", s, got)
		}
	}
	if ids := tok.Encode(" low"); len(ids) != 1 {
		t.Errorf("\" low\" should be one learned token, got %v", ids)
	}
}

// TestSaveRoundTrip saves the real Qwen tokenizer and reloads it.
func TestSaveRoundTrip(t *testing.T) {
	tok := qwen(t)
	dir := t.TempDir()
	if err := tok.Save(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range readJSONL[encodeRow](t, filepath.Join("testdata", "qwen3", "encode.jsonl.zst"))[:200] {
		if got := back.Encode(row.Text); !equalIDs(got, row.IDs) {
			t.Fatalf("after Save/Load %q: got %v want %v", row.Text, got, row.IDs)
		}
	}
	a, _ := tok.MarshalJSON()
	b, _ := back.MarshalJSON()
	if !bytes.Equal(a, b) {
		t.Error("MarshalJSON is not stable across Save/Load")
	}
	if back.VocabSize() != 151669 {
		t.Errorf("VocabSize = %d", back.VocabSize())
	}
	// A compressed copy loads too.
	zpath := filepath.Join(dir, "copy.json.zst")
	f, err := os.Create(zpath)
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := zstd.NewWriter(f)
	zw.Write(a)
	zw.Close()
	f.Close()
	if _, err := Load(zpath); err != nil {
		t.Errorf("load .zst: %v", err)
	}
}
