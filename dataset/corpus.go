package dataset

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Corpus describes a passage collection shipped inside the binary.
type Corpus struct {
	Name        string   `json:"name"`
	Aliases     []string `json:"aliases,omitempty"`
	Description string   `json:"description"`
	Passages    int      `json:"passages"`
	File        string   `json:"file"`
	Licence     string   `json:"licence"`
	layout      corpusLayout
}

type corpusLayout int

const (
	// layoutTitleSentences is HippoRAG's HotpotQA corpus: one JSON object
	// {title: [sentences]}.
	layoutTitleSentences corpusLayout = iota
	// layoutTitleText is a JSON array of {title, text}.
	layoutTitleText
	// layoutIDContents is wiki-18 JSONL {id, contents: "\"Title\"\ntext"}.
	layoutIDContents
)

var corpora = []Corpus{
	{Name: "hotpotqa-hipporag-100", Aliases: []string{"hotpotqa"}, Passages: 994, File: "hotpotqa-hipporag-100/corpus.json", layout: layoutTitleSentences,
		Licence:     "MIT (HippoRAG), CC BY-SA 4.0 (Wikipedia via HotpotQA)",
		Description: "the 994 Wikipedia paragraphs (gold and distractors) of the hotpotqa-hipporag-100 questions; ids are titles"},
	{Name: "2wiki-hipporag", Aliases: []string{"2wikimultihopqa-hipporag"}, Passages: 6119, File: "2wikimultihopqa-hipporag-corpus/corpus.json", layout: layoutTitleText,
		Licence:     "MIT (HippoRAG), Apache-2.0 (2WikiMultihopQA)",
		Description: "6,119 Wikipedia paragraphs from HippoRAG's 2WikiMultihopQA sample (its questions are not shipped); ids are titles"},
	{Name: "wiki18-sample", Aliases: []string{"flashrag-wiki18-sample"}, Passages: 1000, File: "flashrag-wiki18-sample/corpus_sample1000.jsonl", layout: layoutIDContents,
		Licence:     "MIT (FlashRAG), CC BY-SA (Wikipedia)",
		Description: "1,000 random wiki-18 passages in ASearcher's {id, contents} layout"},
}

// Passage is one corpus entry.
type Passage struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Text  string `json:"text"`
	// Contents is the ASearcher/FlashRAG form: "\"Title\"\ntext" (as given
	// for wiki-18, built from Title and Text otherwise).
	Contents string `json:"contents"`
}

func contentsOf(title, text string) string { return `"` + title + "\"\n" + text }

// Corpora lists the shipped corpora in a stable order.
func Corpora() []Corpus { return slices.Clone(corpora) }

// LookupCorpus finds a shipped corpus by name or alias, ignoring case.
func LookupCorpus(name string) (Corpus, bool) {
	return lookupNamed(corpora, name, func(c Corpus) (string, []string) { return c.Name, c.Aliases })
}

// ReadCorpus calls fn for every passage of a shipped corpus, in file order.
// It stops at the first error from fn or when ctx ends.
func ReadCorpus(ctx context.Context, name string, fn func(Passage) error) error {
	c, ok := LookupCorpus(name)
	if !ok {
		names := make([]string, len(corpora))
		for i, c := range corpora {
			names[i] = c.Name
		}
		return fmt.Errorf("no shipped corpus named %q; have %s", name, strings.Join(names, ", "))
	}
	data, err := readEmbedded(c.File)
	if err != nil {
		return err
	}
	n := 0
	emit := func(p Passage) error {
		n++
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		return fn(p)
	}
	src := "builtin corpus " + c.Name
	switch c.layout {
	case layoutTitleSentences:
		return readTitleSentences(src, data, emit)
	case layoutTitleText:
		return readTitleText(src, data, emit)
	default:
		return readIDContents(src, data, emit)
	}
}

// OpenCorpus returns a shipped corpus as JSONL, one
// {"id", "title", "text", "contents"} object per line, the layout the corpus
// and retrieval packages index.
func OpenCorpus(ctx context.Context, name string) (io.ReadCloser, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := ReadCorpus(ctx, name, func(p Passage) error { return enc.Encode(p) })
	if err != nil {
		return nil, err
	}
	return io.NopCloser(&buf), nil
}

func readTitleSentences(src string, data []byte, emit func(Passage) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("%s: want a JSON object of title: [sentences]", src)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		title, _ := t.(string)
		var sentences []string
		if err := dec.Decode(&sentences); err != nil {
			return fmt.Errorf("%s: passage %q: %w", src, title, err)
		}
		// HotpotQA keeps each sentence's leading space, so plain
		// concatenation restores the paragraph.
		text := strings.Join(sentences, "")
		if err := emit(Passage{ID: title, Title: title, Text: text, Contents: contentsOf(title, text)}); err != nil {
			return err
		}
	}
	return nil
}

func readTitleText(src string, data []byte, emit func(Passage) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return fmt.Errorf("%s: want a JSON array of {title, text}", src)
	}
	for i := 0; dec.More(); i++ {
		var r struct {
			Title string `json:"title"`
			Text  string `json:"text"`
		}
		if err := dec.Decode(&r); err != nil {
			return fmt.Errorf("%s: passage %d: %w", src, i, err)
		}
		if err := emit(Passage{ID: r.Title, Title: r.Title, Text: r.Text, Contents: contentsOf(r.Title, r.Text)}); err != nil {
			return err
		}
	}
	return nil
}

func readIDContents(src string, data []byte, emit func(Passage) error) error {
	line := 0
	for len(data) > 0 {
		line++
		var raw []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, data = data[:i], data[i+1:]
		} else {
			raw, data = data, nil
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		var r struct {
			ID       json.RawMessage `json:"id"`
			Contents string          `json:"contents"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("%s:%d: %w", src, line, err)
		}
		id, err := rawID(r.ID)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", src, line, err)
		}
		title, text := splitContents(r.Contents)
		if err := emit(Passage{ID: id, Title: title, Text: text, Contents: r.Contents}); err != nil {
			return err
		}
	}
	return nil
}

func rawID(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), nil
	}
	return "", errors.New(`"id" is not a string or number`)
}

// splitContents splits "\"Title\"\ntext" into its title (quotes removed)
// and text.
func splitContents(contents string) (string, string) {
	title, text, ok := strings.Cut(contents, "\n")
	if !ok {
		return "", contents
	}
	if len(title) >= 2 && title[0] == '"' && title[len(title)-1] == '"' {
		title = title[1 : len(title)-1]
	}
	return title, text
}

// CorpusHelp lists the shipped corpora for a command's --help.
func CorpusHelp() string {
	var b strings.Builder
	b.WriteString("Built-in corpora (--corpus builtin:NAME):\n")
	for _, c := range corpora {
		name := c.Name
		if len(c.Aliases) > 0 {
			name += " (" + strings.Join(c.Aliases, ", ") + ")"
		}
		fmt.Fprintf(&b, "  %-42s %6d  %s\n", name, c.Passages, c.Description)
	}
	return b.String()
}
