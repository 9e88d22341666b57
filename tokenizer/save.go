package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/asearcher/asearcher/internal/atomicfile"
)

// Save writes the tokenizer as a tokenizer.json that HF `tokenizers` loads
// and encodes identically. A directory path gets path/tokenizer.json. The
// file is written to a temporary name and renamed, so readers never see a
// partial file.
func (t *Tokenizer) Save(path string) error {
	if info, err := os.Stat(path); err == nil && info.IsDir() {
		path = filepath.Join(path, "tokenizer.json")
	}
	data, err := t.MarshalJSON()
	if err != nil {
		return fmt.Errorf("save tokenizer: %w", err)
	}
	if err := atomicfile.WriteFile(path, data); err != nil {
		return fmt.Errorf("save tokenizer: %w", err)
	}
	return nil
}

// MarshalJSON returns the tokenizer.json text: the pipeline stages as they
// were loaded (or as Train set them), the vocabulary in id order and the
// merges as ["a", "b"] pairs.
func (t *Tokenizer) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	str := func(s string) {
		enc, _ := marshalNoEscape(s)
		b.Write(enc)
	}
	raw := func(r json.RawMessage) {
		if isNull(r) {
			b.WriteString("null")
			return
		}
		b.Write(bytes.TrimSpace(r))
	}
	f := t.raw
	b.WriteString("{\n  \"version\": ")
	version := f.Version
	if version == "" {
		version = "1.0"
	}
	str(version)
	b.WriteString(",\n  \"truncation\": ")
	raw(f.Truncation)
	b.WriteString(",\n  \"padding\": ")
	raw(f.Padding)
	b.WriteString(",\n  \"added_tokens\": [")
	for i, a := range t.added {
		if i > 0 {
			b.WriteByte(',')
		}
		enc, err := marshalNoEscape(a)
		if err != nil {
			return nil, err
		}
		b.WriteString("\n    ")
		b.Write(enc)
	}
	b.WriteString("\n  ],\n  \"normalizer\": ")
	raw(f.Normalizer)
	b.WriteString(",\n  \"pre_tokenizer\": ")
	raw(f.PreTokenizer)
	b.WriteString(",\n  \"post_processor\": ")
	raw(f.PostProcessor)
	b.WriteString(",\n  \"decoder\": ")
	raw(f.Decoder)

	m := f.Model
	m.Type = "BPE"
	if m.ContinuingSubwordPrefix == nil {
		empty := ""
		m.ContinuingSubwordPrefix, m.EndOfWordSuffix = &empty, &empty
	}
	head, err := marshalNoEscape(m.modelOptions)
	if err != nil {
		return nil, err
	}
	b.WriteString(",\n  \"model\": ")
	b.Write(head[:len(head)-1]) // reopen the object to append vocab and merges
	b.WriteString(",\n    \"vocab\": {")
	type entry struct {
		tok string
		id  int
	}
	vocab := make([]entry, 0, len(t.model.vocab))
	for tok, id := range t.model.vocab {
		vocab = append(vocab, entry{tok, id})
	}
	sort.Slice(vocab, func(i, j int) bool {
		if vocab[i].id != vocab[j].id {
			return vocab[i].id < vocab[j].id
		}
		return vocab[i].tok < vocab[j].tok
	})
	for i, e := range vocab {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n      ")
		str(e.tok)
		fmt.Fprintf(&b, ": %d", e.id)
	}
	b.WriteString("\n    },\n    \"merges\": [")
	for i, r := range t.model.merges {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n      [")
		str(r.left)
		b.WriteString(", ")
		str(r.right)
		b.WriteByte(']')
	}
	b.WriteString("\n    ]\n  }\n}\n")
	return b.Bytes(), nil
}

// marshalNoEscape is json.Marshal without HTML escaping, so tokens such as
// "<|im_end|>" stay readable in the file.
func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}
