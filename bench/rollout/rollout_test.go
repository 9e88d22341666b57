package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asearcher/asearcher/llm"
)

// smallOptions is a simulation that runs in a few seconds under -race.
func smallOptions() Options {
	o := DefaultOptions()
	o.Steps, o.Warmup = 5, 1
	o.BatchGroups, o.GroupSize = 4, 4
	o.Runs = 1
	o.Speedup = 1000
	o.ScaleTrajectories = 0
	return o
}

// TestAsyncBeatsSync drives the real controller in both modes on the same
// simulated hardware: async must train more trajectories per simulated
// hour, keep the engine busier, and never train a token staler than η.
func TestAsyncBeatsSync(t *testing.T) {
	o := smallOptions()
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	s, a := rep.Sync[0], rep.Async[0]
	t.Logf("sync %.0f traj/h idle %.2f; async %.0f traj/h idle %.2f; ratio %.2f; interrupted %d",
		s.TrajPerHour, s.EngineIdle, a.TrajPerHour, a.EngineIdle, rep.Median.Speedup, a.Interrupted)
	if rep.Median.Speedup <= 1.3 {
		t.Errorf("async/sync = %.2f, want > 1.3", rep.Median.Speedup)
	}
	if a.EngineIdle >= s.EngineIdle {
		t.Errorf("async engine idle %.2f ≥ sync %.2f", a.EngineIdle, s.EngineIdle)
	}
	if s.MaxStaleness != 0 {
		t.Errorf("sync trained staleness %d, want 0", s.MaxStaleness)
	}
	if a.MaxStaleness > o.AsyncEta {
		t.Errorf("async trained staleness %d > η = %d", a.MaxStaleness, o.AsyncEta)
	}
	if a.Interrupted == 0 {
		t.Error("async run never interrupted a generation: weight updates did not pause the engine")
	}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, rep); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatalf("--json output does not parse: %v", err)
	}
	if back.Median.Speedup != rep.Median.Speedup || len(back.Async) != 1 {
		t.Errorf("JSON round trip lost data: %+v", back.Median)
	}
	buf.Reset()
	WriteTable(&buf, rep)
	if !strings.Contains(buf.String(), "async/sync") {
		t.Errorf("table lacks the ratio:\n%s", buf.String())
	}
}

// TestStalenessBoundAtEveryEta checks the staleness bound of every trained
// token for several η on the long-tailed workload.
func TestStalenessBoundAtEveryEta(t *testing.T) {
	o := smallOptions()
	o.Steps, o.Warmup = 6, 0
	for _, eta := range []int{1, 2} {
		r, err := RunMode(context.Background(), o, eta, 3)
		if err != nil {
			t.Fatal(err)
		}
		if r.MaxStaleness > eta {
			t.Errorf("η=%d: trained staleness %d", eta, r.MaxStaleness)
		}
	}
}

// steppedClock is a clock the test moves by hand (speedup 1: simulated
// seconds are the durations it is set to), so the engine's arithmetic is
// checked without depending on how promptly goroutines and timers run on
// a loaded machine.
type steppedClock struct{ ns atomic.Int64 }

func (s *steppedClock) clock() *clock {
	return &clock{speedup: 1, elapsed: func() time.Duration { return time.Duration(s.ns.Load()) }}
}

func (s *steppedClock) set(sim float64) { s.ns.Store(int64(math.Round(sim * 1e9))) }

// waitRunning waits until n requests are decoding. The deadline only
// guards against a hang; nothing is asserted about how long it takes.
func waitRunning(t *testing.T, e *engine, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.mu.Lock()
		got := len(e.running)
		e.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests running, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// receive takes one response, failing instead of hanging.
func receive(t *testing.T, done <-chan *llm.Response) *llm.Response {
	t.Helper()
	select {
	case resp := <-done:
		return resp
	case <-time.After(10 * time.Second):
		t.Fatal("no response: the engine did not complete a request whose tokens were served")
		return nil
	}
}

// TestEngineProcessorSharing checks the decode model: n concurrent
// requests of k tokens finish after exactly k·(step + n·perSeq) simulated
// seconds (none before, all at that instant), and an abort returns the
// tokens decoded so far. Time is stepped by hand: with the wall clock this
// test flaked on a loaded machine, where late goroutines and timers
// stretched the measured time.
func TestEngineProcessorSharing(t *testing.T) {
	var sc steppedClock
	e := newEngine(sc.clock(), Hardware{StepSec: 0.01, PerSeqSec: 0.001})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.run(ctx)
	const n, k = 10, 100
	done := make(chan *llm.Response, n+1)
	for i := range n {
		go func() {
			resp, err := e.Sample(ctx, &llm.Request{ID: string(rune('a' + i)), Params: llm.Params{MaxNewTokens: k}})
			if err != nil {
				t.Error(err)
			}
			done <- resp
		}()
	}
	waitRunning(t, e, n)
	finish := k * (0.01 + n*0.001) // 2 simulated seconds

	// Just before the finish time every request is still decoding, with
	// the tokens the shared rate gave it: 1.99 s / 0.02 s per step.
	sc.set(finish - 0.01)
	e.poke()
	e.mu.Lock()
	e.advance()
	for _, r := range e.running {
		if r.target <= e.served+1e-9 {
			t.Errorf("request %s due at %.2f tokens served, %.2f served before its finish time", r.id, r.target, e.served)
		}
		if got := e.partial(r); got != 99 {
			t.Errorf("request %s has %d tokens at %.2f s, want 99", r.id, got, finish-0.01)
		}
	}
	e.mu.Unlock()
	select {
	case resp := <-done:
		t.Fatalf("a request finished early with %d tokens", len(resp.OutputIDs))
	default:
	}

	sc.set(finish)
	e.poke()
	for range n {
		resp := receive(t, done)
		if resp == nil || len(resp.OutputIDs) != k || resp.Finish != llm.FinishStop {
			t.Fatalf("got %+v, want %d tokens and finish stop", resp, k)
		}
	}

	// A lone request decodes at 1/(step+perSeq) tokens per second: after
	// 0.5 s it has floor(0.5/0.011) = 45 tokens, which the abort returns.
	go func() {
		resp, err := e.Sample(ctx, &llm.Request{ID: "long", Params: llm.Params{MaxNewTokens: 100000}})
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	waitRunning(t, e, 1)
	sc.set(finish + 0.5)
	if err := e.Abort(ctx, "long"); err != nil {
		t.Fatal(err)
	}
	resp := receive(t, done)
	if resp == nil || resp.Finish != llm.FinishAbort || len(resp.OutputIDs) != 45 {
		t.Errorf("abort: got %+v, want 45 tokens and finish abort", resp)
	}
}

// TestFullBench runs the documented configuration when
// ASEARCHER_BENCH_ROLLOUT=1 (about a minute).
func TestFullBench(t *testing.T) {
	if os.Getenv("ASEARCHER_BENCH_ROLLOUT") == "" {
		t.Skip("set ASEARCHER_BENCH_ROLLOUT=1")
	}
	rep, err := Run(context.Background(), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	WriteTable(&buf, rep)
	t.Log("\n" + buf.String())
}

// BenchmarkEngineSample measures the simulated engine's own cost per call
// (heap insert, completion, response) with 256 calls in flight, so the
// scale run's CPU per turn can be split between engine and controller.
func BenchmarkEngineSample(b *testing.B) {
	clk := newClock(1e6)
	e := newEngine(clk, Hardware{StepSec: 1e-3, PerSeqSec: 1e-6})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.run(ctx)
	b.SetParallelism(128)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.Sample(ctx, &llm.Request{Params: llm.Params{MaxNewTokens: 8}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkControllerScale runs the scale measurement at 2,000 concurrent
// trajectories and reports CPU per turn and heap per trajectory.
func BenchmarkControllerScale(b *testing.B) {
	o := DefaultOptions()
	o.ScaleTrajectories = 2000
	for b.Loop() {
		r, err := RunScale(context.Background(), o)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.CPUPerTurnUS, "cpu-µs/turn")
		b.ReportMetric(r.HeapPerTrajKiB, "KiB/traj")
	}
}
