package engine

import "testing"

// TestFloatArenaBoundedOverLengths: steps over ever new sequence lengths
// reuse pooled buffers instead of keeping one set per length. Keyed by
// exact length, 1,000 steps of lengths 1,000 … 1,999 kept 1,000 buffers.
func TestFloatArenaBoundedOverLengths(t *testing.T) {
	a := newFloatArena()
	for n := 1000; n < 2000; n++ {
		b := a.get(n)
		if len(b) != n {
			t.Fatalf("get(%d) gave %d floats", n, len(b))
		}
		for i := range b {
			if b[i] != 0 {
				t.Fatalf("get(%d): float %d is %g, not zeroed", n, i, b[i])
			}
			b[i] = 1
		}
		a.reset()
	}
	kept, floats := 0, 0
	for c, list := range a.free {
		kept += len(list)
		floats += c * len(list)
	}
	if kept > 10 || floats > 2*2000*10 {
		t.Fatalf("arena keeps %d buffers (%d floats) after lengths 1000…1999 one at a time", kept, floats)
	}
}

// TestArenaClass: a class holds its length, is at most 12.5% larger, and
// small sizes are exact.
func TestArenaClass(t *testing.T) {
	for n := 1; n < 1<<16; n += 1 + n/50 {
		c := arenaClass(n)
		if c < n || (n > 64 && float64(c) > float64(n)*1.125+1) || (n <= 64 && c != n) {
			t.Fatalf("arenaClass(%d) = %d", n, c)
		}
	}
}

// arenaKept is what the arena holds between calls: buffers and floats.
func arenaKept(a *floatArena) (bufs, floats int) {
	for c, list := range a.free {
		bufs += len(list)
		floats += c * len(list)
	}
	return bufs, floats
}

// TestFloatArenaBoundedOverSteps: training calls whose batches have
// varying token counts (the RL steps of a real model: 700–1,000 tokens,
// so each activation falls in one of several size classes) keep about one
// call's worth of buffers, not one set per size class seen. Pooled by
// class alone, the arena kept a set for each of the ~6 classes (the real
// model's RSS grew by gigabytes per RL step).
func TestFloatArenaBoundedOverSteps(t *testing.T) {
	const perCall, maxN = 10, 1_000_000
	a := newFloatArena()
	r := uint64(1)
	for range 200 {
		r = r*6364136223846793005 + 1442695040888963407
		n := 700_000 + int(r>>33)%(maxN-700_000)
		for range perCall {
			b := a.get(n)
			if len(b) != n || b[n-1] != 0 {
				t.Fatalf("get(%d): %d floats, last %g", n, len(b), b[n-1])
			}
			b[0], b[n-1] = 1, 1
		}
		a.reset()
	}
	// One call's set of the largest class (1,048,576 floats) is 10.5M floats.
	if bufs, floats := arenaKept(a); floats > 2*perCall*maxN {
		t.Fatalf("arena keeps %d buffers, %d floats; one call needs at most %d", bufs, floats, perCall*maxN)
	}
}

// TestFloatArenaReusesAcrossAlternatingCalls: a forward-only call between
// two training calls (the proximal logprobs before each update) does not
// make the arena drop the training call's buffers: after the first round
// nothing new is allocated.
func TestFloatArenaReusesAcrossAlternatingCalls(t *testing.T) {
	a := newFloatArena()
	call := func(sizes ...int) {
		for _, n := range sizes {
			a.get(n)
		}
		a.reset()
	}
	call(5000, 5000)                   // forward only
	call(5000, 5000, 9000, 9000, 9000) // forward and backward
	first := a.allocated
	for range 20 {
		call(4900, 5000)
		call(4900, 5000, 8800, 9000, 9000)
	}
	if a.allocated != first {
		t.Fatalf("%d buffers allocated after the first round (%d in it)", a.allocated-first, first)
	}
}
