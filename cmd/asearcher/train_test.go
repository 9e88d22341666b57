package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// miniTrainConfig shrinks the demo to seconds.
const miniTrainConfig = `world: {people: 6, train_worlds: 2, eval_worlds: 1}
model: {vocab: 320}
agent: {max_turns: 2}
warmup: {steps: 12, batch_size: 4, worlds: 0}
eval: {samples: 1, bootstrap: 200, concurrency: 4}
rl: {steps: 2, batch_groups: 2, group_size: 2, filter_zero_variance: false, checkpoint_every: 1}
`

// TestTrainCommand runs `asearcher train` in miniature through the CLI and
// checks the report; then the flag errors and --resume.
func TestTrainCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mini.yaml")
	if err := os.WriteFile(cfg, []byte(miniTrainConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "run")
	out, err := runCLI(t, "train", "--preset", "quick", "--out", run, "--config", cfg, "--no-progress")
	if err != nil {
		t.Fatalf("train: %v\n%s", err, out)
	}
	if !strings.Contains(out, "held-out accuracy") || !strings.Contains(out, "report.md") {
		t.Fatalf("train printed %q", out)
	}
	var rep struct {
		Before *float64   `json:"accuracy_before_rl"`
		After  *float64   `json:"accuracy_after_rl"`
		CI     [2]float64 `json:"lift_ci95"`
		Steps  int        `json:"rl_steps"`
	}
	raw, err := os.ReadFile(filepath.Join(run, "report.json"))
	if err != nil || json.Unmarshal(raw, &rep) != nil || rep.Before == nil || rep.After == nil || rep.Steps != 2 {
		t.Fatalf("report.json %s: %v", raw, err)
	}
	if out, err := runCLI(t, "train", "--resume", run, "--no-progress"); err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	for _, bad := range [][]string{
		{"train", "--resume", run, "--out", run},
		{"train", "--resume", run, "--preset", "quick"},                         // a run keeps its own config
		{"train", "--out", filepath.Join(dir, "z"), "--preset", "nonesuch"},     // unknown preset
		{"train", "--out", run, "--config", cfg},                                // already holds a run
		{"train", "--out", filepath.Join(dir, "x"), "--config", "missing.yaml"}, // no config file
		{"train", "extra-arg"},
	} {
		if out, err := runCLI(t, bad...); err == nil {
			t.Errorf("%v accepted:\n%s", bad, out)
		}
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("warmup: {stepz: 3}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "train", "--out", filepath.Join(dir, "y"), "--config", bad); err == nil || !strings.Contains(err.Error(), "stepz") {
		t.Errorf("unknown config field: %v", err)
	}
}

// TestTrainHelp: --help explains every flag.
func TestTrainHelp(t *testing.T) {
	out, err := runCLI(t, "train", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"--out", "--config", "--preset", "multihop", "quick", "--resume", "--no-progress", "report.json", "docs/rl.md"} {
		if !strings.Contains(out, f) {
			t.Errorf("help lacks %s:\n%s", f, out)
		}
	}
}
