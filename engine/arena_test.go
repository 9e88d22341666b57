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
