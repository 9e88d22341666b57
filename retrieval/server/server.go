// Package server serves an index over the Search-R1 / ASearcher retrieval
// API: POST /retrieve and POST /access, plus GET /health and GET /metrics.
// Requests run concurrently with no global lock.
//
// Memory stays bounded whatever clients send: bodies are capped, at most
// MaxInFlight requests are served at once (the rest wait, then get 429),
// and replies are streamed in chunks of StreamChunkBytes instead of being
// assembled whole, so a 2,560-query Search-R1 batch or a burst of
// 512-query × topk-100 requests costs a chunk per request, not its reply.
package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asearcher/asearcher/corpus"
	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/retrieval"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configure a Server. Zero values are the defaults given.
type Options struct {
	// Method is the retrieval method: bm25 (default), dense or hybrid.
	Method string
	// DefaultTopK answers requests whose topk is null or 0 (default 3, as
	// ASearcher's server).
	DefaultTopK int
	// MaxTopK is the largest topk accepted (default 1000).
	MaxTopK int
	// MaxQueries per /retrieve request (default 8192: Search-R1 sends a
	// whole GRPO batch, train_batch_size × n_agent, in one request).
	MaxQueries int
	// MaxResults bounds queries × topk of one request, the rows its reply
	// may hold (default 1,000,000).
	MaxResults int
	// MaxURLs per /access request (default 256).
	MaxURLs int
	// MaxInFlight is how many /retrieve and /access requests are served at
	// once (default 32); the others wait up to QueueTimeout for a turn and
	// are then answered 429.
	MaxInFlight int
	// QueueTimeout is the longest a request waits for a turn (default 30 s).
	QueueTimeout time.Duration
	// StreamChunkBytes is the reply size at which a response starts to
	// stream; smaller replies are sent whole (default 256 KiB).
	StreamChunkBytes int
	// MaxBodyBytes bounds request bodies (default 4 MiB).
	MaxBodyBytes int64
	// MaxPageBytes bounds a page assembled from passages (default 1 MiB).
	MaxPageBytes int
	// RequestTimeout bounds the work of one request (default 60 s).
	RequestTimeout time.Duration
	Logger         *slog.Logger
	// Registry receives the metrics; nil makes a private one, served by
	// /metrics with Go runtime metrics.
	Registry *prometheus.Registry
}

func (o *Options) defaults() {
	if o.Method == "" {
		o.Method = "bm25"
	}
	if o.DefaultTopK <= 0 {
		o.DefaultTopK = 3
	}
	if o.MaxTopK <= 0 {
		o.MaxTopK = 1000
	}
	o.MaxTopK = min(o.MaxTopK, retrieval.MaxK)
	if o.MaxQueries <= 0 {
		o.MaxQueries = 8192
	}
	if o.MaxResults <= 0 {
		o.MaxResults = 1_000_000
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 32
	}
	if o.QueueTimeout <= 0 {
		o.QueueTimeout = 30 * time.Second
	}
	if o.StreamChunkBytes <= 0 {
		o.StreamChunkBytes = 256 << 10
	}
	if o.MaxURLs <= 0 {
		o.MaxURLs = 256
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 4 << 20
	}
	if o.MaxPageBytes <= 0 {
		o.MaxPageBytes = 1 << 20
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 60 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	o.DefaultTopK = min(o.DefaultTopK, o.MaxTopK)
}

// Server answers retrieval requests over one index.
type Server struct {
	ix        *retrieval.Index
	retriever retrieval.Retriever
	opts      Options
	mux       *http.ServeMux
	bufs      sync.Pool
	// turns holds a token per request being served (MaxInFlight).
	turns chan struct{}

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	queries  prometheus.Counter
	inFlight prometheus.Gauge
}

// New makes a server for ix.
func New(ix *retrieval.Index, opts Options) (*Server, error) {
	opts.defaults()
	r, err := ix.Retriever(opts.Method)
	if err != nil {
		return nil, err
	}
	s := &Server{ix: ix, retriever: r, opts: opts, mux: http.NewServeMux(), turns: make(chan struct{}, opts.MaxInFlight)}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "asearcher_search_requests_total", Help: "HTTP requests by endpoint and status code.",
	}, []string{"endpoint", "code"})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "asearcher_search_request_seconds", Help: "Request latency by endpoint.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14),
	}, []string{"endpoint"})
	s.queries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "asearcher_search_queries_total", Help: "Queries answered by /retrieve.",
	})
	s.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "asearcher_search_in_flight_requests", Help: "Requests being served.",
	})
	passages := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "asearcher_search_index_passages", Help: "Passages in the served index.",
	})
	passages.Set(float64(ix.Store.Len()))
	for _, c := range []prometheus.Collector{s.requests, s.latency, s.queries, s.inFlight, passages} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("server metrics: %w", err)
		}
	}
	s.mux.HandleFunc("/retrieve", s.instrument("retrieve", http.MethodPost, s.handleRetrieve))
	s.mux.HandleFunc("/access", s.instrument("access", http.MethodPost, s.handleAccess))
	s.mux.HandleFunc("/health", s.instrument("health", http.MethodGet, s.handleHealth))
	s.mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint "+r.URL.Path+"; use POST /retrieve, POST /access, GET /health or GET /metrics")
	})
	return s, nil
}

// ServeHTTP makes the server an http.Handler (mount it on an
// httptest.Server in tests).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

type statusWriter struct {
	http.ResponseWriter
	code    int
	started bool // the status line has gone out
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.started {
		w.code = code
		w.started = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.started = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) instrument(name, method string, h func(http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		s.inFlight.Inc()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			s.inFlight.Dec()
			s.requests.WithLabelValues(name, strconv.Itoa(sw.code)).Inc()
			s.latency.WithLabelValues(name).Observe(time.Since(start).Seconds())
		}()
		defer s.recoverPanic(sw, r)
		if r.Method != method {
			sw.Header().Set("Allow", method)
			writeError(sw, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s is not allowed; use %s", r.Method, r.URL.Path, method))
			return
		}
		h(sw, r)
	}
}

// recoverPanic turns a handler panic (a bug, or index data the checks at
// open missed) into a JSON 500 and a logged stack, instead of net/http's
// dropped connection. Once a streamed reply has started, the status line is
// gone, so the connection is cut: a client then fails on truncated JSON
// rather than reading a short result as complete.
func (s *Server) recoverPanic(w *statusWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	s.opts.Logger.Error("handler panic", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
	if w.started {
		w.code = http.StatusInternalServerError
		panic(http.ErrAbortHandler)
	}
	writeError(w, http.StatusInternalServerError, fmt.Sprintf("internal error: %v (see the server log)", v))
}

// admit waits for a turn to serve a request. It is taken before the body is
// read, so waiting requests hold a connection, not their bodies. false
// means the request was answered (429) or abandoned.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	release = func() { <-s.turns }
	select {
	case s.turns <- struct{}{}:
		return release, true
	default:
	}
	t := time.NewTimer(s.opts.QueueTimeout)
	defer t.Stop()
	select {
	case s.turns <- struct{}{}:
		// The server's read deadline started with the request; the wait
		// must not eat the time left to read the body.
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout))
		return release, true
	case <-t.C:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("server busy: %d requests in flight and none finished within %s; retry later", s.opts.MaxInFlight, s.opts.QueueTimeout))
		return nil, false
	case <-r.Context().Done():
		return nil, false
	}
}

// bodyReadTimeout bounds reading a request's header and body.
const bodyReadTimeout = 30 * time.Second

// apiError is the body of every 4xx/5xx response.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(apiError{Error: msg})
}

// RetrieveRequest is the body of POST /retrieve.
type RetrieveRequest struct {
	Queries Queries `json:"queries"`
	// TopK null or 0 means the server default.
	TopK         TopK `json:"topk"`
	ReturnScores Flag `json:"return_scores"`
}

// AccessRequest is the body of POST /access.
type AccessRequest struct {
	URLs []string `json:"urls"`
}

// Queries is the queries field: a list of strings. Unlike a plain []string
// it refuses null entries, as pydantic's List[str] does, instead of
// searching for "".
type Queries []string

// UnmarshalJSON implements json.Unmarshaler.
func (q *Queries) UnmarshalJSON(data []byte) error {
	if string(bytes.TrimSpace(data)) == "null" {
		*q = nil
		return nil
	}
	var ps []*string
	if err := json.Unmarshal(data, &ps); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			want := "a list of strings"
			if te.Type.Kind() == reflect.String || te.Type.Kind() == reflect.Pointer {
				want = "a string"
			}
			return requestError{msg: fmt.Sprintf(`field "queries": got JSON %s, want %s`, te.Value, want)}
		}
		return requestError{msg: `field "queries": ` + err.Error()}
	}
	out := make(Queries, len(ps))
	for i, p := range ps {
		if p == nil {
			return requestError{msg: fmt.Sprintf(`field "queries": entry %d is null, want a string`, i)}
		}
		out[i] = *p
	}
	*q = out
	return nil
}

// requestError is a client mistake, answered with 400 (413 when tooLarge).
type requestError struct {
	msg      string
	tooLarge bool
}

func (e requestError) Error() string { return e.msg }

// statusOf is the HTTP status for a decode error.
func statusOf(err error) int {
	var re requestError
	if errors.As(err, &re) && re.tooLarge {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// Limits bound what one /retrieve request may ask for.
type Limits struct {
	MaxQueries, DefaultTopK, MaxTopK, MaxResults int
}

// DecodeRetrieve parses and validates a /retrieve body; it returns the
// request with TopK resolved.
func DecodeRetrieve(body []byte, lim Limits) (RetrieveRequest, int, error) {
	var req RetrieveRequest
	if err := decodeStrict(body, &req); err != nil {
		return req, 0, err
	}
	if req.Queries == nil {
		return req, 0, requestError{msg: `"queries" is required: a list of strings`}
	}
	if len(req.Queries) > lim.MaxQueries {
		return req, 0, requestError{msg: fmt.Sprintf("%d queries exceed the limit of %d per request; split the batch or raise --max-queries", len(req.Queries), lim.MaxQueries), tooLarge: true}
	}
	topk := int64(lim.DefaultTopK)
	if req.TopK.Set && req.TopK.Value != 0 {
		topk = req.TopK.Value
	}
	if topk < 0 || topk > int64(lim.MaxTopK) {
		return req, 0, requestError{msg: fmt.Sprintf("topk %d out of range: want 1 to %d (null or 0 means %d; --max-topk raises the cap)", topk, lim.MaxTopK, lim.DefaultTopK)}
	}
	if n := int64(len(req.Queries)) * topk; lim.MaxResults > 0 && n > int64(lim.MaxResults) {
		return req, 0, requestError{msg: fmt.Sprintf("%d queries × topk %d = %d results exceed the limit of %d per request; split the batch", len(req.Queries), topk, n, lim.MaxResults), tooLarge: true}
	}
	return req, int(topk), nil
}

// DecodeAccess parses and validates an /access body.
func DecodeAccess(body []byte, maxURLs int) (AccessRequest, error) {
	var req AccessRequest
	if err := decodeStrict(body, &req); err != nil {
		return req, err
	}
	if req.URLs == nil {
		return req, requestError{msg: `"urls" is required: a list of strings`}
	}
	if len(req.URLs) > maxURLs {
		return req, requestError{msg: fmt.Sprintf("%d urls exceed the limit of %d per request", len(req.URLs), maxURLs), tooLarge: true}
	}
	return req, nil
}

// decodeStrict decodes one JSON object; unknown fields are ignored, as the
// upstream (pydantic) servers do, but wrong types are errors.
func decodeStrict(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return requestError{msg: "body must be a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return requestError{msg: fmt.Sprintf("field %q: got JSON %s, want %s", te.Field, te.Value, jsonKind(te.Type.String()))}
		}
		var re requestError
		if errors.As(err, &re) {
			return re
		}
		return requestError{msg: "invalid JSON: " + err.Error()}
	}
	if dec.More() {
		return requestError{msg: "invalid JSON: data after the object"}
	}
	return nil
}

func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "a list of " + jsonKind(goType[2:])
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.Contains(goType, "int"):
		return "an integer"
	}
	return goType
}

func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", s.opts.MaxBodyBytes))
		} else {
			writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		}
		return nil, false
	}
	return body, true
}

func (s *Server) getBuf() *bytes.Buffer {
	b, _ := s.bufs.Get().(*bytes.Buffer)
	if b == nil {
		b = new(bytes.Buffer)
	}
	b.Reset()
	return b
}

func (s *Server) putBuf(b *bytes.Buffer) {
	if b.Cap() <= 4<<20 {
		s.bufs.Put(b)
	}
}

// searchWindow runs the queries of a large request in parallel, a window
// at a time: a window's hits are small (8 bytes each) and are written out in
// order before the next window is searched, so Search-R1's one-request
// batches use every core while the reply still streams in order.
type searchWindow struct {
	hits [][]retrieval.Hit
	errs []error
}

// searchWindowSize is how many queries are searched before they are
// written.
const searchWindowSize = 256

func newSearchWindow(n int) *searchWindow {
	size := min(n, searchWindowSize)
	return &searchWindow{hits: make([][]retrieval.Hit, size), errs: make([]error, size)}
}

// search fills hits[i], errs[i] for queries[i]. A panic in a worker is
// raised again in the caller, where the handler's recovery answers it.
func (w *searchWindow) search(ctx context.Context, r retrieval.Retriever, queries []string, topk int) {
	workers := min(runtime.GOMAXPROCS(0), (len(queries)+7)/8)
	if workers <= 1 {
		for i, q := range queries {
			w.hits[i], w.errs[i] = r.Search(ctx, q, topk, w.hits[i][:0])
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var panicked atomic.Pointer[any]
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if v := recover(); v != nil {
					panicked.CompareAndSwap(nil, &v)
				}
			}()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(queries) {
					return
				}
				w.hits[i], w.errs[i] = r.Search(ctx, queries[i], topk, w.hits[i][:0])
			}
		}()
	}
	wg.Wait()
	if v := panicked.Load(); v != nil {
		panic(*v)
	}
}

// chunked streams a JSON reply: it collects output in a pooled buffer and
// writes it out whenever it passes the chunk size, so a reply of any size
// costs about one chunk of memory. Until the first write nothing has been
// sent, and a failure can still be answered with a JSON error.
type chunked struct {
	w     http.ResponseWriter
	buf   *bytes.Buffer
	chunk int
	sent  bool
	err   error // first write error: the client has gone
}

func (c *chunked) maybeFlush() {
	if c.buf.Len() >= c.chunk {
		c.flush()
	}
}

func (c *chunked) flush() {
	if !c.sent {
		c.w.Header().Set("Content-Type", "application/json")
		c.sent = true
	}
	if c.err == nil && c.buf.Len() > 0 {
		if _, c.err = c.w.Write(c.buf.Bytes()); c.err == nil {
			// Push it past net/http's buffer, so the client starts
			// reading while the rest is searched.
			http.NewResponseController(c.w).Flush()
		}
	}
	c.buf.Reset()
}

// fail answers err: a JSON error when nothing was sent yet, otherwise a cut
// connection (see recoverPanic).
func (c *chunked) fail(code int, msg string) {
	if !c.sent {
		writeError(c.w, code, msg)
		return
	}
	panic(http.ErrAbortHandler)
}

// damaged answers 503 when the index's checksum pass found a damaged file
// (see retrieval.VerifyBackground): its answers could be wrong.
func (s *Server) damaged(w http.ResponseWriter) bool {
	st := s.ix.Integrity()
	if st.Status != "damaged" {
		return false
	}
	writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("the index is damaged, refusing to answer: %v", st.Err))
	return true
}

func (s *Server) handleRetrieve(w http.ResponseWriter, r *http.Request) {
	if s.damaged(w) {
		return
	}
	release, ok := s.admit(w, r)
	if !ok {
		return
	}
	defer release()
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	req, topk, err := DecodeRetrieve(body, Limits{
		MaxQueries: s.opts.MaxQueries, DefaultTopK: s.opts.DefaultTopK, MaxTopK: s.opts.MaxTopK, MaxResults: s.opts.MaxResults,
	})
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	body = nil // the queries are decoded; let the body go
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	defer cancel()
	out := &chunked{w: w, buf: s.getBuf(), chunk: s.opts.StreamChunkBytes}
	defer func() { s.putBuf(out.buf) }()
	buf := out.buf
	buf.WriteString(`{"result":[`)
	win := newSearchWindow(len(req.Queries))
	for qi, q := range req.Queries {
		wi := qi % len(win.hits)
		if wi == 0 {
			end := min(len(req.Queries), qi+len(win.hits))
			win.search(ctx, s.retriever, req.Queries[qi:end], topk)
		}
		hits, err := win.hits[wi], win.errs[wi]
		if err == nil && out.err != nil {
			err = out.err
		}
		if err != nil {
			code := http.StatusInternalServerError
			if ctx.Err() != nil {
				code = http.StatusServiceUnavailable
			}
			s.opts.Logger.Warn("retrieve failed", "query", q, "query_index", qi, "streamed", out.sent, "err", err)
			out.fail(code, fmt.Sprintf("query %d: %v", qi, err))
			return
		}
		if qi > 0 {
			buf.WriteByte(',')
		}
		buf.WriteByte('[')
		for i, h := range hits {
			if i > 0 {
				buf.WriteByte(',')
			}
			row := s.ix.Store.Row(h.Doc)
			if req.ReturnScores {
				buf.WriteString(`{"document":`)
				buf.Write(row)
				buf.WriteString(`,"score":`)
				buf.Write(strconv.AppendFloat(buf.AvailableBuffer(), float64(h.Score), 'g', -1, 32))
				buf.WriteByte('}')
			} else {
				buf.Write(row)
			}
		}
		buf.WriteByte(']')
		out.maybeFlush()
	}
	buf.WriteString("]}\n")
	s.queries.Add(float64(len(req.Queries)))
	out.flush()
}

func (s *Server) handleAccess(w http.ResponseWriter, r *http.Request) {
	if s.damaged(w) {
		return
	}
	release, ok := s.admit(w, r)
	if !ok {
		return
	}
	defer release()
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	req, err := DecodeAccess(body, s.opts.MaxURLs)
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	out := &chunked{w: w, buf: s.getBuf(), chunk: s.opts.StreamChunkBytes}
	defer func() { s.putBuf(out.buf) }()
	buf := out.buf
	buf.WriteString(`{"result":[`)
	var errs []string
	failed := false
	for i, u := range req.URLs {
		if i > 0 {
			buf.WriteByte(',')
		}
		row := s.lookupPage(u)
		msg := ""
		if row == nil {
			buf.WriteString("null")
			msg = "unknown url or id: " + u
			failed = true
		} else {
			buf.Write(row)
		}
		errs = append(errs, msg)
		out.maybeFlush()
		if out.err != nil {
			return // the client has gone
		}
	}
	buf.WriteByte(']')
	if failed {
		// Upstream clients read only "result"; "errors" says why an
		// entry is null, aligned with "urls".
		buf.WriteString(`,"errors":[`)
		for i, msg := range errs {
			if i > 0 {
				buf.WriteByte(',')
			}
			if msg == "" {
				buf.WriteString("null")
			} else {
				buf.Write(corpus.AppendJSONString(buf.AvailableBuffer(), msg))
			}
		}
		buf.WriteByte(']')
	}
	buf.WriteString("}\n")
	out.flush()
}

// urlVariants lists the forms a url is looked up under: as given, with
// ASearcher's index.php/ → index.php?title= rewrite, and /wiki/Some_Title as
// /w/index.php?title=Some%20Title.
func urlVariants(u string) []string {
	out := []string{u}
	if strings.Contains(u, "index.php/") {
		out = append(out, strings.Replace(u, "index.php/", "index.php?title=", 1))
	}
	if i := strings.Index(u, "/wiki/"); i >= 0 {
		title := strings.ReplaceAll(u[i+len("/wiki/"):], "_", " ")
		if t, err := url.PathUnescape(title); err == nil {
			title = t
		}
		out = append(out, corpus.URLFor(u[:i]+"/w/index.php?title={title}", title))
	}
	return out
}

// lookupPage finds a url (or passage id): first among whole pages, then
// among passages, whose shared url makes a page of all of them in order.
func (s *Server) lookupPage(u string) []byte {
	var ords []uint32
	for _, v := range urlVariants(u) {
		if s.ix.Pages != nil {
			if ords = s.ix.Pages.LookupURL(v, ords[:0]); len(ords) > 0 {
				return s.ix.Pages.Row(ords[0])
			}
		}
		if ords = s.ix.Store.LookupURL(v, ords[:0]); len(ords) > 0 {
			if len(ords) == 1 {
				return s.ix.Store.Row(ords[0])
			}
			return s.assemblePage(v, ords)
		}
	}
	if s.ix.Pages != nil {
		if ord, ok := s.ix.Pages.LookupID(u); ok {
			return s.ix.Pages.Row(ord)
		}
	}
	if ord, ok := s.ix.Store.LookupID(u); ok {
		return s.ix.Store.Row(ord)
	}
	return nil
}

// assemblePage joins the passages of one url into a page row.
func (s *Server) assemblePage(u string, ords []uint32) []byte {
	first, err := s.ix.Store.Passage(ords[0])
	if err != nil {
		return nil
	}
	var text strings.Builder
	for i, ord := range ords {
		p, err := s.ix.Store.Passage(ord)
		if err != nil {
			continue
		}
		if i > 0 {
			text.WriteByte('\n')
		}
		text.WriteString(p.Text())
		if text.Len() >= s.opts.MaxPageBytes {
			break
		}
	}
	body := text.String()
	if len(body) > s.opts.MaxPageBytes {
		body = body[:s.opts.MaxPageBytes]
		body = strings.ToValidUTF8(body, "")
	}
	row := []byte(`{"id":`)
	row = corpus.AppendJSONString(row, first.ID)
	row = append(row, `,"title":`...)
	row = corpus.AppendJSONString(row, first.Title)
	row = append(row, `,"url":`...)
	row = corpus.AppendJSONString(row, u)
	row = append(row, `,"contents":`...)
	row = corpus.AppendJSONString(row, corpus.JoinContents(first.Title, body))
	row = append(row, `,"passages":`...)
	row = strconv.AppendInt(row, int64(len(ords)), 10)
	return append(row, '}')
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	st := s.ix.Integrity()
	body := map[string]any{
		"status":    "ok",
		"method":    s.opts.Method,
		"passages":  s.ix.Store.Len(),
		"pages":     s.ix.Pages != nil,
		"integrity": st.Status,
	}
	w.Header().Set("Content-Type", "application/json")
	if st.Status == "damaged" {
		body["status"] = "damaged"
		body["error"] = st.Err.Error()
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(body)
}

// HTTPServer returns an http.Server for s with timeouts suited to it.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		// Requests that wait for a turn (admit) get a fresh body deadline.
		ReadTimeout:    bodyReadTimeout,
		WriteTimeout:   s.opts.QueueTimeout + s.opts.RequestTimeout + 30*time.Second,
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 64 << 10,
	}
}

// Serve listens on addr until ctx ends, then shuts down gracefully: it
// stops accepting, lets requests in flight finish (up to 10 s) and returns.
// ready, if not nil, receives the bound address once listening.
func (s *Server) Serve(ctx context.Context, addr string, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	hs := s.HTTPServer(addr)
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// WriteAddressFile records addr in dir as ASearcher's training clients
// expect it: a file Host{ip}_IP{port}.txt containing "ip:port".
func WriteAddressFile(dir string, addr net.Addr) (string, error) {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "Host"+host+"_IP"+port+".txt")
	return path, atomicfile.WriteFile(path, []byte(host+":"+port))
}
