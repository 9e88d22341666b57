package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// typed is the "type" discriminator every pipeline stage carries.
type typed struct {
	Type string `json:"type"`
}

func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

// parseNormalizer returns nil when the text is used as is.
func parseNormalizer(raw json.RawMessage) (func(string) string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var head typed
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	switch head.Type {
	case "NFC":
		return normalForm(norm.NFC), nil
	case "NFD":
		return normalForm(norm.NFD), nil
	case "NFKC":
		return normalForm(norm.NFKC), nil
	case "NFKD":
		return normalForm(norm.NFKD), nil
	case "Sequence":
		var seq struct {
			Normalizers []json.RawMessage `json:"normalizers"`
		}
		if err := json.Unmarshal(raw, &seq); err != nil {
			return nil, fmt.Errorf("normalizer: %w", err)
		}
		var steps []func(string) string
		for _, n := range seq.Normalizers {
			step, err := parseNormalizer(n)
			if err != nil {
				return nil, err
			}
			if step != nil {
				steps = append(steps, step)
			}
		}
		if len(steps) == 0 {
			return nil, nil
		}
		return func(s string) string {
			for _, step := range steps {
				s = step(s)
			}
			return s
		}, nil
	}
	return nil, fmt.Errorf("normalizer type %q is not supported (NFC, NFD, NFKC, NFKD and Sequence are)", head.Type)
}

func normalForm(f norm.Form) func(string) string {
	return func(s string) string {
		for i := 0; i < len(s); i++ {
			if s[i] >= utf8.RuneSelf {
				return f.String(s)
			}
		}
		return s // ASCII is invariant under every normal form
	}
}

// parsePreTokenizer returns the splitter of a pre_tokenizer stage.
func parsePreTokenizer(raw json.RawMessage) (splitter, error) {
	if isNull(raw) {
		return sequenceSplitter(nil), nil
	}
	var head typed
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	switch head.Type {
	case "Sequence":
		var seq struct {
			PreTokenizers []json.RawMessage `json:"pretokenizers"`
		}
		if err := json.Unmarshal(raw, &seq); err != nil {
			return nil, fmt.Errorf("pre_tokenizer: %w", err)
		}
		var out sequenceSplitter
		for _, p := range seq.PreTokenizers {
			s, err := parsePreTokenizer(p)
			if err != nil {
				return nil, err
			}
			if inner, ok := s.(sequenceSplitter); ok {
				out = append(out, inner...)
			} else {
				out = append(out, s)
			}
		}
		return out, nil
	case "ByteLevel":
		cfg := struct {
			AddPrefixSpace bool  `json:"add_prefix_space"`
			UseRegex       *bool `json:"use_regex"`
		}{}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("pre_tokenizer ByteLevel: %w", err)
		}
		// Mapping bytes to byte-level runes needs no step here: the BPE model
		// works on raw bytes and translates through its own tables.
		var out sequenceSplitter
		if cfg.AddPrefixSpace {
			out = append(out, prefixSpaceSplitter{})
		}
		if cfg.UseRegex == nil || *cfg.UseRegex {
			s, err := newRegexSplitter(gpt2Pattern)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	case "Digits":
		var cfg struct {
			IndividualDigits bool `json:"individual_digits"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("pre_tokenizer Digits: %w", err)
		}
		return digitsSplitter{individual: cfg.IndividualDigits}, nil
	case "Split":
		cfg := struct {
			Pattern struct {
				Regex  *string `json:"Regex"`
				String *string `json:"String"`
			} `json:"pattern"`
			Behavior string `json:"behavior"`
			Invert   bool   `json:"invert"`
		}{}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("pre_tokenizer Split: %w", err)
		}
		if cfg.Behavior != "Isolated" || cfg.Invert {
			return nil, fmt.Errorf("pre_tokenizer Split with behavior %q invert=%v is not supported (Isolated, invert=false is)", cfg.Behavior, cfg.Invert)
		}
		switch {
		case cfg.Pattern.Regex != nil:
			switch *cfg.Pattern.Regex {
			case qwenPattern:
				return gpt4Splitter{maxDigits: 1}, nil
			case llama3Pattern:
				return gpt4Splitter{maxDigits: 3}, nil
			}
			return newRegexSplitter(*cfg.Pattern.Regex)
		case cfg.Pattern.String != nil:
			return literalSplitter{lit: *cfg.Pattern.String}, nil
		}
		return nil, fmt.Errorf("pre_tokenizer Split has no Regex or String pattern")
	}
	return nil, fmt.Errorf("pre_tokenizer type %q is not supported (ByteLevel, Digits, Split and Sequence are)", head.Type)
}

// checkDecoder accepts the decoders whose output equals the ByteLevel
// decoding this package implements.
func checkDecoder(raw json.RawMessage) error {
	if isNull(raw) {
		return fmt.Errorf("decoder is missing: a byte-level BPE tokenizer needs the ByteLevel decoder")
	}
	var head typed
	if err := json.Unmarshal(raw, &head); err != nil {
		return fmt.Errorf("decoder: %w", err)
	}
	if head.Type != "ByteLevel" {
		return fmt.Errorf("decoder type %q is not supported (ByteLevel is)", head.Type)
	}
	return nil
}

func indexFrom(s, sub string, from int) int {
	k := strings.Index(s[from:], sub)
	if k < 0 {
		return -1
	}
	return from + k
}
