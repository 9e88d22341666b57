package serve

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/trainer"
)

// The Tinker-compatible training API under /api/v1, with the JSON bodies
// of the official Python SDK (llm/tinker_wire.go holds the shared types).
// Every training call returns a future at once; retrieve_future long-polls
// it (408 while pending, 400 with a category when it failed, 404 for an
// unknown id). Requests of one model run one at a time in seq_id order.
// Training is full-weight on the embedded engine: lora_config is accepted
// and recorded, not applied.

// tinkerFailure is an error with the category Tinker reports.
type tinkerFailure struct {
	status   int // HTTP status when the error is returned synchronously
	category string
	msg      string
}

func (e *tinkerFailure) Error() string { return e.msg }

func userError(status int, format string, args ...any) *tinkerFailure {
	return &tinkerFailure{status: status, category: "user", msg: fmt.Sprintf(format, args...)}
}

// tinkerFuture is one submitted request.
type tinkerFuture struct {
	id       string
	modelID  string
	hash     [32]byte // of the request body, to tell a retry from a conflicting reuse of a seq_id
	done     chan struct{}
	result   []byte
	proto    []byte // the result as protobuf, for the types SDKs want that way
	fail     *tinkerFailure
	finished atomic.Int64 // unix nanos
}

func (f *tinkerFuture) finish(v any, err error) {
	if err != nil {
		var tf *tinkerFailure
		if !errors.As(err, &tf) {
			tf = &tinkerFailure{category: "server", msg: err.Error()}
		}
		f.fail = tf
	} else if data, merr := json.Marshal(v); merr != nil {
		f.fail = &tinkerFailure{category: "server", msg: "encode result: " + merr.Error()}
	} else {
		f.result = data
		switch r := v.(type) {
		case *llm.TinkerFwdBwdOutput:
			f.proto = encodeFwdBwdProto(r)
		case *llm.TinkerSampleResponse:
			f.proto = encodeSampleProto(r)
		}
	}
	f.finished.Store(time.Now().UnixNano())
	close(f.done)
}

// tinkerJob is a model request waiting for its turn.
type tinkerJob struct {
	fut *tinkerFuture
	seq *int64
	run func(ctx context.Context) (any, error)
}

// tinkerModel is one training client's model: a full copy of the weights
// with its optimiser state.
type tinkerModel struct {
	id, baseModel string
	loraRank      int
	tr            *trainer.Embedded
	sink          *captureSink
	dir           string // checkpoint directory; empty keeps sampler weights in memory

	mu      sync.Mutex
	next    int64 // lowest seq_id not yet run
	fifo    []*tinkerJob
	pending map[int64]*tinkerJob
	bySeq   map[int64]*tinkerFuture
	wake    chan struct{}
	stop    chan struct{}
	saved   int
}

// captureSink keeps the weights SaveWeightsForSampler publishes.
type captureSink struct {
	mu      sync.Mutex
	w       *engine.Weights
	version int
}

func (c *captureSink) SetWeights(w *engine.Weights, version int) {
	c.mu.Lock()
	c.w, c.version = w, version
	c.mu.Unlock()
}

func (c *captureSink) last() (*engine.Weights, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w, c.version
}

// samplerEntry is a sampler over saved sampler weights.
type samplerEntry struct {
	path    string
	sampler *engine.Sampler
	used    time.Time
}

type tinkerAPI struct {
	s   *Server
	log *slog.Logger

	mu           sync.Mutex
	sessions     map[string]time.Time // session → last heartbeat
	models       map[string]*tinkerModel
	sampling     map[string]string // sampling session → model path ("" = base model)
	futures      map[string]*tinkerFuture
	byIdem       map[string]*tinkerFuture
	weights      map[string]*engine.Weights // tinker:// sampler path → weights
	weightOrder  []string                   // oldest first, for eviction
	samplers     []*samplerEntry
	modelCount   int
	ids          atomic.Int64
	stop         chan struct{}
	wg           sync.WaitGroup
	keepInMemory int
	maxSamplers  int
}

func newTinkerAPI(s *Server) *tinkerAPI {
	t := &tinkerAPI{s: s, log: s.log, sessions: map[string]time.Time{}, models: map[string]*tinkerModel{},
		sampling: map[string]string{}, futures: map[string]*tinkerFuture{}, byIdem: map[string]*tinkerFuture{},
		weights: map[string]*engine.Weights{}, stop: make(chan struct{}), keepInMemory: 16, maxSamplers: 2}
	t.wg.Add(1)
	go t.janitor()
	return t
}

func (t *tinkerAPI) route(mux *http.ServeMux) {
	post := func(path string, h func(ctx context.Context, r *http.Request, body []byte) (any, error)) {
		mux.HandleFunc("/api/v1/"+path, func(w http.ResponseWriter, r *http.Request) { t.serve(w, r, h) })
	}
	mux.HandleFunc("/api/v1/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("/api/v1/get_server_capabilities", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"supported_models": []any{map[string]any{
			"model_name": t.s.opts.ModelName, "max_context_length": t.s.ctxLen}}})
	})
	post("client/config", t.clientConfig)
	post("create_session", t.createSession)
	post("session_heartbeat", t.heartbeat)
	post("telemetry", func(context.Context, *http.Request, []byte) (any, error) {
		return map[string]any{"status": "accepted"}, nil
	})
	post("create_model", t.createModel)
	post("get_info", t.getInfo)
	post("unload_model", t.unloadModel)
	post("forward", t.forward)
	post("forward_backward", t.forwardBackward)
	post("optim_step", t.optimStep)
	post("save_weights_for_sampler", t.saveForSampler)
	post("save_weights", t.saveWeights)
	post("load_weights", t.loadWeights)
	post("weights_info", t.weightsInfo)
	post("create_sampling_session", t.createSamplingSession)
	post("asample", t.asample)
	mux.HandleFunc("/api/v1/retrieve_future", t.retrieveFuture)
	mux.HandleFunc("/api/v1/client/dynamic_config", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"refresh_interval_sec": 300, "sample_cancel_enabled": false})
	})
	mux.HandleFunc("/api/v1/samplers/{id}", t.getSampler)
	post("cancel_future", func(context.Context, *http.Request, []byte) (any, error) {
		return map[string]any{}, nil // generation is short here; the result simply expires
	})
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		t.log.Warn("tinker: unknown endpoint", "path", r.URL.Path)
		writeTinkerError(w, userError(http.StatusNotFound, "%s is not an endpoint of this server (docs/api.md lists them)", r.URL.Path))
	})
}

// serve decodes nothing itself: it reads the body, runs h and writes its
// reply or its error as {"error", "category"} with the error's status.
func (t *tinkerAPI) serve(w http.ResponseWriter, r *http.Request, h func(ctx context.Context, r *http.Request, body []byte) (any, error)) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		writeTinkerError(w, userError(http.StatusMethodNotAllowed, "use POST"))
		return
	}
	if isProto(r) && r.URL.Path != "/api/v1/forward_backward" {
		writeTinkerError(w, userError(http.StatusUnsupportedMediaType, "only forward_backward takes a protobuf body; send JSON"))
		return
	}
	body, err := readBody(r)
	if err != nil {
		var be *bodyError
		errors.As(err, &be)
		writeTinkerError(w, userError(be.status, "%s", be.msg))
		return
	}
	out, err := h(r.Context(), r, body)
	if err != nil {
		writeTinkerError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func isProto(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Content-Type"), "protobuf")
}

// protoBody undoes Content-Encoding: zstd, which SDKs use on protobuf
// forward_backward bodies when the server's client config asks for it.
func protoBody(r *http.Request, body []byte, limit int64) ([]byte, error) {
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "", "identity":
		return body, nil
	case "zstd":
		d, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(uint64(limit)))
		if err != nil {
			return nil, err
		}
		defer d.Close()
		out, err := d.DecodeAll(body, nil)
		if err != nil {
			return nil, userError(http.StatusBadRequest, "zstd body: %v", err)
		}
		return out, nil
	default:
		return nil, userError(http.StatusUnsupportedMediaType, "Content-Encoding %q is not supported (zstd or none)", enc)
	}
}

func writeTinkerError(w http.ResponseWriter, err error) {
	var tf *tinkerFailure
	if !errors.As(err, &tf) {
		tf = &tinkerFailure{status: http.StatusInternalServerError, category: "server", msg: err.Error()}
	}
	status := tf.status
	if status == 0 {
		status = http.StatusBadRequest
	}
	writeJSON(w, status, map[string]any{"error": tf.msg, "category": tf.category})
}

// decodeStrict decodes a request body, naming the first bad field.
func decodeStrict(body []byte, v any) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return userError(http.StatusBadRequest, "field %q: got a JSON %s, want %s", te.Field, te.Value, te.Type)
		}
		return userError(http.StatusBadRequest, "the body is not valid JSON: %v", err)
	}
	return nil
}

func (t *tinkerAPI) newID(prefix string) string {
	return fmt.Sprintf("%s-%d-%s", prefix, t.ids.Add(1), strconv.FormatInt(time.Now().UnixNano()%1e9, 36))
}

func (t *tinkerAPI) clientConfig(context.Context, *http.Request, []byte) (any, error) {
	return map[string]any{
		"proto_write_fwdbwd": false, "proto_compress_fwdbwd": false, "fwd_via_fwdbwd": false,
		"parallel_fwdbwd_chunks": false, "use_pyqwest_transport": false, "create_model_via_load_weights": false,
		"fwdbwd_max_chunk_len": 1024, "fwdbwd_max_chunk_bytes_count": 5_000_000,
		"sample_max_concurrent_requests": 2000, "pjwt_auth_enabled": false,
	}, nil
}

func (t *tinkerAPI) createSession(context.Context, *http.Request, []byte) (any, error) {
	id := t.newID("session")
	t.mu.Lock()
	t.sessions[id] = time.Now()
	t.mu.Unlock()
	return map[string]any{"type": "create_session", "session_id": id}, nil
}

func (t *tinkerAPI) heartbeat(_ context.Context, _ *http.Request, body []byte) (any, error) {
	var req struct {
		SessionID string `json:"session_id"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	t.mu.Lock()
	_, ok := t.sessions[req.SessionID]
	if ok {
		t.sessions[req.SessionID] = time.Now()
	}
	t.mu.Unlock()
	if !ok {
		return nil, userError(http.StatusNotFound, "unknown session %q; create a session first", req.SessionID)
	}
	return map[string]any{"type": "session_heartbeat"}, nil
}

// submit registers a future for a model request (or, with m nil, one that
// runs on its own goroutine) and answers with it. Retries with the same
// idempotency key, or the same (model, seq_id) and body, get the same
// future; another body under a used seq_id is a 409.
func (t *tinkerAPI) submit(r *http.Request, body []byte, m *tinkerModel, seq *int64, run func(ctx context.Context) (any, error)) (any, error) {
	key := r.Header.Get("X-Idempotency-Key")
	hash := sha256.Sum256(body)
	t.mu.Lock()
	if key != "" {
		if f, ok := t.byIdem[key]; ok {
			t.mu.Unlock()
			return futureReply(f), nil
		}
	}
	modelID := ""
	if m != nil {
		modelID = m.id
	}
	f := &tinkerFuture{id: t.newID("req"), modelID: modelID, hash: hash, done: make(chan struct{})}
	if m != nil && seq != nil {
		m.mu.Lock()
		if old, ok := m.bySeq[*seq]; ok {
			m.mu.Unlock()
			t.mu.Unlock()
			if old.hash != hash {
				return nil, userError(http.StatusConflict, "seq_id %d of model %s was already used by another request", *seq, m.id)
			}
			return futureReply(old), nil
		}
		m.bySeq[*seq] = f
		m.mu.Unlock()
	}
	t.futures[f.id] = f
	if key != "" {
		t.byIdem[key] = f
	}
	t.mu.Unlock()
	if m == nil {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			ctx, cancel := t.jobContext()
			defer cancel()
			v, err := run(ctx)
			f.finish(v, err)
		}()
	} else {
		m.enqueue(&tinkerJob{fut: f, seq: seq, run: run})
	}
	return futureReply(f), nil
}

// jobContext is cancelled when the server closes.
func (t *tinkerAPI) jobContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-t.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func futureReply(f *tinkerFuture) map[string]any {
	out := map[string]any{"request_id": f.id}
	if f.modelID != "" {
		out["model_id"] = f.modelID
	}
	return out
}

func (m *tinkerModel) enqueue(j *tinkerJob) {
	m.mu.Lock()
	if j.seq == nil {
		m.fifo = append(m.fifo, j)
	} else {
		m.pending[*j.seq] = j
	}
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// worker runs the model's requests one at a time: a request with a seq_id
// waits for every lower seq_id, unless the gap lasts longer than gap (a
// client that died between submissions).
func (m *tinkerModel) worker(t *tinkerAPI, gap time.Duration) {
	defer t.wg.Done()
	ctx, cancel := t.jobContext()
	defer cancel()
	var waitingSince time.Time
	for {
		m.mu.Lock()
		var job *tinkerJob
		if len(m.pending) > 0 {
			low := slices.Min(slices.Collect(mapKeys(m.pending)))
			switch {
			case low <= m.next:
				job = m.pending[low]
			case !waitingSince.IsZero() && time.Since(waitingSince) >= gap:
				t.log.Warn("tinker: skipping a seq_id gap", "model", m.id, "missing", m.next, "next", low)
				job = m.pending[low]
			}
			if job != nil {
				delete(m.pending, low)
				m.next = max(m.next, low+1)
			}
		}
		if job == nil && len(m.fifo) > 0 {
			job, m.fifo = m.fifo[0], m.fifo[1:]
		}
		idle := job == nil && len(m.pending) == 0
		m.mu.Unlock()
		if job != nil {
			waitingSince = time.Time{}
			v, err := job.run(ctx)
			job.fut.finish(v, err)
			continue
		}
		var timer <-chan time.Time
		var tm *time.Timer
		if !idle {
			if waitingSince.IsZero() {
				waitingSince = time.Now()
			}
			tm = time.NewTimer(max(gap-time.Since(waitingSince), time.Millisecond))
			timer = tm.C
		}
		stopped := false
		select {
		case <-m.wake:
		case <-timer:
		case <-m.stop:
			stopped = true
		case <-t.stop:
			stopped = true
		}
		if tm != nil {
			tm.Stop()
		}
		if stopped {
			m.failQueued()
			return
		}
	}
}

func (m *tinkerModel) failQueued() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, j := range m.fifo {
		j.fut.finish(nil, &tinkerFailure{category: "server", msg: "the model was unloaded or the server stopped"})
	}
	for _, j := range m.pending {
		j.fut.finish(nil, &tinkerFailure{category: "server", msg: "the model was unloaded or the server stopped"})
	}
	m.fifo, m.pending = nil, map[int64]*tinkerJob{}
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (t *tinkerAPI) model(id string) (*tinkerModel, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.models[id]
	if !ok {
		return nil, userError(http.StatusNotFound, "unknown model_id %q; create_model first", id)
	}
	return m, nil
}

// modelOf is the model a {"model_id"} body names.
func (t *tinkerAPI) modelOf(body []byte) (*tinkerModel, error) {
	var req struct {
		ModelID string `json:"model_id"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	return t.model(req.ModelID)
}

func (t *tinkerAPI) checkBaseModel(name string) error {
	if name != "" && name != t.s.opts.ModelName {
		return userError(http.StatusBadRequest, "base_model %q is not served here; get_server_capabilities lists %q", name, t.s.opts.ModelName)
	}
	return nil
}

func (t *tinkerAPI) createModel(_ context.Context, r *http.Request, body []byte) (any, error) {
	var req struct {
		SessionID  string              `json:"session_id"`
		ModelSeqID *int64              `json:"model_seq_id"`
		BaseModel  string              `json:"base_model"`
		LoraConfig *struct{ Rank int } `json:"lora_config"`
		Type       string              `json:"type"`
		Metadata   json.RawMessage     `json:"user_metadata"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	if req.BaseModel == "" {
		return nil, userError(http.StatusBadRequest, "base_model is required")
	}
	if err := t.checkBaseModel(req.BaseModel); err != nil {
		return nil, err
	}
	t.mu.Lock()
	// A retried create_model must not create a second model.
	if f, ok := t.byIdem[r.Header.Get("X-Idempotency-Key")]; ok && r.Header.Get("X-Idempotency-Key") != "" {
		t.mu.Unlock()
		return futureReply(f), nil
	}
	if len(t.models) >= t.s.opts.MaxModels {
		t.mu.Unlock()
		return nil, userError(http.StatusTooManyRequests, "this server holds %d training models already (--max-models); unload one first", len(t.models))
	}
	t.modelCount++
	id := fmt.Sprintf("model-%d", t.modelCount)
	m := &tinkerModel{id: id, baseModel: req.BaseModel, next: 1, pending: map[int64]*tinkerJob{},
		bySeq: map[int64]*tinkerFuture{}, wake: make(chan struct{}, 1), stop: make(chan struct{}), sink: &captureSink{}}
	if req.LoraConfig != nil {
		m.loraRank = req.LoraConfig.Rank
	}
	opts := trainer.EmbeddedOptions{SourceDir: t.s.opts.ModelDir, Sinks: []trainer.WeightsSink{m.sink}}
	if t.s.opts.CheckpointDir != "" {
		m.dir = filepath.Join(t.s.opts.CheckpointDir, id)
		opts.Dir = m.dir
	}
	m.tr = trainer.NewEmbedded(t.s.opts.Weights, opts)
	t.models[id] = m
	t.mu.Unlock()
	t.wg.Add(1)
	go m.worker(t, t.s.opts.GapTimeout)
	t.log.Info("tinker: model created", "model_id", id, "base_model", req.BaseModel)
	return t.submit(r, body, m, nil, func(context.Context) (any, error) {
		return map[string]any{"type": "create_model", "model_id": id}, nil
	})
}

func (t *tinkerAPI) getInfo(_ context.Context, _ *http.Request, body []byte) (any, error) {
	m, err := t.modelOf(body)
	if err != nil {
		return nil, err
	}
	cfg := t.s.opts.Weights.Config
	return map[string]any{"type": "get_info", "model_id": m.id, "model_name": m.baseModel, "is_lora": false,
		"lora_rank": m.loraRank, "model_data": map[string]any{"arch": cfg.ModelType, "model_name": m.baseModel, "tokenizer_id": m.baseModel}}, nil
}

func (t *tinkerAPI) unloadModel(_ context.Context, r *http.Request, body []byte) (any, error) {
	m, err := t.modelOf(body)
	if err != nil {
		return nil, err
	}
	var req struct {
		SeqID *int64 `json:"seq_id"`
	}
	_ = json.Unmarshal(body, &req) // modelOf has checked the body
	return t.submit(r, body, m, req.SeqID, func(context.Context) (any, error) {
		t.mu.Lock()
		delete(t.models, m.id)
		t.mu.Unlock()
		close(m.stop)
		return map[string]any{"type": "unload_model", "model_id": m.id}, nil
	})
}

// fwdBwdRequest is forward_backward's and forward's body.
type fwdBwdRequest struct {
	ModelID      string                 `json:"model_id"`
	SeqID        *int64                 `json:"seq_id"`
	FwdBwdInput  *llm.TinkerFwdBwdInput `json:"forward_backward_input"`
	ForwardInput *llm.TinkerFwdBwdInput `json:"forward_input"`
	Type         string                 `json:"type"`
}

// lossInputs lists, per loss, the loss_fn_inputs it needs and their dtype;
// target_tokens is always int64.
var lossInputs = map[string][]string{
	"cross_entropy":       {"weights"},
	"importance_sampling": {"logprobs", "advantages"},
	"ppo":                 {"logprobs", "advantages"},
}

// toData checks a forward(_backward) input and converts it.
func (t *tinkerAPI) toData(in *llm.TinkerFwdBwdInput) ([]trainer.Datum, trainer.LossFn, trainer.LossConfig, error) {
	var cfg trainer.LossConfig
	if in == nil {
		return nil, "", cfg, userError(http.StatusBadRequest, "the request has no input (forward_backward_input or forward_input)")
	}
	need, ok := lossInputs[in.LossFn]
	if !ok {
		return nil, "", cfg, userError(http.StatusBadRequest, "unknown loss_fn %q; this server implements cross_entropy, importance_sampling and ppo", in.LossFn)
	}
	for k, v := range in.LossFnConfig {
		switch {
		case in.LossFn == "ppo" && k == "clip_low_threshold":
			cfg.ClipLow = v
		case in.LossFn == "ppo" && k == "clip_high_threshold":
			cfg.ClipHigh = v
		default:
			return nil, "", cfg, userError(http.StatusBadRequest, "loss_fn_config key %q does not apply to %s", k, in.LossFn)
		}
	}
	if lo, hi := cmp.Or(cfg.ClipLow, 0.8), cmp.Or(cfg.ClipHigh, 1.2); !(lo > 0 && lo <= 1 && hi >= 1) {
		return nil, "", cfg, userError(http.StatusBadRequest, "ppo needs 0 < clip_low_threshold <= 1 <= clip_high_threshold, got %v and %v", lo, hi)
	}
	if len(in.Data) == 0 {
		return nil, "", cfg, userError(http.StatusBadRequest, "data is empty")
	}
	vocab := t.s.opts.Weights.Config.VocabSize
	out := make([]trainer.Datum, len(in.Data))
	for i, d := range in.Data {
		ids, err := d.ModelInput.Tokens()
		if err != nil {
			return nil, "", cfg, userError(http.StatusBadRequest, "data[%d]: %v", i, err)
		}
		n := len(ids)
		if n == 0 {
			return nil, "", cfg, userError(http.StatusBadRequest, "data[%d]: model_input is empty", i)
		}
		if n > t.s.ctxLen {
			return nil, "", cfg, userError(http.StatusBadRequest, "data[%d]: %d tokens exceed the context length %d", i, n, t.s.ctxLen)
		}
		for j, id := range ids {
			if id < 0 || id >= vocab {
				return nil, "", cfg, userError(http.StatusBadRequest, "data[%d]: token %d at position %d is outside the vocabulary [0, %d)", i, id, j, vocab)
			}
		}
		for k := range d.LossFnInputs {
			if k != "target_tokens" && !slices.Contains(need, k) && !(in.LossFn == "cross_entropy" && k == "mask") {
				return nil, "", cfg, userError(http.StatusBadRequest, "data[%d]: loss_fn_inputs[%q] is not an input of %s (want target_tokens, %s)", i, k, in.LossFn, strings.Join(need, ", "))
			}
		}
		tt, ok := d.LossFnInputs["target_tokens"]
		if !ok {
			return nil, "", cfg, userError(http.StatusBadRequest, "data[%d]: loss_fn_inputs has no target_tokens", i)
		}
		tv, err := tt.Vector(fmt.Sprintf("data[%d].target_tokens", i), "int64", n)
		if err != nil {
			return nil, "", cfg, userError(http.StatusBadRequest, "%v", err)
		}
		dt := trainer.Datum{Input: ids, Target: make([]int, n)}
		for j, x := range tv {
			if x < 0 || int(x) >= vocab {
				return nil, "", cfg, userError(http.StatusBadRequest, "data[%d].target_tokens[%d] = %v is outside the vocabulary [0, %d)", i, j, x, vocab)
			}
			dt.Target[j] = int(x)
		}
		floats := func(key string) ([]float32, error) {
			tv, ok := d.LossFnInputs[key]
			if !ok {
				return nil, userError(http.StatusBadRequest, "data[%d]: %s needs loss_fn_inputs[%q]", i, in.LossFn, key)
			}
			v, err := tv.Vector(fmt.Sprintf("data[%d].%s", i, key), "float32", n)
			if err != nil {
				return nil, userError(http.StatusBadRequest, "%v", err)
			}
			f := make([]float32, n)
			for j, x := range v {
				f[j] = float32(x)
			}
			return f, nil
		}
		if in.LossFn == "cross_entropy" {
			if _, ok := d.LossFnInputs["weights"]; ok {
				if dt.Weights, err = floats("weights"); err != nil {
					return nil, "", cfg, err
				}
			} else {
				dt.Weights = make([]float32, n)
				for j := range dt.Weights {
					dt.Weights[j] = 1
				}
			}
		} else {
			if dt.Logprobs, err = floats("logprobs"); err != nil {
				return nil, "", cfg, err
			}
			if dt.Advantages, err = floats("advantages"); err != nil {
				return nil, "", cfg, err
			}
		}
		out[i] = dt
	}
	return out, trainer.LossFn(in.LossFn), cfg, nil
}

// fwdBwdOutput is ForwardBackwardOutput: per datum the target logprobs
// and the per-token loss, and the summed loss as metrics["loss:sum"].
func fwdBwdOutput(data []trainer.Datum, fn trainer.LossFn, cfg trainer.LossConfig, o *trainer.Output) *llm.TinkerFwdBwdOutput {
	res := &llm.TinkerFwdBwdOutput{LossFnOutputType: "ArrayRecord", Metrics: map[string]float64{}}
	// The SDK folds chunked results by the reduction named after the
	// colon, and fails on a key without one.
	for k, v := range o.Metrics {
		switch {
		case strings.Contains(k, ":"):
		case k == "tokens" || k == "active_tokens":
			k += ":sum"
		default:
			k += ":mean"
		}
		res.Metrics[k] = v
	}
	res.Metrics["loss:sum"] = o.Loss
	for i, d := range data {
		lp := o.Logprobs[i]
		res.LossFnOutputs = append(res.LossFnOutputs, map[string]llm.TinkerTensor{
			"logprobs":         llm.Float32Tensor(lp),
			"elementwise_loss": llm.Float32Tensor(elementwiseLoss(d, fn, cfg, lp)),
		})
	}
	return res
}

// elementwiseLoss is each token's term of the summed loss.
func elementwiseLoss(d trainer.Datum, fn trainer.LossFn, cfg trainer.LossConfig, lp []float32) []float32 {
	out := make([]float32, len(lp))
	lo, hi := cfg.ClipLow, cfg.ClipHigh
	if lo == 0 {
		lo = 0.8
	}
	if hi == 0 {
		hi = 1.2
	}
	for i, l := range lp {
		switch fn {
		case trainer.CrossEntropy:
			out[i] = -d.Weights[i] * l
		case trainer.ImportanceSampling:
			out[i] = -float32(math.Exp(float64(l-d.Logprobs[i]))) * d.Advantages[i]
		case trainer.PPO:
			r := math.Exp(float64(l - d.Logprobs[i]))
			a := float64(d.Advantages[i])
			out[i] = -float32(min(r*a, math.Min(math.Max(r, lo), hi)*a))
		}
	}
	return out
}

func (t *tinkerAPI) forward(ctx context.Context, r *http.Request, body []byte) (any, error) {
	return t.fwdBwd(ctx, r, body, false)
}

func (t *tinkerAPI) forwardBackward(ctx context.Context, r *http.Request, body []byte) (any, error) {
	return t.fwdBwd(ctx, r, body, true)
}

func (t *tinkerAPI) fwdBwd(_ context.Context, r *http.Request, body []byte, backward bool) (any, error) {
	var req fwdBwdRequest
	if isProto(r) {
		raw, err := protoBody(r, body, t.s.opts.MaxBodyBytes)
		if err != nil {
			return nil, err
		}
		p, err := decodeFwdBwdProto(raw)
		if err != nil {
			return nil, userError(http.StatusBadRequest, "protobuf ForwardBackwardRequest: %v", err)
		}
		req = *p
		backward = req.FwdBwdInput != nil
	} else if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	m, err := t.model(req.ModelID)
	if err != nil {
		return nil, err
	}
	in := req.FwdBwdInput
	if !backward || in == nil {
		if req.ForwardInput != nil {
			in = req.ForwardInput
		}
	}
	data, fn, cfg, err := t.toData(in)
	if err != nil {
		return nil, err
	}
	return t.submit(r, body, m, req.SeqID, func(ctx context.Context) (any, error) {
		var o *trainer.Output
		var err error
		if backward {
			o, err = m.tr.ForwardBackward(ctx, data, fn, cfg)
		} else {
			o, err = m.tr.Forward(ctx, data, fn, cfg)
		}
		if err != nil {
			return nil, err
		}
		return fwdBwdOutput(data, fn, cfg, o), nil
	})
}

func (t *tinkerAPI) optimStep(_ context.Context, r *http.Request, body []byte) (any, error) {
	var req struct {
		ModelID    string                `json:"model_id"`
		SeqID      *int64                `json:"seq_id"`
		AdamParams *llm.TinkerAdamParams `json:"adam_params"`
		Type       string                `json:"type"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	m, err := t.model(req.ModelID)
	if err != nil {
		return nil, err
	}
	if req.AdamParams == nil {
		return nil, userError(http.StatusBadRequest, "adam_params is required")
	}
	p := trainer.AdamParams(*req.AdamParams)
	switch {
	case !(p.LearningRate >= 0) || math.IsInf(p.LearningRate, 0):
		return nil, userError(http.StatusBadRequest, "adam_params.learning_rate must be ≥ 0, got %v", p.LearningRate)
	case !(p.Beta1 >= 0 && p.Beta1 < 1) || !(p.Beta2 >= 0 && p.Beta2 < 1):
		return nil, userError(http.StatusBadRequest, "adam_params betas must be in [0, 1), got %v and %v", p.Beta1, p.Beta2)
	case !(p.Eps >= 0) || !(p.WeightDecay >= 0) || !(p.GradClipNorm >= 0):
		return nil, userError(http.StatusBadRequest, "adam_params eps, weight_decay and grad_clip_norm must be ≥ 0")
	}
	return t.submit(r, body, m, req.SeqID, func(ctx context.Context) (any, error) {
		metrics, err := m.tr.OptimStep(ctx, p)
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "optim_step", "metrics": metrics}, nil
	})
}

var checkpointName = func(s string) bool {
	if s == "" || len(s) > 128 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func (t *tinkerAPI) saveForSampler(_ context.Context, r *http.Request, body []byte) (any, error) {
	var req struct {
		ModelID              string `json:"model_id"`
		Path                 string `json:"path"`
		SamplingSessionSeqID *int64 `json:"sampling_session_seq_id"`
		SeqID                *int64 `json:"seq_id"`
		TTLSeconds           *int64 `json:"ttl_seconds"`
		Type                 string `json:"type"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	m, err := t.model(req.ModelID)
	if err != nil {
		return nil, err
	}
	if req.Path != "" && !checkpointName(req.Path) {
		return nil, userError(http.StatusBadRequest, "path %q: use letters, digits, '.', '_' and '-' only", req.Path)
	}
	return t.submit(r, body, m, req.SeqID, func(ctx context.Context) (any, error) {
		name := req.Path
		if name == "" {
			m.saved++
			name = fmt.Sprintf("sampler-%04d", m.saved)
		}
		if _, err := m.tr.SaveWeightsForSampler(ctx, name); err != nil {
			return nil, err
		}
		w, version := m.sink.last()
		path := "tinker://" + m.id + "/sampler_weights/" + name
		t.storeWeights(path, w)
		out := map[string]any{"type": "save_weights_for_sampler", "path": path}
		if req.SamplingSessionSeqID != nil {
			id := t.newID("sampling")
			t.mu.Lock()
			t.sampling[id] = path
			t.mu.Unlock()
			out["sampling_session_id"] = id
		}
		t.log.Info("tinker: sampler weights saved", "path", path, "version", version)
		return out, nil
	})
}

// storeWeights keeps sampler weights in memory, evicting the oldest past
// keepInMemory (those saved to a checkpoint directory reload from disk).
func (t *tinkerAPI) storeWeights(path string, w *engine.Weights) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.weights[path]; !ok {
		t.weightOrder = append(t.weightOrder, path)
	}
	t.weights[path] = w
	for len(t.weightOrder) > t.keepInMemory {
		delete(t.weights, t.weightOrder[0])
		t.weightOrder = t.weightOrder[1:]
	}
}

// parseTinkerPath splits tinker://MODEL/KIND/NAME.
func parseTinkerPath(p string) (model, kind, name string, ok bool) {
	rest, ok := strings.CutPrefix(p, "tinker://")
	if !ok {
		return "", "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[0] == "" || !checkpointName(parts[2]) || (parts[1] != "sampler_weights" && parts[1] != "weights") {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// samplerWeights resolves a tinker:// sampler path from memory or, with a
// checkpoint directory, from disk.
func (t *tinkerAPI) samplerWeights(path string) (*engine.Weights, bool) {
	t.mu.Lock()
	w, ok := t.weights[path]
	t.mu.Unlock()
	if ok {
		return w, true
	}
	model, kind, name, ok := parseTinkerPath(path)
	if !ok || kind != "sampler_weights" || t.s.opts.CheckpointDir == "" {
		return nil, false
	}
	dir := filepath.Join(t.s.opts.CheckpointDir, model, "sampler_weights", name)
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		return nil, false
	}
	w, err := engine.LoadWeights(dir)
	if err != nil {
		t.log.Warn("tinker: load sampler weights", "path", path, "err", err)
		return nil, false
	}
	return w, true
}

func (t *tinkerAPI) saveWeights(_ context.Context, r *http.Request, body []byte) (any, error) {
	var req struct {
		ModelID    string `json:"model_id"`
		Path       string `json:"path"`
		SeqID      *int64 `json:"seq_id"`
		TTLSeconds *int64 `json:"ttl_seconds"`
		Overwrite  bool   `json:"overwrite"`
		Type       string `json:"type"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	m, err := t.model(req.ModelID)
	if err != nil {
		return nil, err
	}
	if m.dir == "" {
		return nil, userError(http.StatusBadRequest, "save_weights needs a checkpoint directory; start the server with --checkpoint-dir")
	}
	if req.Path != "" && !checkpointName(req.Path) {
		return nil, userError(http.StatusBadRequest, "path %q: use letters, digits, '.', '_' and '-' only", req.Path)
	}
	return t.submit(r, body, m, req.SeqID, func(ctx context.Context) (any, error) {
		name := req.Path
		if name == "" {
			m.saved++
			name = fmt.Sprintf("state-%04d", m.saved)
		}
		if _, err := os.Stat(filepath.Join(m.dir, "state", name)); err == nil && !req.Overwrite {
			return nil, &tinkerFailure{category: "user", msg: fmt.Sprintf("checkpoint %q exists; pass overwrite=true", name)}
		}
		if _, err := m.tr.SaveState(ctx, name); err != nil {
			return nil, err
		}
		return map[string]any{"type": "save_weights", "path": "tinker://" + m.id + "/weights/" + name}, nil
	})
}

// stateDir resolves a tinker:// weights path to its directory.
func (t *tinkerAPI) stateDir(path string) (string, error) {
	model, kind, name, ok := parseTinkerPath(path)
	if !ok || kind != "weights" {
		return "", userError(http.StatusBadRequest, "path %q is not a tinker://MODEL_ID/weights/NAME path from save_weights", path)
	}
	if t.s.opts.CheckpointDir == "" {
		return "", userError(http.StatusBadRequest, "this server has no checkpoint directory")
	}
	dir := filepath.Join(t.s.opts.CheckpointDir, model, "state", name)
	if _, err := os.Stat(dir); err != nil {
		return "", userError(http.StatusNotFound, "no checkpoint at %s", path)
	}
	return dir, nil
}

func (t *tinkerAPI) loadWeights(_ context.Context, r *http.Request, body []byte) (any, error) {
	var req struct {
		ModelID            string          `json:"model_id"`
		SeqID              *int64          `json:"seq_id"`
		SessionID          string          `json:"session_id"`
		ModelSeqID         *int64          `json:"model_seq_id"`
		BaseModel          string          `json:"base_model"`
		Metadata           json.RawMessage `json:"user_metadata"`
		Path               string          `json:"path"`
		Optimizer          bool            `json:"optimizer"`
		WeightsAccessToken string          `json:"weights_access_token"`
		Type               string          `json:"type"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	if req.ModelID == "" {
		return nil, userError(http.StatusBadRequest, "load_weights needs model_id (this server answers create_model_via_load_weights=false)")
	}
	m, err := t.model(req.ModelID)
	if err != nil {
		return nil, err
	}
	dir, err := t.stateDir(req.Path)
	if err != nil {
		return nil, err
	}
	return t.submit(r, body, m, req.SeqID, func(ctx context.Context) (any, error) {
		if err := m.tr.LoadState(ctx, dir, req.Optimizer); err != nil {
			return nil, err
		}
		return map[string]any{"type": "load_weights", "path": req.Path, "model_id": m.id}, nil
	})
}

func (t *tinkerAPI) weightsInfo(_ context.Context, _ *http.Request, body []byte) (any, error) {
	var req struct {
		TinkerPath string `json:"tinker_path"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	if _, _, _, ok := parseTinkerPath(req.TinkerPath); !ok {
		return nil, userError(http.StatusBadRequest, "tinker_path %q is not a tinker:// path", req.TinkerPath)
	}
	return map[string]any{"base_model": t.s.opts.ModelName, "is_lora": false}, nil
}

func (t *tinkerAPI) createSamplingSession(_ context.Context, _ *http.Request, body []byte) (any, error) {
	var req struct {
		SessionID            string `json:"session_id"`
		SamplingSessionSeqID int64  `json:"sampling_session_seq_id"`
		BaseModel            string `json:"base_model"`
		ModelPath            string `json:"model_path"`
		Type                 string `json:"type"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	if req.ModelPath == "" && req.BaseModel == "" {
		return nil, userError(http.StatusBadRequest, "give base_model or model_path")
	}
	if err := t.checkBaseModel(req.BaseModel); err != nil {
		return nil, err
	}
	if req.ModelPath != "" {
		if _, ok := t.samplerWeights(req.ModelPath); !ok {
			return nil, userError(http.StatusNotFound, "no sampler weights at %q on this server", req.ModelPath)
		}
	}
	id := t.newID("sampling")
	t.mu.Lock()
	t.sampling[id] = req.ModelPath
	t.mu.Unlock()
	return map[string]any{"type": "create_sampling_session", "sampling_session_id": id}, nil
}

// getSampler describes a sampling session (SDKs from ~0.30 ask for its
// base model when they create a sampling client).
func (t *tinkerAPI) getSampler(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	t.mu.Lock()
	path, ok := t.sampling[id]
	t.mu.Unlock()
	if !ok {
		writeTinkerError(w, userError(http.StatusNotFound, "unknown sampling session %q", id))
		return
	}
	out := map[string]any{"sampler_id": id, "base_model": t.s.opts.ModelName}
	if path != "" {
		out["model_path"] = path
	}
	writeJSON(w, http.StatusOK, out)
}

// samplerFor returns the sampler for a model path: the served sampler for
// the base model, else a sampler over the saved weights (a few are kept).
func (t *tinkerAPI) samplerFor(path string) (*engine.Sampler, error) {
	if path == "" {
		return t.s.sampler, nil
	}
	t.mu.Lock()
	for _, e := range t.samplers {
		if e.path == path {
			e.used = time.Now()
			t.mu.Unlock()
			return e.sampler, nil
		}
	}
	t.mu.Unlock()
	w, ok := t.samplerWeights(path)
	if !ok {
		return nil, userError(http.StatusNotFound, "no sampler weights at %q on this server", path)
	}
	sm := engine.NewSampler(w, 0, t.s.samplerOptions())
	t.mu.Lock()
	defer t.mu.Unlock()
	t.samplers = append(t.samplers, &samplerEntry{path: path, sampler: sm, used: time.Now()})
	if len(t.samplers) > t.maxSamplers {
		slices.SortFunc(t.samplers, func(a, b *samplerEntry) int { return a.used.Compare(b.used) })
		old := t.samplers[0]
		t.samplers = t.samplers[1:]
		// Close after in-flight requests on it are done: they hold no
		// reference the sampler needs after Close besides their results.
		go func() {
			time.Sleep(time.Minute)
			old.sampler.Close()
		}()
	}
	return sm, nil
}

func (t *tinkerAPI) asample(_ context.Context, r *http.Request, body []byte) (any, error) {
	var req llm.TinkerSampleRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	path := req.ModelPath
	switch {
	case req.SamplingSessionID != "":
		t.mu.Lock()
		p, ok := t.sampling[req.SamplingSessionID]
		t.mu.Unlock()
		if !ok {
			return nil, userError(http.StatusNotFound, "unknown sampling_session_id %q", req.SamplingSessionID)
		}
		path = p
	case path == "":
		if req.BaseModel == "" {
			return nil, userError(http.StatusBadRequest, "give sampling_session_id, model_path or base_model")
		}
		if err := t.checkBaseModel(req.BaseModel); err != nil {
			return nil, err
		}
	}
	ids, err := req.Prompt.Tokens()
	if err != nil {
		return nil, userError(http.StatusBadRequest, "prompt: %v", err)
	}
	if err := t.s.checkPrompt(ids); err != nil {
		return nil, userError(http.StatusBadRequest, "prompt: %v", err)
	}
	if req.NumSamples == 0 {
		req.NumSamples = 1
	}
	if req.NumSamples < 0 || req.NumSamples > 64 {
		return nil, userError(http.StatusBadRequest, "num_samples must be in [1, 64], got %d", req.NumSamples)
	}
	if req.TopKPromptLogprobs != 0 {
		return nil, userError(http.StatusBadRequest, "topk_prompt_logprobs is not supported; use prompt_logprobs")
	}
	p, err := tinkerParams(req.SamplingParams)
	if err != nil {
		return nil, err
	}
	sm, err := t.samplerFor(path)
	if err != nil {
		return nil, err
	}
	reply, err := t.submit(r, body, nil, nil, func(ctx context.Context) (any, error) {
		seqs := make([]llm.TinkerSequence, req.NumSamples)
		errs := make([]error, req.NumSamples)
		var wg sync.WaitGroup
		for i := range seqs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pi := p
				if pi.Seed != nil {
					sd := *pi.Seed + int64(i)
					pi.Seed = &sd
				}
				seqs[i], errs[i] = t.sampleOne(ctx, sm, ids, pi)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		out := &llm.TinkerSampleResponse{Type: "sample", Sequences: seqs}
		if req.PromptLogprobs {
			var lps []float32
			var err error // not the handler's: this runs after it returned
			if path == "" {
				lps, _, err = t.s.promptLogprobs(ctx, ids)
			} else {
				w, _ := t.samplerWeights(path)
				lps, err = scoreWith(ctx, engine.NewModel(w, 0), ids)
			}
			if err != nil {
				return nil, err
			}
			out.PromptLogprobs = make([]*float32, len(lps))
			for i := range lps {
				if !math.IsNaN(float64(lps[i])) {
					out.PromptLogprobs[i] = &lps[i]
				}
			}
		}
		return out, nil
	})
	// Newer SDKs (0.3x) name each sample at submission.
	if fr, ok := reply.(map[string]any); ok {
		ids := make([]string, req.NumSamples)
		for i := range ids {
			ids[i] = fmt.Sprintf("%s-%d", fr["request_id"], i)
		}
		fr["sample_sequence_ids"] = ids
	}
	return reply, err
}

// sampleOne generates one sequence; a request cut short by a pause is
// continued with its prompt plus partial output once generation resumes,
// since Tinker has no "abort" stop reason.
func (t *tinkerAPI) sampleOne(ctx context.Context, sm *engine.Sampler, prompt []int, p llm.Params) (llm.TinkerSequence, error) {
	seq := llm.TinkerSequence{Tokens: []int{}, Logprobs: []float32{}}
	p.StopTokenIDs = append(slices.Clone(p.StopTokenIDs), t.s.eos...)
	ids := prompt
	for {
		resp, err := sm.Sample(ctx, &llm.Request{ID: t.newID("asample"), InputIDs: ids, Params: p})
		if err != nil {
			return seq, err
		}
		seq.Tokens = append(seq.Tokens, resp.OutputIDs...)
		seq.Logprobs = append(seq.Logprobs, resp.Logprobs...)
		switch resp.Finish {
		case llm.FinishStop:
			seq.StopReason = "stop"
			return seq, nil
		case llm.FinishLength:
			seq.StopReason = "length"
			return seq, nil
		}
		if p.MaxNewTokens > 0 {
			p.MaxNewTokens -= len(resp.OutputIDs)
			if p.MaxNewTokens <= 0 {
				seq.StopReason = "length"
				return seq, nil
			}
		}
		ids = append(slices.Clone(prompt), seq.Tokens...)
		if len(ids) >= t.s.ctxLen {
			seq.StopReason = "length"
			return seq, nil
		}
	}
}

func scoreWith(ctx context.Context, m *engine.Model, ids []int) ([]float32, error) {
	logits, err := m.Logits(ctx, ids)
	if err != nil {
		return nil, err
	}
	return logprobsFromLogits(logits, ids, m.Config.VocabSize), nil
}

// tinkerParams converts SamplingParams, adding the model's stop tokens.
func tinkerParams(sp llm.TinkerSamplingParams) (llm.Params, error) {
	p := llm.Params{Temperature: 1, Seed: sp.Seed}
	if sp.MaxTokens != nil {
		if *sp.MaxTokens < 1 {
			return p, userError(http.StatusBadRequest, "sampling_params.max_tokens must be at least 1, got %d", *sp.MaxTokens)
		}
		p.MaxNewTokens = *sp.MaxTokens
	}
	if sp.Temperature != nil {
		if *sp.Temperature < 0 || math.IsNaN(*sp.Temperature) {
			return p, userError(http.StatusBadRequest, "sampling_params.temperature must be ≥ 0, got %v", *sp.Temperature)
		}
		p.Temperature = *sp.Temperature
	}
	if sp.TopP != nil {
		if !(*sp.TopP > 0 && *sp.TopP <= 1) {
			return p, userError(http.StatusBadRequest, "sampling_params.top_p must be in (0, 1], got %v", *sp.TopP)
		}
		p.TopP = *sp.TopP
	}
	if sp.TopK != nil {
		if *sp.TopK < -1 || *sp.TopK == 0 {
			return p, userError(http.StatusBadRequest, "sampling_params.top_k must be -1 or at least 1, got %d", *sp.TopK)
		}
		p.TopK = *sp.TopK
	}
	strs, ids, err := sp.StopLists()
	if err != nil {
		return p, userError(http.StatusBadRequest, "sampling_params.%v", err)
	}
	p.Stop, p.StopTokenIDs = strs, ids
	return p, nil
}

func (t *tinkerAPI) retrieveFuture(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		var be *bodyError
		errors.As(err, &be)
		writeTinkerError(w, userError(be.status, "%s", be.msg))
		return
	}
	var req struct {
		RequestID         string `json:"request_id"`
		AllowMetadataOnly bool   `json:"allow_metadata_only"`
	}
	if err := decodeStrict(body, &req); err != nil {
		writeTinkerError(w, err)
		return
	}
	t.mu.Lock()
	f, ok := t.futures[req.RequestID]
	t.mu.Unlock()
	if !ok {
		writeTinkerError(w, userError(http.StatusNotFound, "unknown request_id %q (results are kept for %s after they finish)", req.RequestID, t.s.opts.FutureTTL))
		return
	}
	timer := time.NewTimer(t.s.opts.LongPoll)
	defer timer.Stop()
	select {
	case <-f.done:
	case <-timer.C:
		writeJSON(w, http.StatusRequestTimeout, map[string]any{"type": "try_again", "request_id": f.id, "queue_state": "active"})
		return
	case <-r.Context().Done():
		return
	case <-t.stop:
		writeTinkerError(w, &tinkerFailure{status: http.StatusServiceUnavailable, category: "server", msg: "the server is shutting down"})
		return
	}
	if f.fail != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": f.fail.msg, "category": f.fail.category})
		return
	}
	if f.proto != nil && strings.Contains(r.Header.Get("Accept"), "application/x-protobuf") {
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(f.proto)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(f.result)
}

// janitor drops finished futures after FutureTTL and sessions that
// stopped sending heartbeats.
func (t *tinkerAPI) janitor() {
	defer t.wg.Done()
	tick := time.NewTicker(max(t.s.opts.FutureTTL/10, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		cutoff := time.Now().Add(-t.s.opts.FutureTTL).UnixNano()
		t.mu.Lock()
		for id, f := range t.futures {
			if fin := f.finished.Load(); fin != 0 && fin < cutoff {
				delete(t.futures, id)
			}
		}
		for k, f := range t.byIdem {
			if fin := f.finished.Load(); fin != 0 && fin < cutoff {
				delete(t.byIdem, k)
			}
		}
		t.mu.Unlock()
	}
}

func (t *tinkerAPI) close() {
	close(t.stop)
	t.wg.Wait()
	t.mu.Lock()
	samplers := t.samplers
	t.samplers = nil
	t.mu.Unlock()
	for _, e := range samplers {
		e.sampler.Close()
	}
}
