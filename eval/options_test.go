package eval

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/dataset"
	"github.com/asearcher/asearcher/tools"
)

// worldSearcher is one question's own corpus: it knows a single fact.
type worldSearcher struct{ fact string }

func (w worldSearcher) Search(ctx context.Context, query string, topk int) ([]tools.SearchResult, error) {
	return []tools.SearchResult{{Text: w.fact}}, nil
}

// lookupAgent answers with what its environment's search returns, and
// notes the sampling and limits it ran under and the seed it was given.
type lookupAgent struct {
	mu   sync.Mutex
	seen map[string]string // "id/sample" → "temperature maxturns seed wrapped"
}

func (a *lookupAgent) Name() string { return "lookup" }
func (a *lookupAgent) Run(ctx context.Context, env *agent.Env, task agent.Task) (*agent.Trajectory, error) {
	res, err := env.Search.Search(ctx, task.Question, 1)
	if err != nil {
		return nil, err
	}
	_, wrapped := env.Search.(*limitedSearcher)
	a.mu.Lock()
	a.seen[fmt.Sprintf("%s/%d", task.ID, task.Sample)] = fmt.Sprintf("%g %d %d %v", env.Sampling.Temperature, env.Limits.MaxTurns, *task.Seed, wrapped)
	a.mu.Unlock()
	return &agent.Trajectory{Question: task.Question, Agent: "lookup", Answer: res[0].Text, Answered: true, End: agent.EndAnswer,
		Tools: []agent.ToolCall{{Name: agent.KindSearch}}}, nil
}

// TestInMemorySetsEnvForSeed: Options.Sets, EnvFor and Seed let a program
// evaluate data it made, each question on its own tools, with its own
// seeds; Config's sampling and limits still apply, and a rerun resumes.
func TestInMemorySetsEnvForSeed(t *testing.T) {
	set := &dataset.Set{Name: "mem", Source: "test:mem", SHA256: "abc"}
	for i, ans := range []string{"Paris", "Rome", "Oslo"} {
		set.Items = append(set.Items, dataset.Item{ID: fmt.Sprintf("q%d", i), Question: "capital?", Answers: []string{ans}, Index: i})
	}
	cfg := DefaultConfig()
	cfg.Out = filepath.Join(t.TempDir(), "run")
	cfg.Agent, cfg.K, cfg.Concurrency, cfg.MaxAttempts, cfg.Bootstrap = "lookup", 2, 2, 1, 50
	cfg.Temperature, cfg.Limits.MaxTurns, cfg.Limit = 0.25, 7, 2
	la := &lookupAgent{seen: map[string]string{}}
	reg := agent.NewRegistry()
	reg.Register("lookup", func(agent.Options) (agent.Workflow, error) { return la, nil })
	var calls sync.Map
	opts := Options{Progress: ProgressOff, Registry: reg, Sets: []*dataset.Set{set},
		EnvFor: func(s *dataset.Set, it *dataset.Item) (*agent.Env, error) {
			calls.Store(it.ID, true)
			// Its own sampling and limits, which Config's replace.
			return &agent.Env{Search: worldSearcher{fact: it.Answers[0]}, Limits: agent.Limits{MaxTurns: 99}}, nil
		},
		Seed: func(name string, index, sample int) int64 { return int64(1000*index + sample) },
	}
	rep, err := Run(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if em := rep.Overall.Metrics[metricEM]; em.Avg != 1 {
		t.Fatalf("EM %+v: each question should have run on its own tools", em)
	}
	if len(set.Items) != 3 {
		t.Fatalf("Limit changed the caller's set: %d items", len(set.Items))
	}
	recs, err := ReadResults(filepath.Join(cfg.Out, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 {
		t.Fatalf("%d records, want 2 questions × 2 samples", len(recs))
	}
	for _, r := range recs {
		want := int64(1000*r.Index + r.Sample)
		if r.Dataset != "mem" || r.Seed != want {
			t.Fatalf("record %s/%d: dataset %q seed %d, want mem and %d", r.ID, r.Sample, r.Dataset, r.Seed, want)
		}
		got := la.seen[fmt.Sprintf("%s/%d", r.ID, r.Sample)]
		if w := fmt.Sprintf("0.25 7 %d true", want); got != w {
			t.Fatalf("agent saw %q, want %q (Config's sampling and limits, the hook's seed, the run-wide caps)", got, w)
		}
	}
	if _, ok := calls.Load("q2"); ok {
		t.Fatal("EnvFor was called for a question past Limit")
	}
	// A rerun finds everything done and runs nothing.
	la.seen = map[string]string{}
	if _, err := Run(context.Background(), cfg, opts); err != nil {
		t.Fatal(err)
	}
	if len(la.seen) != 0 {
		t.Fatalf("resume ran %d samples again", len(la.seen))
	}
	// Different data under the same name is another configuration.
	changed := *set
	changed.SHA256 = "def"
	opts.Sets = []*dataset.Set{&changed}
	if _, err := Run(context.Background(), cfg, opts); err == nil || !strings.Contains(err.Error(), "different configuration") {
		t.Fatalf("changed set accepted: %v", err)
	}
}

func TestInMemoryOptionErrors(t *testing.T) {
	set := &dataset.Set{Name: "mem", Items: []dataset.Item{{ID: "a", Question: "q", Answers: []string{"x"}}}}
	env := func(*dataset.Set, *dataset.Item) (*agent.Env, error) { return &agent.Env{}, nil }
	reg := agent.NewRegistry()
	reg.Register("gold", func(agent.Options) (agent.Workflow, error) { return goldAgent{}, nil })
	base := func(t *testing.T) Config {
		cfg := DefaultConfig()
		cfg.Out, cfg.Agent, cfg.MaxAttempts = filepath.Join(t.TempDir(), "run"), "gold", 1
		return cfg
	}
	for _, tc := range []struct {
		name string
		cfg  func(*Config)
		opts Options
		want string
	}{
		{"sets and data", func(c *Config) { c.Data = []string{"x.jsonl"} }, Options{Sets: []*dataset.Set{set}, EnvFor: env}, "datasets given twice"},
		{"env and envfor", nil, Options{Sets: []*dataset.Set{set}, EnvFor: env, Env: &agent.Env{}}, "not both"},
		{"no env", nil, Options{Sets: []*dataset.Set{set}}, "no model"},
		{"same name", nil, Options{Sets: []*dataset.Set{set, set}, EnvFor: env}, "both named"},
		{"duplicate id", nil, Options{Sets: []*dataset.Set{{Name: "d", Items: []dataset.Item{{ID: "a"}, {ID: "a"}}}}, EnvFor: env}, "appears twice"},
		{"empty set", nil, Options{Sets: []*dataset.Set{{Name: "e"}}, EnvFor: env}, "no questions"},
		{"nil set", nil, Options{Sets: []*dataset.Set{nil}, EnvFor: env}, "nil"},
		{"envfor fails", nil, Options{Sets: []*dataset.Set{set}, EnvFor: func(*dataset.Set, *dataset.Item) (*agent.Env, error) {
			return nil, errors.New("world gone")
		}}, "world gone"},
		{"envfor gives none", nil, Options{Sets: []*dataset.Set{set}, EnvFor: func(*dataset.Set, *dataset.Item) (*agent.Env, error) {
			return nil, nil
		}}, "returned none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base(t)
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			tc.opts.Registry, tc.opts.Progress = reg, ProgressOff
			_, err := Run(context.Background(), cfg, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}
