// Package corpus reads passage corpora (JSONL, JSONL.zst and the JSON
// documents we ship) and keeps them in an on-disk store with O(1) lookup of a
// passage by ordinal, id and url, without loading the corpus into memory.
package corpus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/asearcher/asearcher/internal/jsonw"
)

// DefaultURLTemplate gives passages without a url one in the form ASearcher's
// wiki corpus uses, so clients that read row["url"] keep working.
const DefaultURLTemplate = "https://en.wikipedia.org/w/index.php?title={title}"

// Passage is one retrievable unit of a corpus.
type Passage struct {
	ID    string
	Title string
	// Contents is the indexed text: `"Title"` on the first line and the
	// passage text after it, the wiki-18 layout that ASearcher clients read.
	Contents string
	URL      string
	// Row is the full JSON object served to clients: every column of the
	// source row plus id, title, contents and url when the source lacked them.
	Row []byte
}

// Text returns the passage text without the title line.
func (p *Passage) Text() string { return TextOf(p.Contents) }

// RowOptions control how a source row is normalised into a Passage.
type RowOptions struct {
	// URLTemplate builds a url for rows without one; {title} is replaced by
	// the query-escaped title. Empty leaves such rows without a url.
	URLTemplate string
}

// rawRow lists the columns we interpret; all others pass through untouched.
type rawRow struct {
	ID       json.RawMessage `json:"id"`
	Contents *string         `json:"contents"`
	Title    *string         `json:"title"`
	Text     *string         `json:"text"`
	URL      *string         `json:"url"`
}

// ParseRow turns one JSON object into a Passage. index is the record's
// position in its file and becomes the id of rows without one (the FlashRAG
// convention, where ids are "0", "1", ...).
func ParseRow(data []byte, index int64, opts RowOptions) (Passage, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return Passage{}, errors.New("not a JSON object")
	}
	if !utf8.Valid(data) {
		// Invalid bytes can only sit inside JSON strings, so replacing them
		// keeps the row valid and makes it safe to embed in responses.
		data = bytes.ToValidUTF8(data, []byte("\uFFFD"))
	}
	var r rawRow
	if err := json.Unmarshal(data, &r); err != nil {
		return Passage{}, fmt.Errorf("invalid JSON: %w", err)
	}
	var p Passage
	var missing struct{ id, title, contents, url bool }
	switch id := bytes.TrimSpace(r.ID); {
	case len(id) == 0 || string(id) == "null":
		p.ID = strconv.FormatInt(index, 10)
		missing.id = true
	case id[0] == '"':
		if err := json.Unmarshal(id, &p.ID); err != nil {
			return Passage{}, fmt.Errorf("id: %w", err)
		}
	case id[0] == '-' || (id[0] >= '0' && id[0] <= '9'):
		p.ID = string(id)
	default:
		return Passage{}, errors.New("id must be a string or a number")
	}
	switch {
	case r.Contents != nil:
		p.Contents = *r.Contents
		if r.Title != nil {
			p.Title = *r.Title
		} else {
			p.Title = TitleOf(p.Contents)
			missing.title = true
		}
	case r.Text != nil:
		if r.Title != nil {
			p.Title = *r.Title
		}
		p.Contents = JoinContents(p.Title, *r.Text)
		missing.contents = true
	default:
		return Passage{}, errors.New(`row has neither "contents" nor "text"`)
	}
	if r.URL != nil {
		p.URL = *r.URL
	} else if opts.URLTemplate != "" && p.Title != "" {
		p.URL = URLFor(opts.URLTemplate, p.Title)
		missing.url = true
	}
	// Splice the missing columns in front of the source's own columns, so
	// large texts are never re-encoded.
	row := make([]byte, 0, len(data)+len(p.Contents)*b2i(missing.contents)+len(p.URL)+len(p.Title)+64)
	row = append(row, '{')
	add := func(name, value string) {
		row = append(row, '"')
		row = append(row, name...)
		row = append(row, `":`...)
		row = AppendJSONString(row, value)
		row = append(row, ',')
	}
	if missing.id {
		add("id", p.ID)
	}
	if missing.title {
		add("title", p.Title)
	}
	if missing.contents {
		add("contents", p.Contents)
	}
	if missing.url {
		add("url", p.URL)
	}
	rest := bytes.TrimSpace(data[1:])
	if len(rest) == 1 && rest[0] == '}' && row[len(row)-1] == ',' {
		row[len(row)-1] = '}'
	} else {
		row = append(row, rest...)
	}
	p.Row = compactIfSpaced(row)
	return p, nil
}

// compactIfSpaced removes insignificant whitespace (pretty-printed JSON
// documents) so every stored row is a single line.
func compactIfSpaced(row []byte) []byte {
	if bytes.IndexByte(row, '\n') < 0 && bytes.IndexByte(row, '\r') < 0 {
		return row
	}
	var b bytes.Buffer
	if err := json.Compact(&b, row); err != nil {
		return row
	}
	return b.Bytes()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// JoinContents builds the wiki-18 contents layout from a title and a text.
func JoinContents(title, text string) string {
	if title == "" {
		return text
	}
	return `"` + title + "\"\n" + text
}

// TitleOf returns the first line of contents without surrounding quotes.
func TitleOf(contents string) string {
	line, _, found := strings.Cut(contents, "\n")
	if !found {
		return ""
	}
	line = strings.TrimSpace(line)
	if len(line) >= 2 && line[0] == '"' && line[len(line)-1] == '"' {
		line = line[1 : len(line)-1]
	}
	return line
}

// TextOf returns contents after its title line.
func TextOf(contents string) string {
	_, text, found := strings.Cut(contents, "\n")
	if !found {
		return contents
	}
	return text
}

// URLFor fills a url template with a title, escaped as Python's
// urllib.parse.quote(title, safe="") does (spaces become %20).
func URLFor(template, title string) string {
	esc := strings.ReplaceAll(url.QueryEscape(title), "+", "%20")
	return strings.ReplaceAll(template, "{title}", esc)
}

// AppendJSONString appends s as a JSON string literal. Unlike encoding/json it
// does not escape <, > and &, which keeps passage text readable on the wire.
func AppendJSONString(dst []byte, s string) []byte { return jsonw.AppendString(dst, s) }
