package demo

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/rl"
)

// smokeConfig is the demo shrunk to seconds: a 2-layer model, a short
// warm-up, two RL steps, four held-out worlds.
func smokeConfig() Config {
	cfg := DefaultConfig()
	cfg.Model.Hidden, cfg.Model.Layers, cfg.Model.Vocab = 64, 2, 512
	cfg.Warmup.Steps, cfg.Warmup.Batch = 20, 8
	cfg.Eval.Worlds, cfg.Eval.Bootstrap = 4, 200
	cfg.RL.Steps, cfg.RL.BatchGroups, cfg.RL.GroupSize = 2, 2, 2
	cfg.RL.FilterZeroVariance = false
	return cfg
}

// TestTrainEndToEnd runs every stage of `asearcher train` through Run on a
// small config, then resumes the finished run: the report and run
// directory are complete and consistent, and a resume redoes nothing.
func TestTrainEndToEnd(t *testing.T) {
	cfg := smokeConfig()
	dir := t.TempDir()
	var steps int
	rep, err := Run(context.Background(), Options{Config: cfg, Out: dir, OnStep: func(*rl.StepRecord) { steps++ }})
	if err != nil {
		t.Fatal(err)
	}
	if steps != cfg.RL.Steps || rep.Version != cfg.RL.Steps || rep.Questions != 4*cfg.Eval.Worlds {
		t.Fatalf("steps %d, version %d, questions %d", steps, rep.Version, rep.Questions)
	}
	if rep.LiftCI95[0] > rep.Lift || rep.Lift > rep.LiftCI95[1] {
		t.Fatalf("lift %g outside its CI %v", rep.Lift, rep.LiftCI95)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var disk Report
	if err := json.Unmarshal(raw, &disk); err != nil || disk.Lift != rep.Lift {
		t.Fatalf("report.json %s: %v", raw, err)
	}
	for _, f := range []string{"report.md", "metrics.jsonl", "metrics.prom", "plots.html", "config.yaml",
		"eval_before.json", "eval_after.json", "warmup.json", "checkpoints/latest", "model/tokenizer.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("run directory lacks %s", f)
		}
	}
	// A resume of a finished run trains nothing more and keeps the
	// before-RL evaluation.
	steps = 0
	again, err := Run(context.Background(), Options{Config: cfg, Out: dir, Resume: true, OnStep: func(*rl.StepRecord) { steps++ }})
	if err != nil {
		t.Fatal(err)
	}
	if steps != 0 || again.BeforeAccuracy != rep.BeforeAccuracy {
		t.Fatalf("resume trained %d steps; before-RL accuracy %g, was %g", steps, again.BeforeAccuracy, rep.BeforeAccuracy)
	}
	// A resume with another config is refused.
	other := cfg
	other.RL.Steps++
	if _, err := Run(context.Background(), Options{Config: other, Out: dir, Resume: true}); err == nil || !strings.Contains(err.Error(), "config") {
		t.Fatalf("resume with a changed config: %v", err)
	}
}

// TestTrainLearns is the criterion on the default config: held-out
// accuracy after RL ≥ accuracy at the start of RL + 10 points with a
// bootstrap 95% CI excluding zero. It takes minutes, so it runs only with
// ASEARCHER_TRAIN_LEARN=1.
func TestTrainLearns(t *testing.T) {
	if os.Getenv("ASEARCHER_TRAIN_LEARN") == "" {
		t.Skip("set ASEARCHER_TRAIN_LEARN=1 to run the default demo (minutes)")
	}
	cfg := DefaultConfig()
	rep, err := Run(context.Background(), Options{Config: cfg, Out: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("accuracy %.3f → %.3f, lift %+.3f CI [%+.3f, %+.3f], warm-up %.0fs RL %.0fs total %.0fs",
		rep.BeforeAccuracy, rep.AfterAccuracy, rep.Lift, rep.LiftCI95[0], rep.LiftCI95[1], rep.WarmupSec, rep.RLSec, rep.TotalSec)
	if rep.Lift < 0.10 || rep.LiftCI95[0] <= 0 {
		t.Fatalf("RL did not learn: lift %+.3f, CI [%+.3f, %+.3f]", rep.Lift, rep.LiftCI95[0], rep.LiftCI95[1])
	}
}
