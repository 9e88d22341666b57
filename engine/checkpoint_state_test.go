package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// trainedLearner returns a learner after one AdamW step, so it has moments.
func trainedLearner(t *testing.T) *Learner {
	t.Helper()
	w, fd, _ := loadFidelity(t, "qwen2")
	l := NewLearner(w)
	var ex []Example
	for i, s := range fd.Sequences {
		ex = append(ex, Example{Input: s[:len(s)-1], Target: s[1:], Weights: fd.Weights[i]})
	}
	ctx := context.Background()
	if _, err := l.ForwardBackward(ctx, ex, Loss{Fn: CrossEntropy}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.OptimStep(ctx, AdamW{LR: 1e-2, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8}); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLoadStateRefusesMissingOptimizer: a training state whose
// optimizer.safetensors is gone must not resume with fresh AdamW moments
// (before the fix it did, silently changing the run). Weights-only loads
// and plain model directories still work.
func TestLoadStateRefusesMissingOptimizer(t *testing.T) {
	l := trainedLearner(t)
	dir := filepath.Join(t.TempDir(), "state")
	if err := l.SaveState(dir, 1); err != nil {
		t.Fatal(err)
	}
	w, _, _ := loadFidelity(t, "qwen2")
	if _, err := NewLearner(w).LoadState(dir, true); err != nil {
		t.Fatalf("intact state: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "optimizer.safetensors")); err != nil {
		t.Fatal(err)
	}
	_, err := NewLearner(w).LoadState(dir, true)
	if err == nil || !strings.Contains(err.Error(), "optimizer.safetensors") {
		t.Fatalf("missing optimizer state: err = %v, want an error naming optimizer.safetensors", err)
	}
	if _, err := NewLearner(w).LoadState(dir, false); err != nil {
		t.Errorf("weights-only load of the same directory: %v", err)
	}
	// A model directory (no trainer_state.json) loads with a fresh optimiser.
	plain := t.TempDir()
	if err := SaveWeights(plain, w, F32); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLearner(w).LoadState(plain, true); err != nil {
		t.Errorf("plain model directory: %v", err)
	}
}

// TestSaveStateReplacesAndLeavesNoTemporaries: saving twice over the same
// directory swaps it in place and leaves no temporary or .old siblings.
func TestSaveStateReplacesAndLeavesNoTemporaries(t *testing.T) {
	l := trainedLearner(t)
	parent := t.TempDir()
	dir := filepath.Join(parent, "state")
	for v := 1; v <= 2; v++ {
		if err := l.SaveState(dir, v); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("parent holds %v, want only state", names)
	}
	w, _, _ := loadFidelity(t, "qwen2")
	v, err := NewLearner(w).LoadState(dir, true)
	if err != nil || v != 2 {
		t.Errorf("load = %d, %v; want version 2", v, err)
	}
}
