package tools

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// JinaEndpoint is the Jina Reader service.
const JinaEndpoint = "https://r.jina.ai/"

// JinaConfig configures the Jina Reader browser.
type JinaConfig struct {
	// APIKey is sent as a bearer token; see JinaKeyFromEnv. Without one
	// Jina still answers, at a much lower rate limit.
	APIKey string
	// Endpoint defaults to JinaEndpoint (tests point it at a fake).
	Endpoint   string
	HTTPClient *http.Client
	Retry      Retry
	// Timeout bounds one attempt [30s].
	Timeout time.Duration
	// MaxConcurrent caps simultaneous Jina calls [5].
	MaxConcurrent int
	// MaxBytes caps the page read [8 MiB]; longer pages are cut.
	MaxBytes int64
}

// JinaKeyFromEnv returns $JINA_API_KEY.
func JinaKeyFromEnv() string { return os.Getenv("JINA_API_KEY") }

// Jina reads pages through the Jina Reader: GET https://r.jina.ai/<url>
// returns the page as markdown (it also renders JavaScript and extracts
// PDFs, which the direct fetcher does not).
type Jina struct {
	endpoint string
	key      string
	d        *doer
}

// NewJina returns a Jina Reader client.
func NewJina(cfg JinaConfig) (*Jina, error) {
	ep := cfg.Endpoint
	if ep == "" {
		ep = JinaEndpoint
	}
	if !strings.HasSuffix(ep, "/") {
		ep += "/"
	}
	conc := cfg.MaxConcurrent
	if conc <= 0 {
		conc = 5
	}
	maxBytes := cfg.MaxBytes
	if maxBytes <= 0 {
		maxBytes = 8 << 20
	}
	return &Jina{endpoint: ep, key: cfg.APIKey, d: newDoer("fetch", "jina", doerConfig{
		client: cfg.HTTPClient, retry: cfg.Retry, timeout: cfg.Timeout, defaultTimeout: 30 * time.Second,
		concurrent: conc, maxBytes: maxBytes, secret: cfg.APIKey,
	})}, nil
}

// String names the backend for logs and cache keys (never the key).
func (j *Jina) String() string { return "jina" }

// Access implements Browser.
func (j *Jina) Access(ctx context.Context, pageURL string) (*Page, error) {
	u, err := url.Parse(pageURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &Error{Op: "fetch", Backend: "jina", Msg: "not an http(s) URL: " + truncateRunes(pageURL, 200)}
	}
	rep, err := j.d.send(ctx, "jina", func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.endpoint+pageURL, nil)
		if err != nil {
			return nil, err
		}
		if j.key != "" {
			req.Header.Set("Authorization", "Bearer "+j.key)
		}
		req.Header.Set("X-Return-Format", "markdown")
		return req, nil
	})
	if err != nil {
		return nil, err
	}
	if rep.status != http.StatusOK {
		return nil, statusError("fetch", "jina", rep.status, jinaMessage(rep.body, j.d))
	}
	p := ParseJinaReply(string(rep.body))
	if p.URL == "" {
		p.URL = pageURL
	}
	if strings.TrimSpace(p.Content) == "" {
		return nil, &Error{Op: "fetch", Backend: "jina", Msg: "page is empty"}
	}
	return p, nil
}

func jinaMessage(body []byte, d *doer) string {
	var e struct {
		ReadableMessage string `json:"readableMessage"`
		Message         string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil {
		if e.ReadableMessage != "" {
			return d.scrub(truncateRunes(e.ReadableMessage, 200))
		}
		if e.Message != "" {
			return d.scrub(truncateRunes(e.Message, 200))
		}
	}
	return d.bodySnippet(body)
}

// ParseJinaReply reads the Reader's text format:
//
//	Title: <title>
//
//	URL Source: <url>
//
//	Markdown Content:
//	<markdown>
//
// Header lines it does not know (Published Time, Warning, …) are skipped;
// a body without the header is all content.
func ParseJinaReply(body string) *Page {
	p := &Page{}
	const marker = "Markdown Content:"
	head, content, found := strings.Cut(body, marker)
	h := strings.TrimSpace(head)
	if !found || !(strings.HasPrefix(h, "Title:") || strings.HasPrefix(h, "URL Source:")) {
		p.Content = strings.TrimSpace(body)
		return p
	}
	for _, line := range strings.Split(head, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "Title:"):
			p.Title = strings.TrimSpace(strings.TrimPrefix(line, "Title:"))
		case strings.HasPrefix(line, "URL Source:"):
			p.URL = strings.TrimSpace(strings.TrimPrefix(line, "URL Source:"))
		}
	}
	p.Content = strings.TrimSpace(content)
	return p
}
