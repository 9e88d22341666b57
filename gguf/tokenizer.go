package gguf

import (
	"encoding/json"
	"fmt"
	"strings"
)

// GGUF token types (llama.cpp's llama_token_type).
const (
	tokenNormal      = 1
	tokenUnknown     = 2
	tokenControl     = 3
	tokenUserDefined = 4
	tokenUnused      = 5
	tokenByte        = 6
)

// The split patterns llama.cpp names by tokenizer.ggml.pre, as the
// Hugging Face pre-tokenizers the original tokenizer.json files use.
const (
	gpt4Pattern   = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// preTokenizer returns the tokenizer.json pre_tokenizer for a llama.cpp
// pre-tokenizer name.
func preTokenizer(pre string) (any, error) {
	byteLevel := func(useRegex bool) map[string]any {
		return map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": useRegex}
	}
	split := func(pattern string) map[string]any {
		return map[string]any{"type": "Split", "pattern": map[string]any{"Regex": pattern},
			"behavior": "Isolated", "invert": false}
	}
	seq := func(ps ...any) map[string]any { return map[string]any{"type": "Sequence", "pretokenizers": ps} }
	switch pre {
	case "smollm":
		// SmolLM's tokenizer: every digit alone, then GPT-2's split.
		return seq(map[string]any{"type": "Digits", "individual_digits": true}, byteLevel(true)), nil
	case "gpt-2", "default", "":
		return byteLevel(true), nil
	case "llama-bpe", "llama3":
		return seq(split(llama3Pattern), byteLevel(false)), nil
	case "qwen2":
		return seq(split(gpt4Pattern), byteLevel(false)), nil
	}
	return nil, fmt.Errorf("gguf: pre-tokenizer %q is not supported (smollm, gpt-2, llama-bpe and qwen2 are)", pre)
}

// tokenizerFiles builds tokenizer.json and tokenizer_config.json from the
// tokenizer.ggml.* metadata of a GPT-2-style BPE vocabulary.
func tokenizerFiles(f *File) (tokJSON []byte, tokCfg map[string]any, err error) {
	model, _ := f.String("tokenizer.ggml.model")
	if model != "gpt2" {
		return nil, nil, fmt.Errorf("gguf: tokenizer model %q is not supported (gpt2, a byte-level BPE, is)", model)
	}
	tokens, ok := f.Strings("tokenizer.ggml.tokens")
	if !ok || len(tokens) == 0 {
		return nil, nil, fmt.Errorf("gguf: metadata tokenizer.ggml.tokens is missing")
	}
	merges, ok := f.Strings("tokenizer.ggml.merges")
	if !ok {
		return nil, nil, fmt.Errorf("gguf: metadata tokenizer.ggml.merges is missing")
	}
	types, _ := f.Ints("tokenizer.ggml.token_type")
	if types != nil && len(types) != len(tokens) {
		return nil, nil, fmt.Errorf("gguf: %d token types for %d tokens", len(types), len(tokens))
	}
	pre, _ := f.String("tokenizer.ggml.pre")
	preTok, err := preTokenizer(pre)
	if err != nil {
		return nil, nil, err
	}
	vocab := make(map[string]int, len(tokens))
	var added []map[string]any
	for id, tok := range tokens {
		if _, dup := vocab[tok]; dup {
			return nil, nil, fmt.Errorf("gguf: token %q appears twice", tok)
		}
		vocab[tok] = id
		if types != nil && (types[id] == tokenControl || types[id] == tokenUserDefined) {
			added = append(added, map[string]any{"id": id, "content": tok, "single_word": false,
				"lstrip": false, "rstrip": false, "normalized": types[id] == tokenUserDefined,
				"special": types[id] == tokenControl})
		}
	}
	pairs := make([][2]string, len(merges))
	for i, m := range merges {
		a, b, ok := strings.Cut(m, " ")
		if !ok || strings.Contains(b, " ") {
			return nil, nil, fmt.Errorf("gguf: merge %d %q is not two tokens separated by one space", i, m)
		}
		pairs[i] = [2]string{a, b}
	}
	doc := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil, "added_tokens": added,
		"normalizer": nil, "pre_tokenizer": preTok,
		"post_processor": map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": pairs},
	}
	tokJSON, err = json.Marshal(doc)
	if err != nil {
		return nil, nil, err
	}

	name := func(key string) any {
		id, ok := f.Int(key)
		if !ok || id < 0 || int(id) >= len(tokens) {
			return nil
		}
		return tokens[id]
	}
	tokCfg = map[string]any{
		"tokenizer_class":              "PreTrainedTokenizerFast",
		"add_bos_token":                false,
		"add_prefix_space":             false,
		"clean_up_tokenization_spaces": false,
		"bos_token":                    name("tokenizer.ggml.bos_token_id"),
		"eos_token":                    name("tokenizer.ggml.eos_token_id"),
		"unk_token":                    name("tokenizer.ggml.unknown_token_id"),
		"pad_token":                    name("tokenizer.ggml.padding_token_id"),
	}
	if b, ok := f.Bool("tokenizer.ggml.add_bos_token"); ok {
		tokCfg["add_bos_token"] = b
	}
	if n, ok := f.Int("llama.context_length"); ok {
		tokCfg["model_max_length"] = n
	}
	if tpl, ok := f.String("tokenizer.chat_template"); ok {
		tokCfg["chat_template"] = tpl
	}
	return tokJSON, tokCfg, nil
}
