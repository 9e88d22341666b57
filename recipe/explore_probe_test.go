package recipe

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/rl"
)

// TestExploreProbe measures what exploration would give RL to reinforce,
// on the held-out 2-hop questions of a demo run directory whose warm-up
// is done (ASEARCHER_EXPLORE_PROBE=RUN_DIR): with Explore.MinSearches 2,
// how often the forced query is the mentor's name (the chain RL has to
// find) or the question's name again, and how often the rollout is right.
// A diagnostic, not a check: it logs the counts.
func TestExploreProbe(t *testing.T) {
	dir := os.Getenv("ASEARCHER_EXPLORE_PROBE")
	if dir == "" {
		t.Skip("set ASEARCHER_EXPLORE_PROBE=RUN_DIR (a demo run with its warm-up done)")
	}
	ctx := context.Background()
	cfg, err := LoadDemoConfig(filepath.Join(dir, demoConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	evalW, err := buildWorlds(ctx, t.TempDir(), &cfg, setHeldOut, cfg.World.EvalWorlds)
	if err != nil {
		t.Fatal(err)
	}
	defer closeWorlds(evalW)
	modelDir := filepath.Join(dir, demoModelDir)
	w0, tok, err := engine.OpenModelDir(modelDir)
	if err != nil {
		t.Fatal(err)
	}
	stops := engine.StopTokens(modelDir, w0.Config, tok)
	weights := filepath.Join(dir, demoWarmupModel)
	if m := os.Getenv("ASEARCHER_EXPLORE_PROBE_MODEL"); m != "" {
		weights = m
	}
	w, err := engine.LoadWeights(weights)
	if err != nil {
		t.Fatal(err)
	}
	da, err := newDemoAgent(&cfg, tok, stops)
	if err != nil {
		t.Fatal(err)
	}
	sampler := engine.NewSampler(w, 0, engine.SamplerOptions{Tokenizer: tok, StopTokenIDs: stops, MaxBatch: 64})
	defer sampler.Close()

	type counts struct{ runs, right, forced, mentor, same, other, searches int }
	var mu sync.Mutex
	got := map[bool]*counts{false: {}, true: {}}
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i, dq := range worldQuestions(evalW) {
		if dq.q.Hops != 2 {
			continue
		}
		for _, explore := range []bool{false, true} {
			for k := range 4 {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer func() { <-sem; wg.Done() }()
					env := da.envFor(sampler, dq.world, cfg.Agent.Temperature)
					if explore {
						env.Explore = agent.Explore{MinSearches: 2}
					}
					seed := rl.TrajectorySeed(cfg.Seed^0x9e, int64(i), k, 0)
					traj, err := da.wf.Run(ctx, env, agent.Task{ID: dq.q.ID, Question: dq.q.Question, Answers: []string{dq.q.Answer}, Seed: &seed})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					defer mu.Unlock()
					c := got[explore]
					c.runs++
					if explore && len(traj.Tools) < 2 && c.runs%40 == 0 && testing.Verbose() {
						var texts []string
						for _, cl := range traj.Calls {
							texts = append(texts, cl.Text+"|cut:"+cl.Cut)
						}
						t.Logf("explored run with %d searches, end %s: %q", len(traj.Tools), traj.End, texts)
					}
					if traj.Answered && traj.Answer == dq.q.Answer {
						c.right++
					}
					for j, tc := range traj.Tools {
						if tc.Name != agent.KindSearch {
							continue
						}
						c.searches++
						if j == 0 {
							continue
						}
						if tc.Forced {
							c.forced++
							if c.forced <= 12 && testing.Verbose() {
								t.Logf("forced query %q (question %q, mentor %q) after %q", tc.Arg, dq.q.Question, dq.q.Queries[1], traj.Tools[j-1].Observation)
							}
						}
						switch tc.Arg {
						case dq.q.Queries[1]:
							c.mentor++
						case dq.q.Queries[0]:
							c.same++
						default:
							c.other++
						}
					}
				}()
			}
		}
	}
	wg.Wait()
	for _, explore := range []bool{false, true} {
		c := got[explore]
		t.Logf("explore=%v: %d runs, right %d (%.3f), searches/run %.2f; later searches: %d forced, mentor %d, question's name %d, other %d",
			explore, c.runs, c.right, float64(c.right)/float64(max(1, c.runs)), float64(c.searches)/float64(max(1, c.runs)),
			c.forced, c.mentor, c.same, c.other)
	}
}
