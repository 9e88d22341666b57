// Package rollout benchmarks the rl controller's rollout pipeline on
// simulated hardware: a simulated generation engine (a fixed decode capacity
// shared by every running request) and a simulated trainer (a fixed step
// time) stand in for SGLang and the training cluster, while the real rl
// controller — admission, scheduler, gate, resubmit-on-abort, publisher
// protocol, loss assembly — runs unchanged. It compares synchronous RL
// (η = 0) with asynchronous RL (η > 0, interruptible generation) by
// trained trajectories per simulated hour.
//
// Time is scaled real time: one simulated second lasts 1/Speedup real
// seconds. The controller reads the wall clock (time.Now) and uses real
// timers, so a virtual clock could not drive it without changing package rl.
package rollout

import (
	"container/heap"
	"context"
	"math"
	"sync"
	"time"

	"github.com/asearcher/asearcher/llm"
)

// clock converts between simulated and real time.
type clock struct {
	speedup float64
	// elapsed is the real time since the clock started: the wall clock,
	// or a hand-stepped one in tests that check the engine's arithmetic
	// without depending on how promptly goroutines run.
	elapsed func() time.Duration
}

func newClock(speedup float64) *clock {
	start := time.Now()
	return &clock{speedup: speedup, elapsed: func() time.Duration { return time.Since(start) }}
}

// now is simulated seconds since the clock started.
func (c *clock) now() float64 { return c.elapsed().Seconds() * c.speedup }

// real converts a simulated duration to a real one.
func (c *clock) real(sim float64) time.Duration {
	return time.Duration(sim / c.speedup * float64(time.Second))
}

// sleep waits sim simulated seconds or until ctx ends.
func (c *clock) sleep(ctx context.Context, sim float64) error {
	if sim <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(c.real(sim))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Hardware is the simulated generation capacity. One decoding step over n
// running sequences takes StepSec + PerSeqSec·n simulated seconds and gives
// each of them one token, so a lone sequence decodes at 1/StepSec tokens/s
// and the engine saturates at 1/PerSeqSec tokens/s: small batches are
// latency-bound, big ones compute-bound, as on a real inference server.
type Hardware struct {
	StepSec   float64 `json:"decode_step_s"`
	PerSeqSec float64 `json:"decode_per_seq_s"`
}

// engine is a processor-sharing model of a batched decoder: every running
// request advances by the same number of tokens per unit of time, at the
// rate Hardware gives for the current batch. Instead of ticking, it tracks
// the cumulative tokens served to any request since start (served) and
// keeps requests in a heap by the served value at which they finish, so
// each arrival, completion or abort costs O(log n).
type engine struct {
	clk *clock
	hw  Hardware

	mu      sync.Mutex
	served  float64
	last    float64
	running reqHeap
	byID    map[string]*engReq
	held    []*engReq // arrived while paused; start on resume
	paused  bool
	busy    float64 // simulated seconds with ≥ 1 running request
	idle    float64
	tokens  int64
	calls   int64
	aborted int64
	wake    chan struct{}
}

type engReq struct {
	id     string
	n      int
	start  float64
	target float64
	idx    int
	done   chan *llm.Response
}

type reqHeap []*engReq

func (h reqHeap) Len() int           { return len(h) }
func (h reqHeap) Less(i, j int) bool { return h[i].target < h[j].target }
func (h reqHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *reqHeap) Push(x any) {
	r := x.(*engReq)
	r.idx = len(*h)
	*h = append(*h, r)
}
func (h *reqHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	r.idx = -1
	return r
}

func newEngine(clk *clock, hw Hardware) *engine {
	return &engine{clk: clk, hw: hw, byID: map[string]*engReq{}, wake: make(chan struct{}, 1)}
}

// stepSec is the duration of one decoding step with n running.
func (e *engine) stepSec(n int) float64 { return e.hw.StepSec + e.hw.PerSeqSec*float64(n) }

// advance brings served and the busy/idle accounting up to now. Callers
// hold mu.
func (e *engine) advance() {
	now := e.clk.now()
	dt := now - e.last
	if dt <= 0 {
		return
	}
	if n := len(e.running); n > 0 {
		e.served += dt / e.stepSec(n)
		e.busy += dt
	} else {
		e.idle += dt
	}
	e.last = now
}

func (e *engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// run completes requests as their tokens are served, until ctx ends.
func (e *engine) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		e.mu.Lock()
		e.advance()
		for len(e.running) > 0 && e.running[0].target <= e.served+1e-9 {
			r := heap.Pop(&e.running).(*engReq)
			e.finish(r, r.n, llm.FinishStop)
		}
		wait := time.Hour
		if len(e.running) > 0 {
			wait = max(e.clk.real((e.running[0].target-e.served)*e.stepSec(len(e.running))), 0)
		}
		e.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-e.wake:
		case <-ctx.Done():
			return
		}
	}
}

// finish answers r with k tokens. Callers hold mu and have removed r from
// the heap and the held list.
func (e *engine) finish(r *engReq, k int, why llm.Finish) {
	delete(e.byID, r.id)
	e.tokens += int64(k)
	resp := &llm.Response{OutputIDs: make([]int, k), Logprobs: make([]float32, k), Finish: why}
	for i := range k {
		resp.OutputIDs[i] = 7
		resp.Logprobs[i] = -0.5
	}
	r.done <- resp
}

// partial is how many tokens r has produced so far, below its total.
func (e *engine) partial(r *engReq) int {
	return min(max(int(math.Floor(e.served-r.start)), 0), r.n-1)
}

// Sample implements llm.Sampler: the request decodes MaxNewTokens tokens
// (its natural length in this simulation) and ends with FinishStop.
func (e *engine) Sample(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	r := &engReq{id: req.ID, n: max(req.Params.MaxNewTokens, 1), idx: -1, done: make(chan *llm.Response, 1)}
	e.mu.Lock()
	e.advance()
	e.calls++
	if r.id != "" {
		e.byID[r.id] = r
	}
	if e.paused {
		e.held = append(e.held, r)
	} else {
		e.startLocked(r)
	}
	e.mu.Unlock()
	e.poke()
	select {
	case resp := <-r.done:
		return resp, nil
	case <-ctx.Done():
		e.mu.Lock()
		e.removeLocked(r)
		e.mu.Unlock()
		return nil, ctx.Err()
	}
}

func (e *engine) startLocked(r *engReq) {
	r.start = e.served
	r.target = e.served + float64(r.n)
	heap.Push(&e.running, r)
}

// removeLocked takes r out of the heap or the held list; it reports
// whether r was still pending.
func (e *engine) removeLocked(r *engReq) bool {
	if r.idx >= 0 {
		heap.Remove(&e.running, r.idx)
		delete(e.byID, r.id)
		return true
	}
	for i, h := range e.held {
		if h == r {
			e.held = append(e.held[:i], e.held[i+1:]...)
			delete(e.byID, r.id)
			return true
		}
	}
	return false
}

// Abort implements llm.Aborter: the request returns at once with the
// tokens it has, FinishAbort.
func (e *engine) Abort(_ context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advance()
	r := e.byID[id]
	if r == nil {
		return nil
	}
	k := 0
	if r.idx >= 0 {
		k = e.partial(r)
	}
	if e.removeLocked(r) {
		e.aborted++
		e.finish(r, k, llm.FinishAbort)
	}
	return nil
}

// pause is SGLang's pause_generation in abort mode: every running request
// returns its partial output; requests arriving until resume are held.
func (e *engine) pause() {
	e.mu.Lock()
	e.advance()
	e.paused = true
	for len(e.running) > 0 {
		r := heap.Pop(&e.running).(*engReq)
		e.aborted++
		e.finish(r, e.partial(r), llm.FinishAbort)
	}
	e.mu.Unlock()
	e.poke()
}

// resume is continue_generation.
func (e *engine) resume() {
	e.mu.Lock()
	e.advance()
	e.paused = false
	for _, r := range e.held {
		e.startLocked(r)
	}
	e.held = nil
	e.mu.Unlock()
	e.poke()
}

// engineStats is a snapshot of the engine's counters.
type engineStats struct {
	busy, idle float64
	tokens     int64
	calls      int64
	aborted    int64
}

func (e *engine) stats() engineStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advance()
	return engineStats{busy: e.busy, idle: e.idle, tokens: e.tokens, calls: e.calls, aborted: e.aborted}
}
