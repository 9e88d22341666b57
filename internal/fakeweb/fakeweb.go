// Package fakeweb holds in-process stand-ins for the web services the
// agent's tools talk to, for tests on loopback only:
//
//   - Serper: google.serper.dev's POST /search (X-API-KEY, {"q","num"} →
//     {"searchParameters", "organic": [{title, link, snippet, position}], "credits"}).
//   - Jina: the Jina Reader (GET /<url> with a bearer key → "Title: …\n\nURL
//     Source: …\n\nMarkdown Content:\n…").
//   - Site: a website with scripted pages: bodies, content types, statuses,
//     redirects, delays.
//   - Retrieval: a tiny Search-R1/ASearcher retrieval server (POST /retrieve,
//     POST /access) over an in-memory list of documents, scored by shared
//     words. The real one is `asearcher serve search`; this one is for unit
//     tests that need a searcher without building an index.
//
// Every server listens on 127.0.0.1 with a random port, records what it
// received, and is stopped with Close.
package fakeweb

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"time"
)

func listen(h http.Handler) *httptest.Server {
	s := httptest.NewUnstartedServer(h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("fakeweb: listen on loopback: %v", err))
	}
	s.Listener = ln
	s.Start()
	return s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// counter is a thread-safe request log.
type counter struct {
	mu   sync.Mutex
	seen []string
}

func (c *counter) add(s string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = append(c.seen, s)
	return len(c.seen)
}

func (c *counter) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.seen...)
}

// Hit is one organic Serper result.
type Hit struct {
	Title, Link, Snippet string
}

// Serper fakes google.serper.dev.
type Serper struct {
	// URL is the /search endpoint to give the client.
	URL string
	hs  *httptest.Server
	key string

	mu      sync.Mutex
	results map[string][]Hit
	fail    []int // statuses for the next calls
	calls   counter
	headers []http.Header
}

// NewSerper starts a fake that requires X-API-KEY == key.
func NewSerper(key string) *Serper {
	s := &Serper{key: key, results: map[string][]Hit{}}
	s.hs = listen(http.HandlerFunc(s.serve))
	s.URL = s.hs.URL + "/search"
	return s
}

// Close stops the server.
func (s *Serper) Close() { s.hs.Close() }

// Set makes query return hits.
func (s *Serper) Set(query string, hits ...Hit) {
	s.mu.Lock()
	s.results[query] = hits
	s.mu.Unlock()
}

// FailNext makes the next calls answer with these HTTP statuses, in order.
func (s *Serper) FailNext(statuses ...int) {
	s.mu.Lock()
	s.fail = append(s.fail, statuses...)
	s.mu.Unlock()
}

// Queries lists the queries received, oldest first.
func (s *Serper) Queries() []string { return s.calls.list() }

// Headers lists the request headers received, oldest first.
func (s *Serper) Headers() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.headers...)
}

func (s *Serper) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.headers = append(s.headers, r.Header.Clone())
	s.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/search" {
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not found", "statusCode": 404})
		return
	}
	if r.Header.Get("X-API-KEY") != s.key {
		writeJSON(w, http.StatusForbidden, map[string]any{"message": "Unauthorized.", "statusCode": 403})
		return
	}
	var req struct {
		Q   string `json:"q"`
		Num int    `json:"num"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Q == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "Query is required", "statusCode": 400})
		return
	}
	s.calls.add(req.Q)
	s.mu.Lock()
	if len(s.fail) > 0 {
		st := s.fail[0]
		s.fail = s.fail[1:]
		s.mu.Unlock()
		writeJSON(w, st, map[string]any{"message": http.StatusText(st), "statusCode": st})
		return
	}
	hits := s.results[req.Q]
	s.mu.Unlock()
	num := req.Num
	if num <= 0 {
		num = 10
	}
	organic := []map[string]any{}
	for i, h := range hits {
		if i >= num {
			break
		}
		organic = append(organic, map[string]any{"title": h.Title, "link": h.Link, "snippet": h.Snippet, "position": i + 1})
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"searchParameters": map[string]any{"q": req.Q, "type": "search", "num": num, "engine": "google"},
		"organic":          organic,
		"credits":          1,
	})
}

// Jina fakes the Jina Reader.
type Jina struct {
	// URL is the reader endpoint (ends with "/").
	URL   string
	hs    *httptest.Server
	key   string
	mu    sync.Mutex
	pages map[string][2]string // url → title, markdown
	fail  []int
	calls counter
}

// NewJina starts a fake reader that requires "Authorization: Bearer key"
// (no header needed when key is empty).
func NewJina(key string) *Jina {
	j := &Jina{key: key, pages: map[string][2]string{}}
	j.hs = listen(http.HandlerFunc(j.serve))
	j.URL = j.hs.URL + "/"
	return j
}

// Close stops the server.
func (j *Jina) Close() { j.hs.Close() }

// Set makes the reader return title and markdown for pageURL.
func (j *Jina) Set(pageURL, title, markdown string) {
	j.mu.Lock()
	j.pages[pageURL] = [2]string{title, markdown}
	j.mu.Unlock()
}

// FailNext makes the next calls answer with these HTTP statuses.
func (j *Jina) FailNext(statuses ...int) {
	j.mu.Lock()
	j.fail = append(j.fail, statuses...)
	j.mu.Unlock()
}

// URLs lists the page URLs requested, oldest first.
func (j *Jina) URLs() []string { return j.calls.list() }

func (j *Jina) serve(w http.ResponseWriter, r *http.Request) {
	if j.key != "" && r.Header.Get("Authorization") != "Bearer "+j.key {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"data": nil, "code": 401, "name": "AuthenticationRequiredError", "status": 40103, "message": "Invalid API key", "readableMessage": "AuthenticationRequiredError: Invalid API key"})
		return
	}
	target := strings.TrimPrefix(r.URL.RequestURI(), "/")
	j.calls.add(target)
	j.mu.Lock()
	if len(j.fail) > 0 {
		st := j.fail[0]
		j.fail = j.fail[1:]
		j.mu.Unlock()
		writeJSON(w, st, map[string]any{"data": nil, "code": st, "message": http.StatusText(st), "readableMessage": http.StatusText(st)})
		return
	}
	page, ok := j.pages[target]
	j.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"data": nil, "code": 422, "name": "AssertionFailureError", "status": 42206,
			"message": "Failed to goto " + target, "readableMessage": "AssertionFailureError: Failed to goto " + target})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Title: %s\n\nURL Source: %s\n\nMarkdown Content:\n%s", page[0], target, page[1])
}

// Page is one scripted response of a Site.
type Page struct {
	Status      int    // 200 when 0
	ContentType string // "text/html; charset=utf-8" when empty
	Body        string
	// Redirect, when set, answers 302 with this Location.
	Redirect string
	Delay    time.Duration
	Header   http.Header
}

// Site is a website with scripted pages.
type Site struct {
	// URL is the site root, e.g. http://127.0.0.1:41234.
	URL   string
	hs    *httptest.Server
	mu    sync.Mutex
	pages map[string]Page
	calls counter
	cur   int
	peak  int
}

// NewSite starts an empty site; unknown paths answer 404.
func NewSite() *Site {
	s := &Site{pages: map[string]Page{}}
	s.hs = listen(http.HandlerFunc(s.serve))
	s.URL = s.hs.URL
	return s
}

// Close stops the server.
func (s *Site) Close() { s.hs.Close() }

// Set serves p at path (which may include a query string).
func (s *Site) Set(path string, p Page) {
	s.mu.Lock()
	s.pages[path] = p
	s.mu.Unlock()
}

// Paths lists the paths requested, oldest first.
func (s *Site) Paths() []string { return s.calls.list() }

// Peak is the most requests the site was serving at once.
func (s *Site) Peak() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

func (s *Site) serve(w http.ResponseWriter, r *http.Request) {
	s.calls.add(r.URL.RequestURI())
	s.mu.Lock()
	p, ok := s.pages[r.URL.RequestURI()]
	s.cur++
	s.peak = max(s.peak, s.cur)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.cur--
		s.mu.Unlock()
	}()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if p.Delay > 0 {
		select {
		case <-time.After(p.Delay):
		case <-r.Context().Done():
			return
		}
	}
	for k, vs := range p.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if p.Redirect != "" {
		http.Redirect(w, r, p.Redirect, http.StatusFound)
		return
	}
	ct := p.ContentType
	if ct == "" {
		ct = "text/html; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	st := p.Status
	if st == 0 {
		st = http.StatusOK
	}
	w.WriteHeader(st)
	_, _ = w.Write([]byte(p.Body))
}

// Doc is one document of a Retrieval server.
type Doc struct {
	ID       string
	Contents string // "Title"\ntext, as wiki-18 passages are written
	URL      string
}

// Retrieval is a small /retrieve + /access server.
type Retrieval struct {
	// URL is the server root.
	URL   string
	hs    *httptest.Server
	docs  []Doc
	pages map[string]string
	calls counter
}

// NewRetrieval serves docs for /retrieve and pages (url → contents) for
// /access.
func NewRetrieval(docs []Doc, pages map[string]string) *Retrieval {
	rs := &Retrieval{docs: docs, pages: pages}
	mux := http.NewServeMux()
	mux.HandleFunc("/retrieve", rs.retrieve)
	mux.HandleFunc("/access", rs.access)
	rs.hs = listen(mux)
	rs.URL = rs.hs.URL
	return rs
}

// Close stops the server.
func (rs *Retrieval) Close() { rs.hs.Close() }

// Requests lists the request paths received.
func (rs *Retrieval) Requests() []string { return rs.calls.list() }

func words(s string) map[string]bool {
	out := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127)
	}) {
		out[w] = true
	}
	return out
}

func (rs *Retrieval) retrieve(w http.ResponseWriter, r *http.Request) {
	rs.calls.add("/retrieve")
	var req struct {
		Queries      []string `json:"queries"`
		TopK         *int     `json:"topk"`
		ReturnScores bool     `json:"return_scores"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": err.Error()})
		return
	}
	k := 3
	if req.TopK != nil && *req.TopK > 0 {
		k = *req.TopK
	}
	result := make([][]any, len(req.Queries))
	for qi, q := range req.Queries {
		qw := words(q)
		type scored struct {
			i int
			s float64
		}
		var ranked []scored
		for i, d := range rs.docs {
			n := 0
			for w := range words(d.Contents) {
				if qw[w] {
					n++
				}
			}
			if n > 0 {
				ranked = append(ranked, scored{i, float64(n)})
			}
		}
		sort.SliceStable(ranked, func(a, b int) bool { return ranked[a].s > ranked[b].s })
		result[qi] = []any{}
		for _, sc := range ranked[:min(k, len(ranked))] {
			d := rs.docs[sc.i]
			row := map[string]any{"id": d.ID, "contents": d.Contents, "url": d.URL}
			if req.ReturnScores {
				result[qi] = append(result[qi], map[string]any{"document": row, "score": sc.s})
			} else {
				result[qi] = append(result[qi], row)
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": result})
}

func (rs *Retrieval) access(w http.ResponseWriter, r *http.Request) {
	rs.calls.add("/access")
	var req struct {
		URLs []string `json:"urls"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": err.Error()})
		return
	}
	result := make([]any, len(req.URLs))
	for i, u := range req.URLs {
		if c, ok := rs.pages[u]; ok {
			result[i] = map[string]any{"url": u, "contents": c}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": result})
}
