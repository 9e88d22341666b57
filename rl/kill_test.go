package rl

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestKillHelper is the child process of TestKillNineResume; it does nothing
// in a normal test run.
func TestKillHelper(t *testing.T) {
	dir := os.Getenv("RL_KILL_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process only")
	}
	cfg := killConfig()
	c, _, sm := newBanditController(t, cfg, dir, true)
	sm.delay = 40 * time.Millisecond
	if _, err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func killConfig() Config {
	cfg := testConfig()
	cfg.Steps = 40
	cfg.BatchGroups = 3
	cfg.GroupSize = 3
	cfg.MaxStaleness = 2
	cfg.FilterZeroVariance = false
	cfg.CheckpointEvery, _ = strconv.Atoi(os.Getenv("RL_KILL_CKPT_EVERY"))
	if cfg.CheckpointEvery == 0 {
		cfg.CheckpointEvery = 1
	}
	return cfg
}

// TestKillNineResume kills the controller with SIGKILL at random moments and
// resumes it each time: the finished run must have trained every step once,
// consumed no question twice, lost none, and kept the staleness bound.
func TestKillNineResume(t *testing.T) {
	if os.Getenv("RL_KILL_HELPER_DIR") != "" {
		t.Skip("inside the helper")
	}
	for _, every := range []int{1, 3} {
		t.Run("checkpoint_every="+strconv.Itoa(every), func(t *testing.T) {
			dir := t.TempDir()
			r := rand.New(rand.NewPCG(uint64(every), 1))
			run := func(kill time.Duration) (killed bool) {
				cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$", "-test.count=1")
				cmd.Env = append(os.Environ(), "RL_KILL_HELPER_DIR="+dir, "RL_KILL_CKPT_EVERY="+strconv.Itoa(every))
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- cmd.Wait() }()
				if kill == 0 {
					if err := <-done; err != nil {
						t.Fatalf("final run failed: %v", err)
					}
					return false
				}
				select {
				case err := <-done:
					if err != nil {
						t.Fatalf("run failed before the kill: %v", err)
					}
					return false
				case <-time.After(kill):
					cmd.Process.Kill() // SIGKILL
					<-done
					return true
				}
			}
			// A full run takes about a second; kill at random moments in it
			// until five kills landed (a kill after completion is a no-op).
			kills := 0
			for try := 0; kills < 5 && try < 20; try++ {
				if run(time.Duration(20+r.IntN(300)) * time.Millisecond) {
					kills++
				}
			}
			run(0)
			if kills < 3 {
				t.Fatalf("only %d kills landed", kills)
			}
			t.Logf("killed %d times", kills)
			checkKilledRun(t, dir, killConfig())
		})
	}
}

func checkKilledRun(t *testing.T, dir string, cfg Config) {
	t.Helper()
	recs, _, err := readRecords(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != cfg.Steps {
		t.Fatalf("%d step records, want %d", len(recs), cfg.Steps)
	}
	consumed := map[int64]bool{}
	for i, r := range recs {
		if r.Step != i {
			t.Fatalf("record %d is step %d", i, r.Step)
		}
		if len(r.Questions) != cfg.BatchGroups {
			t.Fatalf("step %d trained %d groups", i, len(r.Questions))
		}
		for _, q := range r.Questions {
			if consumed[q] {
				t.Fatalf("question %d trained twice (step %d)", q, i)
			}
			consumed[q] = true
		}
		for s := range r.SampleStaleness {
			if s > cfg.MaxStaleness {
				t.Fatalf("step %d trained a sample of staleness %d > η=%d", i, s, cfg.MaxStaleness)
			}
		}
	}
	st, tp, err := LoadCheckpoint(dir)
	if err != nil || st == nil {
		t.Fatalf("final checkpoint: %v", err)
	}
	if st.Version != cfg.Steps {
		t.Fatalf("final checkpoint at version %d", st.Version)
	}
	// Nothing lost: every question handed out was trained or is requeued.
	for _, q := range st.Requeue {
		if consumed[q] {
			t.Fatalf("question %d both trained and requeued", q)
		}
		consumed[q] = true
	}
	for i := range st.StreamNext {
		if !consumed[i] {
			t.Fatalf("question %d was handed out but neither trained nor requeued", i)
		}
	}
	// The trainer took exactly one optimiser step per training step.
	raw, err := os.ReadFile(filepath.Join(tp, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var us unigramState
	if err := json.Unmarshal(raw, &us); err != nil {
		t.Fatal(err)
	}
	if us.Steps != cfg.Steps*cfg.Loss.Minibatches {
		t.Fatalf("trainer took %d optimiser steps, want %d", us.Steps, cfg.Steps)
	}
}
