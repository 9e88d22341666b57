// Package sglang is the reply of SGLang's native /generate as asearcher
// writes it: `asearcher serve model` (engine/serve) and the fake SGLang
// server of the tests (internal/fakellm) both encode this type, so the two
// cannot drift apart. The fields follow stock SGLang's order; the
// asearcher extensions come last and are left out when unset.
//
// The client (llm.SGLang) decodes replies with its own, more lenient
// struct on purpose: it also reads older and newer SGLang builds (token_ids
// for output_ids, a numeric weight_version, a one-element batch), which
// this encoding type has no reason to model. Sharing this type does not
// blind the fake: the client's decoding is checked against recorded stock
// SGLang replies (llm/testdata/golden/sglang_reply_*.json), not against
// the fake.
package sglang

// Reply is one /generate result; a batch request answers a JSON list of
// them.
type Reply struct {
	Text      string `json:"text"`
	OutputIDs []int  `json:"output_ids"`
	MetaInfo  Meta   `json:"meta_info"`
}

// Meta is meta_info.
type Meta struct {
	ID string `json:"id"`
	// FinishReason is {"type":"stop","matched":str|id},
	// {"type":"length","length":N} or {"type":"abort","message":...}.
	FinishReason  any     `json:"finish_reason"`
	PromptTokens  int     `json:"prompt_tokens"`
	WeightVersion *string `json:"weight_version,omitempty"`
	// TotalRetractions is always 0 here (no preemption).
	TotalRetractions int `json:"total_retractions"`
	// InputTokenLogprobs and OutputTokenLogprobs are per position
	// [logprob, id, text|null] (with return_logprob).
	InputTokenLogprobs  []any   `json:"input_token_logprobs,omitempty"`
	OutputTokenLogprobs []any   `json:"output_token_logprobs,omitempty"`
	CompletionTokens    int     `json:"completion_tokens"`
	CachedTokens        int     `json:"cached_tokens"`
	E2ELatency          float64 `json:"e2e_latency"`
	// With top_logprobs_num: per position, the most likely tokens as
	// [logprob, id, text]; with token_ids_logprob, the asked-for ids'.
	// With max_new_tokens 0 the output lists hold the one position after
	// the prompt, as SGLang scores it.
	InputTopLogprobs       []any `json:"input_top_logprobs,omitempty"`
	OutputTopLogprobs      []any `json:"output_top_logprobs,omitempty"`
	InputTokenIDsLogprobs  []any `json:"input_token_ids_logprobs,omitempty"`
	OutputTokenIDsLogprobs []any `json:"output_token_ids_logprobs,omitempty"`
	// OutputTokenWeightVersions[i] is the weight version that produced
	// output token i (an asearcher extension: versions change inside one
	// request when weights are swapped mid-generation; WeightVersion is
	// the last token's). Nil leaves it out, as stock SGLang does; an
	// empty list is sent as [].
	OutputTokenWeightVersions []int `json:"output_token_weight_versions,omitzero"`
}
