package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tokenizer"
)

// InitOptions describe a new, randomly initialised model directory.
type InitOptions struct {
	// Config is the architecture; its vocab_size and eos_token_id are set
	// from the tokenizer.
	Config *Config
	Seed   uint64
	DType  DType
	// TokenizerPath is a tokenizer.json (or a directory holding one, with
	// its tokenizer_config.json) to use as is. When empty a byte-level BPE
	// is trained on TrainTexts with TrainVocab ids (just the 256 bytes and
	// the ChatML special tokens when there is no text).
	TokenizerPath string
	TrainTexts    []string
	TrainVocab    int
	// Progress reports tokenizer training (merges done, merges wanted).
	Progress func(done, total int)
}

// chatMLTemplate is a plain ChatML Jinja template for tokenizer_config.json,
// so transformers' apply_chat_template works on directories we create.
const chatMLTemplate = `{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}`

// InitModelDir writes config.json, model.safetensors, tokenizer.json and
// tokenizer_config.json into dir.
func InitModelDir(ctx context.Context, dir string, o InitOptions) (*Config, error) {
	if o.Config == nil {
		return nil, fmt.Errorf("model init: no config")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("model init: %w", err)
	}
	var tok *tokenizer.Tokenizer
	var err error
	if o.TokenizerPath != "" {
		tok, err = tokenizer.Load(o.TokenizerPath)
		if err != nil {
			return nil, fmt.Errorf("model init: %w", err)
		}
		if err := copyTokenizer(o.TokenizerPath, dir); err != nil {
			return nil, err
		}
	} else {
		vocab := o.TrainVocab
		if len(o.TrainTexts) == 0 || vocab == 0 {
			vocab = 256 + len(tokenizer.ChatMLSpecialTokens())
		}
		tok, err = tokenizer.TrainContext(ctx, o.TrainTexts, tokenizer.TrainOptions{VocabSize: vocab, Progress: o.Progress})
		if err != nil {
			return nil, fmt.Errorf("model init: %w", err)
		}
		if err := tok.Save(filepath.Join(dir, "tokenizer.json")); err != nil {
			return nil, fmt.Errorf("model init: %w", err)
		}
		tc := map[string]any{
			"tokenizer_class": "PreTrainedTokenizerFast", "chat_template": chatMLTemplate,
			"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "bos_token": nil,
			"model_max_length": o.Config.MaxPositionEmbeddings, "clean_up_tokenization_spaces": false,
		}
		b, _ := json.MarshalIndent(tc, "", "  ")
		if err := atomicfile.WriteFile(filepath.Join(dir, "tokenizer_config.json"), append(b, '\n')); err != nil {
			return nil, fmt.Errorf("model init: %w", err)
		}
	}
	cfg := *o.Config
	// A multiple of 16 fills the matrix kernel's column panels; the extra
	// rows are never produced by the tokenizer.
	cfg.VocabSize = (tok.VocabSize() + 15) / 16 * 16
	cfg.EOSTokenID = nil
	for _, name := range []string{"<|im_end|>", "<|endoftext|>"} {
		if id, ok := tok.TokenID(name); ok {
			cfg.EOSTokenID = append(cfg.EOSTokenID, id)
		}
	}
	if len(cfg.EOSTokenID) > 1 {
		cfg.EOSTokenID = cfg.EOSTokenID[:1] // <|im_end|> ends a chat turn
	}
	w, err := NewRandomWeights(&cfg, o.Seed)
	if err != nil {
		return nil, fmt.Errorf("model init: %w", err)
	}
	if err := SaveWeights(dir, w, o.DType); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func copyTokenizer(src, dir string) error {
	files := map[string]string{}
	if st, err := os.Stat(src); err == nil && st.IsDir() {
		for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
			files[filepath.Join(src, f)] = f
		}
	} else {
		files[src] = "tokenizer.json"
	}
	for from, to := range files {
		b, err := os.ReadFile(from)
		if os.IsNotExist(err) && to != "tokenizer.json" {
			continue
		}
		if err != nil {
			return fmt.Errorf("model init: %w", err)
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, to), b); err != nil {
			return fmt.Errorf("model init: %w", err)
		}
	}
	return nil
}

// ReadTrainTexts reads text files for tokenizer training: one text per
// line, and for JSON lines the string fields of each object joined.
func ReadTrainTexts(paths []string) ([]string, error) {
	var texts []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read training text: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			var obj map[string]any
			if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &obj) == nil {
				var parts []string
				for _, k := range slices.Sorted(maps.Keys(obj)) {
					if s, ok := obj[k].(string); ok && s != "" {
						parts = append(parts, s)
					}
				}
				line = strings.Join(parts, "\n")
			}
			texts = append(texts, line)
		}
	}
	return texts, nil
}

// OpenModelDir loads a model directory's weights and, when present, its
// tokenizer.
func OpenModelDir(dir string) (*Weights, *tokenizer.Tokenizer, error) {
	w, err := LoadWeights(dir)
	if err != nil {
		return nil, nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err != nil {
		return w, nil, nil
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	if tok.VocabSize() > w.Config.VocabSize {
		return nil, nil, fmt.Errorf("%s: the tokenizer has %d ids but the model only %d", dir, tok.VocabSize(), w.Config.VocabSize)
	}
	return w, tok, nil
}

// StopTokens are the ids that end generation for a model: the config's and
// generation_config.json's eos_token_id, plus ChatML's end tokens when the
// tokenizer has them.
func StopTokens(dir string, cfg *Config, tok *tokenizer.Tokenizer) []int {
	ids := slices.Clone([]int(cfg.EOSTokenID))
	if b, err := os.ReadFile(filepath.Join(dir, "generation_config.json")); err == nil {
		var g struct {
			EOS TokenIDs `json:"eos_token_id"`
		}
		if json.Unmarshal(b, &g) == nil {
			ids = append(ids, g.EOS...)
		}
	}
	if tok != nil {
		for _, name := range []string{"<|im_end|>", "<|endoftext|>"} {
			if id, ok := tok.TokenID(name); ok {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// NewSamplerForDir opens a model directory and starts a sampler over it,
// with its tokenizer, chat template and stop tokens wired in.
func NewSamplerForDir(dir string, opts SamplerOptions, chat tokenizer.ChatOptions) (*Sampler, error) {
	w, tok, err := OpenModelDir(dir)
	if err != nil {
		return nil, err
	}
	if tok != nil {
		opts.Tokenizer = tok
		chat.AddGenerationPrompt = true
		opts.ChatTemplate = func(msgs []llm.Message) (string, error) {
			tm := make([]tokenizer.Message, len(msgs))
			for i, m := range msgs {
				tm[i] = tokenizer.Message{Role: m.Role, Content: m.Content}
			}
			return tok.ApplyChatTemplate(tm, chat)
		}
	}
	opts.StopTokenIDs = append(opts.StopTokenIDs, StopTokens(dir, w.Config, tok)...)
	return NewSampler(w, 0, opts), nil
}
