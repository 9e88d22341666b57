package rl

import (
	"context"
	"testing"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tokenizer"
	"github.com/asearcher/asearcher/tools"
)

// oneHitSearch answers every query with one passage.
type oneHitSearch struct{ text string }

func (s oneHitSearch) Search(ctx context.Context, query string, topk int) ([]tools.SearchResult, error) {
	return []tools.SearchResult{{ID: "1", Title: "Favok", Text: s.text}}, nil
}

// halfCredit is a custom workflow: the tiny search agent with a reward of
// its own (agent.Rewarder).
type halfCredit struct{ *agent.SearchAgent }

func (halfCredit) Reward(ctx context.Context, task agent.Task, traj *agent.Trajectory) (float64, error) {
	if traj.Answered {
		return 0.5, nil
	}
	return 0, nil
}

func TestWorkflowRolloutTrainsACustomWorkflow(t *testing.T) {
	tok, err := tokenizer.Train([]string{"Where does Favok live? <search> Favok </search> Favok lives in Mipa. <answer> Mipa </answer>"},
		tokenizer.TrainOptions{VocabSize: 320})
	if err != nil {
		t.Fatal(err)
	}
	inner, err := agent.NewSearchAgent(agent.TinyConfig())
	if err != nil {
		t.Fatal(err)
	}
	eos := agent.DefaultStopTokenIDs(tok)
	replies := []string{"<search> Favok </search>", "<answer> Mipa </answer>"}
	env := func(q Question) (*agent.Env, agent.Task, error) {
		return &agent.Env{Tokenizer: tok, StopTokenIDs: eos, Search: oneHitSearch{"Favok lives in Mipa."}},
			agent.Task{ID: q.ID, Question: "Where does Favok live?", Answers: []string{"Mipa"}}, nil
	}
	q := Question{Index: 7, ID: "q7"}
	for _, tc := range []struct {
		name string
		r    WorkflowRollout
		want float64
	}{
		{"exact match by default", WorkflowRollout{Workflow: inner, Env: env}, 1},
		{"the workflow's own reward", WorkflowRollout{Workflow: halfCredit{inner}, Env: env}, 0.5},
		{"an explicit reward wins", WorkflowRollout{Workflow: halfCredit{inner}, Env: env,
			Reward: func(context.Context, agent.Task, *agent.Trajectory) (float64, error) { return 0.25, nil }}, 0.25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &agent.ScriptedSampler{Tokenizer: tok, Replies: replies, EOS: eos[0]}
			out, err := tc.r.Run(context.Background(), q, s, 3, 42)
			if err != nil {
				t.Fatal(err)
			}
			// The reward is the workflow's; accuracy stays exact match.
			if out.Reward != tc.want || out.Score != 1 {
				t.Fatalf("reward %v score %v, want %v and 1", out.Reward, out.Score, tc.want)
			}
			if out.ToolCalls != 1 || out.Turns != 2 || out.Searches != 1 || out.Accesses != 0 {
				t.Fatalf("turns %d tool calls %d searches %d accesses %d, want 2, 1, 1 and 0", out.Turns, out.ToolCalls, out.Searches, out.Accesses)
			}
			if len(out.Sequences) != 1 {
				t.Fatalf("%d sequences, want 1 (the calls share a prefix)", len(out.Sequences))
			}
			// The loss mask covers exactly the scripted replies' tokens.
			sq := out.Sequences[0]
			var gen []int
			for i, m := range sq.LossMask {
				if m {
					gen = append(gen, sq.Tokens[i])
				}
			}
			// Both replies end at a stop string, so no EOS is appended.
			want := append(tok.Encode(replies[0]), tok.Encode(replies[1])...)
			if got := tok.Decode(gen); got != tok.Decode(want) {
				t.Fatalf("model tokens %q, want %q", got, tok.Decode(want))
			}
			if s.Used() != 2 {
				t.Fatalf("sampler used %d times, want 2", s.Used())
			}
		})
	}
	if _, err := (WorkflowRollout{}).Run(context.Background(), q, nil, 0, 0); err == nil {
		t.Fatal("a rollout without a workflow ran")
	}
}

// TestWorkflowRolloutExplores checks rl.explore end to end through the
// workflow rollout: the exploring samples of a group (the first
// round(fraction·G)) get their early answer replaced by a search, the
// others answer as the model did, and WithExplore refuses a rollout that
// cannot explore.
func TestWorkflowRolloutExplores(t *testing.T) {
	tok, err := tokenizer.Train([]string{"Where does the mentor of Favok live? <search> Favok </search> Favok is mentored by Lomel. <answer> Mipa </answer>"},
		tokenizer.TrainOptions{VocabSize: 320})
	if err != nil {
		t.Fatal(err)
	}
	wf, err := agent.NewSearchAgent(agent.TinyConfig())
	if err != nil {
		t.Fatal(err)
	}
	eos := agent.DefaultStopTokenIDs(tok)
	env := func(q Question) (*agent.Env, agent.Task, error) {
		return &agent.Env{Tokenizer: tok, StopTokenIDs: eos, Search: oneHitSearch{"Favok is mentored by Lomel."}},
			agent.Task{ID: q.ID, Question: "Where does the mentor of Favok live?", Answers: []string{"Mipa"}}, nil
	}
	cfg := DefaultConfig()
	cfg.GroupSize = 4
	cfg.Explore = ExploreConfig{Fraction: 0.5, MinSearches: 2}
	r, err := WithExplore(WorkflowRollout{Workflow: wf, Env: env}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for sample, explores := range []bool{true, true, false, false} {
		replies := []string{"<search> Favok </search>", "<answer> Oslo </answer>", " Lomel </search>", "<answer> Mipa </answer>"}
		wantSearches, wantScore := 2, 1.0
		if !explores {
			replies, wantSearches, wantScore = replies[:2], 1, 0
		}
		s := &agent.ScriptedSampler{Tokenizer: tok, Replies: replies, EOS: eos[0]}
		out, err := r.Run(context.Background(), Question{Index: 1, ID: "q1"}, s, sample, 42)
		if err != nil {
			t.Fatal(err)
		}
		if out.Explored != explores || out.Searches != wantSearches || out.Score != wantScore {
			t.Errorf("sample %d: explored %v searches %d score %v, want %v, %d and %v", sample, out.Explored, out.Searches, out.Score,
				explores, wantSearches, wantScore)
		}
		if wantForced := map[bool]int{true: 1}[explores]; out.ForcedSearches != wantForced {
			t.Errorf("sample %d: %d forced searches, want %d", sample, out.ForcedSearches, wantForced)
		}
	}
	if _, err := WithExplore(RolloutFunc(func(context.Context, Question, llm.Sampler, int, int64) (*Sample, error) { return nil, nil }), cfg); err == nil {
		t.Error("WithExplore accepted a rollout that cannot explore")
	}
	cfg.Explore = ExploreConfig{}
	if _, err := WithExplore(RolloutFunc(func(context.Context, Question, llm.Sampler, int, int64) (*Sample, error) { return nil, nil }), cfg); err != nil {
		t.Errorf("exploration off: %v", err)
	}
}

func TestExploreConfig(t *testing.T) {
	for _, tc := range []struct {
		e       ExploreConfig
		ok      bool
		explore []bool // samples 0..7 of a group of 8
	}{
		{ExploreConfig{}, true, []bool{false, false, false, false, false, false, false, false}},
		{ExploreConfig{Fraction: 0.5, MinSearches: 2}, true, []bool{true, true, true, true, false, false, false, false}},
		{ExploreConfig{Fraction: 0.3, MinSearches: 2}, true, []bool{true, true, false, false, false, false, false, false}},
		{ExploreConfig{Fraction: 1, MinSearches: 1}, true, []bool{true, true, true, true, true, true, true, true}},
		{ExploreConfig{Fraction: 0.5}, false, nil},
		{ExploreConfig{Fraction: 1.5, MinSearches: 2}, false, nil},
		{ExploreConfig{Fraction: -0.1, MinSearches: 2}, false, nil},
		{ExploreConfig{Fraction: 0.5, MinSearches: -1}, false, nil},
	} {
		c := DefaultConfig()
		c.Explore = tc.e
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: Validate() = %v, want ok %v", tc.e, err, tc.ok)
		}
		for i, want := range tc.explore {
			if got := tc.e.Explores(i, 8, 0); got != want {
				t.Errorf("%+v: sample %d explores %v, want %v", tc.e, i, got, want)
			}
		}
	}
}
