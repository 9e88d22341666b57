// Package llm is how asearcher talks to language models. Everything above it
// (agent, eval, synth, rl) sees only the Sampler interface; backends speak
// SGLang's native /generate, OpenAI-compatible APIs, Tinker sampling, or call
// the embedded engine in process.
package llm

import "context"

// Message is one turn of a chat conversation.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Params are the sampling parameters of one call.
type Params struct {
	// MaxNewTokens caps the generated tokens; 0 means the backend's default.
	MaxNewTokens int `json:"max_new_tokens,omitempty"`
	// Temperature 0 means greedy decoding.
	Temperature float64 `json:"temperature"`
	// TopP in (0, 1); 0 or 1 disables nucleus sampling.
	TopP float64 `json:"top_p,omitempty"`
	// TopK > 0 keeps only the k most likely tokens; 0 or -1 disables it.
	TopK int `json:"top_k,omitempty"`
	// Stop ends generation when the text ends with any of these strings.
	Stop []string `json:"stop,omitempty"`
	// StopTokenIDs ends generation when one of these tokens is sampled.
	StopTokenIDs []int `json:"stop_token_ids,omitempty"`
	// Seed makes sampling reproducible where the backend supports it.
	Seed *int64 `json:"seed,omitempty"`
}

// Request is one generation call. Exactly one of InputIDs, Prompt and
// Messages is set: token ids are the exact form used for training; Prompt is
// a raw completion prompt; Messages go through the server's chat template.
type Request struct {
	// ID identifies the request for sticky routing and Abort. Calls that
	// continue the same trajectory should share a prefix-stable ID.
	ID       string    `json:"id,omitempty"`
	InputIDs []int     `json:"input_ids,omitempty"`
	Prompt   string    `json:"prompt,omitempty"`
	Messages []Message `json:"messages,omitempty"`
	Params   Params    `json:"params"`
	// Adapter names a LoRA adapter loaded on the server to sample with
	// (SGLang: lora_path; vLLM and other OpenAI-compatible servers: the
	// model field); empty samples the served model itself. A publisher of
	// LoRA versions pins each request to one adapter this way.
	Adapter string `json:"adapter,omitempty"`
}

// Finish says why generation ended.
type Finish string

const (
	FinishStop   Finish = "stop"   // EOS, a stop token or a stop string
	FinishLength Finish = "length" // MaxNewTokens or the context limit
	FinishAbort  Finish = "abort"  // aborted or paused; the output is partial
)

// Response is the result of one generation call.
//
// When the backend reports tokens, OutputIDs are exactly the sampled tokens
// and Text is their decoding, including a matched stop string (backends that
// trim the stop string restore it), so history can be extended by token
// concatenation without re-tokenising.
type Response struct {
	OutputIDs []int  `json:"output_ids,omitempty"`
	Text      string `json:"text"`
	// Logprobs[i] is the behaviour log-probability of OutputIDs[i]; nil when
	// the backend does not offer logprobs.
	Logprobs []float32 `json:"logprobs,omitempty"`
	// Versions[i] is the weight version that produced OutputIDs[i]; nil when
	// unknown. Interrupted generation can mix versions within one response.
	Versions    []int  `json:"versions,omitempty"`
	Finish      Finish `json:"finish"`
	StopMatched string `json:"stop_matched,omitempty"`
	// StopRestored says the client appended StopMatched to Text itself: the
	// server trimmed it and did not say which stop fired (RestoreTrimmedStop).
	// OutputIDs and Logprobs are what the server sent and may lack its
	// tokens; the agent then adds them as unsampled tokens.
	StopRestored bool `json:"stop_restored,omitempty"`
	PromptTokens int  `json:"prompt_tokens,omitempty"`
}

// Sampler generates text from a model.
type Sampler interface {
	Sample(ctx context.Context, req *Request) (*Response, error)
}

// Aborter is implemented by samplers that can stop an in-flight request; the
// aborted Sample call returns its partial output with FinishAbort.
type Aborter interface {
	Abort(ctx context.Context, requestID string) error
}
