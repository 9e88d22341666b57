package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// SGLang talks to one server over SGLang's native API: POST /generate with
// input_ids or text, POST /abort_request, GET /health. Chat requests
// (Request.Messages) go to the same server's OpenAI-compatible
// /v1/chat/completions, because /generate applies no chat template.
//
// One call is one HTTP attempt; retries, failover and concurrency limits
// belong to Pool.
type SGLang struct {
	ep     endpoint
	chat   *OpenAI
	ctxLen ctxLenProbe
}

// SGLangConfig configures an SGLang backend.
type SGLangConfig struct {
	// BaseURL is the server root, e.g. http://127.0.0.1:30000.
	BaseURL string
	// HTTPClient defaults to a keep-alive client without an overall timeout.
	HTTPClient *http.Client
	// APIKey, when the server was started with --api-key, is sent as a
	// bearer token. It never appears in logs or errors.
	APIKey string
	// Model names the model for chat requests; empty asks /v1/models.
	Model string
}

// NewSGLang returns a backend for one SGLang (or SGLang-compatible) server.
func NewSGLang(cfg SGLangConfig) (*SGLang, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("sglang: empty base URL")
	}
	h := http.Header{}
	if cfg.APIKey != "" {
		h.Set("Authorization", "Bearer "+cfg.APIKey)
	}
	ep := newEndpoint(cfg.BaseURL, cfg.HTTPClient, h, cfg.APIKey)
	chat, err := NewOpenAI(OpenAIConfig{
		BaseURL:    ep.base + "/v1",
		HTTPClient: ep.client,
		APIKey:     cfg.APIKey,
		Model:      cfg.Model,
		Dialect:    DialectAuto,
	})
	if err != nil {
		return nil, err
	}
	s := &SGLang{ep: ep, chat: chat}
	s.ctxLen.probing = s.probeContextLength
	return s, nil
}

// ContextLength implements ContextLengther: context_length from GET
// /get_model_info (or /model_info, its newer name) when the server reports
// it there, else max_model_len from its OpenAI-compatible /v1/models.
func (s *SGLang) ContextLength(ctx context.Context) int { return s.ctxLen.get(ctx) }

func (s *SGLang) probeContextLength(ctx context.Context) (int, bool) {
	answered := false
	for _, path := range []string{"/get_model_info", "/model_info"} {
		data, err := s.ep.do(ctx, http.MethodGet, path, nil)
		if err != nil {
			var he *HTTPError
			if !errors.As(err, &he) {
				return 0, false
			}
			continue
		}
		answered = true
		var info struct {
			ContextLength *int `json:"context_length"`
		}
		if json.Unmarshal(data, &info) == nil && info.ContextLength != nil && *info.ContextLength > 0 {
			return *info.ContextLength, true
		}
		break
	}
	n, ok := s.chat.probeContextLength(ctx)
	return n, ok || answered
}

// String names the server for logs and metrics.
func (s *SGLang) String() string { return "sglang:" + redactURL(s.ep.base) }

// Sample implements Sampler.
func (s *SGLang) Sample(ctx context.Context, req *Request) (*Response, error) {
	if len(req.Messages) > 0 {
		return s.chat.Sample(ctx, req)
	}
	body, err := encodeSGLangGenerate(nil, req)
	if err != nil {
		return nil, err
	}
	data, err := s.ep.do(ctx, http.MethodPost, "/generate", body)
	if err != nil {
		return nil, fmt.Errorf("sglang generate: %w", err)
	}
	resp, err := decodeSGLangGenerate(data, req.Params.Stop, PromptTail(req))
	if err != nil {
		return nil, fmt.Errorf("sglang generate %s: %w", redactURL(s.ep.base), err)
	}
	return resp, nil
}

// Abort implements Aborter: POST /abort_request {"rid": id}. SGLang answers
// 200 whether or not the request was still running; the aborted /generate
// call returns its partial output with finish_reason type "abort".
func (s *SGLang) Abort(ctx context.Context, requestID string) error {
	if requestID == "" {
		return errors.New("sglang abort: empty request id")
	}
	o := newObj(nil)
	o.str("rid", requestID)
	o.bool("abort_all", false)
	if _, err := s.ep.do(ctx, http.MethodPost, "/abort_request", o.close()); err != nil {
		return fmt.Errorf("sglang abort %q: %w", requestID, err)
	}
	return nil
}

// Health implements HealthChecker with GET /health.
func (s *SGLang) Health(ctx context.Context) error {
	_, err := s.ep.do(ctx, http.MethodGet, "/health", nil)
	return err
}

// encodeSGLangGenerate appends the /generate body for req to b.
//
// Every sampling knob is sent explicitly, including "disabled" values
// (top_p 1, top_k -1): SGLang otherwise fills gaps from the model's
// generation_config.json, and the caller would not get what it asked for.
func encodeSGLangGenerate(b []byte, req *Request) ([]byte, error) {
	if err := checkInput(req); err != nil {
		return nil, err
	}
	o := newObj(b)
	if len(req.InputIDs) > 0 {
		o.ints("input_ids", req.InputIDs)
	} else {
		o.str("text", req.Prompt)
	}
	o.key("sampling_params")
	o.b = appendSGLangSampling(o.b, &req.Params)
	o.bool("return_logprob", true)
	o.bool("stream", false)
	if req.ID != "" {
		o.str("rid", req.ID)
	}
	if req.Adapter != "" {
		// SGLang's /generate takes a loaded adapter's name in lora_path.
		o.str("lora_path", req.Adapter)
	}
	return o.close(), nil
}

func appendSGLangSampling(b []byte, p *Params) []byte {
	o := newObj(b)
	if p.MaxNewTokens > 0 {
		o.int("max_new_tokens", p.MaxNewTokens)
	}
	o.float("temperature", p.Temperature)
	o.float("top_p", topPOrOne(p.TopP))
	o.int("top_k", topKOrAll(p.TopK))
	if len(p.Stop) > 0 {
		o.strings("stop", p.Stop)
		// Keep the stop string (and anything decoded with its last token)
		// in the text, so Text is the decoding of OutputIDs.
		o.bool("no_stop_trim", true)
	}
	if len(p.StopTokenIDs) > 0 {
		o.ints("stop_token_ids", p.StopTokenIDs)
	}
	if p.Seed != nil {
		o.i64("sampling_seed", *p.Seed)
	}
	return o.close()
}

func topPOrOne(p float64) float64 {
	if p <= 0 || p >= 1 {
		return 1
	}
	return p
}

func topKOrAll(k int) int {
	if k <= 0 {
		return -1
	}
	return k
}

// checkInput enforces the Request contract: exactly one input form.
func checkInput(req *Request) error {
	n := 0
	if len(req.InputIDs) > 0 {
		n++
	}
	if req.Prompt != "" {
		n++
	}
	if len(req.Messages) > 0 {
		n++
	}
	switch {
	case n == 0:
		return errors.New("request has no input: set InputIDs, Prompt or Messages")
	case n > 1:
		return errors.New("request sets more than one of InputIDs, Prompt and Messages")
	}
	if req.Params.MaxNewTokens < 0 {
		return fmt.Errorf("MaxNewTokens %d is negative", req.Params.MaxNewTokens)
	}
	if math.IsNaN(req.Params.Temperature) || req.Params.Temperature < 0 {
		return fmt.Errorf("temperature %v: want a number ≥ 0", req.Params.Temperature)
	}
	return nil
}

// sglangGenerateReply is the non-streaming /generate reply for one prompt.
type sglangGenerateReply struct {
	Text      *string `json:"text"`
	OutputIDs intList `json:"output_ids"`
	TokenIDs  intList `json:"token_ids"` // older skip_tokenizer_init builds
	MetaInfo  *struct {
		ID                  string          `json:"id"`
		FinishReason        json.RawMessage `json:"finish_reason"`
		PromptTokens        int             `json:"prompt_tokens"`
		CompletionTokens    *int            `json:"completion_tokens"`
		WeightVersion       json.RawMessage `json:"weight_version"`
		OutputTokenLogprobs tokenLogprobs   `json:"output_token_logprobs"`
		// OutputTokenWeightVersions is asearcher's `serve model` extension:
		// the version of each token, for engines that swap weights between
		// decoding steps without ending the request.
		OutputTokenWeightVersions intList `json:"output_token_weight_versions"`
	} `json:"meta_info"`
}

// finishInfo is SGLang's finish_reason object.
type finishInfo struct {
	Type    string          `json:"type"`
	Matched json.RawMessage `json:"matched"`
	Message string          `json:"message"`
}

// decodeSGLangGenerate turns a /generate reply into a Response. stops are
// the request's stop strings and promptTail the end of a text prompt
// (PromptTail), used to restore a trimmed stop string.
func decodeSGLangGenerate(data []byte, stops []string, promptTail string) (*Response, error) {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '[' {
		// A batch reply to a single prompt: take the only element.
		var batch []json.RawMessage
		if err := json.Unmarshal(data, &batch); err != nil {
			return nil, fmt.Errorf("decode reply: %w", err)
		}
		if len(batch) != 1 {
			return nil, fmt.Errorf("decode reply: want 1 result, got %d", len(batch))
		}
		data = batch[0]
	}
	var r sglangGenerateReply
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode reply: %w", err)
	}
	if r.MetaInfo == nil {
		return nil, errors.New("decode reply: no meta_info")
	}
	m := r.MetaInfo
	fin, err := parseSGLangFinish(m.FinishReason)
	if err != nil {
		return nil, err
	}
	resp := &Response{PromptTokens: m.PromptTokens}
	if r.Text != nil {
		resp.Text = *r.Text
	}
	lp := m.OutputTokenLogprobs
	ids := r.OutputIDs
	if ids == nil {
		ids = r.TokenIDs
	}
	switch {
	case len(lp.IDs) > 0:
		if ids != nil && !equalInts(ids, lp.IDs) {
			return nil, fmt.Errorf("decode reply: output_ids (%d tokens) disagree with output_token_logprobs (%d tokens)", len(ids), len(lp.IDs))
		}
		resp.OutputIDs = append([]int(nil), lp.IDs...)
		resp.Logprobs = append([]float32(nil), lp.Logprobs...)
	case len(ids) > 0:
		resp.OutputIDs = append([]int(nil), ids...)
	}
	if m.CompletionTokens != nil && resp.OutputIDs != nil && *m.CompletionTokens != len(resp.OutputIDs) {
		return nil, fmt.Errorf("decode reply: completion_tokens %d but %d token ids", *m.CompletionTokens, len(resp.OutputIDs))
	}
	if pv := m.OutputTokenWeightVersions; len(pv) > 0 && len(pv) == len(resp.OutputIDs) {
		resp.Versions = append([]int(nil), pv...)
	} else if v, ok := parseVersion(m.WeightVersion); ok && len(resp.OutputIDs) > 0 {
		resp.Versions = make([]int, len(resp.OutputIDs))
		for i := range resp.Versions {
			resp.Versions[i] = v
		}
	}
	resp.Finish = fin.finish
	if fin.finish == FinishStop && fin.matchedStr != "" {
		resp.StopMatched = fin.matchedStr
		resp.Text = restoreStop(resp.Text, fin.matchedStr)
	} else if fin.finish == FinishStop && fin.matchedStr == "" && !fin.matchedToken && len(stops) > 0 {
		// Some compatible servers omit "matched"; a stop string at the end
		// of the text is still recognisable.
		for _, s := range stops {
			if s != "" && strings.HasSuffix(resp.Text, s) {
				resp.StopMatched = s
				return resp, nil
			}
		}
		RestoreTrimmedStop(resp, promptTail, stops)
	}
	return resp, nil
}

type parsedFinish struct {
	finish       Finish
	matchedStr   string
	matchedToken bool
	message      string
}

func parseSGLangFinish(raw json.RawMessage) (parsedFinish, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return parsedFinish{}, errors.New("decode reply: meta_info.finish_reason is missing (the request has not finished)")
	}
	var fi finishInfo
	if raw[0] == '"' {
		// Plain-string finish reasons come from OpenAI-style servers that
		// imitate /generate.
		if err := json.Unmarshal(raw, &fi.Type); err != nil {
			return parsedFinish{}, fmt.Errorf("decode finish_reason: %w", err)
		}
	} else if err := json.Unmarshal(raw, &fi); err != nil {
		return parsedFinish{}, fmt.Errorf("decode finish_reason: %w", err)
	}
	pf := parsedFinish{message: fi.Message}
	switch fi.Type {
	case "stop":
		pf.finish = FinishStop
	case "length":
		pf.finish = FinishLength
	case "abort":
		pf.finish = FinishAbort
	default:
		return parsedFinish{}, fmt.Errorf("decode finish_reason: unknown type %q", fi.Type)
	}
	m := bytes.TrimSpace(fi.Matched)
	if len(m) > 0 && m[0] == '"' {
		if err := json.Unmarshal(m, &pf.matchedStr); err != nil {
			return parsedFinish{}, fmt.Errorf("decode finish_reason.matched: %w", err)
		}
	} else if len(m) > 0 && string(m) != "null" {
		pf.matchedToken = true
	}
	return pf, nil
}

// parseVersion reads a weight version that servers send as a number or a
// numeric string; SGLang's default label "default" is no version.
func parseVersion(raw json.RawMessage) (int, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false
	}
	s := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, false
		}
		s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, false
	}
	return v, true
}

// restoreStop appends a matched stop string the server trimmed from text.
// Generation ends at the first occurrence, so a text that already contains
// the stop string (no_stop_trim, include_stop_str_in_output) is complete.
func restoreStop(text, stop string) string {
	if stop == "" || strings.Contains(text, stop) {
		return text
	}
	return text + stop
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
