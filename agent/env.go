package agent

import (
	"context"
	"log/slog"
	"time"

	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tools"
)

// Tokenizer is what the agent needs of a tokenizer; *tokenizer.Tokenizer
// implements it.
type Tokenizer interface {
	Encode(text string) []int
	Decode(ids []int) string
}

// ChatTemplate renders chat messages into a model's prompt text, ending
// with the generation prompt of the assistant turn.
type ChatTemplate interface {
	Render(msgs []llm.Message) (string, error)
}

// Env is what a workflow runs against. One Env may serve many concurrent
// runs; the agent never modifies it.
type Env struct {
	Sampler llm.Sampler
	// Tokenizer switches on token mode: the context is kept as token ids,
	// calls send InputIDs, and the trajectory is trainable. Without one the
	// agent works on text (ModeText).
	Tokenizer Tokenizer
	// Template renders chat prompts (the reasoning agent). Without one, a
	// chat-style agent sends chat messages and the server applies its own
	// template (ModeChat).
	Template ChatTemplate
	// Search and Browse are the tools; a nil tool answers every call with
	// an error observation.
	Search tools.Searcher
	Browse tools.Browser
	// Sampling holds temperature, top-p, top-k and seed; the agent sets the
	// stop strings, stop tokens and token budget of each call itself.
	Sampling llm.Params
	// StopTokenIDs end generation (EOS, <|im_end|>). The agent enforces
	// them even when the backend does not.
	StopTokenIDs []int
	Limits       Limits
	Log          *slog.Logger
	// OnStep, when set, is called after every model call and tool call
	// (from the goroutine running the agent), for live progress.
	OnStep func(Step)
	// Explore, when set, is an exploration intervention for training
	// rollouts (rl.explore); evaluations leave it zero.
	Explore Explore
}

// Explore makes an agent try more than it would on its own, so that
// behaviour it rarely samples occurs often enough for RL to reinforce it.
// It is not a demonstration: the agent only decides that the model
// searches again; the query is the model's own, sampled and trained on
// like any other output. The built-in search agent honours it; other
// workflows may ignore it.
type Explore struct {
	// MinSearches: an answer the model begins before it has made this
	// many searches is cut at its answer tag, and the search tag is
	// written in its place as prompt (loss mask 0, like tool output); the
	// model then writes the query. The cut answer is in no context and is
	// not trained on. At most once per turn, and never on the last turn
	// (the search could not be followed by an answer). 0 is off.
	MinSearches int `json:"min_searches,omitempty"`
	// TrainTag records the forced search tag as output the exploring
	// policy wrote with probability 1 (behaviour logprob 0, marked in
	// Sequence.Forced) instead of as prompt, so that the loss can credit
	// the decision to search again (rl.explore.tag_loss).
	TrainTag bool `json:"train_tag,omitempty"`
}

// Step is one model call or tool call that just finished. The pointers
// are valid only during the callback.
type Step struct {
	Trajectory string
	Turn       int
	Call       *Call     // a model call, or nil
	Tool       *ToolCall // a tool call (its observation not yet set), or nil
}

// Limits bound one run. Every limit is enforced by the agent for every
// backend, whatever the backend itself honours.
type Limits struct {
	// MaxTurns caps act calls (default 128). Read calls (notes on search
	// results and page parts) are not turns; they are bounded by the page
	// part limit and by MaxContextTokens.
	MaxTurns int `json:"max_turns" yaml:"max_turns"`
	// MaxContextTokens caps prompt + generated tokens of every call
	// (default 32768). A call's budget shrinks to fit; when fewer than
	// MinCallTokens remain the run ends with EndContext. In text modes
	// without a tokenizer, tokens are estimated as bytes/4.
	MaxContextTokens int `json:"max_context_tokens" yaml:"max_context_tokens"`
	// MaxCallTokens caps the tokens of one call (default 4096).
	MaxCallTokens int `json:"max_call_tokens" yaml:"max_call_tokens"`
	// MinCallTokens is the smallest budget worth a call (default 16).
	MinCallTokens int `json:"min_call_tokens" yaml:"min_call_tokens"`
	// ToolTimeout bounds one tool call, including a tool that ignores its
	// context (default 60s).
	ToolTimeout time.Duration `json:"tool_timeout" yaml:"tool_timeout"`
	// MaxAborts bounds how often in a row a generation is retried after
	// the backend aborted it without producing a token (default 8).
	// Aborts with partial output are always continued.
	MaxAborts int `json:"max_aborts" yaml:"max_aborts"`
}

// Defaults of Limits.
const (
	DefaultMaxTurns         = 128
	DefaultMaxContextTokens = 32768
	DefaultMaxCallTokens    = 4096
	DefaultMinCallTokens    = 16
	DefaultToolTimeout      = 60 * time.Second
	DefaultMaxAborts        = 8
)

// WithDefaults fills zero fields with the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxTurns <= 0 {
		l.MaxTurns = DefaultMaxTurns
	}
	if l.MaxContextTokens <= 0 {
		l.MaxContextTokens = DefaultMaxContextTokens
	}
	if l.MaxCallTokens <= 0 {
		l.MaxCallTokens = DefaultMaxCallTokens
	}
	if l.MinCallTokens <= 0 {
		l.MinCallTokens = DefaultMinCallTokens
	}
	if l.ToolTimeout <= 0 {
		l.ToolTimeout = DefaultToolTimeout
	}
	if l.MaxAborts <= 0 {
		l.MaxAborts = DefaultMaxAborts
	}
	return l
}

// Task is one question to run.
type Task struct {
	// ID names the question (a dataset row id); Sample tells the k samples
	// of one question apart.
	ID       string `json:"id"`
	Sample   int    `json:"sample"`
	Question string `json:"question"`
	// Answers are the gold answers, for rewards; the agent never shows them
	// to the model.
	Answers []string `json:"answers,omitempty"`
	// Seed, when set, replaces Env.Sampling.Seed for this run.
	Seed *int64 `json:"seed,omitempty"`
	// MayBeInvalid offers the model "the question is invalid" as an answer
	// (ValidityMayBeInvalid); training uses it for the invalid-question
	// penalty. Evaluation leaves it false.
	MayBeInvalid bool `json:"may_be_invalid,omitempty"`
	// Date is today's date for prompts that mention it; empty uses the
	// current date.
	Date string `json:"date,omitempty"`
}

// Workflow is an agent: it turns a task into a trajectory using the
// sampler and tools of env. Runners (ask, eval, synth, train) accept any
// Workflow. Run returns the trajectory even when it also returns an error
// (the model server failed, ctx was cancelled): the trajectory then says
// how far it got. Tool failures are not errors; the model sees them.
type Workflow interface {
	Name() string
	Run(ctx context.Context, env *Env, task Task) (*Trajectory, error)
}

// Rewarder is implemented by workflows with a reward of their own; runners
// that train use it instead of the default answer reward.
type Rewarder interface {
	Reward(ctx context.Context, task Task, traj *Trajectory) (float64, error)
}

// DefaultStopTokenIDs returns the ids of the end-of-turn and end-of-text
// tokens that tok knows (Qwen's <|im_end|> and <|endoftext|>).
func DefaultStopTokenIDs(tok interface{ TokenID(string) (int, bool) }) []int {
	var ids []int
	for _, s := range []string{"<|im_end|>", "<|endoftext|>"} {
		if id, ok := tok.TokenID(s); ok {
			ids = append(ids, id)
		}
	}
	return ids
}

// taskDate is the date prompts mention.
func taskDate(t Task) string {
	if t.Date != "" {
		return t.Date
	}
	return time.Now().Format("2006-01-02")
}
