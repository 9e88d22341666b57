// Package tools holds the agent's tools behind two small interfaces: a
// Searcher (local retrieval server, Serper) and a Browser (local /access,
// direct fetch with readability, Jina Reader), plus caching and replay.
package tools

import "context"

// SearchResult is one hit of a search.
type SearchResult struct {
	Title string  `json:"title,omitempty"`
	URL   string  `json:"url,omitempty"`
	ID    string  `json:"id,omitempty"`
	Text  string  `json:"text"` // passage contents, or the snippet of a web result
	Score float64 `json:"score,omitempty"`
}

// Searcher answers a text query with ranked results.
type Searcher interface {
	Search(ctx context.Context, query string, topk int) ([]SearchResult, error)
}

// Page is the readable content of a url (or of a local passage id).
type Page struct {
	URL     string `json:"url"`
	Title   string `json:"title,omitempty"`
	Content string `json:"content"` // plain text or markdown
}

// Browser reads a page. A failure is an error, never a silently empty page.
type Browser interface {
	Access(ctx context.Context, url string) (*Page, error)
}
