package llm

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asearcher/asearcher/wire/tinker"
)

// TinkerConfig says how to reach a Tinker-API server: the hosted service,
// SkyRL tx, or `asearcher serve model`.
type TinkerConfig struct {
	// BaseURL is the server root (the API lives under /api/v1).
	BaseURL string
	// APIKey is sent as X-API-Key; it never appears in logs or errors.
	APIKey     string
	HTTPClient *http.Client
	// PollTimeout bounds one retrieve_future long poll [90s].
	PollTimeout time.Duration
	// MaxAttempts bounds tries of one submission on transport errors,
	// 429 and 5xx [6].
	MaxAttempts int
	// Heartbeat is the session heartbeat period [10s]; negative disables.
	Heartbeat time.Duration
	Logger    *slog.Logger
}

// TinkerConfigFromEnv reads TINKER_BASE_URL and TINKER_API_KEY, as the
// official SDK does.
func TinkerConfigFromEnv() TinkerConfig {
	return TinkerConfig{BaseURL: os.Getenv("TINKER_BASE_URL"), APIKey: os.Getenv("TINKER_API_KEY")}
}

func (c *TinkerConfig) withDefaults() error {
	if c.BaseURL == "" {
		return errors.New("tinker: no base URL; set TINKER_BASE_URL (e.g. http://127.0.0.1:30000)")
	}
	c.BaseURL = strings.TrimSuffix(strings.TrimRight(c.BaseURL, "/"), "/api/v1")
	if c.HTTPClient == nil {
		c.HTTPClient = defaultHTTPClient()
	}
	if c.PollTimeout <= 0 {
		c.PollTimeout = 90 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 6
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// TinkerRequestError is a Tinker request that the server ran and failed
// (retrieve_future answered 400 with a category).
type TinkerRequestError struct {
	RequestID string
	Message   string
	Category  string // "user", "server" or "unknown"
}

func (e *TinkerRequestError) Error() string {
	return fmt.Sprintf("tinker request %s failed (%s error): %s", e.RequestID, e.Category, e.Message)
}

// Is makes a failed request whose message is a context-length refusal
// match ErrContextLength.
func (e *TinkerRequestError) Is(target error) bool {
	return target == ErrContextLength && isContextLengthReply(http.StatusBadRequest, []byte(e.Message))
}

// ErrTinkerFutureGone is returned when the server no longer holds a
// future's result (HTTP 410 or 404 after submission); resubmit the request.
var ErrTinkerFutureGone = errors.New("tinker: the server no longer knows this request; resubmit it")

// TinkerClient is one Tinker session: it submits requests, long-polls
// their futures and keeps the session alive with heartbeats. It is safe
// for concurrent use.
type TinkerClient struct {
	cfg       TinkerConfig
	ep        endpoint
	sessionID string
	flags     tinker.ClientConfig

	modelSeq    atomic.Int64
	samplingSeq atomic.Int64

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// NewTinkerClient fetches the server's client config and opens a session.
// Close it to stop the heartbeat.
func NewTinkerClient(ctx context.Context, cfg TinkerConfig) (*TinkerClient, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	h := http.Header{}
	if cfg.APIKey != "" {
		h.Set("X-API-Key", cfg.APIKey)
	}
	c := &TinkerClient{cfg: cfg, ep: newEndpoint(cfg.BaseURL, cfg.HTTPClient, h, cfg.APIKey), stop: make(chan struct{})}
	c.flags = tinker.ClientConfig{FwdBwdMaxChunkLen: 1024, FwdBwdMaxChunkBytes: 5_000_000, SampleMaxConcurrent: 2000}
	if err := c.Call(ctx, "/api/v1/client/config", map[string]any{"sdk_version": "asearcher-go"}, &c.flags); err != nil {
		return nil, fmt.Errorf("tinker client config: %w", err)
	}
	if c.flags.FwdBwdMaxChunkLen <= 0 {
		c.flags.FwdBwdMaxChunkLen = 1024
	}
	if c.flags.FwdBwdMaxChunkBytes <= 0 {
		c.flags.FwdBwdMaxChunkBytes = 5_000_000
	}
	var sess struct {
		SessionID      string `json:"session_id"`
		WarningMessage string `json:"warning_message"`
		ErrorMessage   string `json:"error_message"`
	}
	body := map[string]any{"type": "create_session", "tags": []string{"asearcher"}, "user_metadata": map[string]string{}, "sdk_version": "asearcher-go"}
	if err := c.Call(ctx, "/api/v1/create_session", body, &sess); err != nil {
		return nil, fmt.Errorf("tinker create session: %w", err)
	}
	if sess.SessionID == "" {
		return nil, errors.New("tinker create session: the reply has no session_id")
	}
	if sess.ErrorMessage != "" {
		cfg.Logger.Error("tinker session", "message", sess.ErrorMessage)
	} else if sess.WarningMessage != "" {
		cfg.Logger.Warn("tinker session", "message", sess.WarningMessage)
	}
	c.sessionID = sess.SessionID
	if cfg.Heartbeat > 0 {
		c.wg.Add(1)
		go c.heartbeat()
	}
	return c, nil
}

// SessionID is the session this client opened.
func (c *TinkerClient) SessionID() string { return c.sessionID }

// Flags are the server's client config.
func (c *TinkerClient) Flags() tinker.ClientConfig { return c.flags }

// NextModelSeqID numbers create_model calls within the session.
func (c *TinkerClient) NextModelSeqID() int64 { return c.modelSeq.Add(1) - 1 }

// NextSamplingSeqID numbers sampling sessions within the session.
func (c *TinkerClient) NextSamplingSeqID() int64 { return c.samplingSeq.Add(1) - 1 }

// Close stops the heartbeat.
func (c *TinkerClient) Close() {
	c.once.Do(func() { close(c.stop) })
	c.wg.Wait()
}

func (c *TinkerClient) heartbeat() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := c.post(ctx, "/api/v1/session_heartbeat", mustJSON(map[string]any{"type": "session_heartbeat", "session_id": c.sessionID}), "", nil)
			cancel()
			if err != nil {
				c.cfg.Logger.Warn("tinker session heartbeat failed", "err", err)
			}
		}
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("tinker: encode request: %v", err)) // only our own request types are encoded
	}
	return b
}

func newIdempotencyKey() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Sprintf("asearcher-%d", time.Now().UnixNano())
	}
	return "asearcher-" + hex.EncodeToString(b[:])
}

// Call POSTs body (retrying transport errors, 429 and 5xx with the same
// idempotency key) and decodes a 2xx reply into out (when not nil).
func (c *TinkerClient) Call(ctx context.Context, path string, body any, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	key := newIdempotencyKey()
	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err = c.post(ctx, path, data, key, out)
		if err == nil || !Retryable(err) || attempt >= c.cfg.MaxAttempts || ctx.Err() != nil {
			return err
		}
		c.cfg.Logger.Debug("tinker: retrying", "path", path, "attempt", attempt, "err", err)
		if err := sleepCtx(ctx, delay); err != nil {
			return err
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// post sends one request; out receives a 2xx JSON reply.
func (c *TinkerClient) post(ctx context.Context, path string, body []byte, key string, out any) error {
	status, data, err := c.send(ctx, path, body, key)
	if err != nil {
		return err
	}
	if status < 200 || status > 299 {
		return &HTTPError{Server: redactURL(c.ep.base), Path: path, Status: status, Body: c.ep.scrub(snippet(data, 300)),
			ContextLength: isContextLengthReply(status, data)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode reply of %s: %w", path, err)
	}
	return nil
}

// send returns the status and body of one POST, whatever the status.
func (c *TinkerClient) send(ctx context.Context, path string, body []byte, key string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.ep.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("build request %s: %w", path, err)
	}
	for k, vs := range c.ep.headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("X-Idempotency-Key", key)
	}
	resp, err := c.ep.client.Do(req)
	if err != nil {
		cause := unwrapURLError(err)
		return 0, nil, &transportError{op: "POST " + redactURL(c.ep.base+path), msg: c.ep.scrub(cause.Error()), cause: cause}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return 0, nil, &transportError{op: "read reply of " + path, msg: err.Error(), cause: err}
	}
	if len(data) > maxResponseBytes {
		return 0, nil, fmt.Errorf("reply of %s exceeds %d bytes", path, maxResponseBytes)
	}
	return resp.StatusCode, data, nil
}

// Submit posts an asynchronous request and returns its future.
func (c *TinkerClient) Submit(ctx context.Context, path string, body any) (tinker.Future, error) {
	var f tinker.Future
	if err := c.Call(ctx, path, body, &f); err != nil {
		return f, err
	}
	if f.RequestID == "" {
		return f, fmt.Errorf("%s: the reply has no request_id", path)
	}
	return f, nil
}

// Wait long-polls retrieve_future until the request finishes and decodes
// its result into out: 408 means still running, 400 a failed request, 404
// or 410 a future the server no longer holds.
func (c *TinkerClient) Wait(ctx context.Context, f tinker.Future, out any) error {
	body := mustJSON(map[string]any{"request_id": f.RequestID, "allow_metadata_only": false})
	delay := 200 * time.Millisecond
	failures := 0
	for {
		pctx, cancel := context.WithTimeout(ctx, c.cfg.PollTimeout)
		status, data, err := c.send(pctx, "/api/v1/retrieve_future", body, "")
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case err != nil || status == http.StatusTooManyRequests || status >= 500:
			failures++
			if failures >= 3*c.cfg.MaxAttempts {
				if err == nil {
					err = &HTTPError{Server: redactURL(c.ep.base), Path: "/api/v1/retrieve_future", Status: status, Body: c.ep.scrub(snippet(data, 300))}
				}
				return fmt.Errorf("tinker retrieve_future %s: %w", f.RequestID, err)
			}
			if err := sleepCtx(ctx, delay); err != nil {
				return err
			}
			delay = min(2*delay, 5*time.Second)
		case status == http.StatusRequestTimeout:
			failures, delay = 0, 200*time.Millisecond
		case status == http.StatusOK:
			if err := json.Unmarshal(data, out); err != nil {
				return fmt.Errorf("tinker retrieve_future %s: decode result: %w", f.RequestID, err)
			}
			return nil
		case status == http.StatusBadRequest:
			var fail tinker.Failure
			if json.Unmarshal(data, &fail) != nil || fail.Error == "" {
				fail = tinker.Failure{Error: snippet(data, 300), Category: "unknown"}
			}
			return &TinkerRequestError{RequestID: f.RequestID, Message: c.ep.scrub(fail.Error), Category: fail.Category}
		case status == http.StatusGone || status == http.StatusNotFound:
			return fmt.Errorf("tinker request %s: %w", f.RequestID, ErrTinkerFutureGone)
		default:
			return &HTTPError{Server: redactURL(c.ep.base), Path: "/api/v1/retrieve_future", Status: status, Body: c.ep.scrub(snippet(data, 300))}
		}
	}
}

// CreateSamplingSession opens a sampling session on a base model or on
// saved sampler weights (a tinker:// path).
func (c *TinkerClient) CreateSamplingSession(ctx context.Context, baseModel, modelPath string) (string, error) {
	body := map[string]any{"type": "create_sampling_session", "session_id": c.sessionID, "sampling_session_seq_id": c.NextSamplingSeqID()}
	if modelPath != "" {
		body["model_path"] = modelPath
	} else {
		body["base_model"] = baseModel
	}
	var out struct {
		SamplingSessionID string `json:"sampling_session_id"`
	}
	if err := c.Call(ctx, "/api/v1/create_sampling_session", body, &out); err != nil {
		return "", fmt.Errorf("tinker create sampling session: %w", err)
	}
	if out.SamplingSessionID == "" {
		return "", errors.New("tinker create sampling session: the reply has no sampling_session_id")
	}
	return out.SamplingSessionID, nil
}

// TinkerSamplerConfig configures a Tinker sampling backend.
type TinkerSamplerConfig struct {
	TinkerConfig
	// BaseModel samples the server's base model; ModelPath (a tinker://
	// sampler-weights path) samples trained weights and wins when set.
	BaseModel string
	ModelPath string
	// Decode, when set, fills Response.Text from the sampled ids (Tinker
	// returns token ids only).
	Decode func(ids []int) string
}

// TinkerSampler is an llm backend over Tinker's asample. Tinker is token
// in, token out: requests must carry InputIDs.
type TinkerSampler struct {
	cfg    TinkerSamplerConfig
	mu     sync.Mutex
	client *TinkerClient
	sessID string // sampling session
	seq    atomic.Int64
	ctxLen ctxLenProbe
}

// NewTinkerSampler returns a backend; the session is opened on first use.
func NewTinkerSampler(cfg TinkerSamplerConfig) (*TinkerSampler, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	if cfg.BaseModel == "" && cfg.ModelPath == "" {
		return nil, errors.New("tinker sampler: set a base model or a tinker:// model path")
	}
	t := &TinkerSampler{cfg: cfg}
	t.ctxLen.probing = t.probeContextLength
	return t, nil
}

// ContextLength implements ContextLengther: max_context_length of the base
// model in get_server_capabilities, where the server lists one (our
// server does; Tinker's reference API names only the models: unknown).
func (t *TinkerSampler) ContextLength(ctx context.Context) int { return t.ctxLen.get(ctx) }

func (t *TinkerSampler) probeContextLength(ctx context.Context) (int, bool) {
	h := http.Header{}
	if t.cfg.APIKey != "" {
		h.Set("X-API-Key", t.cfg.APIKey)
	}
	ep := newEndpoint(t.cfg.BaseURL, t.cfg.HTTPClient, h, t.cfg.APIKey)
	data, err := ep.do(ctx, http.MethodGet, "/api/v1/get_server_capabilities", nil)
	if err != nil {
		var he *HTTPError
		return 0, errors.As(err, &he)
	}
	var caps struct {
		Models []struct {
			Name             string `json:"model_name"`
			MaxContextLength *int   `json:"max_context_length"`
		} `json:"supported_models"`
	}
	if json.Unmarshal(data, &caps) != nil {
		return 0, true
	}
	for _, m := range caps.Models {
		if (m.Name == t.cfg.BaseModel || len(caps.Models) == 1) && m.MaxContextLength != nil && *m.MaxContextLength > 0 {
			return *m.MaxContextLength, true
		}
	}
	return 0, true
}

// String names the server for logs and metrics.
func (t *TinkerSampler) String() string { return "tinker:" + redactURL(t.cfg.BaseURL) }

// Close ends the session's heartbeat.
func (t *TinkerSampler) Close() {
	t.mu.Lock()
	c := t.client
	t.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// SetModelPath switches to other sampler weights (the path that a
// trainer's SaveWeightsForSampler returned); later calls sample them.
func (t *TinkerSampler) SetModelPath(ctx context.Context, path string) error {
	c, err := t.session(ctx)
	if err != nil {
		return err
	}
	id, err := c.CreateSamplingSession(ctx, t.cfg.BaseModel, path)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.cfg.ModelPath, t.sessID = path, id
	t.mu.Unlock()
	t.seq.Store(0)
	return nil
}

func (t *TinkerSampler) session(ctx context.Context) (*TinkerClient, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.client == nil {
		c, err := NewTinkerClient(ctx, t.cfg.TinkerConfig)
		if err != nil {
			return nil, err
		}
		t.client = c
	}
	if t.sessID == "" {
		id, err := t.client.CreateSamplingSession(ctx, t.cfg.BaseModel, t.cfg.ModelPath)
		if err != nil {
			return nil, err
		}
		t.sessID = id
	}
	return t.client, nil
}

// Sample implements Sampler.
func (t *TinkerSampler) Sample(ctx context.Context, req *Request) (*Response, error) {
	if err := checkInput(req); err != nil {
		return nil, err
	}
	if len(req.InputIDs) == 0 {
		return nil, errors.New("tinker sampling takes token ids: tokenize the prompt and set InputIDs")
	}
	body, err := tinkerSampleBody(req)
	if err != nil {
		return nil, err
	}
	c, err := t.session(ctx)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	body.SamplingSessionID = t.sessID
	t.mu.Unlock()
	seq := t.seq.Add(1) - 1
	body.SeqID = &seq
	f, err := c.Submit(ctx, "/api/v1/asample", body)
	if err != nil {
		return nil, fmt.Errorf("tinker asample: %w", err)
	}
	var out tinker.SampleResponse
	if err := c.Wait(ctx, f, &out); err != nil {
		return nil, err
	}
	if len(out.Sequences) != 1 {
		return nil, fmt.Errorf("tinker asample: want 1 sequence, got %d", len(out.Sequences))
	}
	s := out.Sequences[0]
	resp := &Response{OutputIDs: s.Tokens, Logprobs: s.Logprobs, PromptTokens: len(req.InputIDs)}
	if resp.OutputIDs == nil {
		resp.OutputIDs = []int{}
	}
	if s.Logprobs != nil && len(s.Logprobs) != len(s.Tokens) {
		return nil, fmt.Errorf("tinker asample: %d tokens but %d logprobs", len(s.Tokens), len(s.Logprobs))
	}
	switch s.StopReason {
	case "stop":
		resp.Finish = FinishStop
	case "length":
		resp.Finish = FinishLength
	default:
		return nil, fmt.Errorf("tinker asample: unknown stop_reason %q", s.StopReason)
	}
	if t.cfg.Decode != nil {
		resp.Text = t.cfg.Decode(resp.OutputIDs)
		if resp.Finish == FinishStop {
			for _, st := range req.Params.Stop {
				if st != "" && strings.HasSuffix(resp.Text, st) {
					resp.StopMatched = st
				}
			}
		}
	}
	return resp, nil
}

// tinkerSeed keeps a sampling seed within what every Tinker server takes:
// SkyRL's JAX engine makes its PRNG keys from an int32 array and fails the
// whole request ("Python integer … out of bounds for int32") on the 64-bit
// seeds the RL workflow derives. Seeds in [0, 2^31) pass unchanged; others
// are mixed down into that range, the same seed always to the same value.
func tinkerSeed(seed *int64) *int64 {
	if seed == nil || *seed >= 0 && *seed <= math.MaxInt32 {
		return seed
	}
	x := uint64(*seed)
	x ^= x >> 33 // fold the high bits in, so seeds that differ only there stay apart
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	s := int64(x & math.MaxInt32)
	return &s
}

func tinkerSampleBody(req *Request) (*tinker.SampleRequest, error) {
	p := req.Params
	sp := tinker.SamplingParams{Seed: tinkerSeed(p.Seed)}
	if p.MaxNewTokens > 0 {
		sp.MaxTokens = &p.MaxNewTokens
	}
	temp := p.Temperature
	sp.Temperature = &temp
	topP := topPOrOne(p.TopP)
	sp.TopP = &topP
	topK := topKOrAll(p.TopK)
	sp.TopK = &topK
	switch {
	case len(p.Stop) > 0 && len(p.StopTokenIDs) > 0:
		return nil, errors.New("tinker sampling takes stop strings or stop token ids, not both")
	case len(p.Stop) > 0:
		sp.Stop = mustJSON(p.Stop)
	case len(p.StopTokenIDs) > 0:
		sp.Stop = mustJSON(p.StopTokenIDs)
	}
	if math.IsNaN(temp) {
		return nil, errors.New("temperature is NaN")
	}
	return &tinker.SampleRequest{Type: "sample", NumSamples: 1, Prompt: tinker.Input(req.InputIDs), SamplingParams: sp}, nil
}
