package eval

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/asearcher/asearcher/internal/testindex"
)

// TestKillAndResume: a k = 4 run is killed with SIGKILL at random points
// five times and then finished. The final results hold every (question,
// sample) exactly once and equal those of an uninterrupted run with the
// same scripted model; the trajectory file has one record per result.
func TestKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	search := testindex.Serve(t)
	qs := loadRefQuestions(t)
	const k = 4
	dir := t.TempDir()
	data := writeRefDataset(t, dir, qs)
	// Each model call takes 40 ms and four agents run at once, so a run
	// lasts about 4.5 s: long enough to be cut five times.
	model := newRefModel(t, qs, 17, k, 40*time.Millisecond)

	clean := refConfig(data, filepath.Join(dir, "clean"), model.srv.OpenAIURL(), search, k)
	clean.Concurrency = 16 // the reference run may go faster; concurrency is not part of the results
	if _, err := Run(context.Background(), clean, Options{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	want, err := ReadResults(filepath.Join(clean.Out, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}

	killed := refConfig(data, filepath.Join(dir, "killed"), model.srv.OpenAIURL(), search, k)
	killed.Concurrency = 4
	cfgPath := filepath.Join(dir, "child.json")
	b, _ := json.Marshal(killed)
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	resultsPath := filepath.Join(killed.Out, ResultsFile)
	prev := -1
	kills := 0
	for kills < 5 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "EVAL_CHILD_CONFIG="+cfgPath)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		wait := time.Duration(100+rng.IntN(400)) * time.Millisecond
		select {
		case err := <-done:
			t.Fatalf("child finished before the kill (%v): %s", err, stderr.String())
		case <-time.After(wait):
		}
		_ = cmd.Process.Kill() // SIGKILL
		<-done
		kills++
		n := countLines(t, resultsPath)
		t.Logf("kill %d after %v: %d results on disk", kills, wait, n)
		if n < prev {
			t.Fatalf("results shrank from %d to %d", prev, n)
		}
		prev = n
		if n >= len(qs)*k {
			t.Fatalf("the run finished before kill %d; slow the model down", kills)
		}
	}
	if _, err := Run(context.Background(), killed, Options{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	got, err := ReadResults(resultsPath)
	if err != nil {
		t.Fatal(err)
	}
	if lines := countLines(t, resultsPath); lines != len(qs)*k {
		t.Fatalf("results.jsonl has %d lines, want %d (duplicates or losses)", lines, len(qs)*k)
	}
	g, w := comparable(got), comparable(want)
	if len(g) != len(w) {
		t.Fatalf("%d records, want %d", len(g), len(w))
	}
	for i := range g {
		if !reflect.DeepEqual(g[i], w[i]) {
			a, _ := json.Marshal(g[i])
			b, _ := json.Marshal(w[i])
			t.Fatalf("record %d differs from the uninterrupted run:\n got %s\nwant %s", i, a, b)
		}
	}
	// The trajectory file holds each (question, sample) once.
	trajs, err := loadHTMLTrajectories(killed.Out, got)
	if err != nil {
		t.Fatal(err)
	}
	if len(trajs) != min(len(got), htmlMaxTrajectories) {
		t.Errorf("%d trajectories readable, want %d", len(trajs), len(got))
	}
	if n := countTrajectories(t, filepath.Join(killed.Out, TrajectoriesFile)); n != len(got) {
		t.Errorf("trajectories file has %d records, want %d", n, len(got))
	}
}
