package rl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/reward"
)

// WorkflowRollout trains any agent.Workflow: it is the controller's Rollout
// for agents written against the agent package (docs/custom-agent.md), so a
// custom agent needs no change to the controller. The workflow must run in
// token mode (Env.Tokenizer set) for its trajectory to be trainable.
type WorkflowRollout struct {
	Workflow agent.Workflow
	// Env returns the environment and task of a question. The rollout sets
	// the environment's Sampler to the controller's sampler, and the task's
	// Sample and Seed; the returned Env is copied, never modified.
	Env func(q Question) (*agent.Env, agent.Task, error)
	// Reward, when set, scores trajectories for training. Otherwise a workflow that
	// implements agent.Rewarder scores its own, and any other workflow gets
	// exact match of its answer against the task's answers (0 when it did
	// not answer).
	Reward func(ctx context.Context, task agent.Task, traj *agent.Trajectory) (float64, error)
	// Explore, with GroupSize (the controller's rl.group_size), sets
	// agent.Env.Explore in the exploring part of each group.
	Explore   ExploreConfig
	GroupSize int
}

// Run implements Rollout.
func (w WorkflowRollout) Run(ctx context.Context, q Question, s llm.Sampler, sample int, seed int64) (*Sample, error) {
	if w.Workflow == nil || w.Env == nil {
		return nil, errors.New("workflow rollout: Workflow and Env must be set")
	}
	tmpl, task, err := w.Env(q)
	if err != nil {
		return nil, fmt.Errorf("question %s: %w", q.ID, err)
	}
	env := *tmpl
	env.Sampler = s
	task.Sample, task.Seed = sample, &seed
	explored := w.Explore.Explores(sample, w.GroupSize, q.Version)
	if explored {
		env.Explore = agent.Explore{MinSearches: w.Explore.MinSearches, TrainTag: w.Explore.TrainTag}
	}
	traj, err := w.Workflow.Run(ctx, &env, task)
	timedOut := false
	if err != nil {
		// Cut at the controller's per-trajectory time limit: the tokens
		// generated so far are kept and the trajectory is scored as one
		// that never answered. Any other error fails the trajectory.
		if traj == nil || !errors.Is(context.Cause(ctx), errTrajectoryTimeout) {
			return nil, err
		}
		timedOut = true
		traj.Answered, traj.Answer = false, ""
		// The reward runs after the limit; it gets a short grace of its own.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timedOutRewardGrace)
		defer cancel()
		ctx = sctx
	}
	score, err := w.score(ctx, task, traj)
	if err != nil {
		return nil, fmt.Errorf("question %s: reward: %w", q.ID, err)
	}
	seqs, err := traj.Sequences()
	if err != nil {
		return nil, fmt.Errorf("trajectory %s: %w", traj.ID, err)
	}
	st := traj.Stats()
	out := &Sample{Reward: score, Score: accuracy(task, traj, score), Turns: len(traj.Calls), ToolCalls: len(traj.Tools),
		Searches: st.Searches, Accesses: st.Accesses, Temperature: env.Sampling.Temperature, TimedOut: timedOut,
		Explored: explored, ForcedSearches: forcedSearches(traj)}
	for _, sq := range seqs {
		out.Sequences = append(out.Sequences, fromAgentSequence(sq))
	}
	// The record is for humans reading sample dumps; a trajectory that does
	// not marshal must not cost the training sample.
	out.Record, _ = json.Marshal(traj)
	return out, nil
}

// forcedSearches counts the searches whose tag exploration wrote.
func forcedSearches(t *agent.Trajectory) int {
	n := 0
	for i := range t.Tools {
		if t.Tools[i].Forced {
			n++
		}
	}
	return n
}

func (w WorkflowRollout) score(ctx context.Context, task agent.Task, traj *agent.Trajectory) (float64, error) {
	if w.Reward != nil {
		return w.Reward(ctx, task, traj)
	}
	if r, ok := w.Workflow.(agent.Rewarder); ok {
		return r.Reward(ctx, task, traj)
	}
	return exactMatch(task, traj), nil
}

// accuracy is the metric reported as accuracy: exact match when the task
// has gold answers, so that shaped rewards (format penalties, F1, a
// workflow's own reward) do not blur it; the reward otherwise.
func accuracy(task agent.Task, traj *agent.Trajectory, rew float64) float64 {
	if len(task.Answers) == 0 {
		return rew
	}
	return exactMatch(task, traj)
}

// exactMatch scores the trajectory's answer against the task's; no answer
// scores 0.
func exactMatch(task agent.Task, traj *agent.Trajectory) float64 {
	if !traj.Answered {
		return 0
	}
	return reward.EM(traj.Answer, task.Answers)
}

// timedOutRewardGrace bounds the reward of a trajectory cut at the time
// limit (an LLM judge could otherwise hold the group again).
const timedOutRewardGrace = 30 * time.Second

// fromAgentSequence converts the agent's training sequence to the
// controller's; unknown versions of generated tokens (a backend that does
// not stamp them) stay an error for Validate to report, and logprobs the
// backend did not return stay marked missing.
func fromAgentSequence(sq agent.Sequence) Sequence {
	n := len(sq.Tokens)
	s := Sequence{Tokens: sq.Tokens, LossMask: make([]bool, n), Logprobs: sq.Logprobs, Versions: sq.Versions,
		LogprobMissing: sq.LogprobMissing, Forced: sq.Forced}
	for i, m := range sq.LossMask {
		s.LossMask[i] = m == 1
	}
	return s
}

// WithExplore sets r up for cfg.Explore: a WorkflowRollout explores in
// the configured part of each group. With exploration on, any other
// Rollout is an error rather than a setting silently ignored.
func WithExplore(r Rollout, cfg Config) (Rollout, error) {
	if (cfg.Explore.Fraction == 0 && cfg.Explore.FractionAfter == 0) || cfg.Explore.MinSearches == 0 {
		return r, nil
	}
	w, ok := r.(WorkflowRollout)
	if !ok {
		return nil, fmt.Errorf("rl.explore: the rollout %T cannot explore (only agent workflows run through rl.WorkflowRollout can)", r)
	}
	w.Explore, w.GroupSize = cfg.Explore, cfg.GroupSize
	return w, nil
}
