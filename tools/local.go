package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// LocalConfig points at a retrieval server that speaks the Search-R1 /
// ASearcher API (our `asearcher serve search`, or the upstream Python one).
type LocalConfig struct {
	// BaseURL is the server root, e.g. http://127.0.0.1:5005.
	BaseURL    string
	HTTPClient *http.Client
	Retry      Retry
	// Timeout bounds one attempt [30s].
	Timeout time.Duration
}

// Local is a client for a local retrieval server: Search uses POST
// /retrieve and Access uses POST /access. It implements Searcher and
// Browser.
type Local struct {
	base string
	d    *doer
}

// NewLocal returns a client for the retrieval server at cfg.BaseURL.
func NewLocal(cfg LocalConfig) (*Local, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("retrieval server URL %q: want http(s)://host:port", cfg.BaseURL)
	}
	return &Local{
		base: strings.TrimRight(u.String(), "/"),
		d: newDoer("search", "local", doerConfig{client: cfg.HTTPClient, retry: cfg.Retry, timeout: cfg.Timeout,
			defaultTimeout: 30 * time.Second, maxBytes: 64 << 20}),
	}, nil
}

// String names the backend for logs and cache keys.
func (l *Local) String() string { return "local:" + l.base }

func (l *Local) post(ctx context.Context, op, path string, body []byte) ([]byte, error) {
	d := *l.d
	d.op = op
	rep, err := d.send(ctx, "", func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.base+path, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		return req, nil
	})
	if err != nil {
		return nil, err
	}
	if rep.status != http.StatusOK {
		return nil, statusError(op, "local", rep.status, d.bodySnippet(rep.body))
	}
	if rep.truncated {
		return nil, &Error{Op: op, Backend: "local", Msg: "reply too large"}
	}
	return rep.body, nil
}

// Search implements Searcher with POST /retrieve
// {"queries":[q],"topk":k,"return_scores":true}.
func (l *Local) Search(ctx context.Context, query string, topk int) ([]SearchResult, error) {
	body, _ := json.Marshal(struct {
		Queries      []string `json:"queries"`
		TopK         int      `json:"topk,omitempty"`
		ReturnScores bool     `json:"return_scores"`
	}{[]string{query}, topk, true})
	data, err := l.post(ctx, "search", "/retrieve", body)
	if err != nil {
		return nil, err
	}
	results, err := ParseRetrieveReply(data)
	if err != nil {
		return nil, &Error{Op: "search", Backend: "local", Msg: err.Error()}
	}
	if len(results) != 1 {
		return nil, &Error{Op: "search", Backend: "local", Msg: fmt.Sprintf("asked 1 query, got results for %d", len(results))}
	}
	return results[0], nil
}

// Access implements Browser with POST /access {"urls":[url]}. A url the
// server does not know is an error ("page not found"), not an empty page.
func (l *Local) Access(ctx context.Context, pageURL string) (*Page, error) {
	body, _ := json.Marshal(struct {
		URLs []string `json:"urls"`
	}{[]string{pageURL}})
	data, err := l.post(ctx, "fetch", "/access", body)
	if err != nil {
		return nil, err
	}
	pages, reasons, err := ParseAccessReply(data)
	if err != nil {
		return nil, &Error{Op: "fetch", Backend: "local", Msg: err.Error()}
	}
	if len(pages) != 1 {
		return nil, &Error{Op: "fetch", Backend: "local", Msg: fmt.Sprintf("asked 1 url, got %d pages", len(pages))}
	}
	if pages[0] == nil {
		msg := "page not found in the local corpus"
		if reasons[0] != "" {
			msg += " (" + truncateRunes(reasons[0], 200) + ")"
		}
		return nil, &Error{Op: "fetch", Backend: "local", Status: http.StatusNotFound, Msg: msg}
	}
	p := pages[0]
	if strings.TrimSpace(p.Content) == "" {
		return nil, &Error{Op: "fetch", Backend: "local", Msg: "page is empty"}
	}
	if p.URL == "" {
		p.URL = pageURL
	}
	return p, nil
}

// retrieveRow is one corpus row as the servers return it. Rows are whole
// corpus records, so only the fields we know are read.
type retrieveRow struct {
	Contents *string         `json:"contents"`
	Title    *string         `json:"title"`
	Text     *string         `json:"text"`
	URL      string          `json:"url"`
	ID       json.RawMessage `json:"id"`
	Score    *float64        `json:"score"`
	Document json.RawMessage `json:"document"`
}

// ParseRetrieveReply reads a /retrieve reply: {"result": [[row...] per
// query]}. A row is a corpus record with "contents" ("Title"\ntext) or
// "title"/"text", optional "url", "id" and "score"; with return_scores the
// upstream server wraps it as {"document": row, "score": s}.
func ParseRetrieveReply(data []byte) ([][]SearchResult, error) {
	var reply struct {
		Result [][]json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &reply); err != nil {
		return nil, fmt.Errorf("bad /retrieve reply: %v", err)
	}
	if reply.Result == nil {
		return nil, errors.New(`bad /retrieve reply: no "result"`)
	}
	out := make([][]SearchResult, len(reply.Result))
	for qi, rows := range reply.Result {
		out[qi] = make([]SearchResult, 0, len(rows))
		for ri, raw := range rows {
			var row retrieveRow
			if err := json.Unmarshal(raw, &row); err != nil {
				return nil, fmt.Errorf("bad /retrieve reply: query %d row %d: %v", qi, ri, err)
			}
			if len(row.Document) > 0 && string(row.Document) != "null" {
				score := row.Score
				row = retrieveRow{}
				if err := json.Unmarshal(raw, &struct {
					Document *retrieveRow `json:"document"`
				}{&row}); err != nil {
					return nil, fmt.Errorf("bad /retrieve reply: query %d row %d document: %v", qi, ri, err)
				}
				if score != nil {
					row.Score = score
				}
			}
			res, err := rowToResult(row)
			if err != nil {
				return nil, fmt.Errorf("bad /retrieve reply: query %d row %d: %v", qi, ri, err)
			}
			out[qi] = append(out[qi], res)
		}
	}
	return out, nil
}

func rowToResult(row retrieveRow) (SearchResult, error) {
	res := SearchResult{URL: row.URL, ID: idString(row.ID)}
	if row.Score != nil {
		res.Score = *row.Score
	}
	switch {
	case row.Contents != nil:
		res.Text = *row.Contents
		first, _, _ := strings.Cut(res.Text, "\n")
		res.Title = unquoteTitle(first)
	case row.Title != nil || row.Text != nil:
		if row.Title != nil {
			res.Title = *row.Title
		}
		if row.Text != nil {
			res.Text = *row.Text
		}
		// Keep the corpus convention so results print the same either way.
		res.Text = `"` + res.Title + `"` + "\n" + res.Text
	default:
		return res, errors.New(`row has neither "contents" nor "title"/"text"`)
	}
	return res, nil
}

// unquoteTitle strips the quotes wiki-18 puts around passage titles.
func unquoteTitle(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

func idString(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw) // a number: keep its literal form
}

// ParseAccessReply reads an /access reply: {"result": [row|null ...]},
// where a row has "contents" and optionally "url" and "title". Servers may
// add "errors": [null|"why" ...] beside it (ours does); reasons holds those
// messages, "" where there is none.
func ParseAccessReply(data []byte) (pages []*Page, reasons []string, err error) {
	var reply struct {
		Result []json.RawMessage `json:"result"`
		Errors []*string         `json:"errors"`
	}
	if err := json.Unmarshal(data, &reply); err != nil {
		return nil, nil, fmt.Errorf("bad /access reply: %v", err)
	}
	if reply.Result == nil {
		return nil, nil, errors.New(`bad /access reply: no "result"`)
	}
	reasons = make([]string, len(reply.Result))
	for i, e := range reply.Errors {
		if i < len(reasons) && e != nil {
			reasons[i] = *e
		}
	}
	out := make([]*Page, len(reply.Result))
	for i, raw := range reply.Result {
		if string(bytes.TrimSpace(raw)) == "null" {
			continue
		}
		var row struct {
			URL      string  `json:"url"`
			Title    string  `json:"title"`
			Contents *string `json:"contents"`
			Text     *string `json:"text"`
			Page     *string `json:"page"`
		}
		if err := json.Unmarshal(raw, &row); err != nil {
			return nil, nil, fmt.Errorf("bad /access reply: page %d: %v", i, err)
		}
		p := &Page{URL: row.URL, Title: row.Title}
		switch {
		case row.Contents != nil:
			p.Content = *row.Contents
		case row.Text != nil:
			p.Content = *row.Text
		case row.Page != nil:
			p.Content = *row.Page
		default:
			return nil, nil, fmt.Errorf(`bad /access reply: page %d has no "contents"`, i)
		}
		out[i] = p
	}
	return out, reasons, nil
}
