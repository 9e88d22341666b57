package fakellm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/asearcher/asearcher/wire/sglang"
)

// sglangSamplingKeys are the sampling_params SGLang's SamplingParams
// accepts; anything else is a TypeError there, so it is a 400 here.
var sglangSamplingKeys = map[string]bool{
	"max_new_tokens": true, "stop": true, "stop_token_ids": true, "stop_regex": true,
	"temperature": true, "top_p": true, "top_k": true, "min_p": true,
	"frequency_penalty": true, "presence_penalty": true, "repetition_penalty": true,
	"min_new_tokens": true, "n": true, "json_schema": true, "regex": true, "ebnf": true,
	"structural_tag": true, "ignore_eos": true, "skip_special_tokens": true,
	"spaces_between_special_tokens": true, "no_stop_trim": true, "custom_params": true,
	"stream_interval": true, "logit_bias": true, "sampling_seed": true,
}

// openAICompletionKeys and openAIChatKeys are the OpenAI reference fields;
// Strict servers reject anything else.
var openAICompletionKeys = map[string]bool{
	"model": true, "prompt": true, "best_of": true, "echo": true, "frequency_penalty": true,
	"logit_bias": true, "logprobs": true, "max_tokens": true, "n": true, "presence_penalty": true,
	"seed": true, "stop": true, "stream": true, "stream_options": true, "suffix": true,
	"temperature": true, "top_p": true, "user": true,
}

var openAIChatKeys = map[string]bool{
	"model": true, "messages": true, "frequency_penalty": true, "logit_bias": true, "logprobs": true,
	"top_logprobs": true, "max_tokens": true, "max_completion_tokens": true, "n": true,
	"presence_penalty": true, "response_format": true, "seed": true, "stop": true, "stream": true,
	"stream_options": true, "temperature": true, "top_p": true, "tools": true, "tool_choice": true,
	"parallel_tool_calls": true, "user": true, "store": true, "metadata": true, "modalities": true,
	"audio": true, "prediction": true, "reasoning_effort": true, "service_tier": true,
}

func readBody(r *http.Request) ([]byte, map[string]json.RawMessage, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 256<<20))
	if err != nil {
		return nil, nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return body, nil, fmt.Errorf("invalid JSON body: %v", err)
	}
	return body, fields, nil
}

// stringOrList reads a JSON string or list of strings ("stop" in both APIs).
func stringOrList(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return []string{s}, err
	}
	var l []string
	err := json.Unmarshal(raw, &l)
	return l, err
}

func decodeInto(fields map[string]json.RawMessage, key string, v any) error {
	raw, ok := fields[key]
	if !ok || string(bytes.TrimSpace(raw)) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("field %q: %v", key, err)
	}
	return nil
}

// readParams pulls the sampling fields shared by both APIs out of fields.
func readParams(fields map[string]json.RawMessage, maxKey string) (Params, error) {
	var p Params
	if err := decodeInto(fields, maxKey, &p.MaxNewTokens); err != nil {
		return p, err
	}
	if err := decodeInto(fields, "temperature", &p.Temperature); err != nil {
		return p, err
	}
	if err := decodeInto(fields, "top_p", &p.TopP); err != nil {
		return p, err
	}
	if err := decodeInto(fields, "top_k", &p.TopK); err != nil {
		return p, err
	}
	stop, err := stringOrList(fields["stop"])
	if err != nil {
		return p, fmt.Errorf("field \"stop\": %v", err)
	}
	p.Stop = stop
	if err := decodeInto(fields, "stop_token_ids", &p.StopTokenIDs); err != nil {
		return p, err
	}
	if err := decodeInto(fields, "no_stop_trim", &p.NoStopTrim); err != nil {
		return p, err
	}
	if err := decodeInto(fields, "include_stop_str_in_output", &p.IncludeStopStr); err != nil {
		return p, err
	}
	if p.MaxNewTokens < 0 {
		return p, fmt.Errorf("%s must be at least 0, got %d", maxKey, p.MaxNewTokens)
	}
	if p.Temperature != nil && *p.Temperature < 0 {
		return p, fmt.Errorf("temperature must be non-negative, got %v", *p.Temperature)
	}
	if p.TopP != nil && (*p.TopP <= 0 || *p.TopP > 1) {
		return p, fmt.Errorf("top_p must be in (0, 1], got %v", *p.TopP)
	}
	return p, nil
}

func (s *Server) handleGenerate(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		writeError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	body, fields, err := readBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	c := Call{Path: "/generate", Body: body}
	var stream bool
	if err := decodeInto(fields, "stream", &stream); err != nil || stream {
		writeError(w, http.StatusBadRequest, "fakellm: only non-streaming /generate is supported")
		return
	}
	if err := decodeInto(fields, "rid", &c.RID); err != nil {
		writeError(w, http.StatusBadRequest, "fakellm: rid must be a string (batch requests are not supported)")
		return
	}
	_, hasText := fields["text"]
	_, hasIDs := fields["input_ids"]
	switch {
	case hasText == hasIDs:
		writeError(w, http.StatusBadRequest, "Either text or input_ids should be provided.")
		return
	case hasIDs:
		if err := decodeInto(fields, "input_ids", &c.InputIDs); err != nil {
			writeError(w, http.StatusBadRequest, "fakellm: input_ids must be one list of ints (batch requests are not supported)")
			return
		}
		c.Prompt = s.opts.Tokenizer.Decode(c.InputIDs)
	default:
		if err := decodeInto(fields, "text", &c.Prompt); err != nil {
			writeError(w, http.StatusBadRequest, "fakellm: text must be one string (batch requests are not supported)")
			return
		}
		c.InputIDs = s.opts.Tokenizer.Encode(c.Prompt)
	}
	var sp map[string]json.RawMessage
	if err := decodeInto(fields, "sampling_params", &sp); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	for k := range sp {
		if !sglangSamplingKeys[k] {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("SamplingParams.__init__() got an unexpected keyword argument '%s'", k))
			return
		}
	}
	if c.Params, err = readParams(sp, "max_new_tokens"); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := decodeInto(sp, "sampling_seed", &c.Params.Seed); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var returnLogprob bool
	if err := decodeInto(fields, "return_logprob", &returnLogprob); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if c.RID == "" {
		s.mu.Lock()
		s.nextID++
		c.RID = fmt.Sprintf("%032x", s.nextID)
		s.mu.Unlock()
	}
	maxNew := c.Params.MaxNewTokens
	if maxNew == 0 {
		maxNew = 128
	}
	if msg := s.contextRefusal(&c, maxNew); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	out, failure, err := s.generate(r.Context(), &c, 128)
	if err != nil {
		if r.Context().Err() == nil {
			writeError(w, http.StatusInternalServerError, err.Error())
		}
		return
	}
	if failure != nil {
		fail(w, failure)
		return
	}
	meta := sglang.Meta{
		ID:               c.RID,
		FinishReason:     sglangFinish(out),
		PromptTokens:     out.promptToks,
		TotalRetractions: 0,
		CompletionTokens: len(out.ids),
		CachedTokens:     0,
		E2ELatency:       out.elapsed.Seconds(),
	}
	if !s.opts.OmitVersion {
		v := s.versionLabel(out.version)
		meta.WeightVersion = &v
	}
	if returnLogprob {
		meta.OutputTokenLogprobs = make([]any, len(out.ids))
		for i, id := range out.ids {
			meta.OutputTokenLogprobs[i] = [3]any{float64(out.lps[i]), id, nil}
		}
	}
	writeJSON(w, http.StatusOK, sglang.Reply{Text: out.text, OutputIDs: nonNil(out.ids), MetaInfo: meta})
}

func nonNil(ids []int) []int {
	if ids == nil {
		return []int{}
	}
	return ids
}

// sglangFinish is finish_reason in SGLang's shapes.
func sglangFinish(o *outcome) any {
	switch o.finish {
	case "stop":
		if o.matchedTok != nil {
			return map[string]any{"type": "stop", "matched": *o.matchedTok}
		}
		return map[string]any{"type": "stop", "matched": o.matchedStr}
	case "length":
		return map[string]any{"type": "length", "length": len(o.ids)}
	default:
		if o.abortMsg != "" {
			return map[string]any{"type": "abort", "message": o.abortMsg}
		}
		return map[string]any{"type": "abort", "message": nil, "status_code": nil, "err_type": nil}
	}
}

func (s *Server) openAIError(w http.ResponseWriter, status int, msg, code string) {
	if s.opts.Strict {
		writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error", "param": nil, "code": nilIfEmpty(code)}})
		return
	}
	writeJSON(w, status, map[string]any{"object": "error", "message": msg, "type": "BadRequestError", "param": nil, "code": status})
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	m := map[string]any{"id": s.opts.Model, "object": "model", "created": 1700000000, "owned_by": "fakellm", "root": s.opts.Model, "parent": nil}
	switch {
	case s.opts.Strict || s.opts.HideContextLength:
	case s.opts.ContextLength > 0:
		m["max_model_len"] = s.opts.ContextLength
	default:
		m["max_model_len"] = 32768
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []any{m}})
}

// openAIPrelude checks what the two OpenAI endpoints share.
func (s *Server) openAIPrelude(w http.ResponseWriter, r *http.Request, allowed map[string]bool) ([]byte, map[string]json.RawMessage, bool) {
	if r.Method != http.MethodPost {
		s.openAIError(w, http.StatusMethodNotAllowed, "use POST", "")
		return nil, nil, false
	}
	body, fields, err := readBody(r)
	if err != nil {
		s.openAIError(w, http.StatusBadRequest, err.Error(), "")
		return nil, nil, false
	}
	if s.opts.Strict {
		var unknown []string
		for k := range fields {
			if !allowed[k] {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			s.openAIError(w, http.StatusBadRequest, "Unrecognized request argument supplied: "+strings.Join(unknown, ", "), "")
			return nil, nil, false
		}
	}
	var model string
	_ = decodeInto(fields, "model", &model)
	if model != s.opts.Model {
		s.openAIError(w, http.StatusNotFound, fmt.Sprintf("The model `%s` does not exist.", model), "model_not_found")
		return nil, nil, false
	}
	var stream bool
	if decodeInto(fields, "stream", &stream) != nil || stream {
		s.openAIError(w, http.StatusBadRequest, "fakellm: streaming is not supported", "")
		return nil, nil, false
	}
	var n int
	if decodeInto(fields, "n", &n) != nil || n > 1 {
		s.openAIError(w, http.StatusBadRequest, "fakellm: n > 1 is not supported", "")
		return nil, nil, false
	}
	return body, fields, true
}

type openAIExtras struct {
	returnTokenIDs bool
	tokensAsIDs    bool
}

func (s *Server) readExtras(fields map[string]json.RawMessage) openAIExtras {
	var e openAIExtras
	_ = decodeInto(fields, "return_token_ids", &e.returnTokenIDs)
	_ = decodeInto(fields, "return_tokens_as_token_ids", &e.tokensAsIDs)
	if s.opts.Strict {
		return openAIExtras{}
	}
	if s.opts.NoTokenIDs {
		e.returnTokenIDs = false
	}
	return e
}

func (s *Server) handleCompletions(w http.ResponseWriter, r *http.Request) {
	body, fields, ok := s.openAIPrelude(w, r, openAICompletionKeys)
	if !ok {
		return
	}
	c := Call{Path: "/v1/completions", Body: body}
	raw := bytes.TrimSpace(fields["prompt"])
	switch {
	case len(raw) > 0 && raw[0] == '"':
		_ = json.Unmarshal(raw, &c.Prompt)
		c.InputIDs = s.opts.Tokenizer.Encode(c.Prompt)
	case len(raw) > 0 && raw[0] == '[':
		if err := json.Unmarshal(raw, &c.InputIDs); err != nil {
			var one []string
			if json.Unmarshal(raw, &one) != nil || len(one) != 1 {
				s.openAIError(w, http.StatusBadRequest, "fakellm: prompt must be a string, one list of token ids, or a list of one string", "")
				return
			}
			c.Prompt = one[0]
			c.InputIDs = s.opts.Tokenizer.Encode(c.Prompt)
		} else {
			c.Prompt = s.opts.Tokenizer.Decode(c.InputIDs)
		}
	default:
		s.openAIError(w, http.StatusBadRequest, "prompt is required", "")
		return
	}
	var err error
	if c.Params, err = readParams(fields, "max_tokens"); err != nil {
		s.openAIError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	if err := decodeInto(fields, "seed", &c.Params.Seed); err != nil {
		s.openAIError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	_ = decodeInto(fields, "request_id", &c.RID)
	var logprobs *int
	if err := decodeInto(fields, "logprobs", &logprobs); err != nil {
		s.openAIError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	ext := s.readExtras(fields)
	out, ok := s.generateOpenAI(w, r, &c, 16)
	if !ok {
		return
	}
	choice := map[string]any{"index": 0, "text": out.text, "logprobs": nil, "finish_reason": out.finish}
	if logprobs != nil {
		tokens := s.tokenStrings(out.ids, ext.tokensAsIDs)
		offsets := make([]int, len(out.ids))
		top := make([]map[string]float64, len(out.ids))
		lps := make([]float64, len(out.ids))
		off := 0
		for i := range out.ids {
			offsets[i] = off
			off += len(s.opts.Tokenizer.Decode(out.ids[i : i+1]))
			lps[i] = float64(out.lps[i])
			top[i] = map[string]float64{tokens[i]: lps[i]}
		}
		choice["logprobs"] = map[string]any{"text_offset": offsets, "token_logprobs": lps, "tokens": tokens, "top_logprobs": top}
	}
	s.addVLLMChoiceFields(choice, out, ext, c.InputIDs)
	writeJSON(w, http.StatusOK, map[string]any{
		"id": s.newID("cmpl-"), "object": "text_completion", "created": time.Now().Unix(), "model": s.opts.Model,
		"choices": []any{choice}, "usage": usage(out), "system_fingerprint": nil,
	})
}

// generateOpenAI runs the call and, when it yields no generation (an error,
// a scripted failure, a client that left), has answered already.
func (s *Server) generateOpenAI(w http.ResponseWriter, r *http.Request, c *Call, defaultMax int) (*outcome, bool) {
	maxNew := c.Params.MaxNewTokens
	if maxNew == 0 {
		maxNew = defaultMax
	}
	if msg := s.contextRefusal(c, maxNew); msg != "" {
		s.openAIError(w, http.StatusBadRequest, msg, "context_length_exceeded")
		return nil, false
	}
	out, failure, err := s.generate(r.Context(), c, defaultMax)
	if err != nil {
		if r.Context().Err() == nil {
			s.openAIError(w, http.StatusInternalServerError, err.Error(), "")
		}
		return nil, false
	}
	if failure != nil {
		fail(w, failure)
		return nil, false
	}
	return out, true
}

func (s *Server) addVLLMChoiceFields(choice map[string]any, out *outcome, ext openAIExtras, prompt []int) {
	if s.opts.Strict {
		if out.finish == "abort" {
			choice["finish_reason"] = "stop"
		}
		return
	}
	switch s.opts.StopStyle {
	case StopTrimSilent, StopKeepSilent:
		// Nothing says which stop fired.
	case StopTrimSGLang:
		switch {
		case out.matchedStr != "":
			choice["matched_stop"] = out.matchedStr
		case out.matchedTok != nil:
			choice["matched_stop"] = *out.matchedTok
		default:
			choice["matched_stop"] = nil
		}
	default:
		switch {
		case out.matchedStr != "":
			choice["stop_reason"] = out.matchedStr
		case out.matchedTok != nil && *out.matchedTok != s.opts.EOS:
			choice["stop_reason"] = *out.matchedTok
		default:
			choice["stop_reason"] = nil
		}
	}
	if ext.returnTokenIDs {
		choice["token_ids"] = nonNil(out.ids)
		if prompt != nil {
			choice["prompt_token_ids"] = prompt
		}
	}
}

func usage(out *outcome) map[string]any {
	return map[string]any{"prompt_tokens": out.promptToks, "total_tokens": out.promptToks + len(out.ids), "completion_tokens": len(out.ids), "prompt_tokens_details": nil}
}

func (s *Server) tokenStrings(ids []int, asIDs bool) []string {
	tokens := make([]string, len(ids))
	for i, id := range ids {
		if asIDs {
			tokens[i] = fmt.Sprintf("token_id:%d", id)
		} else {
			tokens[i] = s.opts.Tokenizer.Decode([]int{id})
		}
	}
	return tokens
}

func (s *Server) newID(prefix string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	return fmt.Sprintf("%s%016x", prefix, s.nextID)
}

// RenderChat is how the fake turns messages into a prompt: ChatML with the
// assistant generation prompt, as Qwen models use.
func RenderChat(msgs []Message) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString("<|im_start|>" + m.Role + "\n" + m.Content + "<|im_end|>\n")
	}
	b.WriteString("<|im_start|>assistant\n")
	return b.String()
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	body, fields, ok := s.openAIPrelude(w, r, openAIChatKeys)
	if !ok {
		return
	}
	c := Call{Path: "/v1/chat/completions", Body: body}
	var msgs []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := decodeInto(fields, "messages", &msgs); err != nil || len(msgs) == 0 {
		s.openAIError(w, http.StatusBadRequest, "messages must be a non-empty list", "")
		return
	}
	for _, m := range msgs {
		text, err := messageText(m.Content)
		if err != nil {
			s.openAIError(w, http.StatusBadRequest, err.Error(), "")
			return
		}
		c.Messages = append(c.Messages, Message{Role: m.Role, Content: text})
	}
	c.Prompt = RenderChat(c.Messages)
	c.InputIDs = s.opts.Tokenizer.Encode(c.Prompt)
	var err error
	if c.Params, err = readParams(fields, "max_tokens"); err != nil {
		s.openAIError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	if c.Params.MaxNewTokens == 0 {
		_ = decodeInto(fields, "max_completion_tokens", &c.Params.MaxNewTokens)
	}
	if err := decodeInto(fields, "seed", &c.Params.Seed); err != nil {
		s.openAIError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	_ = decodeInto(fields, "request_id", &c.RID)
	var logprobs bool
	_ = decodeInto(fields, "logprobs", &logprobs)
	ext := s.readExtras(fields)
	out, ok := s.generateOpenAI(w, r, &c, 0)
	if !ok {
		return
	}
	choice := map[string]any{
		"index":         0,
		"message":       map[string]any{"role": "assistant", "content": out.text, "refusal": nil, "tool_calls": []any{}, "reasoning_content": nil},
		"logprobs":      nil,
		"finish_reason": out.finish,
	}
	if logprobs {
		tokens := s.tokenStrings(out.ids, ext.tokensAsIDs)
		content := make([]map[string]any, len(out.ids))
		for i := range out.ids {
			content[i] = map[string]any{"token": tokens[i], "logprob": float64(out.lps[i]), "bytes": utf8Bytes(tokens[i]), "top_logprobs": []any{}}
		}
		choice["logprobs"] = map[string]any{"content": content}
	}
	s.addVLLMChoiceFields(choice, out, ext, nil)
	reply := map[string]any{
		"id": s.newID("chatcmpl-"), "object": "chat.completion", "created": time.Now().Unix(), "model": s.opts.Model,
		"choices": []any{choice}, "usage": usage(out), "system_fingerprint": nil,
	}
	if ext.returnTokenIDs {
		reply["prompt_token_ids"] = nonNil(c.InputIDs)
	}
	writeJSON(w, http.StatusOK, reply)
}

// messageText reads a chat message content: a string or a list of
// {"type":"text","text":...} parts.
func messageText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("message content must be a string or a list of text parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("fakellm: content part type %q is not supported", p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// utf8Bytes is a token's bytes as the OpenAI API lists them: integers
// (a []byte would marshal as a base64 string).
func utf8Bytes(token string) []int {
	out := make([]int, len(token))
	for i := range len(token) {
		out[i] = int(token[i])
	}
	return out
}
