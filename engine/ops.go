package engine

import (
	"math"
	"math/bits"
	"runtime"
	"sync"
)

// Elementwise and row-wise operations, each with its backward pass next to
// it. Row loops are spread over the cores with parallelRows.

// parallelRows splits [0, rows) into contiguous ranges, one per core, when
// the work (rows·width) is large enough to pay for the goroutines.
func parallelRows(rows, width int, fn func(lo, hi int)) {
	threads := runtime.GOMAXPROCS(0)
	if threads == 1 || rows < 2 || rows*width < 16*1024 {
		fn(0, rows)
		return
	}
	threads = min(threads, rows)
	var wg sync.WaitGroup
	wg.Add(threads - 1)
	for t := 1; t < threads; t++ {
		lo, hi := t*rows/threads, (t+1)*rows/threads
		go func() { defer wg.Done(); fn(lo, hi) }()
	}
	fn(0, rows/threads)
	wg.Wait()
}

// rmsNormForward: out = x / sqrt(mean(x²) + eps) · w, per row of width dim;
// inv[r] keeps 1/sqrt(mean(x²)+eps) for the backward pass.
func rmsNormForward(out, inv, x, w []float32, rows, dim int, eps float64) {
	parallelRows(rows, dim, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x[r*dim : r*dim+dim]
			var ss float64
			for _, v := range xr {
				ss += float64(v) * float64(v)
			}
			s := float32(1 / math.Sqrt(ss/float64(dim)+eps))
			if inv != nil {
				inv[r] = s
			}
			or := out[r*dim : r*dim+dim]
			for i, v := range xr {
				or[i] = w[i] * (v * s)
			}
		}
	})
}

// rmsNormBackward adds the gradients of rmsNormForward: with y = w·x·s and
// s = (mean(x²)+eps)^-½,
//
//	dx = s·(w∘dy) − s³/dim · x · Σ(w∘dy∘x),   dw = Σ_rows dy∘x·s.
//
// dw is accumulated per row range and merged under a lock; nil skips it.
func rmsNormBackward(dx, dw, dy, x, inv, w []float32, rows, dim int) {
	var mu sync.Mutex
	parallelRows(rows, dim, func(lo, hi int) {
		local := make([]float32, dim)
		for r := lo; r < hi; r++ {
			xr, dyr, dxr := x[r*dim:r*dim+dim], dy[r*dim:r*dim+dim], dx[r*dim:r*dim+dim]
			s := inv[r]
			var dot float32
			for i := range xr {
				dot += w[i] * dyr[i] * xr[i]
				local[i] += dyr[i] * xr[i] * s
			}
			c := s * s * s * dot / float32(dim)
			for i := range xr {
				dxr[i] += s*w[i]*dyr[i] - c*xr[i]
			}
		}
		if dw == nil { // frozen weight
			return
		}
		mu.Lock()
		for i, v := range local {
			dw[i] += v
		}
		mu.Unlock()
	})
}

// ropeTable caches cos/sin of position·inv_freq the way transformers
// computes them (float32 inverse frequencies and products), so logits
// match to float rounding.
type ropeTable struct {
	mu       sync.RWMutex
	half     int
	invFreq  []float32
	cos, sin []float32 // [pos][half]
}

func newRopeTable(headDim int, theta float64) *ropeTable {
	half := headDim / 2
	t := &ropeTable{half: half, invFreq: make([]float32, half)}
	for i := 0; i < half; i++ {
		exp := float32(2*i) / float32(headDim)
		t.invFreq[i] = float32(1 / float32(math.Pow(theta, float64(exp))))
	}
	return t
}

// upTo returns tables covering positions [0, n).
func (t *ropeTable) upTo(n int) (cos, sin []float32) {
	t.mu.RLock()
	if len(t.cos) >= n*t.half {
		cos, sin = t.cos, t.sin
		t.mu.RUnlock()
		return cos, sin
	}
	t.mu.RUnlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	have := len(t.cos) / t.half
	if have >= n {
		return t.cos, t.sin
	}
	want := max(n, 2*have, 256)
	c := make([]float32, want*t.half)
	s := make([]float32, want*t.half)
	copy(c, t.cos)
	copy(s, t.sin)
	for p := have; p < want; p++ {
		for i, f := range t.invFreq {
			a := float64(float32(p) * f)
			c[p*t.half+i] = float32(math.Cos(a))
			s[p*t.half+i] = float32(math.Sin(a))
		}
	}
	t.cos, t.sin = c, s
	return c, s
}

// ropeApply rotates heads of width 2·half in place, rows at positions
// pos[r], in transformers' rotate_half layout (pairs i and i+half). With
// inverse it applies the transposed rotation, which is the backward pass.
func ropeApply(x []float32, ld, rows, heads, half int, pos []int, cos, sin []float32, inverse bool) {
	parallelRows(rows, heads*half*2, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			c := cos[pos[r]*half : pos[r]*half+half]
			s := sin[pos[r]*half : pos[r]*half+half]
			for h := 0; h < heads; h++ {
				v := x[r*ld+h*2*half : r*ld+h*2*half+2*half]
				a, b := v[:half], v[half:]
				if inverse {
					for i := range a {
						a[i], b[i] = a[i]*c[i]+b[i]*s[i], b[i]*c[i]-a[i]*s[i]
					}
				} else {
					for i := range a {
						a[i], b[i] = a[i]*c[i]-b[i]*s[i], b[i]*c[i]+a[i]*s[i]
					}
				}
			}
		}
	})
}

// expf is a float32 exp accurate to a few ulp: x = n·ln2 + r with |r| ≤ ln2/2,
// e^r by a degree-7 Taylor polynomial, and 2^n put into the exponent bits.
// math.Exp in float64 is several times slower and the activations do not
// need it.
func expf(x float32) float32 {
	if x > 88.7 {
		return float32(math.Inf(1))
	}
	if x < -103 {
		return 0
	}
	const ln2hi, ln2lo, log2e = 0.693145751953125, 1.42860682030941723212e-6, 1.4426950408889634
	n := float32(math.Floor(float64(x*log2e + 0.5)))
	r := x - n*ln2hi - n*ln2lo
	p := 1 + r*(1+r*(0.5+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040)))))))
	ni := int32(n)
	if ni > 127 {
		return p * 2 * math.Float32frombits(uint32(ni-1+127)<<23)
	}
	if ni < -126 { // subnormal result: scale in two steps
		return p * math.Float32frombits(uint32(ni+126+127)<<23) * math.Float32frombits(1<<23)
	}
	return p * math.Float32frombits(uint32(ni+127)<<23)
}

// sigmoidChunks calls fn with σ(x) for consecutive chunks of x, computing
// the exponentials with the vector kernel.
func sigmoidChunks(x []float32, lo, hi int, fn func(i0 int, sig []float32)) {
	var buf [1024]float32
	for c := lo; c < hi; c += len(buf) {
		n := min(len(buf), hi-c)
		s := buf[:n]
		expScaled(s, x[c:c+n], -1, 0)
		for i, e := range s {
			s[i] = 1 / (1 + e)
		}
		fn(c, s)
	}
}

// swigluForward: act = silu(gate)·up.
func swigluForward(act, gate, up []float32) {
	parallelRows(len(act), 1, func(lo, hi int) {
		sigmoidChunks(gate, lo, hi, func(i0 int, sig []float32) {
			for i, sg := range sig {
				act[i0+i] = gate[i0+i] * sg * up[i0+i]
			}
		})
	})
}

// swigluBackward: dup = dact·silu(g); dgate = dact·up·σ(g)(1 + g(1−σ(g))).
// dact is overwritten by dgate, and dup is written.
func swigluBackward(dgate, dup, dact, gate, up []float32) {
	parallelRows(len(dact), 1, func(lo, hi int) {
		sigmoidChunks(gate, lo, hi, func(i0 int, sig []float32) {
			for j, sg := range sig {
				i := i0 + j
				g, d := gate[i], dact[i]
				dup[i] = d * g * sg
				dgate[i] = d * up[i] * sg * (1 + g*(1-sg))
			}
		})
	})
}

func addBias(x, b []float32, rows, dim int) {
	for r := 0; r < rows; r++ {
		xr := x[r*dim : r*dim+dim]
		for i := range xr {
			xr[i] += b[i]
		}
	}
}

func biasGrad(db, dy []float32, rows, dim int) {
	for r := 0; r < rows; r++ {
		dr := dy[r*dim : r*dim+dim]
		for i := range dr {
			db[i] += dr[i]
		}
	}
}

func addInto(dst, src []float32) {
	for i := range dst {
		dst[i] += src[i]
	}
}

// maxf32 is slices.Max without its NaN checks, in four independent
// chains; NaN inputs are not expected here (a non-finite loss is caught
// later) and the result is then unspecified. z must not be empty.
func maxf32(z []float32) float32 {
	m0 := z[0]
	m1, m2, m3 := m0, m0, m0
	i := 0
	for ; i+4 <= len(z); i += 4 {
		v := z[i : i+4 : i+4]
		m0, m1, m2, m3 = max(m0, v[0]), max(m1, v[1]), max(m2, v[2]), max(m3, v[3])
	}
	for ; i < len(z); i++ {
		m0 = max(m0, z[i])
	}
	return max(max(m0, m1), max(m2, m3))
}

// sumf32 adds z in eight independent chains (one long chain is bound by
// the adder's latency).
func sumf32(z []float32) float32 {
	var s [8]float32
	i := 0
	for ; i+8 <= len(z); i += 8 {
		v := z[i : i+8 : i+8]
		s[0] += v[0]
		s[1] += v[1]
		s[2] += v[2]
		s[3] += v[3]
		s[4] += v[4]
		s[5] += v[5]
		s[6] += v[6]
		s[7] += v[7]
	}
	for ; i < len(z); i++ {
		s[0] += z[i]
	}
	return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))
}

// dsScale sets ds[j] = p[j]·(ds[j] − d)·scale: attention's score gradient
// from dP, the probabilities and D = dO·O.
func dsScale(ds, p []float32, d, scale float32) {
	p = p[:len(ds)]
	i := 0
	for ; i+4 <= len(ds); i += 4 {
		x, y := ds[i:i+4:i+4], p[i:i+4:i+4]
		x[0] = y[0] * (x[0] - d) * scale
		x[1] = y[1] * (x[1] - d) * scale
		x[2] = y[2] * (x[2] - d) * scale
		x[3] = y[3] * (x[3] - d) * scale
	}
	for ; i < len(ds); i++ {
		ds[i] = p[i] * (ds[i] - d) * scale
	}
}

// logSumExpBuf is logSumExp with the vector exp kernel; tmp holds len(z).
func logSumExpBuf(z, tmp []float32) float32 {
	mx := maxf32(z)
	expScaled(tmp, z, 1, mx)
	var s float64
	for _, e := range tmp[:len(z)] {
		s += float64(e)
	}
	return mx + float32(math.Log(s))
}

// logSumExp returns log Σ exp(z) for one row.
func logSumExp(z []float32) float32 {
	mx := float32(math.Inf(-1))
	for _, v := range z {
		mx = max(mx, v)
	}
	var s float64
	for _, v := range z {
		s += math.Exp(float64(v - mx))
	}
	return mx + float32(math.Log(s))
}

// floatArena hands out zeroed float32 buffers and takes them all back at
// reset, so that a training step reuses the previous step's memory instead
// of allocating ~0.5 GB that the runtime hands back to the OS in between
// and the kernel faults in again page by page. Buffers are pooled by size
// class (arenaClass), not by exact length: keyed by length, every new
// sequence length of a batch kept a new set of buffers for good (the train
// demo, whose batches have ever new lengths, went from ~140 MiB to
// 2.4 GiB of RSS when the arena came in). Classes alone still kept one set
// per class ever seen (an RL step of a real model, 700–1,000 tokens, spans
// ~6 classes: gigabytes more RSS per step), so a request may take a free
// buffer of a larger class, up to twice its own, and buffers that no call
// asked for in arenaIdleResets resets go back to the garbage collector.
// Not safe for concurrent use; a nil arena allocates.
type floatArena struct {
	free   map[int][]arenaBuf // by capacity (a size class), oldest first
	used   [][]float32
	resets int
	// allocated counts buffers made (for tests).
	allocated int
}

// arenaBuf is a free buffer and the reset that returned it.
type arenaBuf struct {
	b        []float32
	returned int
}

// arenaIdleResets is how many calls a free buffer may sit unused before it
// is dropped: enough that a forward-only call between two training calls
// does not drop the backward pass's buffers.
const arenaIdleResets = 4

func newFloatArena() *floatArena { return &floatArena{free: map[int][]arenaBuf{}} }

// arenaClass rounds n up to one of 8 sizes per power of two, so that a
// buffer serves every length within 12.5% below its capacity.
func arenaClass(n int) int {
	if n <= 64 {
		return n
	}
	step := 1 << (bits.Len(uint(n)) - 4) // an eighth of the power of two below n
	return (n + step - 1) / step * step
}

func (a *floatArena) get(n int) []float32 {
	if a == nil {
		return make([]float32, n)
	}
	c := arenaClass(n)
	// The smallest free buffer of class c up to 2c (8 classes above c,
	// at most 9 lookups).
	for k, i := c, 0; k <= 2*c && i < 9; k, i = arenaClass(k+1), i+1 {
		list := a.free[k]
		if len(list) == 0 {
			continue
		}
		b := list[len(list)-1].b[:n]
		list[len(list)-1] = arenaBuf{}
		if len(list) == 1 {
			delete(a.free, k)
		} else {
			a.free[k] = list[:len(list)-1]
		}
		clearParallel(b)
		a.used = append(a.used, b)
		return b
	}
	b := make([]float32, n, c)
	a.allocated++
	a.used = append(a.used, b)
	return b
}

// reset returns every buffer handed out since the last reset and drops
// the ones idle for arenaIdleResets resets.
func (a *floatArena) reset() {
	if a == nil {
		return
	}
	a.resets++
	for _, b := range a.used {
		a.free[cap(b)] = append(a.free[cap(b)], arenaBuf{b, a.resets})
	}
	clear(a.used)
	a.used = a.used[:0]
	for c, list := range a.free {
		// Oldest first: the idle ones are a prefix.
		i := 0
		for i < len(list) && list[i].returned <= a.resets-arenaIdleResets {
			i++
		}
		if i == 0 {
			continue
		}
		if i == len(list) {
			delete(a.free, c)
			continue
		}
		n := copy(list, list[i:])
		clear(list[n:])
		a.free[c] = list[:n]
	}
}

// clearParallel zeroes x on all cores when it is large.
func clearParallel(x []float32) {
	parallelRows(len(x), 1, func(lo, hi int) { clear(x[lo:hi]) })
}
