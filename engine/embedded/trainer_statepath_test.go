package embedded

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/asearcher/asearcher/trainer"
)

// The RL controller saves trainer state into its own checkpoint directory
// by passing a path: the embedded trainer writes it there (no Dir needed)
// and loads it back.
func TestEmbeddedSaveStateToPath(t *testing.T) {
	ctx := context.Background()
	tr := NewTrainer(tinyWeights(t, 3), TrainerOptions{})
	data := []trainer.Datum{datum([]int{1, 5, 9, 13, 17}, 1)}
	step := func() {
		if _, err := tr.ForwardBackward(ctx, data, trainer.CrossEntropy, trainer.LossConfig{}); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.OptimStep(ctx, adam); err != nil {
			t.Fatal(err)
		}
	}
	loss := func() float64 {
		out, err := tr.Forward(ctx, data, trainer.CrossEntropy, trainer.LossConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return out.Loss
	}
	step()
	want := filepath.Join(t.TempDir(), "checkpoints", "step_000001.tmp", "trainer")
	got, err := tr.SaveState(ctx, want)
	if err != nil || got != want {
		t.Fatalf("SaveState(%q) = %q, %v", want, got, err)
	}
	at := loss()
	step()
	if loss() == at {
		t.Fatal("a step changed nothing")
	}
	if err := tr.LoadState(ctx, got, true); err != nil {
		t.Fatal(err)
	}
	if l := loss(); l != at {
		t.Fatalf("loss %v after loading the state, want %v", l, at)
	}
	// A plain name still needs Dir.
	if _, err := tr.SaveState(ctx, "plain"); err == nil {
		t.Fatal("SaveState with a plain name and no Dir succeeded")
	}
}
