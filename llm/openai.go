package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Dialect says which request fields beyond the OpenAI reference an
// OpenAI-compatible server accepts.
type Dialect int

const (
	// DialectAuto sends the engine extensions (vLLM/SGLang) and, if the
	// server rejects one of them with HTTP 400, falls back to the standard
	// fields for the rest of the client's life.
	DialectAuto Dialect = iota
	// DialectStandard sends only fields the OpenAI API defines; hosted APIs
	// reject unknown fields.
	DialectStandard
	// DialectExtended always sends the extensions: top_k, stop_token_ids,
	// return_token_ids, return_tokens_as_token_ids,
	// include_stop_str_in_output (vLLM) and no_stop_trim (SGLang).
	DialectExtended
)

func (d Dialect) String() string {
	switch d {
	case DialectStandard:
		return "standard"
	case DialectExtended:
		return "extended"
	default:
		return "auto"
	}
}

// extensionFields are the non-standard request fields; a 400 naming one of
// them means the server does not take extensions.
var extensionFields = []string{"top_k", "stop_token_ids", "return_token_ids", "return_tokens_as_token_ids", "include_stop_str_in_output", "no_stop_trim", "skip_special_tokens"}

// OpenAIConfig configures an OpenAI-compatible backend.
type OpenAIConfig struct {
	// BaseURL ends in /v1, e.g. http://127.0.0.1:8000/v1.
	BaseURL    string
	HTTPClient *http.Client
	// APIKey is sent as a bearer token; it never appears in logs or errors.
	APIKey string
	// Model is the "model" field; empty asks GET /v1/models once and uses
	// the first model listed.
	Model   string
	Dialect Dialect
}

// OpenAI talks to one OpenAI-compatible server: /v1/completions for
// InputIDs (a token-id prompt) and Prompt, /v1/chat/completions for
// Messages. It asks for the sampled token's logprob and, where the server
// offers them (vLLM), the sampled token ids.
//
// One call is one HTTP attempt; retries and failover belong to Pool.
type OpenAI struct {
	ep       endpoint
	dialect  Dialect
	extended atomic.Bool // DialectAuto: still sending extensions

	modelMu sync.Mutex
	model   string

	ctxLen ctxLenProbe
}

// NewOpenAI returns a backend for one OpenAI-compatible server.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("openai: empty base URL")
	}
	h := http.Header{}
	if cfg.APIKey != "" {
		h.Set("Authorization", "Bearer "+cfg.APIKey)
	}
	c := &OpenAI{ep: newEndpoint(cfg.BaseURL, cfg.HTTPClient, h, cfg.APIKey), dialect: cfg.Dialect, model: cfg.Model}
	c.extended.Store(cfg.Dialect != DialectStandard)
	c.ctxLen.probing = c.probeContextLength
	return c, nil
}

// ContextLength implements ContextLengther: vLLM's (and SGLang's)
// max_model_len of the model in GET /models, asked once. OpenAI's API
// lists no such field: then 0, unknown.
func (c *OpenAI) ContextLength(ctx context.Context) int { return c.ctxLen.get(ctx) }

func (c *OpenAI) probeContextLength(ctx context.Context) (int, bool) {
	data, err := c.ep.do(ctx, http.MethodGet, "/models", nil)
	if err != nil {
		var he *HTTPError
		return 0, errors.As(err, &he)
	}
	return modelsMaxLen(data, c.configuredModel()), true
}

func (c *OpenAI) configuredModel() string {
	c.modelMu.Lock()
	defer c.modelMu.Unlock()
	return c.model
}

// modelsMaxLen reads max_model_len of model (or of the first model when
// model is "") from a /models reply; 0 when absent or not positive.
func modelsMaxLen(data []byte, model string) int {
	var list struct {
		Data []struct {
			ID          string `json:"id"`
			MaxModelLen *int   `json:"max_model_len"`
		} `json:"data"`
	}
	if json.Unmarshal(data, &list) != nil {
		return 0
	}
	for i, m := range list.Data {
		if (model == "" && i == 0) || m.ID == model {
			if m.MaxModelLen != nil && *m.MaxModelLen > 0 {
				return *m.MaxModelLen
			}
			return 0
		}
	}
	return 0
}

// String names the server for logs and metrics.
func (c *OpenAI) String() string { return "openai:" + redactURL(c.ep.base) }

// Health implements HealthChecker with GET /models.
func (c *OpenAI) Health(ctx context.Context) error {
	_, err := c.ep.do(ctx, http.MethodGet, "/models", nil)
	return err
}

// Model returns the model name requests carry, asking the server when none
// was configured.
func (c *OpenAI) Model(ctx context.Context) (string, error) {
	c.modelMu.Lock()
	defer c.modelMu.Unlock()
	if c.model != "" {
		return c.model, nil
	}
	data, err := c.ep.do(ctx, http.MethodGet, "/models", nil)
	if err != nil {
		return "", fmt.Errorf("list models (pass the model name to skip this): %w", err)
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return "", fmt.Errorf("decode /models: %w", err)
	}
	if len(list.Data) == 0 || list.Data[0].ID == "" {
		return "", fmt.Errorf("%s/models lists no model; pass the model name", redactURL(c.ep.base))
	}
	c.model = list.Data[0].ID
	return c.model, nil
}

// Sample implements Sampler.
func (c *OpenAI) Sample(ctx context.Context, req *Request) (*Response, error) {
	if err := checkInput(req); err != nil {
		return nil, err
	}
	model := req.Adapter // vLLM serves a loaded LoRA adapter under its name
	if model == "" {
		var err error
		if model, err = c.Model(ctx); err != nil {
			return nil, err
		}
	}
	chat := len(req.Messages) > 0
	path := "/completions"
	if chat {
		path = "/chat/completions"
	}
	for {
		ext := c.extended.Load()
		var body []byte
		if chat {
			body = encodeChatRequest(nil, model, req, ext)
		} else {
			body = encodeCompletionRequest(nil, model, req, ext)
		}
		data, err := c.ep.do(ctx, http.MethodPost, path, body)
		if err != nil {
			if ext && c.dialect == DialectAuto && rejectsExtension(err) {
				c.extended.Store(false)
				continue
			}
			return nil, fmt.Errorf("openai %s: %w", path, err)
		}
		var resp *Response
		if chat {
			resp, err = decodeChatResponse(data, req.Params.Stop, "")
		} else {
			resp, err = decodeCompletionResponse(data, req.Params.Stop, PromptTail(req))
		}
		if err != nil {
			return nil, fmt.Errorf("openai %s %s: %w", redactURL(c.ep.base), path, err)
		}
		return resp, nil
	}
}

func rejectsExtension(err error) bool {
	var he *HTTPError
	if !errors.As(err, &he) || (he.Status != http.StatusBadRequest && he.Status != http.StatusUnprocessableEntity) || he.ContextLength {
		return false
	}
	for _, f := range extensionFields {
		if strings.Contains(he.Body, f) {
			return true
		}
	}
	return false
}

// appendOpenAISampling writes the sampling fields shared by both endpoints.
// maxKey is "max_tokens", or "max_completion_tokens" for chat requests to
// hosted APIs, whose newer models refuse max_tokens (engines still read
// max_tokens, and an older one would ignore the other name).
func appendOpenAISampling(o *objWriter, p *Params, ext bool, maxKey string) {
	if p.MaxNewTokens > 0 {
		o.int(maxKey, p.MaxNewTokens)
	}
	o.float("temperature", p.Temperature)
	o.float("top_p", topPOrOne(p.TopP))
	if len(p.Stop) > 0 {
		o.strings("stop", p.Stop)
	}
	if p.Seed != nil {
		o.i64("seed", *p.Seed)
	}
	if ext {
		o.int("top_k", topKOrAll(p.TopK))
		if len(p.StopTokenIDs) > 0 {
			o.ints("stop_token_ids", p.StopTokenIDs)
		}
		o.bool("return_token_ids", true)
		o.bool("return_tokens_as_token_ids", true)
		if len(p.Stop) > 0 {
			o.bool("include_stop_str_in_output", true)
			o.bool("no_stop_trim", true)
		}
	}
}

func encodeCompletionRequest(b []byte, model string, req *Request, ext bool) []byte {
	o := newObj(b)
	o.str("model", model)
	if len(req.InputIDs) > 0 {
		o.ints("prompt", req.InputIDs)
	} else {
		o.str("prompt", req.Prompt)
	}
	appendOpenAISampling(&o, &req.Params, ext, "max_tokens")
	if ext {
		o.int("logprobs", 0)
	} else {
		o.int("logprobs", 1)
	}
	o.bool("stream", false)
	if ext && req.ID != "" {
		o.str("request_id", req.ID)
	}
	return o.close()
}

func encodeChatRequest(b []byte, model string, req *Request, ext bool) []byte {
	o := newObj(b)
	o.str("model", model)
	o.key("messages")
	o.b = append(o.b, '[')
	for i, m := range req.Messages {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		mo := newObj(o.b)
		mo.str("role", m.Role)
		mo.str("content", m.Content)
		o.b = mo.close()
	}
	o.b = append(o.b, ']')
	maxKey := "max_tokens"
	if !ext {
		maxKey = "max_completion_tokens"
	}
	appendOpenAISampling(&o, &req.Params, ext, maxKey)
	o.bool("logprobs", true)
	o.bool("stream", false)
	if ext && req.ID != "" {
		o.str("request_id", req.ID)
	}
	return o.close()
}

// choiceCommon is what completion and chat choices share: the OpenAI
// reference fields plus what vLLM (token_ids, stop_reason) and SGLang
// (matched_stop) add.
type choiceCommon struct {
	FinishReason *string         `json:"finish_reason"`
	StopReason   json.RawMessage `json:"stop_reason"`
	MatchedStop  json.RawMessage `json:"matched_stop"`
	TokenIDs     intList         `json:"token_ids"`
}

type completionChoice struct {
	choiceCommon
	Text     *string `json:"text"`
	Logprobs *struct {
		Tokens        []string   `json:"tokens"`
		TokenLogprobs []*float64 `json:"token_logprobs"`
	} `json:"logprobs"`
}

type chatChoice struct {
	choiceCommon
	Message *struct {
		Content          *string `json:"content"`
		ReasoningContent *string `json:"reasoning_content"`
		Reasoning        *string `json:"reasoning"`
	} `json:"message"`
	Logprobs *struct {
		Content []struct {
			Token   string   `json:"token"`
			Logprob *float64 `json:"logprob"`
		} `json:"content"`
	} `json:"logprobs"`
}

type openAIUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// firstChoice decodes a reply and returns its first choice and usage.
func firstChoice[C any](data []byte) (*C, *openAIUsage, error) {
	var r struct {
		Choices []C          `json:"choices"`
		Usage   *openAIUsage `json:"usage"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, nil, fmt.Errorf("decode reply: %w", err)
	}
	if len(r.Choices) == 0 {
		return nil, nil, errors.New("decode reply: no choices")
	}
	return &r.Choices[0], r.Usage, nil
}

// finishChoice fills in what both reply kinds share.
func finishChoice(resp *Response, c *choiceCommon, tokens []string, lps []*float64, u *openAIUsage, stops []string, promptTail string) (*Response, error) {
	if err := fillTokens(resp, c.TokenIDs, tokens, lps); err != nil {
		return nil, err
	}
	if err := applyOpenAIFinish(resp, c.FinishReason, c.StopReason, c.MatchedStop, stops, promptTail); err != nil {
		return nil, err
	}
	if u != nil {
		resp.PromptTokens = u.PromptTokens
	}
	return resp, nil
}

// decodeCompletionResponse turns a /v1/completions reply into a Response.
// stops and promptTail (see PromptTail) restore a trimmed stop string.
func decodeCompletionResponse(data []byte, stops []string, promptTail string) (*Response, error) {
	ch, usage, err := firstChoice[completionChoice](data)
	if err != nil {
		return nil, err
	}
	resp := &Response{}
	if ch.Text != nil {
		resp.Text = *ch.Text
	}
	var tokens []string
	var lps []*float64
	if ch.Logprobs != nil {
		tokens, lps = ch.Logprobs.Tokens, ch.Logprobs.TokenLogprobs
	}
	return finishChoice(resp, &ch.choiceCommon, tokens, lps, usage, stops, promptTail)
}

func decodeChatResponse(data []byte, stops []string, promptTail string) (*Response, error) {
	ch, usage, err := firstChoice[chatChoice](data)
	if err != nil {
		return nil, err
	}
	resp := &Response{}
	if ch.Message != nil {
		if ch.Message.Content != nil {
			resp.Text = *ch.Message.Content
		}
		// Servers with a reasoning parser move the think block out of the
		// content; put it back where the model wrote it so the agent sees
		// what was generated.
		reasoning := ch.Message.ReasoningContent
		if reasoning == nil {
			reasoning = ch.Message.Reasoning
		}
		if reasoning != nil && *reasoning != "" {
			resp.Text = "<think>\n" + *reasoning + "\n</think>\n\n" + resp.Text
		}
	}
	var tokens []string
	var lps []*float64
	if ch.Logprobs != nil {
		for _, c := range ch.Logprobs.Content {
			tokens = append(tokens, c.Token)
			lps = append(lps, c.Logprob)
		}
	}
	return finishChoice(resp, &ch.choiceCommon, tokens, lps, usage, stops, promptTail)
}

// fillTokens sets OutputIDs and Logprobs from whichever the server gave:
// token_ids (vLLM return_token_ids), or logprob tokens of the form
// "token_id:N" (vLLM return_tokens_as_token_ids). Plain token strings carry
// no ids; then only the logprobs are kept.
func fillTokens(resp *Response, tokenIDs intList, tokens []string, lps []*float64) error {
	if len(lps) > 0 {
		resp.Logprobs = make([]float32, len(lps))
		for i, lp := range lps {
			resp.Logprobs[i] = logprobOrNegInf(lp)
		}
	}
	if len(tokenIDs) > 0 {
		resp.OutputIDs = append([]int(nil), tokenIDs...)
	} else if ids, ok := idsFromTokenStrings(tokens); ok {
		resp.OutputIDs = ids
	}
	if resp.OutputIDs != nil && resp.Logprobs != nil && len(resp.OutputIDs) != len(resp.Logprobs) {
		return fmt.Errorf("decode reply: %d token ids but %d logprobs", len(resp.OutputIDs), len(resp.Logprobs))
	}
	return nil
}

func idsFromTokenStrings(tokens []string) ([]int, bool) {
	if len(tokens) == 0 {
		return nil, false
	}
	ids := make([]int, len(tokens))
	for i, t := range tokens {
		s, ok := strings.CutPrefix(t, "token_id:")
		if !ok {
			return nil, false
		}
		id, err := strconv.Atoi(s)
		if err != nil {
			return nil, false
		}
		ids[i] = id
	}
	return ids, true
}

func applyOpenAIFinish(resp *Response, reason *string, stopReason, matchedStop json.RawMessage, stops []string, promptTail string) error {
	if reason == nil {
		return errors.New("decode reply: finish_reason is null (the request has not finished)")
	}
	switch *reason {
	case "stop", "eos", "tool_calls", "function_call", "content_filter":
		resp.Finish = FinishStop
	case "length":
		resp.Finish = FinishLength
	case "abort", "cancelled":
		resp.Finish = FinishAbort
	default:
		return fmt.Errorf("decode reply: unknown finish_reason %q", *reason)
	}
	if resp.Finish != FinishStop {
		return nil
	}
	matched := jsonStringOrEmpty(stopReason)
	if matched == "" {
		matched = jsonStringOrEmpty(matchedStop)
	}
	if matched != "" {
		resp.StopMatched = matched
		resp.Text = restoreStop(resp.Text, matched)
		return nil
	}
	if len(bytes.TrimSpace(stopReason)) > 0 || len(bytes.TrimSpace(matchedStop)) > 0 {
		// The server said what stopped it (EOS: null, or a stop token id):
		// no stop string to guess.
		return nil
	}
	for _, s := range stops {
		if s != "" && strings.HasSuffix(resp.Text, s) {
			resp.StopMatched = s
			return nil
		}
	}
	// Trimmed and unreported (hosted APIs): restore the closing tag.
	RestoreTrimmedStop(resp, promptTail, stops)
	return nil
}

func jsonStringOrEmpty(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '"' {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

func logprobOrNegInf(lp *float64) float32 {
	if lp == nil {
		return negInf32
	}
	return float32(*lp)
}
