package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// readJSONL decodes every line of a .jsonl.zst fixture into a T.
func readJSONL[T any](t testing.TB, path string) []T {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open fixture: %v (regenerate with tokenizer/testdata/gen_fixtures.py)", err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var rows []T
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var row T
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

type encodeRow struct {
	Text    string `json:"text"`
	IDs     []int  `json:"ids"`
	Decoded string `json:"decoded"`
}

type decodeRow struct {
	IDs         []int  `json:"ids"`
	Text        string `json:"text"`
	SkipSpecial string `json:"skip_special"`
}

var qwenPath = filepath.Join("testdata", "qwen3", "tokenizer.json.zst")

// loadQwen loads the real Qwen tokenizer once per test binary.
var loadQwen = sync.OnceValues(func() (*Tokenizer, error) { return Load(qwenPath) })

func qwen(t testing.TB) *Tokenizer {
	t.Helper()
	tok, err := loadQwen()
	if err != nil {
		t.Fatalf("load Qwen tokenizer: %v", err)
	}
	return tok
}

func equalIDs(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
