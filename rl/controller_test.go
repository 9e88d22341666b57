package rl

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asearcher/asearcher/llm"
)

func banditDataset(n int) sliceDataset {
	ds := make(sliceDataset, n)
	for i := range ds {
		ds[i] = fmt.Sprintf("q%03d", i)
	}
	return ds
}

func testConfig() Config {
	c := DefaultConfig()
	c.Steps = 25
	c.BatchGroups = 4
	c.GroupSize = 8
	c.MaxStaleness = 2
	c.Optim.LR = 2
	c.Optim.Beta2 = 0.95
	c.Advantage.GlobalNorm = false
	c.Advantage.RewardBias = 0
	c.Advantage.RewardScale = 1
	c.Advantage.Estimator = GRPO
	c.Advantage.StdNorm = true
	c.Loss.ClipEps = 0.2
	c.DumpSamples = 2
	c.DrainGraceMS = 5
	return c
}

func newBanditController(t *testing.T, cfg Config, dir string, resume bool) (*Controller, *unigramTrainer, *unigramSampler) {
	t.Helper()
	tr := newUnigramTrainer(8)
	sm := &unigramSampler{}
	sm.load(tr.theta, 0)
	pub := SwapPublisher{Load: func(_ context.Context, path string, v int) error {
		w, ok := tr.weights(path)
		if !ok {
			return fmt.Errorf("no weights at %s", path)
		}
		sm.load(w, v)
		return nil
	}}
	c, err := New(Options{Config: cfg, Dataset: banditDataset(50), Rollout: banditRollout(4, 3),
		Sampler: sm, Trainer: tr, Publisher: pub, RunDir: dir, Resume: resume, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c, tr, sm
}

// TestControllerLearnsBandit runs the whole controller on a unigram policy:
// the rewarded token's probability must rise from 1/8 for every loss and
// staleness setting. It checks the sign of every advantage and loss path.
func TestControllerLearnsBandit(t *testing.T) {
	for _, kind := range []LossKind{DecoupledPPO, PPO, ImportanceSampling} {
		for _, eta := range []int{0, 3} {
			for _, est := range []Estimator{GRPO, DrGRPO} {
				t.Run(fmt.Sprintf("%s/eta%d/%s", kind, eta, est), func(t *testing.T) {
					cfg := testConfig()
					cfg.Loss.Kind = kind
					cfg.MaxStaleness = eta
					cfg.Advantage.Estimator = est
					if est == DrGRPO {
						cfg.Optim.LR = 4
					}
					c, tr, _ := newBanditController(t, cfg, t.TempDir(), false)
					sum, err := c.Run(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					if sum.Version != cfg.Steps {
						t.Fatalf("version %d after %d steps", sum.Version, cfg.Steps)
					}
					if p := tr.prob(3); p < 0.5 {
						t.Errorf("p(rewarded token) = %.3f after RL, want ≥ 0.5 (from 0.125)", p)
					}
					for _, r := range sum.Records {
						for s := range r.SampleStaleness {
							if s > eta || s < 0 {
								t.Errorf("step %d trained a sample of staleness %d with η=%d", r.Step, s, eta)
							}
						}
					}
				})
			}
		}
	}
}

func TestControllerRunDirectory(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	cfg.Steps = 3
	c, _, _ := newBanditController(t, cfg, dir, false)
	if _, err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"metrics.jsonl", "metrics.prom", "plots.html", "samples/step_000002.jsonl",
		"checkpoints/latest", "checkpoints/step_000003/controller.json", "checkpoints/step_000003/trainer/state.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("run directory lacks %s: %v", f, err)
		}
	}
	recs, _, err := readRecords(filepath.Join(dir, "metrics.jsonl"))
	if err != nil || len(recs) != 3 {
		t.Fatalf("metrics.jsonl: %d records, %v", len(recs), err)
	}
	// keep_checkpoints = 2
	if _, err := os.Stat(filepath.Join(dir, "checkpoints/step_000001")); !os.IsNotExist(err) {
		t.Errorf("old checkpoint not pruned: %v", err)
	}
	prom, _ := os.ReadFile(filepath.Join(dir, "metrics.prom"))
	if !containsAll(string(prom), "asearcher_rl_reward_mean", "asearcher_rl_sample_staleness_bucket") {
		t.Errorf("metrics.prom lacks expected series:\n%s", prom)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}

func TestControllerResumeContinues(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	cfg.Steps = 4
	c, _, _ := newBanditController(t, cfg, dir, false)
	if _, err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg.Steps = 7
	c2, tr2, _ := newBanditController(t, cfg, dir, true)
	sum, err := c2.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.ResumedAt != 4 || sum.Steps != 3 || sum.Version != 7 {
		t.Fatalf("resumed at %d, ran %d steps to v%d", sum.ResumedAt, sum.Steps, sum.Version)
	}
	if tr2.calls[0] != "forward" && tr2.calls[0] != "forward_backward:ppo" {
		t.Logf("calls: %v", tr2.calls[:3])
	}
	recs, _, _ := readRecords(filepath.Join(dir, "metrics.jsonl"))
	for i, r := range recs {
		if r.Step != i {
			t.Fatalf("metrics steps %v not 0..6 in order", r.Step)
		}
	}
	seen := map[int64]int{}
	for _, r := range recs {
		for _, q := range r.Questions {
			seen[q]++
			if seen[q] > 1 {
				t.Fatalf("stream index %d trained twice", q)
			}
		}
	}
	// Wrong seed is refused.
	cfg.Seed = 99
	c3, _, _ := newBanditController(t, cfg, dir, true)
	if _, err := c3.Run(context.Background()); err == nil {
		t.Error("resume with another seed accepted")
	}
}

func TestControllerStopsOnCancel(t *testing.T) {
	cfg := testConfig()
	cfg.Steps = 1000
	c, _, _ := newBanditController(t, cfg, t.TempDir(), false)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := c.Run(ctx); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run returned nil after cancellation")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
}

func TestControllerFailingBackendGivesClearError(t *testing.T) {
	cfg := testConfig()
	cfg.SampleRetries = 0
	tr := newUnigramTrainer(8)
	fail := RolloutFunc(func(context.Context, Question, llm.Sampler, int, int64) (*Sample, error) {
		return nil, fmt.Errorf("connection refused")
	})
	c, err := New(Options{Config: cfg, Dataset: banditDataset(10), Rollout: fail, Sampler: &unigramSampler{theta: make([]float64, 8)},
		Trainer: tr, Publisher: SwapPublisher{Load: func(context.Context, string, int) error { return nil }}, RunDir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = c.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "connection refused") || ctx.Err() != nil {
		t.Fatalf("err = %v, want a prompt error naming the cause", err)
	}
}
