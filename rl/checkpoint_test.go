package rl

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCheckpointTrainerPathRelativeRunDir writes a checkpoint under a
// relative run directory, as `asearcher train` does with its default
// runs/train-<time>, and checks the stored trainer path still points at
// the trainer state after the temporary directory is renamed into place.
// Before the fix a relative run stored ".../step_N.tmp/trainer" and every
// resume failed with "no such file".
func TestCheckpointTrainerPathRelativeRunDir(t *testing.T) {
	for _, tc := range []struct {
		name     string
		absolute bool
	}{{"relative", false}, {"absolute", true}} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			t.Chdir(base)
			runDir := filepath.Join("runs", "train-1")
			if tc.absolute {
				runDir = filepath.Join(base, runDir)
			}
			w := checkpointWriter{root: filepath.Join(runDir, checkpointsDir), keep: 2}
			tmp, tpath, err := w.begin(3)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(tpath, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(tpath, "weights"), []byte("w"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := w.commit(tmp, &State{Version: 3, StreamNext: 5, TrainerState: tpath}); err != nil {
				t.Fatal(err)
			}
			st, tp, err := LoadCheckpoint(runDir)
			if err != nil || st == nil {
				t.Fatalf("load: %v %v", st, err)
			}
			if st.TrainerState != trainerSubdir {
				t.Errorf("stored trainer path %q, want %q (relative to the checkpoint)", st.TrainerState, trainerSubdir)
			}
			if _, err := os.Stat(filepath.Join(tp, "weights")); err != nil {
				t.Errorf("trainer state not found at the loaded path: %v", err)
			}
		})
	}
}

// TestLoadCheckpointOldTemporaryTrainerPath: checkpoints written before the
// fix by a relative run hold the temporary directory's name; they resume.
func TestLoadCheckpointOldTemporaryTrainerPath(t *testing.T) {
	t.Chdir(t.TempDir())
	runDir := filepath.Join("runs", "x")
	dir := filepath.Join(runDir, checkpointsDir, stepName(2))
	if err := os.MkdirAll(filepath.Join(dir, trainerSubdir), 0o755); err != nil {
		t.Fatal(err)
	}
	old := `{"version":2,"stream_next":4,"requeue":[],"trainer_state":"runs/x/checkpoints/step_000002.tmp/trainer","seed":0}`
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(runDir, checkpointsDir, latestFile), []byte(stepName(2)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, tp, err := LoadCheckpoint(runDir)
	if err != nil {
		t.Fatal(err)
	}
	if tp != filepath.Join(dir, trainerSubdir) {
		t.Errorf("trainer path %q, want %q", tp, filepath.Join(dir, trainerSubdir))
	}
}
