package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"
	"unicode/utf8"
)

// SerperEndpoint is Serper's Google search API.
const SerperEndpoint = "https://google.serper.dev/search"

// SerperConfig configures the Serper web search backend.
type SerperConfig struct {
	// APIKey is sent as X-API-KEY; see SerperKeyFromEnv. It never appears in
	// logs, errors or results.
	APIKey string
	// Endpoint defaults to SerperEndpoint (tests point it at a fake).
	Endpoint   string
	HTTPClient *http.Client
	Retry      Retry
	// Timeout bounds one attempt [20s].
	Timeout time.Duration
	// MaxConcurrent caps simultaneous Serper calls [10].
	MaxConcurrent int
}

// SerperKeyFromEnv returns $SERPER_API_KEY.
func SerperKeyFromEnv() string { return os.Getenv("SERPER_API_KEY") }

// Serper searches the web through google.serper.dev: POST /search
// {"q", "num"} with the X-API-KEY header; results are the "organic" hits
// with title, link and snippet.
type Serper struct {
	endpoint string
	key      string
	d        *doer
}

// NewSerper returns a Serper client; an empty key is an error that says
// which variable to set.
func NewSerper(cfg SerperConfig) (*Serper, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("serper: no API key; set SERPER_API_KEY")
	}
	ep := cfg.Endpoint
	if ep == "" {
		ep = SerperEndpoint
	}
	conc := cfg.MaxConcurrent
	if conc <= 0 {
		conc = 10
	}
	return &Serper{endpoint: ep, key: cfg.APIKey, d: newDoer("search", "serper", doerConfig{
		client: cfg.HTTPClient, retry: cfg.Retry, timeout: cfg.Timeout, defaultTimeout: 20 * time.Second,
		concurrent: conc, maxBytes: 8 << 20, secret: cfg.APIKey,
	})}, nil
}

// String names the backend for logs and cache keys (never the key).
func (s *Serper) String() string { return "serper" }

// maxSerperQuery is how much of a query Serper gets; upstream cuts at 2,000
// characters too.
const maxSerperQuery = 2000

// Search implements Searcher.
func (s *Serper) Search(ctx context.Context, query string, topk int) ([]SearchResult, error) {
	if topk <= 0 {
		topk = 10
	}
	q := truncateRunes(query, maxSerperQuery)
	body, _ := json.Marshal(struct {
		Q   string `json:"q"`
		Num int    `json:"num"`
	}{q, topk})
	rep, err := s.d.send(ctx, "serper", func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("X-API-KEY", s.key)
		req.Header.Set("Content-Type", "application/json")
		return req, nil
	})
	if err != nil {
		return nil, err
	}
	if rep.status != http.StatusOK {
		return nil, statusError("search", "serper", rep.status, serperMessage(rep.body, s.d))
	}
	results, err := ParseSerperReply(rep.body)
	if err != nil {
		return nil, &Error{Op: "search", Backend: "serper", Msg: s.d.scrub(err.Error())}
	}
	if len(results) > topk {
		results = results[:topk]
	}
	return results, nil
}

// serperMessage pulls {"message": ...} out of an error reply.
func serperMessage(body []byte, d *doer) string {
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		return d.scrub(e.Message)
	}
	return d.bodySnippet(body)
}

// ParseSerperReply reads the organic hits of a Serper /search reply. Each
// becomes a result with the title, the link as URL, and the snippet as
// Text (ASearcher shows "title snippet").
func ParseSerperReply(data []byte) ([]SearchResult, error) {
	var reply struct {
		Organic *[]struct {
			Title    string  `json:"title"`
			Link     string  `json:"link"`
			Snippet  string  `json:"snippet"`
			Position float64 `json:"position"`
			Date     string  `json:"date"`
		} `json:"organic"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(data, &reply); err != nil {
		return nil, fmt.Errorf("bad reply: %v", err)
	}
	if reply.Organic == nil {
		if reply.Message != "" {
			return nil, fmt.Errorf("bad reply: %s", reply.Message)
		}
		// A valid search with no web results has an empty "organic" list;
		// a reply without one is something else.
		return nil, errors.New(`bad reply: no "organic" results list`)
	}
	out := make([]SearchResult, 0, len(*reply.Organic))
	for _, o := range *reply.Organic {
		if o.Link == "" && o.Title == "" && o.Snippet == "" {
			continue
		}
		out = append(out, SearchResult{Title: o.Title, URL: o.Link, Text: o.Snippet})
	}
	return out, nil
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for k := 0; k < n; k++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s[:i]
}
