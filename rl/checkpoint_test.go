package rl

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// writeMetrics writes records for steps 0..n-1 and returns the file's
// lines.
func writeMetrics(t *testing.T, dir string, n int) []string {
	t.Helper()
	var lines []string
	for i := range n {
		b, err := json.Marshal(&StepRecord{Step: i, Version: i + 1})
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b)+"\n")
	}
	if err := os.WriteFile(filepath.Join(dir, metricsFile), []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	return lines
}

// TestMetricsDamagedLine: a damaged line in the middle of metrics.jsonl
// stops the resume with the file and offset and changes nothing (before,
// it was dropped silently: 249 of 250 steps); --repair keeps a backup and
// reports the drop; a torn last line is cut without asking.
func TestMetricsDamagedLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, metricsFile)
	lines := writeMetrics(t, dir, 5)
	lines[2] = "#" + lines[2][1:]
	damaged := strings.Join(lines, "")
	os.WriteFile(path, []byte(damaged), 0o644)
	off := len(lines[0]) + len(lines[1])

	_, _, err := newMetricsSink(dir, 5, false)
	want := fmt.Sprintf("line 3 (byte offset %d)", off)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--repair") {
		t.Fatalf("err = %v, want the file, %q and --repair", err, want)
	}
	if b, _ := os.ReadFile(path); string(b) != damaged {
		t.Fatal("a refused resume changed metrics.jsonl")
	}

	m, notes, err := newMetricsSink(dir, 5, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.records) != 4 || len(notes) == 0 || !strings.Contains(strings.Join(notes, "\n"), "line 3") {
		t.Fatalf("repair kept %d records, notes %q", len(m.records), notes)
	}
	backups, _ := filepath.Glob(path + ".bak-*")
	if len(backups) != 1 {
		t.Fatalf("backups %q", backups)
	}
	if b, _ := os.ReadFile(backups[0]); string(b) != damaged {
		t.Error("the backup is not the damaged original")
	}

	// A torn last line (a kill mid-append) is cut; records of steps past
	// the checkpoint resumed from are dropped (they are redone).
	lines = writeMetrics(t, dir, 5)
	os.WriteFile(path, []byte(strings.Join(lines, "")+`{"step":5,"vers`), 0o644)
	m, notes, err = newMetricsSink(dir, 4, false)
	if err != nil || len(notes) != 1 || !strings.Contains(notes[0], "torn last line") {
		t.Fatalf("torn tail: %v %q", err, notes)
	}
	if len(m.records) != 4 {
		t.Errorf("%d records kept, want steps 0-3", len(m.records))
	}
}
