// Package rl is asearcher's fully asynchronous RL controller, after AReaL:
// rollouts run continuously against llm.Samplers while a trainer.Trainer
// consumes finished groups. Staleness is bounded by AReaL's admission rule
// plus a deadline-aware batch selection, generation is interruptible, the
// loss is decoupled PPO expressed through Tinker's ppo loss, and the whole
// state checkpoints atomically so a killed run resumes without losing or
// repeating a batch.
package rl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/asearcher/asearcher/llm"
)

// Sequence is one training sequence of a trajectory: a token run in which
// model-generated tokens carry their behaviour logprob and the weight version
// that produced them. Multi-turn trajectories whose prompts stop extending
// each other by prefix yield several sequences.
type Sequence struct {
	Tokens []int `json:"tokens"`
	// LossMask[i] is true exactly on model-generated tokens.
	LossMask []bool `json:"loss_mask"`
	// Logprobs[i] is the behaviour logprob of Tokens[i]; 0 where masked.
	Logprobs []float32 `json:"logprobs"`
	// Versions[i] is the weight version that generated Tokens[i]; -1 where
	// masked.
	Versions []int `json:"versions"`
	// LogprobMissing[i] is true on generated tokens whose behaviour logprob
	// the backend did not return (Logprobs[i] is then a meaningless 0); nil
	// when every generated token has one. Such tokens are never trained on
	// as they are: the loss recomputes them or the sample is rejected
	// (LossConfig.MissingLogprobs).
	LogprobMissing []bool `json:"logprob_missing,omitempty"`
	// Forced[i] is true on generated tokens that exploration wrote
	// (rl.explore.train_tag): behaviour logprob 0, probability 1 under the
	// exploring policy; LossConfig.ForcedTokens says how they are weighed.
	// nil when there are none.
	Forced []bool `json:"forced,omitempty"`
}

// ErrMissingLogprobs marks a sample rejected because some generated token
// has no behaviour logprob.
var ErrMissingLogprobs = errors.New("generated tokens have no behaviour logprob (the sampler did not return logprobs)")

// logprobSlack tolerates rounding in a server's log-softmax: a logprob can
// come back a hair above 0, never meaningfully so.
const logprobSlack = 1e-3

// Validate checks the alignment rules every sequence must obey, and that
// every generated token has a usable behaviour logprob (finite, ≤ 0) or is
// marked missing.
func (s *Sequence) Validate() error {
	n := len(s.Tokens)
	if len(s.LossMask) != n || len(s.Logprobs) != n || len(s.Versions) != n {
		return fmt.Errorf("sequence lengths differ: tokens %d, mask %d, logprobs %d, versions %d",
			n, len(s.LossMask), len(s.Logprobs), len(s.Versions))
	}
	if s.LogprobMissing != nil && len(s.LogprobMissing) != n {
		return fmt.Errorf("sequence lengths differ: tokens %d, logprob_missing %d", n, len(s.LogprobMissing))
	}
	if s.Forced != nil && len(s.Forced) != n {
		return fmt.Errorf("sequence lengths differ: tokens %d, forced %d", n, len(s.Forced))
	}
	for i, f := range s.Forced {
		if f && !s.LossMask[i] {
			return fmt.Errorf("token %d is not generated but is marked as written by exploration", i)
		}
	}
	for i, m := range s.LossMask {
		if m && s.Versions[i] < 0 {
			return fmt.Errorf("token %d is generated but has version %d", i, s.Versions[i])
		}
		if !m && s.Versions[i] != -1 {
			return fmt.Errorf("token %d is not generated but has version %d", i, s.Versions[i])
		}
		if s.missing(i) {
			if !m {
				return fmt.Errorf("token %d is not generated but is marked as missing its logprob", i)
			}
			continue
		}
		if lp := float64(s.Logprobs[i]); m && (math.IsNaN(lp) || math.IsInf(lp, 0) || lp > logprobSlack) {
			return fmt.Errorf("token %d has behaviour logprob %v: want a finite number ≤ 0", i, lp)
		}
	}
	return nil
}

// missing says whether token i lacks its behaviour logprob.
func (s *Sequence) missing(i int) bool {
	return s.LogprobMissing != nil && s.LogprobMissing[i]
}

// MissingLogprobs counts generated tokens without a behaviour logprob.
func (s *Sequence) MissingLogprobs() int {
	n := 0
	for i := range s.LogprobMissing {
		if s.LogprobMissing[i] && s.LossMask[i] {
			n++
		}
	}
	return n
}

// Generated counts the loss-masked tokens.
func (s *Sequence) Generated() int {
	n := 0
	for _, m := range s.LossMask {
		if m {
			n++
		}
	}
	return n
}

// Sample is one finished trajectory as the trainer sees it.
type Sample struct {
	Sequences []Sequence `json:"sequences"`
	// Reward is the scalar training reward of the whole trajectory.
	Reward float64 `json:"reward"`
	// Score is the task metric (e.g. exact match) reported as accuracy.
	Score float64 `json:"score"`
	// Turns and ToolCalls describe the episode for metrics.
	Turns     int `json:"turns"`
	ToolCalls int `json:"tool_calls"`
	// Searches and Accesses count the search and page tool calls among
	// ToolCalls, for the per-group behaviour curves.
	Searches int `json:"searches,omitempty"`
	Accesses int `json:"accesses,omitempty"`
	// Record is the full trajectory as JSON, saved in per-step sample dumps.
	Record json.RawMessage `json:"record,omitempty"`
	// Temperature is the sampling temperature the behaviour logprobs are
	// at; the loss computes its logprobs at the same temperature. 0 means
	// 1 (not recorded, or greedy decoding).
	Temperature float64 `json:"temperature,omitempty"`
	// TimedOut says the trajectory was cut at the per-trajectory time
	// limit (Config.TrajectoryTimeoutS) and scored as one that never
	// answered.
	TimedOut bool `json:"timed_out,omitempty"`
	// Explored says the rollout ran under rl.explore; ForcedSearches
	// counts the searches whose tag the exploration wrote.
	Explored       bool `json:"explored,omitempty"`
	ForcedSearches int  `json:"forced_searches,omitempty"`
}

// MissingLogprobs counts generated tokens without a behaviour logprob.
func (s *Sample) MissingLogprobs() int {
	n := 0
	for i := range s.Sequences {
		n += s.Sequences[i].MissingLogprobs()
	}
	return n
}

// MinVersion is the oldest weight version among the generated tokens (the
// "head" version), or -1 when nothing was generated.
func (s *Sample) MinVersion() int {
	minV := -1
	for i := range s.Sequences {
		for j, v := range s.Sequences[i].Versions {
			if s.Sequences[i].LossMask[j] && (minV < 0 || v < minV) {
				minV = v
			}
		}
	}
	return minV
}

// GeneratedTokens counts loss-masked tokens over all sequences.
func (s *Sample) GeneratedTokens() int {
	n := 0
	for i := range s.Sequences {
		n += s.Sequences[i].Generated()
	}
	return n
}

// Question is one dataset item handed to a rollout. Index is its position in
// the controller's infinite data stream and identifies it across restarts.
type Question struct {
	Index   int64 `json:"index"`
	ID      string
	Payload any
	// Group is the question's group when the dataset is a GroupedDataset
	// (a hop count, a HotpotQA type); empty otherwise.
	Group string `json:"group,omitempty"`
	// Version is the weight version the question's group was admitted
	// at, i.e. about the training step (schedules such as rl.explore's
	// read it).
	Version int `json:"version,omitempty"`
}

// Rollout runs one trajectory for a question against a sampler. It is the
// seam to the agent runtime: question + sampler in, trajectory + reward out.
// sample is the index within the group (0..G-1) and seed a per-trajectory
// seed derived from the run seed.
type Rollout interface {
	Run(ctx context.Context, q Question, sampler llm.Sampler, sample int, seed int64) (*Sample, error)
}

// RolloutFunc adapts a function to Rollout.
type RolloutFunc func(ctx context.Context, q Question, sampler llm.Sampler, sample int, seed int64) (*Sample, error)

// Run calls f.
func (f RolloutFunc) Run(ctx context.Context, q Question, s llm.Sampler, sample int, seed int64) (*Sample, error) {
	return f(ctx, q, s, sample, seed)
}

// Dataset is the finite question set the controller cycles through in a
// seeded shuffled order, one permutation per epoch.
type Dataset interface {
	Len() int
	// Question returns item i (0 ≤ i < Len()).
	Question(i int) (id string, payload any)
}

// GroupedDataset is a Dataset whose questions belong to groups named by
// one attribute (GroupBy, e.g. "hops", with Group values "1", "2", ...).
// The controller then reports accuracy, turns, searches and tool calls per
// group for every step (StepRecord.ByGroup) and draws them in plots.html,
// so that a behaviour RL grows on one kind of question shows apart from
// the others.
type GroupedDataset interface {
	Dataset
	GroupBy() string
	// Group returns item i's group (0 ≤ i < Len()).
	Group(i int) string
}
