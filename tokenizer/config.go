package tokenizer

import (
	_ "embed"
	"fmt"
	"path/filepath"

	"github.com/asearcher/asearcher/internal/atomicfile"
)

//go:embed templates/qwen3.jinja
var qwen3Template string

//go:embed templates/qwen2.5.jinja
var qwen25Template string

//go:embed templates/smollm2.jinja
var smolLM2Template string

// ChatTemplateJinja returns the Jinja chat template the Qwen models publish
// for a format: the text that transformers renders and ApplyChatTemplate
// reproduces.
func ChatTemplateJinja(format ChatFormat) (string, error) {
	switch format {
	case ChatQwen3:
		return qwen3Template, nil
	case ChatQwen25:
		return qwen25Template, nil
	case ChatSmolLM2:
		return smolLM2Template, nil
	}
	return "", fmt.Errorf("no chat template for format %q (want %q, %q or %q)", format, ChatQwen3, ChatQwen25, ChatSmolLM2)
}

// SaveConfig writes dir/tokenizer_config.json for the tokenizer saved in
// dir: the chat template of format, the end-of-turn and padding tokens,
// and Qwen's tokenizer settings, so that transformers' AutoTokenizer loads
// the directory and renders chats as ApplyChatTemplate does, and Load picks
// the format again. The file is written atomically.
func (t *Tokenizer) SaveConfig(dir string, format ChatFormat) error {
	template, err := ChatTemplateJinja(format)
	if err != nil {
		return fmt.Errorf("save tokenizer config: %w", err)
	}
	cfg := map[string]any{
		"tokenizer_class":              "PreTrainedTokenizerFast",
		"chat_template":                template,
		"add_bos_token":                false,
		"add_prefix_space":             false,
		"bos_token":                    nil,
		"unk_token":                    nil,
		"clean_up_tokenization_spaces": false,
		"errors":                       "replace",
		"split_special_tokens":         false,
		"model_max_length":             131072,
	}
	if _, ok := t.TokenID("<|im_end|>"); ok {
		cfg["eos_token"] = "<|im_end|>"
	}
	if _, ok := t.TokenID("<|endoftext|>"); ok {
		cfg["pad_token"] = "<|endoftext|>"
	}
	var specials []string
	for _, a := range t.added {
		if a.Special && a.Content != "<|im_end|>" && a.Content != "<|endoftext|>" {
			specials = append(specials, a.Content)
		}
	}
	if len(specials) > 0 {
		cfg["additional_special_tokens"] = specials
	}
	data, err := marshalNoEscape(cfg)
	if err != nil {
		return fmt.Errorf("save tokenizer config: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "tokenizer_config.json"), append(data, '\n')); err != nil {
		return fmt.Errorf("save tokenizer config: %w", err)
	}
	return nil
}
