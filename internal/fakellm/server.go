package fakellm

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Tokenizer maps text to token ids and back.
type Tokenizer interface {
	Encode(text string) []int
	Decode(ids []int) string
}

// ByteTokenizer is one token per byte (id = byte value) plus an EOS token
// (id 256) that decodes to nothing, like a special token with
// skip_special_tokens.
type ByteTokenizer struct{}

// ByteEOS is ByteTokenizer's end-of-sequence id.
const ByteEOS = 256

// Encode implements Tokenizer.
func (ByteTokenizer) Encode(text string) []int {
	ids := make([]int, len(text))
	for i := 0; i < len(text); i++ {
		ids[i] = int(text[i])
	}
	return ids
}

// Decode implements Tokenizer; ids outside 0..255 decode to nothing.
func (ByteTokenizer) Decode(ids []int) string {
	b := make([]byte, 0, len(ids))
	for _, id := range ids {
		if id >= 0 && id < 256 {
			b = append(b, byte(id))
		}
	}
	return string(b)
}

// Reply scripts one generation.
type Reply struct {
	// Text is what the model writes; its tokens are Tokenizer.Encode(Text).
	Text string
	// IDs, when set, are the tokens instead of Text's encoding.
	IDs []int
	// Logprobs per token; nil uses DefaultLogprob.
	Logprobs []float32
	// Finish forces how the reply ends once its tokens are out: "" ends
	// with EOS (finish stop), "length" ends without EOS as if the token
	// budget ran out, "abort" ends as if the request were aborted — every
	// time, resubmissions included, so a client's resubmission limit can
	// be tested (use AbortAfter for an interruption that resumes).
	// Stop strings, stop token ids and max tokens can end it earlier.
	Finish string
	// AbortAfter > 0 aborts the generation once, right after that many
	// tokens, as a pause would; a resubmission continues the reply. It
	// scripts an interruption without depending on timing.
	AbortAfter int
	// Delay is waited before the first token (prefill); TokenDelay before
	// every token. Both are cut short by aborts, pauses and the client
	// going away.
	Delay      time.Duration
	TokenDelay time.Duration
	// Status, when non-zero, is an HTTP error reply with Body (a JSON error
	// object is made up when Body is empty) instead of a generation.
	Status int
	Body   string
	// Drop closes the connection without replying.
	Drop bool
}

// DefaultLogprob is the logprob the server reports for the token at
// position pos (0-based within the reply) when a Reply gives none.
func DefaultLogprob(pos, id int) float32 {
	return -0.03125 * float32(1+(pos+id)%16)
}

// Call is one request the server received, as the handler sees it.
type Call struct {
	// Path is the endpoint: /generate, /v1/completions or
	// /v1/chat/completions.
	Path string
	// RID is the SGLang rid, or the vLLM request_id extension field.
	RID string
	// InputIDs are the prompt tokens: sent ids, or the encoding of a text
	// prompt or of the rendered chat.
	InputIDs []int
	// Prompt is the prompt as text (the decoding of token-id prompts).
	Prompt   string
	Messages []Message
	Params   Params
	// Body is the raw request body.
	Body []byte
	// Resumed is true when this call continued an aborted reply.
	Resumed bool
}

// Message is one chat message of a /v1/chat/completions call.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Params are the sampling fields of a call, read from either API.
type Params struct {
	MaxNewTokens int // 0 when not sent
	Temperature  *float64
	TopP         *float64
	TopK         *int
	Stop         []string
	StopTokenIDs []int
	Seed         *int64
	// NoStopTrim is SGLang's no_stop_trim: the text keeps everything the
	// tokens decode to, stop string included.
	NoStopTrim bool
	// IncludeStopStr is vLLM's include_stop_str_in_output: the text ends
	// right after the stop string.
	IncludeStopStr bool
}

// Options configure a Server.
type Options struct {
	// Handler scripts replies from the request; nil uses the Enqueue queue.
	Handler func(Call) Reply
	// Tokenizer defaults to ByteTokenizer, with EOS ByteEOS.
	Tokenizer Tokenizer
	EOS       int
	// Model is the name /v1/models lists; default "fake-model".
	Model string
	// Strict makes the OpenAI endpoints behave like a hosted API: request
	// fields outside the OpenAI reference get HTTP 400, and replies carry
	// no token_ids, stop_reason or "token_id:N" tokens.
	Strict bool
	// NoTokenIDs makes the OpenAI endpoints ignore return_token_ids, like
	// vLLM builds before it existed (ids then come only from
	// return_tokens_as_token_ids logprob tokens).
	NoTokenIDs bool
	// OmitVersion leaves weight_version out of meta_info.
	OmitVersion bool
	// APIKey, when set, is required as "Authorization: Bearer KEY".
	APIKey string
	// StopStyle imitates how a server family handles a matched stop
	// string on the OpenAI endpoints; the zero value is vLLM's.
	StopStyle StopStyle
	// ContextLength, when set, is the model's context window: /v1/models
	// reports it as max_model_len (except when Strict), /get_model_info as
	// context_length, and a request whose prompt plus max tokens exceed it
	// gets HTTP 400 worded as vLLM, SGLang or (Strict) OpenAI word it.
	// Unset, /v1/models reports 32768 and nothing is refused.
	ContextLength int
	// HideContextLength reports no context window anywhere while still
	// refusing requests that exceed ContextLength, like a server whose
	// model listing lacks the field.
	HideContextLength bool
}

// StopStyle is how a server treats a matched stop string: whether the text
// keeps it and which field, if any, names it.
type StopStyle int

const (
	// StopVLLM keeps the stop string when the request says
	// include_stop_str_in_output or no_stop_trim and names it in
	// stop_reason.
	StopVLLM StopStyle = iota
	// StopTrimSilent trims the stop string whatever the request says and
	// names it nowhere, as the OpenAI API and many compatible servers do.
	StopTrimSilent
	// StopTrimVLLM trims the stop string and names it in stop_reason.
	StopTrimVLLM
	// StopTrimSGLang trims the stop string and names it in matched_stop,
	// as SGLang's OpenAI endpoints do.
	StopTrimSGLang
	// StopKeepSilent keeps the stop string in the text and names it
	// nowhere.
	StopKeepSilent
)

func (st StopStyle) trims() bool {
	return st == StopTrimSilent || st == StopTrimVLLM || st == StopTrimSGLang
}

// Server is a running fake model server.
type Server struct {
	// URL is the server root, e.g. http://127.0.0.1:41234.
	URL string

	opts Options
	hs   *httptest.Server

	mu       sync.Mutex
	queue    []Reply
	calls    []Call
	inflight map[*running]struct{}
	sessions []*session
	paused   bool
	resume   chan struct{} // closed by Continue
	version  int
	nextID   int
}

// running is one in-flight generation.
type running struct {
	rid   string
	abort chan struct{}
	once  sync.Once
}

func (r *running) stop() { r.once.Do(func() { close(r.abort) }) }

// session remembers an aborted reply so a resubmission continues it.
type session struct {
	rid     string
	prompt  []int
	ids     []int
	lps     []float32
	emitted int
	reply   Reply
	// abortAt is the position of a scripted one-time abort (-1: none).
	abortAt int
}

// New starts a server on 127.0.0.1 with a random port.
func New(opts Options) *Server {
	if opts.Tokenizer == nil {
		opts.Tokenizer = ByteTokenizer{}
		if opts.EOS == 0 {
			opts.EOS = ByteEOS
		}
	}
	if opts.Model == "" {
		opts.Model = "fake-model"
	}
	s := &Server{opts: opts, inflight: map[*running]struct{}{}, resume: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/generate", s.handleGenerate)
	mux.HandleFunc("/abort_request", s.handleAbort)
	mux.HandleFunc("/pause_generation", s.handlePause)
	mux.HandleFunc("/continue_generation", s.handleContinue)
	mux.HandleFunc("/update_weights_from_disk", s.handleUpdateWeights)
	mux.HandleFunc("/update_weight_version", s.handleUpdateVersion)
	mux.HandleFunc("/get_model_info", s.handleModelInfo)
	mux.HandleFunc("/get_weight_version", s.handleWeightVersion)
	mux.HandleFunc("/health", s.handleHealth)
	mux.HandleFunc("/health_generate", s.handleHealth)
	mux.HandleFunc("/flush_cache", s.handleHealth)
	mux.HandleFunc("/v1/models", s.handleModels)
	mux.HandleFunc("/v1/completions", s.handleCompletions)
	mux.HandleFunc("/v1/chat/completions", s.handleChat)
	s.hs = httptest.NewUnstartedServer(s.auth(mux))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("fakellm: listen on loopback: %v", err))
	}
	s.hs.Listener = ln
	s.hs.Start()
	s.URL = s.hs.URL
	return s
}

// OpenAIURL is the OpenAI-compatible base URL (URL + "/v1").
func (s *Server) OpenAIURL() string { return s.URL + "/v1" }

// Close stops the server, ending in-flight requests.
func (s *Server) Close() {
	s.mu.Lock()
	for r := range s.inflight {
		r.stop()
	}
	if s.paused {
		s.paused = false
		close(s.resume)
		s.resume = make(chan struct{})
	}
	s.mu.Unlock()
	s.hs.CloseClientConnections()
	s.hs.Close()
}

// Enqueue appends replies to the script.
func (s *Server) Enqueue(replies ...Reply) {
	s.mu.Lock()
	s.queue = append(s.queue, replies...)
	s.mu.Unlock()
}

// Pending is how many enqueued replies are still unused.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Calls returns the requests received so far, oldest first (generation
// endpoints only).
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// InFlight is the number of generations running now.
func (s *Server) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inflight)
}

// Pause ends every running generation with finish "abort" and holds new
// ones until Continue, like SGLang's /pause_generation in its default
// "abort" mode.
func (s *Server) Pause() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paused = true
	for r := range s.inflight {
		r.stop()
	}
}

// Continue releases requests held by Pause.
func (s *Server) Continue() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused {
		s.paused = false
		close(s.resume)
		s.resume = make(chan struct{})
	}
}

// Abort ends the running generation with this rid (all when rid is "").
func (s *Server) Abort(rid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for r := range s.inflight {
		if rid == "" || r.rid == rid {
			r.stop()
		}
	}
}

// SetVersion sets the weight version reported with each reply.
func (s *Server) SetVersion(v int) {
	s.mu.Lock()
	s.version = v
	s.mu.Unlock()
}

// Version is the current weight version.
func (s *Server) Version() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.APIKey != "" && r.Header.Get("Authorization") != "Bearer "+s.opts.APIKey {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{
				"message": "Incorrect API key provided.", "type": "invalid_request_error", "param": nil, "code": "invalid_api_key"}})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// waitUnpaused blocks while the server is paused.
func (s *Server) waitUnpaused(ctx context.Context) error {
	for {
		s.mu.Lock()
		paused, ch := s.paused, s.resume
		s.mu.Unlock()
		if !paused {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// script picks the reply for a call, or continues an aborted one.
func (s *Server) script(c *Call) (Reply, *session, error) {
	s.mu.Lock()
	for i, ss := range s.sessions {
		if (c.RID == "" || ss.rid == c.RID) && continues(c.InputIDs, ss) {
			s.sessions = append(s.sessions[:i], s.sessions[i+1:]...)
			c.Resumed = true
			s.calls = append(s.calls, *c)
			s.mu.Unlock()
			return ss.reply, ss, nil
		}
	}
	s.calls = append(s.calls, *c)
	h := s.opts.Handler
	if h == nil {
		if len(s.queue) == 0 {
			s.mu.Unlock()
			return Reply{}, nil, fmt.Errorf("fakellm: no scripted reply for call %d to %s", len(s.calls), c.Path)
		}
		r := s.queue[0]
		s.queue = s.queue[1:]
		s.mu.Unlock()
		return r, nil, nil
	}
	s.mu.Unlock()
	return h(*c), nil, nil
}

func continues(input []int, ss *session) bool {
	if len(input) != len(ss.prompt)+ss.emitted {
		return false
	}
	for i, id := range ss.prompt {
		if input[i] != id {
			return false
		}
	}
	for i := 0; i < ss.emitted; i++ {
		if input[len(ss.prompt)+i] != ss.ids[i] {
			return false
		}
	}
	return true
}

// outcome is a finished generation, independent of the wire format.
type outcome struct {
	ids        []int
	lps        []float32
	text       string // decoded, stop string handling applied
	finish     string // stop | length | abort
	matchedStr string
	matchedTok *int
	abortMsg   string
	version    int
	promptToks int
	elapsed    time.Duration
}

// generate runs a scripted reply through the decoding rules of a real
// engine: token budget, stop strings, stop token ids, EOS, aborts.
func (s *Server) generate(ctx context.Context, c *Call, defaultMax int) (*outcome, *Reply, error) {
	start := time.Now()
	if err := s.waitUnpaused(ctx); err != nil {
		return nil, nil, err
	}
	reply, sess, err := s.script(c)
	if err != nil {
		return nil, nil, err
	}
	if reply.Status != 0 || reply.Drop {
		return nil, &reply, nil
	}
	if sess == nil {
		ids := reply.IDs
		if ids == nil {
			ids = s.opts.Tokenizer.Encode(reply.Text)
		}
		lps := reply.Logprobs
		if lps == nil {
			lps = make([]float32, len(ids))
			for i, id := range ids {
				lps[i] = DefaultLogprob(i, id)
			}
		}
		if len(lps) != len(ids) {
			return nil, nil, fmt.Errorf("fakellm: reply has %d tokens but %d logprobs", len(ids), len(lps))
		}
		sess = &session{rid: c.RID, prompt: append([]int(nil), c.InputIDs...), ids: ids, lps: lps, reply: reply, abortAt: -1}
		if reply.AbortAfter > 0 {
			sess.abortAt = reply.AbortAfter
		}
	}
	run := &running{rid: c.RID, abort: make(chan struct{})}
	s.mu.Lock()
	s.inflight[run] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.inflight, run)
		s.mu.Unlock()
	}()

	limit := c.Params.MaxNewTokens
	if limit <= 0 {
		limit = defaultMax
	}
	out := &outcome{promptToks: len(c.InputIDs)}
	// A segment is produced by the weights loaded when it started: updates
	// happen only while generation is paused, which ends the segment first.
	s.mu.Lock()
	out.version = s.version
	s.mu.Unlock()
	wait := func(d time.Duration) bool { // false when aborted
		if d <= 0 {
			select {
			case <-run.abort:
				return false
			default:
				return true
			}
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-run.abort:
			return false
		case <-ctx.Done():
			return false
		}
	}
	aborted := !wait(reply.Delay)
	stopAt := -1
	for !aborted {
		if limit > 0 && len(out.ids) >= limit {
			out.finish = "length"
			break
		}
		pos := sess.emitted
		if pos == sess.abortAt {
			sess.abortAt = -1
			aborted = true
			break
		}
		if pos >= len(sess.ids) {
			switch {
			case reply.Finish == "length":
				out.finish = "length"
			case reply.Finish == "abort":
				aborted = true
			default:
				eos := s.opts.EOS
				out.ids = append(out.ids, eos)
				out.lps = append(out.lps, DefaultLogprob(pos, eos))
				out.finish = "stop"
				out.matchedTok = &eos
			}
			break
		}
		if !wait(reply.TokenDelay) {
			aborted = true
			break
		}
		id := sess.ids[pos]
		out.ids = append(out.ids, id)
		out.lps = append(out.lps, sess.lps[pos])
		sess.emitted++
		if containsInt(c.Params.StopTokenIDs, id) {
			out.finish = "stop"
			tok := id
			out.matchedTok = &tok
			break
		}
		if len(c.Params.Stop) > 0 {
			text := s.opts.Tokenizer.Decode(out.ids)
			if str, at := firstStop(text, c.Params.Stop); at >= 0 {
				out.finish = "stop"
				out.matchedStr = str
				stopAt = at
				break
			}
		}
	}
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	textIDs := out.ids
	if out.matchedTok != nil && *out.matchedTok == s.opts.EOS && len(textIDs) > 0 {
		textIDs = textIDs[:len(textIDs)-1] // EOS is special: skipped in text
	}
	out.text = s.opts.Tokenizer.Decode(textIDs)
	if out.matchedStr != "" {
		switch {
		case s.opts.StopStyle == StopKeepSilent:
			out.text = out.text[:stopAt+len(out.matchedStr)]
		case s.opts.StopStyle.trims():
			out.text = out.text[:stopAt]
		case c.Params.NoStopTrim:
		case c.Params.IncludeStopStr:
			out.text = out.text[:stopAt+len(out.matchedStr)]
		default:
			out.text = out.text[:stopAt]
		}
	}
	if aborted {
		out.finish = "abort"
		if len(out.ids) == 0 {
			out.abortMsg = "Abort before prefill"
		}
		// Keep the reply so a resubmission of prompt + partial continues it.
		s.mu.Lock()
		s.sessions = append(s.sessions, sess)
		s.mu.Unlock()
	}
	out.elapsed = time.Since(start)
	return out, nil, nil
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// firstStop finds the earliest stop string in text: its value and offset.
func firstStop(text string, stops []string) (string, int) {
	best, at := "", -1
	for _, st := range stops {
		if st == "" {
			continue
		}
		if i := strings.Index(text, st); i >= 0 && (at < 0 || i < at) {
			best, at = st, i
		}
	}
	return best, at
}

// fail writes a scripted error reply or drops the connection.
func fail(w http.ResponseWriter, r *Reply) {
	if r.Drop {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	body := r.Body
	if body == "" {
		body = fmt.Sprintf(`{"object":"error","message":"scripted failure","type":"%s","param":null,"code":%d}`, http.StatusText(r.Status), r.Status)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(r.Status)
	_, _ = w.Write([]byte(body))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"object": "error", "message": msg, "type": "BadRequestError", "param": nil, "code": status})
}

// versionLabel is how SGLang reports weight_version: a string.
func (s *Server) versionLabel(v int) string { return strconv.Itoa(v) }

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusOK)
}

func (s *Server) handleModelInfo(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	v := s.version
	s.mu.Unlock()
	info := map[string]any{
		"model_path": s.opts.Model, "tokenizer_path": s.opts.Model, "is_generation": true,
		"preferred_sampling_params": nil, "weight_version": s.versionLabel(v),
	}
	if s.opts.ContextLength > 0 && !s.opts.HideContextLength {
		info["context_length"] = s.opts.ContextLength
	}
	writeJSON(w, http.StatusOK, info)
}

// contextRefusal is the 400 message for a call that does not fit
// Options.ContextLength, in the wording of the endpoint's server family;
// "" when it fits. maxNew is the tokens the call asks for.
func (s *Server) contextRefusal(c *Call, maxNew int) string {
	limit, n := s.opts.ContextLength, len(c.InputIDs)
	if limit <= 0 || n+maxNew <= limit && n < limit {
		return ""
	}
	if c.Path == "/generate" {
		if n >= limit {
			return fmt.Sprintf("The input (%d tokens) is longer than the model's context length (%d tokens).", n, limit)
		}
		return fmt.Sprintf("Requested token count exceeds the model's maximum context length of %d tokens. You requested a total of %d tokens: %d tokens from the input messages and %d tokens for the completion. Please reduce the number of tokens in the input messages or the completion to fit within the limit.", limit, n+maxNew, n, maxNew)
	}
	return fmt.Sprintf("This model's maximum context length is %d tokens. However, you requested %d output tokens and your prompt contains at least %d input tokens, for a total of at least %d tokens. Please reduce the length of the input prompt or the number of requested output tokens.", limit, maxNew, n, n+maxNew)
}

func (s *Server) handleWeightVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"weight_version": s.versionLabel(s.Version())})
}

func (s *Server) handleAbort(w http.ResponseWriter, r *http.Request) {
	var req struct {
		RID      string `json:"rid"`
		AbortAll bool   `json:"abort_all"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.AbortAll {
		s.Abort("")
	} else if req.RID != "" {
		s.Abort(req.RID)
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) handlePause(w http.ResponseWriter, r *http.Request) {
	s.Pause()
	writeJSON(w, http.StatusOK, map[string]any{"message": "Generation paused successfully.", "status": "ok"})
}

func (s *Server) handleContinue(w http.ResponseWriter, r *http.Request) {
	s.Continue()
	writeJSON(w, http.StatusOK, map[string]any{"message": "Generation continued successfully.", "status": "ok"})
}

func (s *Server) handleUpdateWeights(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ModelPath         string          `json:"model_path"`
		AbortAllRequests  bool            `json:"abort_all_requests"`
		WeightVersion     json.RawMessage `json:"weight_version"`
		LoadFormat        *string         `json:"load_format"`
		FlushCache        *bool           `json:"flush_cache"`
		IsAsync           *bool           `json:"is_async"`
		TorchEmptyCache   *bool           `json:"torch_empty_cache"`
		KeepPause         *bool           `json:"keep_pause"`
		RecaptureCUDAGrph *bool           `json:"recapture_cuda_graph"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.ModelPath == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "message": "model_path is required", "num_paused_requests": 0})
		return
	}
	s.mu.Lock()
	n := len(s.inflight)
	if req.AbortAllRequests {
		for run := range s.inflight {
			run.stop()
		}
	}
	if v, ok := numericVersion(req.WeightVersion); ok {
		s.version = v
	} else {
		s.version++
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "Succeeded to update model weights.", "num_paused_requests": n})
}

func (s *Server) handleUpdateVersion(w http.ResponseWriter, r *http.Request) {
	var req struct {
		NewVersion       json.RawMessage `json:"new_version"`
		AbortAllRequests *bool           `json:"abort_all_requests"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	v, ok := numericVersion(req.NewVersion)
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "message": "new_version must be numeric in fakellm"})
		return
	}
	s.mu.Lock()
	s.version = v
	// SGLang's default for abort_all_requests here is true in some builds.
	if req.AbortAllRequests == nil || *req.AbortAllRequests {
		for run := range s.inflight {
			run.stop()
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "Weight version updated", "new_version": s.versionLabel(v)})
}

func numericVersion(raw json.RawMessage) (int, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		v, err := strconv.Atoi(strings.TrimSpace(s))
		return v, err == nil
	}
	var v int
	if json.Unmarshal(raw, &v) == nil {
		return v, true
	}
	return 0, false
}
