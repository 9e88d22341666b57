package agent

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tools"
)

// Call purposes.
const (
	PurposeAct    = "act"    // the model thinks and takes an action
	PurposeRead   = "read"   // the model writes a note on a search result or page part
	PurposeAnswer = "answer" // a forced final answer (reasoning agent)
)

// Mode says what a trajectory holds at token level.
const (
	ModeTokens = "tokens" // token ids in and out: trainable
	ModeText   = "text"   // raw completion prompts; no token-level data
	ModeChat   = "chat"   // chat messages; no token-level data
)

// EndReason says why the agent stopped.
type EndReason string

const (
	EndAnswer      EndReason = "answer"       // the model answered
	EndStopped     EndReason = "stopped"      // the model ended (EOS) without answering
	EndMaxTurns    EndReason = "max_turns"    // Limits.MaxTurns act calls were made
	EndContext     EndReason = "context_full" // no room left under Limits.MaxContextTokens
	EndNoProgress  EndReason = "no_progress"  // too many generations without an action
	EndModelError  EndReason = "model_error"  // the sampler failed
	EndCanceled    EndReason = "canceled"     // the context was cancelled
	EndUnsupported EndReason = "unsupported"  // the agent cannot run on this Env
)

// Trajectory is everything one agent run did. Token ids are stored once:
// each call's input is a delta against the previous call (Input), so memory
// and the serialised size grow with the total number of tokens, not with
// turns × context. See docs/trajectory.md for the JSON schema.
type Trajectory struct {
	// Schema is TrajectorySchema when written by Writer.
	Schema   int    `json:"schema"`
	ID       string `json:"id"`
	TaskID   string `json:"task_id,omitempty"`
	Sample   int    `json:"sample"`
	Agent    string `json:"agent"`
	Prompt   string `json:"prompt,omitempty"`
	Question string `json:"question"`
	// Mode is ModeTokens when every call's input and output are token ids
	// from the model; ModeText or ModeChat when the backend works on text
	// (then Sequences fails and only text is recorded).
	Mode string `json:"mode"`
	// TokenLevel is true when Sequences can build training data: Mode is
	// ModeTokens and every call returned its token ids.
	TokenLevel bool `json:"token_level"`

	Calls []Call     `json:"calls"`
	Tools []ToolCall `json:"tools"`

	Answer   string `json:"answer"`
	Answered bool   `json:"answered"`
	// AnswerFallback says Answer was not given in an <answer> tag but
	// taken from the reasoning when the run ended without one (the
	// reasoning agent, as upstream's get_answer does); End says why.
	AnswerFallback bool      `json:"answer_fallback,omitempty"`
	End            EndReason `json:"end"`
	Error          string    `json:"error,omitempty"`

	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`

	// Extra is free-form data a workflow or runner attaches (a custom
	// reward, the gold answers, dataset fields).
	Extra map[string]any `json:"extra,omitempty"`
}

// Input is a call's prompt as a delta: the first Keep tokens of the full
// sequence (input + output) of call Base, followed by Added. Base is -1 for
// a prompt built from scratch. In text modes Keep counts bytes and the
// added text is in AddedText.
type Input struct {
	Base      int    `json:"base"`
	Keep      int    `json:"keep"`
	Added     []int  `json:"added,omitempty"`
	AddedText string `json:"added_text,omitempty"`
	// Messages is the chat request of a ModeChat call.
	Messages []llm.Message `json:"messages,omitempty"`
}

// Call is one model call.
type Call struct {
	Purpose string `json:"purpose"`
	// Turn is the act turn this call belongs to (0-based).
	Turn int `json:"turn"`
	// Tool is the index in Trajectory.Tools of the result a read call
	// reads, and Part the page part (1-based); -1 and 0 otherwise.
	Tool int `json:"tool"`
	Part int `json:"part,omitempty"`

	Input     Input    `json:"input"`
	InputLen  int      `json:"input_len"` // tokens (bytes in text modes) of the full input
	MaxTokens int      `json:"max_tokens"`
	Stop      []string `json:"stop,omitempty"`

	Output   []int     `json:"output,omitempty"`
	Text     string    `json:"text"`
	Logprobs []float32 `json:"logprobs,omitempty"`
	Versions []int     `json:"versions,omitempty"`
	// NoTokenIDs marks a token-mode call whose backend returned only text;
	// Output then holds the agent's own encoding of Text.
	NoTokenIDs bool       `json:"no_token_ids,omitempty"`
	Finish     llm.Finish `json:"finish"`
	// StopMatched is the stop string the output ends with, if any; EOS
	// says the output ends with a stop token.
	StopMatched string `json:"stop_matched,omitempty"`
	EOS         bool   `json:"eos,omitempty"`
	// Clipped says the agent cut the backend's output itself, at a stop
	// string, a stop token or the token cap the backend did not honour.
	Clipped bool `json:"clipped,omitempty"`
	// Unsampled counts tokens at the end of Output the model did not
	// sample: the encoding of a stop string the server trimmed and did not
	// return as tokens, added back so the context reads as the model wrote
	// it. They are prompt in training (loss mask 0, logprob 0, version -1).
	Unsampled int `json:"unsampled,omitempty"`
	// Cut is output the agent removed after the call: an answer begun
	// before Explore.MinSearches searches. It was in no later context and
	// is not trained on; Text and Output hold what was kept.
	Cut string `json:"cut,omitempty"`
	// Forced counts tokens at the end of Output that exploration wrote in
	// place of the cut (Explore.TrainTag): generated with probability 1
	// by the exploring policy, behaviour logprob 0, marked in
	// Sequence.Forced.
	Forced int `json:"forced,omitempty"`

	Start   time.Duration `json:"start_ns"` // since Trajectory.Started
	Latency time.Duration `json:"latency_ns"`
}

// ToolCall is one tool invocation and what the model was shown.
type ToolCall struct {
	Name string `json:"name"`
	Arg  string `json:"arg"`
	Turn int    `json:"turn"`
	// Call is the index of the act call that asked for the tool.
	Call int `json:"call"`
	// Observation is the text shown to the model (for a page, all parts).
	Observation string `json:"observation"`
	Error       string `json:"error,omitempty"`
	// Docs are the search hits; Page the page read (content capped).
	Docs []tools.SearchResult `json:"docs,omitempty"`
	Page *PageRead            `json:"page,omitempty"`
	// Forced says the search tag was written by exploration
	// (Explore.MinSearches) in place of an answer; the query is the
	// model's.
	Forced bool `json:"forced,omitempty"`

	Start   time.Duration `json:"start_ns"`
	Latency time.Duration `json:"latency_ns"`
}

// PageRead describes an accessed page and how much of it the model read.
type PageRead struct {
	URL       string `json:"url"`
	Title     string `json:"title,omitempty"`
	Chars     int    `json:"chars"`      // length of the page in characters before the cap
	Parts     int    `json:"parts"`      // parts the capped page was split into
	PartChars int    `json:"part_chars"` // characters per part: part k is Observation's runes [(k-1)·PartChars, k·PartChars)
	PartsRead int    `json:"parts_read"` // parts the model wrote a note on
}

// InputIDs returns the full prompt of call i in token mode.
func (t *Trajectory) InputIDs(i int) []int {
	c := &t.Calls[i]
	return t.appendFullIDs(make([]int, 0, c.InputLen), i, 0, c.InputLen)
}

// InputText returns the full prompt of call i in text modes.
func (t *Trajectory) InputText(i int) string {
	c := &t.Calls[i]
	return string(t.appendFullText(make([]byte, 0, c.InputLen), i, 0, c.InputLen))
}

// fullLen is the length of call i's input followed by its output.
func (t *Trajectory) fullLen(i int) int {
	c := &t.Calls[i]
	if t.Mode == ModeTokens {
		return c.InputLen + len(c.Output)
	}
	return c.InputLen + len(c.Text)
}

// appendFullIDs appends tokens [from, to) of call i's full sequence.
func (t *Trajectory) appendFullIDs(dst []int, i, from, to int) []int {
	for from < to {
		c := &t.Calls[i]
		in := &c.Input
		if from < in.Keep {
			// The part from the base is resolved first, then the rest here.
			end := min(to, in.Keep)
			dst = t.appendFullIDs(dst, in.Base, from, end)
			from = end
			continue
		}
		addEnd := in.Keep + len(in.Added)
		if from < addEnd {
			end := min(to, addEnd)
			dst = append(dst, in.Added[from-in.Keep:end-in.Keep]...)
			from = end
			continue
		}
		dst = append(dst, c.Output[from-addEnd:to-addEnd]...)
		from = to
	}
	return dst
}

// appendFullText is appendFullIDs for text modes (byte offsets).
func (t *Trajectory) appendFullText(dst []byte, i, from, to int) []byte {
	for from < to {
		c := &t.Calls[i]
		in := &c.Input
		if from < in.Keep {
			end := min(to, in.Keep)
			dst = t.appendFullText(dst, in.Base, from, end)
			from = end
			continue
		}
		addEnd := in.Keep + len(in.AddedText)
		if from < addEnd {
			end := min(to, addEnd)
			dst = append(dst, in.AddedText[from-in.Keep:end-in.Keep]...)
			from = end
			continue
		}
		dst = append(dst, c.Text[from-addEnd:to-addEnd]...)
		from = to
	}
	return dst
}

// Sequence is one training sequence: a run of calls whose prompts extend
// one another, merged into one token list.
type Sequence struct {
	// Tokens are prompt, tool output, template glue and model output in
	// order. LossMask is 1 on tokens the model generated, 0 elsewhere.
	Tokens   []int     `json:"input_ids"`
	LossMask []uint8   `json:"loss_mask"`
	Logprobs []float32 `json:"logprobs"` // behaviour logprob; 0 where LossMask is 0
	Versions []int     `json:"versions"` // weight version; -1 where LossMask is 0 or unknown
	// Calls are the indexes of the calls merged into this sequence.
	Calls []int `json:"calls"`
	// MissingLogprobs / MissingVersions say some generated token had no
	// logprob (recorded as 0) or no version (-1) from the backend.
	MissingLogprobs bool `json:"missing_logprobs,omitempty"`
	MissingVersions bool `json:"missing_versions,omitempty"`
	// LogprobMissing marks, token by token, the generated tokens whose 0
	// logprob is a placeholder for one the backend did not return; nil
	// when none is missing. A trainer must recompute or drop them, never
	// read the 0 as a probability of 1.
	LogprobMissing []bool `json:"logprob_missing,omitempty"`
	// Forced marks generated tokens that exploration wrote
	// (Call.Forced): behaviour logprob 0, probability 1 under the
	// exploring policy. nil when there are none.
	Forced []bool `json:"forced,omitempty"`
}

// ErrNotTokenLevel is returned by Sequences for trajectories recorded
// without token ids.
var ErrNotTokenLevel = errors.New("trajectory has no token-level data (text-mode backend); it can be evaluated but not trained on")

// Sequences merges the calls into training sequences by prefix: a call
// whose prompt starts with an existing sequence's tokens extends that
// sequence (the new prompt tokens with mask 0, the output with mask 1);
// any other call starts a new sequence whose prompt is all mask 0. A page
// part shown in full to one call and as a short stub afterwards breaks the
// prefix, so one trajectory usually gives several sequences.
func (t *Trajectory) Sequences() ([]Sequence, error) {
	if !t.TokenLevel || t.Mode != ModeTokens {
		return nil, ErrNotTokenLevel
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	// Pass 1: which sequence each call extends. A sequence always equals
	// the full sequence (input + output) of its last call, its tail.
	var tails []int     // tail call of each sequence
	var members [][]int // calls of each sequence
	seqOf := make([]int, len(t.Calls))
	for i := range t.Calls {
		c := &t.Calls[i]
		s := -1
		// Fast path: the input keeps the whole of its base call's full
		// sequence and the base is still the tail of its sequence.
		if b := c.Input.Base; b >= 0 && c.Input.Keep == t.fullLen(b) && tails[seqOf[b]] == b {
			s = seqOf[b]
		} else {
			// Otherwise the longest sequence that is a prefix of the input
			// is extended; usually there is none.
			var full []int
			for k, tl := range tails {
				n := t.fullLen(tl)
				if n > c.InputLen || (s >= 0 && n <= t.fullLen(tails[s])) {
					continue
				}
				if full == nil {
					full = t.InputIDs(i)
				}
				// Compared block by block, so a sequence that differs
				// early costs little.
				if extendCommon(full, 0, n, func(dst []int, from, to int) []int {
					return t.appendFullIDs(dst, tl, from, to)
				}) == n {
					s = k
				}
			}
			if s < 0 {
				tails = append(tails, -1)
				members = append(members, nil)
				s = len(tails) - 1
			}
		}
		tails[s] = i
		members[s] = append(members[s], i)
		seqOf[i] = s
	}
	// Pass 2: fill each sequence, allocated once at its final length.
	seqs := make([]Sequence, len(tails))
	for s, calls := range members {
		n := t.fullLen(tails[s])
		q := Sequence{
			Tokens:   make([]int, 0, n),
			LossMask: make([]uint8, n),
			Logprobs: make([]float32, n),
			Versions: make([]int, n),
			Calls:    calls,
		}
		for _, i := range calls {
			c := &t.Calls[i]
			// The prompt part this call adds to what the sequence holds.
			from := len(q.Tokens)
			if c.Input.Base >= 0 && from >= c.Input.Keep {
				q.Tokens = append(q.Tokens, c.Input.Added[from-c.Input.Keep:]...)
			} else {
				q.Tokens = t.appendFullIDs(q.Tokens, i, from, c.InputLen)
			}
			for k := from; k < len(q.Tokens); k++ {
				q.Versions[k] = -1
			}
			at := len(q.Tokens)
			q.Tokens = append(q.Tokens, c.Output...)
			sampled := len(c.Output) - c.Unsampled
			for k := range c.Output {
				q.LossMask[at+k] = 1
				q.Versions[at+k] = -1
			}
			for k := range sampled {
				// A call without logprobs, or a token whose logprob the
				// server sent as null (read as -Inf: a sampled token cannot
				// have probability 0) or NaN, has none.
				if len(c.Logprobs) > 0 && !math.IsInf(float64(c.Logprobs[k]), 0) && !math.IsNaN(float64(c.Logprobs[k])) {
					q.Logprobs[at+k] = c.Logprobs[k]
					continue
				}
				q.MissingLogprobs = true
				if q.LogprobMissing == nil {
					q.LogprobMissing = make([]bool, n)
				}
				q.LogprobMissing[at+k] = true
			}
			if len(c.Versions) > 0 {
				copy(q.Versions[at:], c.Versions)
			} else if sampled > 0 {
				q.MissingVersions = true
			}
			if c.Forced > 0 {
				if q.Forced == nil {
					q.Forced = make([]bool, n)
				}
				for k := sampled - c.Forced; k < sampled; k++ {
					q.Forced[at+k] = true
				}
			}
			// Restored stop tokens were not sampled: not trained on.
			for k := sampled; k < len(c.Output); k++ {
				q.LossMask[at+k], q.Logprobs[at+k], q.Versions[at+k] = 0, 0, -1
			}
		}
		seqs[s] = q
	}
	return seqs, nil
}

// Validate checks that the calls' input deltas and per-token arrays are
// consistent, as a trajectory read from a file must be before its token
// data is used.
func (t *Trajectory) Validate() error {
	tokens := t.Mode == ModeTokens
	for i := range t.Calls {
		c := &t.Calls[i]
		in := &c.Input
		if in.Base < -1 || in.Base >= i {
			return fmt.Errorf("call %d: input base %d is not an earlier call", i, in.Base)
		}
		limit := 0
		if in.Base >= 0 {
			limit = t.fullLen(in.Base)
		}
		if in.Keep < 0 || in.Keep > limit {
			return fmt.Errorf("call %d: input keeps %d of %d", i, in.Keep, limit)
		}
		added := len(in.AddedText)
		if tokens {
			added = len(in.Added)
		}
		if c.InputLen != in.Keep+added {
			return fmt.Errorf("call %d: input length %d is not %d kept + %d added", i, c.InputLen, in.Keep, added)
		}
		if c.Forced < 0 || c.Forced+c.Unsampled > len(c.Output) {
			return fmt.Errorf("call %d: %d forced and %d unsampled of %d tokens", i, c.Forced, c.Unsampled, len(c.Output))
		}
		if c.Unsampled < 0 || c.Unsampled > len(c.Output) {
			return fmt.Errorf("call %d: %d unsampled of %d tokens", i, c.Unsampled, len(c.Output))
		}
		if len(c.Logprobs) != 0 && len(c.Logprobs) != len(c.Output) {
			return fmt.Errorf("call %d: %d logprobs for %d tokens", i, len(c.Logprobs), len(c.Output))
		}
		if len(c.Versions) != 0 && len(c.Versions) != len(c.Output) {
			return fmt.Errorf("call %d: %d versions for %d tokens", i, len(c.Versions), len(c.Output))
		}
	}
	return nil
}

// Generations returns the text of every model call, in order: what the
// format gate of the reward checks.
func (t *Trajectory) Generations() []string {
	out := make([]string, len(t.Calls))
	for i := range t.Calls {
		out[i] = t.Calls[i].Text
	}
	return out
}

// Stats are per-trajectory counts for reports and metrics.
type Stats struct {
	Turns           int           `json:"turns"`            // act calls
	Calls           int           `json:"calls"`            // all model calls
	Searches        int           `json:"searches"`         // search tool calls
	Accesses        int           `json:"accesses"`         // access tool calls
	OtherTools      int           `json:"other_tools"`      // custom tool calls
	ToolErrors      int           `json:"tool_errors"`      // tool calls that failed
	GeneratedTokens int           `json:"generated_tokens"` // model tokens over all calls
	ContextTokens   int           `json:"context_tokens"`   // the longest input + output of a call
	ModelTime       time.Duration `json:"model_ns"`
	ToolTime        time.Duration `json:"tool_ns"`
}

// Stats counts what the trajectory did. In text modes, calls without
// token ids count their text as bytes/4 tokens.
func (t *Trajectory) Stats() Stats {
	var s Stats
	for i := range t.Calls {
		c := &t.Calls[i]
		s.Calls++
		if c.Purpose == PurposeAct {
			s.Turns++
		}
		n, in := len(c.Output), c.InputLen
		if t.Mode != ModeTokens {
			if n == 0 {
				n = estimateTokens(len(c.Text))
			}
			in = estimateTokens(in)
		}
		s.GeneratedTokens += n
		s.ContextTokens = max(s.ContextTokens, in+n)
		s.ModelTime += c.Latency
	}
	for i := range t.Tools {
		tc := &t.Tools[i]
		switch tc.Name {
		case KindSearch:
			s.Searches++
		case KindAccess:
			s.Accesses++
		default:
			s.OtherTools++
		}
		if tc.Error != "" {
			s.ToolErrors++
		}
		s.ToolTime += tc.Latency
	}
	return s
}
