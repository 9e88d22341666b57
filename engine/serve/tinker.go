package serve

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/engine/embedded"
	"github.com/asearcher/asearcher/wire/tinker"
)

// The Tinker-compatible training API under /api/v1, with the JSON bodies
// of the official Python SDK (package wire/tinker holds the shared types).
// Every training call returns a future at once; retrieve_future long-polls
// it (408 while pending, 400 with a category when it failed, 404 for an
// unknown id). Requests of one model run one at a time in seq_id order.
// A model created with a lora_config rank trains a real LoRA adapter of
// that rank over the frozen base (alpha 32, as SkyRL tx fixes it; the
// seven projections, or those train_attn/train_mlp leave), and its sampler
// weights and states are PEFT adapter directories; without one, training
// is full-weight.

// tinkerFailure is an error with the category Tinker reports.
type tinkerFailure struct {
	status   int // HTTP status when the error is returned synchronously
	category string
	msg      string
	// retryAfter, when set, is sent as Retry-After (seconds): the
	// condition is transient and the SDKs back off and resubmit.
	retryAfter int
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
	// release returns the request's share of the queue bound; finish
	// calls it once.
	release func()
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
		case *tinker.FwdBwdOutput:
			f.proto = encodeFwdBwdProto(r)
		case *tinker.SampleResponse:
			f.proto = encodeSampleProto(r)
		}
	}
	// Room is given back before the result shows, so a client that has
	// its result can submit again at once.
	if f.release != nil {
		f.release()
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
	tr            *embedded.Trainer
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

// captureSink keeps the weights or the adapter SaveWeightsForSampler
// publishes.
type captureSink struct {
	mu      sync.Mutex
	ck      samplerCkpt
	version int
}

func (c *captureSink) SetWeights(w *engine.Weights, version int) {
	c.mu.Lock()
	c.ck, c.version = samplerCkpt{w: w}, version
	c.mu.Unlock()
}

func (c *captureSink) SetAdapter(ad *engine.Adapter, version int) {
	c.mu.Lock()
	c.ck, c.version = samplerCkpt{ad: ad}, version
	c.mu.Unlock()
}

func (c *captureSink) last() (samplerCkpt, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ck, c.version
}

// samplerCkpt is one set of sampler weights: full weights, or a LoRA
// adapter sampled over the served base model.
type samplerCkpt struct {
	w  *engine.Weights
	ad *engine.Adapter
}

// loraAlpha is the lora_alpha of adapters trained here: SkyRL tx fixes 32.
const loraAlpha = 32

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
	weights      map[string]samplerCkpt // tinker:// sampler path → weights or adapter
	weightOrder  []string               // oldest first, for eviction
	samplers     []*samplerEntry
	modelCount   int
	ids          atomic.Int64
	stop         chan struct{}
	wg           sync.WaitGroup
	keepInMemory int
	maxSamplers  int
	// queued and queuedBytes count the futures not yet finished and their
	// bodies, against MaxTinkerQueue and MaxTinkerQueueBytes. They grow
	// only under mu (so admission never over-commits) and shrink without
	// it, because a future finishes under its model's lock, which ranks
	// after mu.
	queued      atomic.Int64
	queuedBytes atomic.Int64
}

func newTinkerAPI(s *Server) *tinkerAPI {
	t := &tinkerAPI{s: s, log: s.log, sessions: map[string]time.Time{}, models: map[string]*tinkerModel{},
		sampling: map[string]string{}, futures: map[string]*tinkerFuture{}, byIdem: map[string]*tinkerFuture{},
		weights: map[string]samplerCkpt{}, stop: make(chan struct{}), keepInMemory: 16, maxSamplers: 2}
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
	t.routeArchive(mux)
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
	if tf.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(tf.retryAfter))
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
		"sample_max_concurrent_requests": min(2000, t.s.opts.MaxTinkerQueue), "pjwt_auth_enabled": false,
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
// future; another body under a used seq_id is a 409. A new request that
// would pass the queue bounds is a 429 (see admitLocked).
func (t *tinkerAPI) submit(r *http.Request, body []byte, m *tinkerModel, seq *int64, run func(ctx context.Context) (any, error)) (any, error) {
	return t.submitSized(r, body, int64(len(body)), nil, m, seq, run)
}

// submitSized is submit charging size bytes to the queue bound (a
// compressed body's decoded size). A caller that has already admitted the
// request under mu passes its release; submit then charges nothing and
// calls release itself if the request turns out to be a retry.
func (t *tinkerAPI) submitSized(r *http.Request, body []byte, size int64, admitted func(), m *tinkerModel, seq *int64, run func(ctx context.Context) (any, error)) (any, error) {
	key := r.Header.Get("X-Idempotency-Key")
	hash := sha256.Sum256(body)
	t.mu.Lock()
	if key != "" {
		if f, ok := t.byIdem[key]; ok {
			t.mu.Unlock()
			if admitted != nil {
				admitted()
			}
			return futureReply(f), nil
		}
	}
	modelID := ""
	if m != nil {
		modelID = m.id
	}
	f := &tinkerFuture{id: t.newID("req"), modelID: modelID, hash: hash, done: make(chan struct{}), release: admitted}
	if m != nil && seq != nil {
		m.mu.Lock()
		if old, ok := m.bySeq[*seq]; ok {
			m.mu.Unlock()
			t.mu.Unlock()
			if admitted != nil {
				admitted()
			}
			if old.hash != hash {
				return nil, userError(http.StatusConflict, "seq_id %d of model %s was already used by another request", *seq, m.id)
			}
			return futureReply(old), nil
		}
		// The request a model's queue waits for is always let in, so a
		// queue full of later seq_ids cannot lock out the one that lets
		// them run (each model has one such seq_id at a time).
		unblocks := *seq == m.next
		m.mu.Unlock()
		if admitted == nil {
			release, err := t.admitLocked(size, unblocks)
			if err != nil {
				t.mu.Unlock()
				return nil, err
			}
			f.release = release
		}
		m.mu.Lock()
		m.bySeq[*seq] = f
		m.mu.Unlock()
	} else if admitted == nil {
		release, err := t.admitLocked(size, false)
		if err != nil {
			t.mu.Unlock()
			return nil, err
		}
		f.release = release
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

// admitLocked charges one new request of size bytes to the queue bounds
// (MaxTinkerQueue requests, MaxTinkerQueueBytes of bodies) and returns
// what gives the charge back; past a bound it is a 429 with Retry-After,
// unless force. Callers hold t.mu.
func (t *tinkerAPI) admitLocked(size int64, force bool) (func(), error) {
	n, b := t.queued.Load(), t.queuedBytes.Load()
	if !force && (n+1 > int64(t.s.opts.MaxTinkerQueue) || b+size > t.s.opts.MaxTinkerQueueBytes) {
		return nil, &tinkerFailure{status: http.StatusTooManyRequests, category: "server", retryAfter: 1,
			msg: fmt.Sprintf("the server's Tinker queue is full (%d requests, %d bytes of bodies waiting; limits --max-tinker-queue %d, --max-tinker-queue-bytes %d); retry when earlier requests finish",
				n, b, t.s.opts.MaxTinkerQueue, t.s.opts.MaxTinkerQueueBytes)}
	}
	t.queued.Add(1)
	t.queuedBytes.Add(size)
	var once sync.Once
	return func() {
		once.Do(func() {
			t.queued.Add(-1)
			t.queuedBytes.Add(-size)
		})
	}, nil
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
		SessionID  string            `json:"session_id"`
		ModelSeqID *int64            `json:"model_seq_id"`
		BaseModel  string            `json:"base_model"`
		LoraConfig *tinkerLoRAConfig `json:"lora_config"`
		Type       string            `json:"type"`
		Metadata   json.RawMessage   `json:"user_metadata"`
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
	lc, loraSeed, err := req.LoraConfig.engineConfig(t.s.opts.ModelDir)
	if err != nil {
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
	// Admitted before the model exists, so a full queue refuses the
	// request without leaving a model behind.
	release, err := t.admitLocked(int64(len(body)), false)
	if err != nil {
		t.mu.Unlock()
		return nil, err
	}
	t.modelCount++
	id := fmt.Sprintf("model-%d", t.modelCount)
	m := &tinkerModel{id: id, baseModel: req.BaseModel, next: 1, pending: map[int64]*tinkerJob{},
		bySeq: map[int64]*tinkerFuture{}, wake: make(chan struct{}, 1), stop: make(chan struct{}), sink: &captureSink{}}
	opts := embedded.TrainerOptions{SourceDir: t.s.opts.ModelDir, Sinks: []embedded.WeightsSink{m.sink}}
	if t.s.opts.CheckpointDir != "" {
		m.dir = filepath.Join(t.s.opts.CheckpointDir, id)
		opts.Dir = m.dir
	}
	if lc != nil {
		m.loraRank = lc.Rank
		tr, err := embedded.NewLoRATrainer(t.s.opts.Weights, *lc, loraSeed, opts)
		if err != nil {
			t.modelCount--
			t.mu.Unlock()
			release()
			return nil, userError(http.StatusBadRequest, "lora_config: %v", err)
		}
		m.tr = tr
	} else {
		m.tr = embedded.NewTrainer(t.s.opts.Weights, opts)
	}
	t.models[id] = m
	t.mu.Unlock()
	t.wg.Add(1)
	go m.worker(t, t.s.opts.GapTimeout)
	t.log.Info("tinker: model created", "model_id", id, "base_model", req.BaseModel)
	return t.submitSized(r, body, int64(len(body)), release, m, nil, func(context.Context) (any, error) {
		return map[string]any{"type": "create_model", "model_id": id}, nil
	})
}

// tinkerLoRAConfig is create_model's lora_config.
type tinkerLoRAConfig struct {
	Rank         int    `json:"rank"`
	Seed         *int64 `json:"seed"`
	TrainUnembed *bool  `json:"train_unembed"`
	TrainMLP     *bool  `json:"train_mlp"`
	TrainAttn    *bool  `json:"train_attn"`
}

// engineConfig maps lora_config to the adapter to train: nil (full-weight
// training) without a config or with rank 0. train_unembed is accepted
// and not applied: the engine adapts the seven projections only.
func (c *tinkerLoRAConfig) engineConfig(baseDir string) (*engine.LoRAConfig, uint64, error) {
	if c == nil || c.Rank == 0 {
		return nil, 0, nil
	}
	if c.Rank < 0 || c.Rank > 1024 {
		return nil, 0, userError(http.StatusBadRequest, "lora_config.rank must be in [1, 1024] (0 trains full weights), got %d", c.Rank)
	}
	on := func(b *bool) bool { return b == nil || *b }
	var targets []string
	if on(c.TrainAttn) {
		targets = append(targets, engine.LoRAModules[:4]...)
	}
	if on(c.TrainMLP) {
		targets = append(targets, engine.LoRAModules[4:]...)
	}
	if len(targets) == 0 {
		return nil, 0, userError(http.StatusBadRequest, "lora_config: train_attn and train_mlp are both false; nothing would be trained")
	}
	var seed uint64
	if c.Seed != nil {
		seed = uint64(*c.Seed)
	}
	return &engine.LoRAConfig{Rank: c.Rank, Alpha: loraAlpha, Targets: targets, BaseModel: baseDir}, seed, nil
}

func (t *tinkerAPI) getInfo(_ context.Context, _ *http.Request, body []byte) (any, error) {
	m, err := t.modelOf(body)
	if err != nil {
		return nil, err
	}
	cfg := t.s.opts.Weights.Config
	return map[string]any{"type": "get_info", "model_id": m.id, "model_name": m.baseModel, "is_lora": m.loraRank > 0,
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
