package rl

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asearcher/asearcher/llm"
)

// Gate sits between the agent and a sampler backend (below the llm layer's
// resubmit-on-abort wrapper, so that resubmits pass through it too). It
//
//   - pins the weight version when a request is sent and stamps it on the
//     response's tokens when the backend reports none (AReaL PR #1569: a bump
//     while a request is in flight must not relabel it);
//   - closes during weight updates, holding new calls and resubmits;
//   - drains in-flight calls, aborting them first when the backend can.
//
// It also measures how long the generator had nothing to do.
type Gate struct {
	inner llm.Sampler

	mu       sync.Mutex
	closed   bool
	version  int
	changed  chan struct{}
	inflight map[uint64]string
	nextCall uint64

	start     time.Time
	busySince time.Time
	busy      time.Duration
	calls     int64
}

// NewGate wraps inner at weight version v.
func NewGate(inner llm.Sampler, version int) *Gate {
	now := time.Now()
	return &Gate{inner: inner, version: version, changed: make(chan struct{}),
		inflight: map[uint64]string{}, start: now}
}

func (g *Gate) broadcast() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// Unwrap lets llm.ContextLength see the model server's context window.
func (g *Gate) Unwrap() llm.Sampler { return g.inner }

// Sample implements llm.Sampler.
func (g *Gate) Sample(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	g.mu.Lock()
	for g.closed {
		ch := g.changed
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		g.mu.Lock()
	}
	v := g.version
	id := g.nextCall
	g.nextCall++
	if len(g.inflight) == 0 {
		g.busySince = time.Now()
	}
	g.inflight[id] = req.ID
	g.calls++
	g.mu.Unlock()

	resp, err := g.inner.Sample(ctx, req)

	g.mu.Lock()
	delete(g.inflight, id)
	if len(g.inflight) == 0 {
		g.busy += time.Since(g.busySince)
		g.broadcast()
	}
	g.mu.Unlock()
	if err == nil && resp != nil && len(resp.Versions) != len(resp.OutputIDs) {
		resp.Versions = make([]int, len(resp.OutputIDs))
		for i := range resp.Versions {
			resp.Versions[i] = v
		}
	}
	return resp, err
}

// Abort forwards to the backend when it can abort.
func (g *Gate) Abort(ctx context.Context, requestID string) error {
	if a, ok := g.inner.(llm.Aborter); ok {
		return a.Abort(ctx, requestID)
	}
	return fmt.Errorf("sampler cannot abort requests")
}

// Close holds every new call until Open.
func (g *Gate) Close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// Open releases held calls.
func (g *Gate) Open() {
	g.mu.Lock()
	g.closed = false
	g.broadcast()
	g.mu.Unlock()
}

// SetVersion sets the version pinned on calls sent from now on.
func (g *Gate) SetVersion(v int) {
	g.mu.Lock()
	g.version = v
	g.mu.Unlock()
}

// Version is the version pinned on new calls.
func (g *Gate) Version() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.version
}

// InFlight is the number of calls inside the backend.
func (g *Gate) InFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.inflight)
}

// BusyFraction is the share of time since the gate was made, or since the
// last ResetBusy, with at least one call in flight.
func (g *Gate) BusyFraction() float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	busy := g.busy
	if len(g.inflight) > 0 {
		busy += time.Since(g.busySince)
	}
	total := time.Since(g.start)
	if total <= 0 {
		return 0
	}
	return float64(busy) / float64(total)
}

// ResetBusy restarts the busy-time window.
func (g *Gate) ResetBusy() {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	g.start = now
	g.busy = 0
	if len(g.inflight) > 0 {
		g.busySince = now
	}
}

// Calls counts calls sent to the backend.
func (g *Gate) Calls() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls
}

// Drain waits until no call is in flight and returns how many still are
// when it gives up. With abort it waits grace, asks the backend to abort
// whatever still runs, and repeats every grace; after timeout (> 0) it
// stops waiting. A request that reached a paused server just after the
// pause is held there, not aborted (SGLang registers a request only once the
// pause lifts), so an aborting drain cannot always reach zero: such calls
// run after the update, on the new weights, and their tokens keep the
// pinned (older) version unless the server reports one, which overstates
// their staleness rather than hiding it.
func (g *Gate) Drain(ctx context.Context, abort bool, grace, timeout time.Duration) (int, error) {
	if grace <= 0 {
		grace = 50 * time.Millisecond
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	for {
		g.mu.Lock()
		n := len(g.inflight)
		if n == 0 {
			g.mu.Unlock()
			return 0, nil
		}
		ch := g.changed
		var ids []string
		if abort {
			for _, id := range g.inflight {
				ids = append(ids, id)
			}
		}
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return n, fmt.Errorf("draining %d in-flight calls: %w", n, ctx.Err())
		case <-deadline:
			return n, nil
		case <-timer.C:
			for _, id := range ids {
				if err := g.Abort(ctx, id); err != nil {
					slog.Debug("abort during drain", "request", id, "err", err)
				}
			}
			timer.Reset(grace)
		}
	}
}
