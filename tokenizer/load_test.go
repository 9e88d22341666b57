package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadDirectoryPicksChatFormat(t *testing.T) {
	trained, err := os.ReadFile(trainedPath)
	if err != nil {
		t.Fatal(err)
	}
	qwen25, err := os.ReadFile(filepath.Join("templates", "qwen2.5.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	qwen3Config, err := os.ReadFile(filepath.Join("testdata", "qwen3", "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	qwen25Config, _ := json.Marshal(map[string]string{"chat_template": string(qwen25)})
	tests := []struct {
		name   string
		config []byte // nil: no tokenizer_config.json
		want   ChatFormat
	}{
		{"qwen2.5 config", qwen25Config, ChatQwen25},
		{"qwen3 config", qwen3Config, ChatQwen3},
		{"no config", nil, ChatQwen3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), trained, 0o644); err != nil {
				t.Fatal(err)
			}
			if tt.config != nil {
				if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), tt.config, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			tok, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if tok.ChatFormat() != tt.want {
				t.Errorf("ChatFormat = %q, want %q", tok.ChatFormat(), tt.want)
			}
		})
	}
}

func TestFromJSONErrors(t *testing.T) {
	const dec = `"decoder":{"type":"ByteLevel"}`
	tests := []struct {
		name, json, want string
	}{
		{"not json", `{`, "parse tokenizer.json"},
		{"no vocab", `{` + dec + `}`, "no vocab"},
		{"wordpiece", `{"model":{"type":"WordPiece","vocab":{}},` + dec + `}`, "WordPiece"},
		{"negative id", `{"model":{"vocab":{"a":-1}},` + dec + `}`, "outside"},
		{"sparse ids", `{"model":{"vocab":{"a":9000000}},` + dec + `}`, "far beyond"},
		{"merge not in vocab", `{"model":{"vocab":{"a":0,"b":1},"merges":[["a","b"]]},` + dec + `}`, "not in the vocab"},
		{"bad merge string", `{"model":{"vocab":{"a":0},"merges":["a b c"]},` + dec + `}`, "separated by one space"},
		{"bad merge pair", `{"model":{"vocab":{"a":0},"merges":[["a"]]},` + dec + `}`, "pair of token strings"},
		{"float id", `{"model":{"vocab":{"a":1.5}},` + dec + `}`, "integer"},
		{"dropout", `{"model":{"vocab":{"a":0},"dropout":0.1},` + dec + `}`, "dropout"},
		{"byte fallback", `{"model":{"vocab":{"a":0},"byte_fallback":true},` + dec + `}`, "byte_fallback"},
		{"unk missing", `{"model":{"vocab":{"a":0},"unk_token":"<unk>"},` + dec + `}`, "unk_token"},
		{"no decoder", `{"model":{"vocab":{"a":0}}}`, "decoder is missing"},
		{"wrong decoder", `{"model":{"vocab":{"a":0}},"decoder":{"type":"WordPiece"}}`, "decoder type"},
		{"normalizer", `{"model":{"vocab":{"a":0}},"normalizer":{"type":"Lowercase"},` + dec + `}`, "normalizer type"},
		{"pre_tokenizer", `{"model":{"vocab":{"a":0}},"pre_tokenizer":{"type":"Whitespace"},` + dec + `}`, "pre_tokenizer type"},
		{"split behavior", `{"model":{"vocab":{"a":0}},"pre_tokenizer":{"type":"Split","pattern":{"String":" "},"behavior":"Removed"},` + dec + `}`, "behavior"},
		{"bad regex", `{"model":{"vocab":{"a":0}},"pre_tokenizer":{"type":"Split","pattern":{"Regex":"("},"behavior":"Isolated"},` + dec + `}`, "compile split pattern"},
		{"empty added", `{"model":{"vocab":{"a":0}},"added_tokens":[{"id":1,"content":""}],` + dec + `}`, "empty content"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromJSON([]byte(tt.json))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "load tokenizer") {
		t.Errorf("missing file: err = %v", err)
	}
}

// TestConcurrentEncode shares one tokenizer (and its word cache) across
// goroutines, as concurrent agents do; run it with -race.
func TestConcurrentEncode(t *testing.T) {
	tok := qwen(t)
	rows := readJSONL[encodeRow](t, filepath.Join("testdata", "qwen3", "encode.jsonl.zst"))[:300]
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(offset int) {
			defer wg.Done()
			for i := range rows {
				row := rows[(i+offset*37)%len(rows)]
				if got := tok.Encode(row.Text); !equalIDs(got, row.IDs) {
					t.Errorf("goroutine %d: %q differs", offset, row.Text)
					return
				}
			}
		}(g)
	}
	wg.Wait()
}
