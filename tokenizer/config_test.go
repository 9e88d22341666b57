package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestEmbeddedQwen3TemplateIsPublished(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "qwen3", "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ChatTemplate string `json:"chat_template"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	if got, _ := ChatTemplateJinja(ChatQwen3); got != cfg.ChatTemplate {
		t.Error("templates/qwen3.jinja differs from the chat_template Qwen3 publishes")
	}
	if _, err := ChatTemplateJinja("llama"); err == nil {
		t.Error("unknown format accepted")
	}
}

// TestSaveConfigRoundTrip writes a model directory the way the engine's
// model init does and loads it back.
func TestSaveConfigRoundTrip(t *testing.T) {
	tok, err := Train([]string{"the agent searches the web", "the agent answers"}, TrainOptions{VocabSize: 280, AddedTokens: QwenAddedTokens()})
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []ChatFormat{ChatQwen25, ChatQwen3} {
		dir := t.TempDir()
		if err := tok.Save(dir); err != nil {
			t.Fatal(err)
		}
		if err := tok.SaveConfig(dir, format); err != nil {
			t.Fatal(err)
		}
		back, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if back.ChatFormat() != format {
			t.Errorf("saved %q, loaded %q", format, back.ChatFormat())
		}
		var cfg map[string]any
		data, _ := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
		if err := json.Unmarshal(data, &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg["eos_token"] != "<|im_end|>" || cfg["pad_token"] != "<|endoftext|>" {
			t.Errorf("config tokens: eos %v pad %v", cfg["eos_token"], cfg["pad_token"])
		}
	}
	if err := tok.SaveConfig(t.TempDir(), "llama"); err == nil {
		t.Error("unknown format accepted")
	}
}
