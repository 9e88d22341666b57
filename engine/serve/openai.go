package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tokenizer"
)

// The OpenAI-compatible API: /v1/models, /v1/completions and
// /v1/chat/completions with the shapes of the OpenAI reference, plus the
// vLLM/SGLang extensions asearcher's llm client sends (top_k,
// stop_token_ids, return_token_ids, return_tokens_as_token_ids,
// include_stop_str_in_output, no_stop_trim, request_id, ignore_eos).

func (s *Server) routeOpenAI() {
	s.mux.HandleFunc("/v1/models", s.handleModels)
	s.mux.HandleFunc("/v1/completions", s.handleCompletions)
	s.mux.HandleFunc("/v1/chat/completions", s.handleChat)
	s.mux.HandleFunc("/v1/models/{id...}", s.handleModel)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		openAIError(w, http.StatusNotFound, fmt.Sprintf("%s %s is not an endpoint of this server (docs/api.md lists them)", r.Method, r.URL.Path))
	})
}

// tooMany answers a request for more sequences than MaxPrompts allows.
func (s *Server) tooMany(n int) error {
	return &bodyError{http.StatusRequestEntityTooLarge, fmt.Sprintf("the request asks for %d sequences (prompts × n); this server takes at most %d per request (--max-prompts)", n, s.opts.MaxPrompts)}
}

// openAIError writes OpenAI's error body.
func openAIError(w http.ResponseWriter, status int, msg string) {
	typ := "invalid_request_error"
	if status >= 500 {
		typ = "server_error"
	} else if status == http.StatusNotFound {
		typ = "not_found_error"
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": status}})
}

func openAIBodyError(w http.ResponseWriter, err error) {
	var be *bodyError
	if errors.As(err, &be) {
		openAIError(w, be.status, be.msg)
		return
	}
	openAIError(w, http.StatusBadRequest, err.Error())
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	if !requireOpenAIMethod(w, r, http.MethodGet) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": append([]any{s.modelCard()}, s.loraCards()...)})
}

// modelCard is the served model as vLLM lists it.
func (s *Server) modelCard() map[string]any {
	return map[string]any{"id": s.opts.ModelName, "object": "model", "created": 0, "owned_by": "asearcher",
		"root": s.opts.ModelName, "parent": nil, "max_model_len": s.ctxLen}
}

// handleModel is GET /v1/models/{id} (the openai SDK's models.retrieve).
func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	if !requireOpenAIMethod(w, r, http.MethodGet) {
		return
	}
	id := r.PathValue("id")
	if id == s.opts.ModelName {
		writeJSON(w, http.StatusOK, s.modelCard())
		return
	}
	for _, c := range s.loraCards() {
		if c.(map[string]any)["id"] == id {
			writeJSON(w, http.StatusOK, c)
			return
		}
	}
	openAIError(w, http.StatusNotFound, fmt.Sprintf("The model `%s` does not exist.", id))
}

// requireOpenAIMethod is requireMethod with OpenAI's error shape.
func requireOpenAIMethod(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	openAIError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed; use %s", r.Method, strings.Join(methods, " or ")))
	return false
}

// openAIKeys are the request fields accepted by both endpoints; fields
// that only change billing or telemetry are accepted and ignored.
var openAIKeys = map[string]bool{
	"model": true, "max_tokens": true, "max_completion_tokens": true, "temperature": true, "top_p": true,
	"top_k": true, "stop": true, "stop_token_ids": true, "seed": true, "n": true, "stream": true,
	"stream_options": true, "logprobs": true, "top_logprobs": true, "user": true, "request_id": true,
	"return_token_ids": true, "return_tokens_as_token_ids": true, "include_stop_str_in_output": true,
	"no_stop_trim": true, "ignore_eos": true, "frequency_penalty": true, "presence_penalty": true,
	"repetition_penalty": true, "min_p": true, "echo": true, "prompt": true, "messages": true,
	"suffix": true, "best_of": true, "logit_bias": true, "skip_special_tokens": true,
	"chat_template_kwargs": true, "add_generation_prompt": true, "response_format": true,
	"tools": true, "tool_choice": true, "parallel_tool_calls": true, "store": true, "metadata": true,
	"service_tier": true, "reasoning_effort": true, "min_tokens": true,
}

// openAIRequest is the decoded common part of a completion or chat request.
type openAIRequest struct {
	params      llm.Params
	maxTokens   int
	n           int
	stream      bool
	usageChunk  bool
	logprobs    bool
	ignoreEOS   bool
	keepStop    bool
	tokenIDs    bool // return_token_ids
	idTokens    bool // return_tokens_as_token_ids
	rid         string
	chatOptions tokenizer.ChatOptions
	// topLogprobs is how many alternatives each logprobs entry lists
	// (completions: logprobs N; chat: top_logprobs).
	topLogprobs int
	// echo (completions) puts the prompt, with its logprobs, before the
	// completion; with max_tokens 0 nothing is generated (vLLM).
	echo bool
	// skipSpecial drops special tokens from the text [true, as vLLM].
	skipSpecial bool
	// model is the name replies carry: the base model's or the adapter's;
	// lora is that adapter, held for the request's whole life.
	model string
	lora  *engine.Adapter
}

// loraList names the loaded adapters for an error message.
func loraList(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return " and the LoRA adapters " + strings.Join(names, ", ")
}

// maxLogprobs is vLLM's default --max-logprobs.
const maxLogprobs = 20

func (s *Server) parseOpenAICommon(f map[string]json.RawMessage, chat bool) (*openAIRequest, error) {
	for k := range f {
		if !openAIKeys[k] {
			return nil, fmt.Errorf("unknown field %q", k)
		}
	}
	var model string
	if err := field(f, "model", &model); err != nil {
		return nil, err
	}
	o := &openAIRequest{n: 1, maxTokens: -1, model: s.opts.ModelName}
	if model != "" && model != s.opts.ModelName {
		// vLLM: a loaded LoRA adapter is chosen by its name as the model.
		ad, ok := s.loras.get(model)
		if !ok {
			return nil, &bodyError{http.StatusNotFound, fmt.Sprintf("The model `%s` does not exist; this server serves %q%s.", model, s.opts.ModelName, loraList(s.loras.names()))}
		}
		o.model, o.lora = model, ad
	}
	o.params.Temperature = 1
	var temp, topP *float64
	var maxTok, maxComp *int
	for key, dst := range map[string]any{
		"temperature": &temp, "top_p": &topP, "top_k": &o.params.TopK, "stop_token_ids": &o.params.StopTokenIDs,
		"seed": &o.params.Seed, "n": &o.n, "stream": &o.stream, "request_id": &o.rid, "ignore_eos": &o.ignoreEOS,
		"return_token_ids": &o.tokenIDs, "return_tokens_as_token_ids": &o.idTokens, "max_tokens": &maxTok,
		"max_completion_tokens": &maxComp,
	} {
		if err := field(f, key, dst); err != nil {
			return nil, err
		}
	}
	if temp != nil {
		if *temp < 0 || *temp > 2 || math.IsNaN(*temp) {
			return nil, fmt.Errorf("temperature must be in [0, 2], got %v", *temp)
		}
		o.params.Temperature = *temp
	}
	if topP != nil {
		if !(*topP > 0 && *topP <= 1) {
			return nil, fmt.Errorf("top_p must be in (0, 1], got %v", *topP)
		}
		o.params.TopP = *topP
	}
	if o.params.TopK < -1 {
		return nil, fmt.Errorf("top_k must be -1 (disable) or at least 1, got %d", o.params.TopK)
	}
	// -1 is "unset" (chat: up to the context); an explicit value must be
	// positive, as vLLM checks.
	switch {
	case maxComp != nil:
		o.maxTokens = *maxComp
	case maxTok != nil:
		o.maxTokens = *maxTok
	case !chat:
		o.maxTokens = 16 // OpenAI's completions default
	}
	if err := field(f, "echo", &o.echo); err != nil {
		return nil, err
	}
	if o.echo && chat {
		return nil, errors.New("echo is not supported on chat completions by the embedded engine")
	}
	// vLLM: an explicit max_tokens must be ≥ 1, except 0 with echo on
	// completions, which returns the prompt (and its logprobs) only.
	if (maxComp != nil || maxTok != nil) && o.maxTokens < 1 && !(o.echo && o.maxTokens == 0) {
		return nil, fmt.Errorf("max_tokens must be at least 1, got %d", o.maxTokens)
	}
	o.skipSpecial = true
	if err := field(f, "skip_special_tokens", &o.skipSpecial); err != nil {
		return nil, err
	}
	if o.maxTokens > 0 {
		o.params.MaxNewTokens = o.maxTokens
	}
	if o.n < 1 || o.n > 64 {
		return nil, fmt.Errorf("n must be in [1, 64], got %d", o.n)
	}
	stop, err := stringOrList(f["stop"])
	if err != nil {
		return nil, fmt.Errorf("stop: %v", err)
	}
	o.params.Stop = stop
	var incl, noTrim bool
	if err := field(f, "include_stop_str_in_output", &incl); err != nil {
		return nil, err
	}
	if err := field(f, "no_stop_trim", &noTrim); err != nil {
		return nil, err
	}
	o.keepStop = incl || noTrim
	var so struct {
		IncludeUsage bool `json:"include_usage"`
	}
	if err := field(f, "stream_options", &so); err != nil {
		return nil, err
	}
	o.usageChunk = so.IncludeUsage
	for key, neutral := range map[string]float64{"frequency_penalty": 0, "presence_penalty": 0, "repetition_penalty": 1, "min_p": 0, "min_tokens": 0} {
		var v *float64
		if err := field(f, key, &v); err != nil {
			return nil, err
		}
		if v != nil && *v != neutral {
			return nil, fmt.Errorf("%s=%v is not supported by the embedded engine (only %v)", key, *v, neutral)
		}
	}
	for _, key := range []string{"logit_bias", "response_format", "tools", "suffix"} {
		if raw, ok := f[key]; ok && !isNull(raw) && string(raw) != "{}" && string(raw) != "[]" {
			if key == "response_format" && strings.Contains(string(raw), `"text"`) {
				continue
			}
			return nil, fmt.Errorf("%s is not supported by the embedded engine", key)
		}
	}
	if chat {
		var lp bool
		var top int
		if err := field(f, "logprobs", &lp); err != nil {
			return nil, err
		}
		if err := field(f, "top_logprobs", &top); err != nil {
			return nil, err
		}
		if top < 0 || top > maxLogprobs {
			return nil, fmt.Errorf("top_logprobs must be in [0, %d], got %d", maxLogprobs, top)
		}
		if top > 0 && !lp {
			return nil, errors.New("when using top_logprobs, logprobs must be set to true")
		}
		o.logprobs, o.topLogprobs = lp, top
		var kw struct {
			EnableThinking *bool `json:"enable_thinking"`
		}
		if err := field(f, "chat_template_kwargs", &kw); err != nil {
			return nil, err
		}
		o.chatOptions = tokenizer.ChatOptions{AddGenerationPrompt: true, DisableThinking: kw.EnableThinking != nil && !*kw.EnableThinking}
		if raw, ok := f["add_generation_prompt"]; ok && !isNull(raw) {
			if err := field(f, "add_generation_prompt", &o.chatOptions.AddGenerationPrompt); err != nil {
				return nil, err
			}
		}
	} else {
		var lp *int
		if err := field(f, "logprobs", &lp); err != nil {
			return nil, err
		}
		if lp != nil && (*lp < 0 || *lp > maxLogprobs) {
			return nil, fmt.Errorf("logprobs must be in [0, %d], got %d", maxLogprobs, *lp)
		}
		o.logprobs = lp != nil
		if lp != nil {
			o.topLogprobs = *lp
		}
	}
	if o.stream && o.echo {
		return nil, errors.New("echo with stream is not supported by the embedded engine; send stream: false")
	}
	if o.stream && o.topLogprobs > 0 {
		// The alternatives come from a scoring pass over the finished
		// sequence (choiceLogprobs), which a stream has not got yet.
		return nil, errors.New("top logprobs (top_logprobs, or completions logprobs > 0) with stream are not supported by the embedded engine; send stream: false, or logprobs without alternatives")
	}
	return o, nil
}

// completionPrompts reads a completions prompt: a string, a list of
// strings, a list of token ids or a list of such lists.
func (s *Server) completionPrompts(raw json.RawMessage) ([][]int, error) {
	if isNull(raw) {
		return nil, errors.New("prompt is required")
	}
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '[' && !bytes.HasPrefix(bytes.TrimLeft(t[1:], " \t\r\n"), []byte{'"'}) {
		// Token ids, not strings: bound them before decoding.
		if err := s.guardTokenIDs(raw); err != nil {
			return nil, err
		}
	}
	var ids []int
	if err := json.Unmarshal(raw, &ids); err == nil {
		return [][]int{ids}, nil
	}
	var batch [][]int
	if err := json.Unmarshal(raw, &batch); err == nil {
		if len(batch) > s.opts.MaxPrompts {
			return nil, s.tooMany(len(batch))
		}
		return batch, nil
	}
	texts, err := stringOrList(raw)
	if err != nil {
		return nil, errors.New("prompt must be a string, a list of strings, a list of token ids or a list of such lists")
	}
	if len(texts) > s.opts.MaxPrompts {
		return nil, s.tooMany(len(texts)) // before tokenising them all
	}
	out := make([][]int, len(texts))
	for i, t := range texts {
		if out[i], err = s.encode(t); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// chatMessage is an OpenAI chat message; content is a string or a list of
// text parts.
type chatMessage struct {
	Role             string          `json:"role"`
	Content          json.RawMessage `json:"content"`
	ReasoningContent string          `json:"reasoning_content"`
	ToolCalls        []struct {
		Function struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		} `json:"function"`
	} `json:"tool_calls"`
}

func (s *Server) chatPrompt(raw json.RawMessage, opts tokenizer.ChatOptions) ([]int, error) {
	if s.opts.Tokenizer == nil {
		return nil, errors.New("this server has no tokenizer, so it cannot apply a chat template; use /generate with input_ids")
	}
	var msgs []chatMessage
	if err := json.Unmarshal(raw, &msgs); err != nil || len(msgs) == 0 {
		return nil, errors.New("messages must be a non-empty list of {role, content} objects")
	}
	tm := make([]tokenizer.Message, len(msgs))
	for i, m := range msgs {
		switch m.Role {
		case "system", "user", "assistant", "tool", "developer":
		default:
			return nil, fmt.Errorf("messages[%d]: unknown role %q", i, m.Role)
		}
		text, err := messageText(m.Content)
		if err != nil {
			return nil, fmt.Errorf("messages[%d].content: %v", i, err)
		}
		role := m.Role
		if role == "developer" {
			role = "system"
		}
		tm[i] = tokenizer.Message{Role: role, Content: text, ReasoningContent: m.ReasoningContent}
		for _, tc := range m.ToolCalls {
			tm[i].ToolCalls = append(tm[i].ToolCalls, tokenizer.ToolCall{Name: tc.Function.Name, Arguments: tc.Function.Arguments})
		}
	}
	text, err := s.opts.Tokenizer.ApplyChatTemplate(tm, opts)
	if err != nil {
		return nil, fmt.Errorf("chat template: %w", err)
	}
	return s.encode(text)
}

func messageText(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	var str string
	if err := json.Unmarshal(raw, &str); err == nil {
		return str, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("want a string or a list of text parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("content part type %q is not supported (text only)", p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// finishReason maps the engine's finish to OpenAI's; an aborted request
// (pause, abort) reports "abort" as vLLM and SGLang do.
func finishReason(f llm.Finish) string {
	switch f {
	case llm.FinishStop:
		return "stop"
	case llm.FinishLength:
		return "length"
	default:
		return "abort"
	}
}

// trimStop removes a matched stop string from the end of text unless the
// request asked to keep it.
func trimStop(text, matched string, keep bool) string {
	if matched == "" || keep {
		return text
	}
	if i := strings.LastIndex(text, matched); i >= 0 {
		return text[:i]
	}
	return text
}

func (s *Server) tokenString(id int, asID bool) string {
	if asID {
		return "token_id:" + strconv.Itoa(id)
	}
	return s.tokenText(id)
}

// stopReason is vLLM's stop_reason: the matched stop string or stop token,
// null for EOS or length.
func stopReason(resp *llm.Response, userStops []int) any {
	if resp.Finish != llm.FinishStop {
		return nil
	}
	if resp.StopMatched != "" {
		return resp.StopMatched
	}
	if n := len(resp.OutputIDs); n > 0 && containsInt(userStops, resp.OutputIDs[n-1]) {
		return resp.OutputIDs[n-1]
	}
	return nil
}

func usage(prompt, completion int) map[string]any {
	return map[string]any{"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
}

// openAIRequest reads and checks a POST body, answering the error itself
// when it cannot.
func (s *Server) openAIRequest(w http.ResponseWriter, r *http.Request, chat bool) (map[string]json.RawMessage, *openAIRequest, bool) {
	if !requireOpenAIMethod(w, r, http.MethodPost) {
		return nil, nil, false
	}
	_, f, err := decodeFields(r)
	if err != nil {
		openAIBodyError(w, err)
		return nil, nil, false
	}
	o, err := s.parseOpenAICommon(f, chat)
	if err != nil {
		openAIBodyError(w, err)
		return nil, nil, false
	}
	return f, o, true
}

// safePrefix is how much of text can be sent now: everything before a
// stop string it contains (the request ends there and the stop string is
// trimmed) and before a tail that may still grow into one, cut at a UTF-8
// boundary.
func safePrefix(text string, stops []string) int {
	n := len(text)
	for _, st := range stops {
		if st == "" {
			continue
		}
		if i := strings.Index(text, st); i >= 0 {
			n = min(n, i)
			continue
		}
		for k := min(len(st)-1, len(text)); k > 0; k-- {
			if strings.HasSuffix(text, st[:k]) {
				n = min(n, len(text)-k)
				break
			}
		}
	}
	for n > 0 && n < len(text) && !utf8.RuneStart(text[n]) {
		n--
	}
	return n
}
