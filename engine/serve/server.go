// Package serve exposes the embedded engine over the three HTTP APIs the
// rest of asearcher (and other tools) speak: OpenAI-compatible
// (/v1/chat/completions, /v1/completions, /v1/models), SGLang's native API
// (/generate, pause/continue, weight updates) and the Tinker training API
// (/api/v1/...). One process serves all three over the same weights, so a
// controller written against SGLang + Tinker runs unchanged against it.
package serve

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tokenizer"
)

// Options configure a Server; zero values take the defaults in brackets.
type Options struct {
	// ModelName is what /v1/models, /get_model_info and Tinker's
	// base_model call the served model [the model directory's name, or
	// "asearcher-embedded"].
	ModelName string
	// ModelDir is where the weights came from (reported as model_path;
	// its tokenizer files are copied next to saved weights). Optional.
	ModelDir string
	// Weights are the served weights, version 0. Required.
	Weights *engine.Weights
	// Tokenizer enables text prompts, chat templates, stop strings and
	// text in replies. Without one only token-id requests work.
	Tokenizer *tokenizer.Tokenizer
	// MaxBatch caps sequences decoded together [64].
	MaxBatch int
	// DefaultMaxNewTokens applies when /generate sets none [128, SGLang's].
	DefaultMaxNewTokens int
	// CheckpointDir receives Tinker sampler weights and training state;
	// empty keeps sampler weights in memory and refuses save_weights.
	CheckpointDir string
	// MaxModels caps concurrently loaded Tinker training models [4]; each
	// holds a full copy of the weights plus gradients and Adam moments.
	MaxModels int
	// MaxBodyBytes caps a request body [16 MiB]; larger ones get a 413.
	MaxBodyBytes int64
	// MaxInflightBytes caps the summed bodies of the requests being served
	// [64 MiB, at least MaxBodyBytes]; a request that does not fit waits
	// AdmitWait for room, then gets a 429.
	MaxInflightBytes int64
	// AdmitWait is how long a request waits for room under
	// MaxInflightBytes [10s].
	AdmitWait time.Duration
	// MaxPrompts caps the sequences one OpenAI or SGLang request asks for,
	// prompts × n [256]; more get a 413.
	MaxPrompts int
	// MaxConns caps open connections [1024] (see limits.go for what is
	// evicted at the cap). Only Serve applies it.
	MaxConns int
	// ReadHeaderTimeout bounds the arrival of request headers [10s],
	// BodyTimeout that of a request body [60s] and IdleTimeout a
	// keep-alive connection's wait for its next request [2m].
	ReadHeaderTimeout, BodyTimeout, IdleTimeout time.Duration
	// LongPoll is how long retrieve_future waits before answering 408 [20s].
	LongPoll time.Duration
	// GapTimeout is how long a Tinker request waits for a missing earlier
	// seq_id before the gap is skipped [30s].
	GapTimeout time.Duration
	// MaxLoadedLoRAs caps the LoRA adapters loaded for serving at once
	// [8] (SGLang's --max-loaded-loras).
	MaxLoadedLoRAs int
	// FutureTTL is how long finished Tinker results are kept [1h].
	FutureTTL time.Duration
	// MaxTinkerQueue caps the Tinker requests submitted and not yet
	// finished, over every model and sampling session [2048]; past it a
	// submission gets a 429 with Retry-After. Each holds its decoded body
	// (and an asample its goroutine) until it runs.
	MaxTinkerQueue int
	// MaxTinkerQueueBytes caps the summed bodies of those requests
	// [256 MiB, at least MaxBodyBytes]: MaxInflightBytes bounds a body
	// only while its handler reads it, and a Tinker handler returns a
	// future at once, so without this a client could queue any number of
	// 16 MiB forward_backward bodies behind one slow step.
	MaxTinkerQueueBytes int64
	// APIKey, when set, must come as "Authorization: Bearer KEY" or
	// "X-API-Key: KEY" on every request except health checks.
	APIKey string
	Logger *slog.Logger
}

func (o *Options) defaults() error {
	if o.Weights == nil {
		return errors.New("serve: no weights")
	}
	if o.ModelName == "" {
		o.ModelName = "asearcher-embedded"
		if o.ModelDir != "" {
			o.ModelName = filepath.Base(filepath.Clean(o.ModelDir))
		}
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 64
	}
	if o.DefaultMaxNewTokens <= 0 {
		o.DefaultMaxNewTokens = 128
	}
	if o.MaxModels <= 0 {
		o.MaxModels = 4
	}
	if o.MaxLoadedLoRAs <= 0 {
		o.MaxLoadedLoRAs = 8
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 16 << 20
	}
	if o.MaxInflightBytes <= 0 {
		o.MaxInflightBytes = 64 << 20
	}
	o.MaxInflightBytes = max(o.MaxInflightBytes, o.MaxBodyBytes)
	if o.AdmitWait <= 0 {
		o.AdmitWait = 10 * time.Second
	}
	if o.MaxPrompts <= 0 {
		o.MaxPrompts = 256
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 1024
	}
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = 10 * time.Second
	}
	if o.BodyTimeout <= 0 {
		o.BodyTimeout = 60 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 2 * time.Minute
	}
	if o.LongPoll <= 0 {
		o.LongPoll = 20 * time.Second
	}
	if o.GapTimeout <= 0 {
		o.GapTimeout = 30 * time.Second
	}
	if o.FutureTTL <= 0 {
		o.FutureTTL = time.Hour
	}
	if o.MaxTinkerQueue <= 0 {
		o.MaxTinkerQueue = 2048
	}
	if o.MaxTinkerQueueBytes <= 0 {
		o.MaxTinkerQueueBytes = 256 << 20
	}
	o.MaxTinkerQueueBytes = max(o.MaxTinkerQueueBytes, o.MaxBodyBytes)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// served is one published set of weights.
type served struct {
	w       *engine.Weights
	version int
	scorer  *engine.Model // prompt logprobs; the sampler keeps its own copy
}

// Server serves one model over the OpenAI, SGLang and Tinker APIs.
type Server struct {
	opts    Options
	loras   *loraRegistry // LoRA adapters loaded for serving, by name
	log     *slog.Logger
	sampler *engine.Sampler
	eos     []int // ends every request unless ignore_eos
	ctxLen  int
	// maxTokenBytes is the longest text one token stands for (0: no
	// tokenizer); see encode.
	maxTokenBytes int

	mu       sync.Mutex
	cur      *served
	inflight map[string]int // rid → running /generate-style requests
	paused   bool

	swapMu    sync.Mutex // one weight update at a time
	ridSeq    atomic.Int64
	tinker    *tinkerAPI
	mux       *http.ServeMux
	admission *admission
	scoring   chan struct{}               // one scoring pass at a time (scoreLogits)
	conns     atomic.Pointer[connLimiter] // set by Serve
	closed    atomic.Bool
}

// New starts the sampler and builds the handlers.
func New(opts Options) (*Server, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	cfg := opts.Weights.Config
	s := &Server{opts: opts, log: opts.Logger, ctxLen: cfg.MaxPositionEmbeddings, inflight: map[string]int{},
		admission: newAdmission(opts.MaxInflightBytes), scoring: make(chan struct{}, 1)}
	s.eos = stopIDs(opts.ModelDir, cfg, opts.Tokenizer)
	if opts.Tokenizer != nil {
		s.maxTokenBytes = longestToken(opts.Tokenizer)
	}
	s.sampler = engine.NewSampler(opts.Weights, 0, s.samplerOptions())
	s.cur = &served{w: opts.Weights, version: 0, scorer: engine.NewModel(opts.Weights, 0)}
	s.tinker = newTinkerAPI(s)
	s.mux = http.NewServeMux()
	s.loras = &loraRegistry{max: opts.MaxLoadedLoRAs}
	s.routeSGLang()
	s.routeLoRA()
	s.routeOpenAI()
	s.tinker.route(s.mux)
	return s, nil
}

// samplerOptions are the options of every sampler this server starts;
// stop tokens are added per request (ignore_eos leaves them out).
func (s *Server) samplerOptions() engine.SamplerOptions {
	so := engine.SamplerOptions{MaxBatch: s.opts.MaxBatch, DefaultMaxNewTokens: s.opts.DefaultMaxNewTokens, Logger: s.opts.Logger}
	if s.opts.Tokenizer != nil {
		so.Tokenizer = s.opts.Tokenizer
	}
	return so
}

// stopIDs are the tokens that end generation: the config's and
// generation_config.json's EOS and, with a ChatML tokenizer, <|im_end|> and
// <|endoftext|>.
func stopIDs(dir string, cfg *engine.Config, tok *tokenizer.Tokenizer) []int {
	var ids []int
	for _, id := range engine.StopTokens(dir, cfg, tok) {
		if id >= 0 && id < cfg.VocabSize {
			ids = append(ids, id)
		}
	}
	return ids
}

// Sampler is the in-process sampler behind the HTTP APIs.
func (s *Server) Sampler() *engine.Sampler { return s.sampler }

// Version is the weight version new tokens are generated with.
func (s *Server) Version() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.version
}

// ModelName is the served model's name.
func (s *Server) ModelName() string { return s.opts.ModelName }

// Close aborts in-flight generation and stops the sampler and trainers.
func (s *Server) Close() {
	if s.closed.Swap(true) {
		return
	}
	s.tinker.close()
	s.sampler.Close()
}

// SetWeights publishes w as version for every later token: requests in
// flight switch at the next decoding step (their KV cache is recomputed),
// so every token carries the version that produced it.
func (s *Server) SetWeights(w *engine.Weights, version int) error {
	if err := sameShape(s.opts.Weights.Config, w.Config); err != nil {
		return err
	}
	m := engine.NewModel(w, version)
	s.mu.Lock()
	s.cur = &served{w: w, version: version, scorer: m}
	s.mu.Unlock()
	s.sampler.SetWeights(w, version)
	return nil
}

func (s *Server) current() *served {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// sameShape refuses weights that the served architecture cannot run.
func sameShape(a, b *engine.Config) error {
	type dims struct{ v, h, ff, l, qh, kvh, hd, ctx int }
	da := dims{a.VocabSize, a.HiddenSize, a.IntermediateSize, a.NumHiddenLayers, a.NumAttentionHeads, a.NumKeyValueHeads, a.HeadDim, a.MaxPositionEmbeddings}
	db := dims{b.VocabSize, b.HiddenSize, b.IntermediateSize, b.NumHiddenLayers, b.NumAttentionHeads, b.NumKeyValueHeads, b.HeadDim, b.MaxPositionEmbeddings}
	if da != db || a.ModelType != b.ModelType || a.TieWordEmbeddings != b.TieWordEmbeddings {
		return fmt.Errorf("the new weights have a different architecture (%s %+v) than the served model (%s %+v)", b.ModelType, db, a.ModelType, da)
	}
	return nil
}

// Handler is the HTTP handler for all three APIs.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("serve: handler panicked", "path", r.URL.Path, "panic", v)
				openAIError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		s.bodyDeadline(w, r)
		if isHealthPath(r.URL.Path) {
			s.mux.ServeHTTP(w, r)
			return
		}
		if s.opts.APIKey != "" && !s.authorized(r) {
			// The body is not wanted: close rather than drain it.
			w.Header().Set("Connection", "close")
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{"message": "missing or wrong API key: send Authorization: Bearer KEY or X-API-Key: KEY",
				"type": "authentication_error", "param": nil, "code": http.StatusUnauthorized}})
			return
		}
		release, ok := s.admit(w, r)
		if !ok {
			return
		}
		defer release()
		s.mux.ServeHTTP(w, r)
	})
}

func isHealthPath(p string) bool {
	return p == "/health" || p == "/health_generate" || p == "/api/v1/healthz"
}

func (s *Server) authorized(r *http.Request) bool {
	if k := r.Header.Get("X-API-Key"); k != "" {
		return sameKey(k, s.opts.APIKey)
	}
	auth := r.Header.Get("Authorization")
	k, ok := strings.CutPrefix(auth, "Bearer ")
	return ok && sameKey(k, s.opts.APIKey)
}

// sameKey compares keys in constant time (for keys of equal length; the
// length itself is not secret enough to matter).
func sameKey(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// Serve answers on ln until ctx is cancelled, then shuts down gracefully:
// no new connections, in-flight requests get grace to finish, and what is
// still running after that is aborted (generations end with their partial
// output).
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	lim := newConnLimiter(ln, s.opts.MaxConns)
	s.conns.Store(lim)
	// No ReadTimeout: it would cancel the context of every handler running
	// longer than it; bodies get their own deadline (bodyDeadline).
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: s.opts.ReadHeaderTimeout, IdleTimeout: s.opts.IdleTimeout,
		MaxHeaderBytes: 64 << 10, ConnState: lim.connState,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) },
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	ln = lim
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		s.Close()
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := hs.Shutdown(sctx)
	s.Close() // aborts what is still generating, so the handlers can return
	if errors.Is(err, context.DeadlineExceeded) {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		err = hs.Shutdown(cctx)
		if err != nil {
			hs.Close()
		}
	}
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) {
		return e
	}
	return err
}

// genRequest is one generation, whichever API it came through.
type genRequest struct {
	rid       string
	ids       []int
	params    llm.Params
	ignoreEOS bool
	onToken   func(engine.StreamEvent)
	lora      *engine.Adapter // nil: the base model
}

// generate runs one request on the sampler, tracked by rid for
// /abort_request.
func (s *Server) generate(ctx context.Context, g *genRequest) (*llm.Response, error) {
	if g.rid == "" {
		g.rid = s.newID("gen")
	}
	p := g.params
	if !g.ignoreEOS {
		p.StopTokenIDs = append(append([]int(nil), p.StopTokenIDs...), s.eos...)
	}
	s.mu.Lock()
	s.inflight[g.rid]++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.inflight[g.rid]--; s.inflight[g.rid] <= 0 {
			delete(s.inflight, g.rid)
		}
		s.mu.Unlock()
	}()
	resp, err := s.sampler.SampleLoRA(ctx, &llm.Request{ID: g.rid, InputIDs: g.ids, Params: p}, g.lora, g.onToken)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// abortAll ends every running request with its partial output.
func (s *Server) abortAll(ctx context.Context) int {
	s.mu.Lock()
	ids := make([]string, 0, len(s.inflight))
	for id := range s.inflight {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		_ = s.sampler.Abort(ctx, id)
	}
	return len(ids)
}

func (s *Server) newID(prefix string) string {
	return prefix + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatInt(s.ridSeq.Add(1), 36)
}

// checkIDs rejects an empty prompt and token ids the model cannot take.
func (s *Server) checkIDs(ids []int) error {
	if len(ids) == 0 {
		return errors.New("the prompt is empty")
	}
	v := s.opts.Weights.Config.VocabSize
	for _, t := range ids {
		if t < 0 || t >= v {
			return fmt.Errorf("token id %d is outside the vocabulary [0, %d)", t, v)
		}
	}
	return nil
}

// checkPrompt is checkIDs plus room in the context, in SGLang's words.
func (s *Server) checkPrompt(ids []int) error {
	if err := s.checkIDs(ids); err != nil {
		return err
	}
	if len(ids) >= s.ctxLen {
		return &promptTooLong{n: len(ids), ctxLen: s.ctxLen}
	}
	return nil
}

// promptTooLong is a prompt refused for its length before it was decoded
// or tokenised; its message is SGLang's, and the OpenAI endpoints reword
// it as vLLM does (openAIWording).
type promptTooLong struct {
	n, ctxLen int
	atLeast   bool // n is a lower bound
}

func (e *promptTooLong) Error() string {
	least := ""
	if e.atLeast {
		least = "at least "
	}
	return fmt.Sprintf("The input (%s%d tokens) is longer than the model's context length (%d tokens).", least, e.n, e.ctxLen)
}

// guardTokenIDs bounds a JSON list of token ids (or list of such lists)
// before it is decoded: decoding costs 8 bytes and more per id, so a body
// of ids far past what the model can take is refused from its commas
// alone. A flat list longer than the context gets checkPrompt's error.
func (s *Server) guardTokenIDs(raw []byte) error {
	n := bytes.Count(raw, []byte{','}) + 1 // ≥ the number of ids
	flat := bytes.Count(raw, []byte{'['}) == 1
	if flat && n >= s.ctxLen {
		return &promptTooLong{n: n, ctxLen: s.ctxLen}
	}
	if limit := s.opts.MaxPrompts * s.ctxLen; n > limit {
		return &bodyError{http.StatusRequestEntityTooLarge, fmt.Sprintf("the request has about %d token ids, more than --max-prompts (%d) × the context length (%d)", n, s.opts.MaxPrompts, s.ctxLen)}
	}
	return nil
}

// scoreLogits runs one scoring pass: all of ids' logits, a [len(ids) ×
// vocabulary] matrix. One pass and its matrix are held at a time (until
// release), so however many requests ask for prompt or alternative
// logprobs, only one such matrix (up to context × vocabulary floats) is
// in memory.
func (s *Server) scoreLogits(ctx context.Context, cur *served, ids []int) (logits []float32, release func(), err error) {
	return s.scoreLogitsLoRA(ctx, cur, ids, nil)
}

// scoreLogitsLoRA is scoreLogits through an adapter (nil: the base).
func (s *Server) scoreLogitsLoRA(ctx context.Context, cur *served, ids []int, ad *engine.Adapter) (logits []float32, release func(), err error) {
	select {
	case s.scoring <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	release = func() { <-s.scoring }
	logits, err = cur.scorer.LogitsLoRA(ctx, ids, ad)
	if err != nil {
		release()
		return nil, nil, err
	}
	return logits, release, nil
}

// promptLogprobs scores ids under the current weights: out[i] is
// log p(ids[i] | ids[:i]) for i ≥ 1 and NaN for i = 0.
func (s *Server) promptLogprobs(ctx context.Context, ids []int) ([]float32, int, error) {
	cur := s.current()
	logits, release, err := s.scoreLogits(ctx, cur, ids)
	if err != nil {
		return nil, 0, err
	}
	defer release()
	return logprobsFromLogits(logits, ids, s.opts.Weights.Config.VocabSize), cur.version, nil
}

// logprobsFromLogits turns [len(ids)×V] logits into out[i] = log p(ids[i] |
// ids[:i]), NaN for i = 0.
func logprobsFromLogits(logits []float32, ids []int, V int) []float32 {
	out := make([]float32, len(ids))
	out[0] = float32(math.NaN())
	for i := 1; i < len(ids); i++ {
		row := logits[(i-1)*V : i*V]
		out[i] = row[ids[i]] - logSumExp(row)
	}
	return out
}

func logSumExp(z []float32) float32 {
	mx := z[0]
	for _, v := range z {
		mx = max(mx, v)
	}
	var sum float64
	for _, v := range z {
		sum += math.Exp(float64(v - mx))
	}
	return mx + float32(math.Log(sum))
}

// encode tokenises text, or explains that a tokenizer is needed.
func (s *Server) encode(text string) ([]int, error) {
	if s.opts.Tokenizer == nil {
		return nil, errors.New("this server has no tokenizer; send token ids")
	}
	// A token covers at most maxTokenBytes bytes of text, so a text this
	// long cannot fit in the context: refuse it before tokenising, which
	// costs far more memory than the text (issue 12).
	if s.maxTokenBytes > 0 {
		if least := len(text) / s.maxTokenBytes; least >= s.ctxLen+16 {
			return nil, &promptTooLong{n: least, ctxLen: s.ctxLen, atLeast: true}
		}
	}
	return s.opts.Tokenizer.Encode(text), nil
}

// longestToken is the most bytes of text one token of tok decodes to.
func longestToken(tok *tokenizer.Tokenizer) int {
	longest := 0
	for id := range tok.VocabSize() {
		longest = max(longest, len(tok.TokenBytes(id)))
	}
	for _, a := range tok.AddedTokens() {
		longest = max(longest, len(a.Content))
	}
	return longest
}

// tokenText is the text of one token for logprob listings.
func (s *Server) tokenText(id int) string {
	if s.opts.Tokenizer == nil {
		return ""
	}
	return s.opts.Tokenizer.Decode([]int{id})
}

// loadWeights resolves an update_weights_from_disk path: a model directory
// on disk, or a tinker:// sampler-weights path this server published.
func (s *Server) loadWeights(path string) (*engine.Weights, error) {
	if strings.HasPrefix(path, "tinker://") {
		w, ok := s.tinker.samplerWeights(path)
		if !ok {
			return nil, fmt.Errorf("no sampler weights at %s on this server", path)
		}
		return w, nil
	}
	if st, err := os.Stat(path); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("model_path %q is not a model directory", path)
	}
	return engine.LoadWeights(path)
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status, data = http.StatusInternalServerError, []byte(`{"error":{"message":"encode reply"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}

// bodyError is a request body that could not be read or decoded.
type bodyError struct {
	status int
	msg    string
}

func (e *bodyError) Error() string { return e.msg }

// readBody reads the whole body, mapping an over-limit body to 413.
func readBody(r *http.Request) ([]byte, error) {
	var data []byte
	var err error
	if n := r.ContentLength; n > 0 && n <= 1<<30 {
		// Exactly the declared size (admit capped it): io.ReadAll would
		// grow by doubling and hold up to twice the body.
		data = make([]byte, n)
		var got int
		got, err = io.ReadFull(r.Body, data)
		data = data[:got]
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("the body ended after %d of %d bytes", got, n)
		} else if err == nil {
			// Reach EOF so the body deadline is lifted (bodyDeadline).
			_, _ = r.Body.Read(make([]byte, 1))
		}
	} else {
		data, err = io.ReadAll(r.Body)
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &bodyError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", mbe.Limit)}
		}
		return nil, &bodyError{http.StatusBadRequest, "read request body: " + err.Error()}
	}
	return data, nil
}

// decodeFields reads a JSON object body into its top-level fields.
func decodeFields(r *http.Request) ([]byte, map[string]json.RawMessage, error) {
	data, err := readBody(r)
	if err != nil {
		return nil, nil, err
	}
	var fields map[string]json.RawMessage
	if len(strings.TrimSpace(string(data))) == 0 {
		return data, map[string]json.RawMessage{}, nil
	}
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, nil, &bodyError{http.StatusBadRequest, "the body is not a JSON object: " + err.Error()}
	}
	if fields == nil {
		fields = map[string]json.RawMessage{}
	}
	return data, fields, nil
}

// field decodes fields[key] into v when present and not null.
func field(fields map[string]json.RawMessage, key string, v any) error {
	raw, ok := fields[key]
	if !ok || isNull(raw) {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("field %q: %v", key, jsonTypeError(err))
	}
	return nil
}

func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

// jsonTypeError shortens encoding/json's messages to what a client needs.
func jsonTypeError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("got a JSON %s, want %s", te.Value, te.Type)
	}
	return err.Error()
}

// stringOrList reads a string or a list of strings.
func stringOrList(raw json.RawMessage) ([]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errors.New("want a string or a list of strings")
	}
	return list, nil
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
