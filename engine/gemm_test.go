package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func randSlice(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// naiveGemm is the reference: c (+)= op(a)·op(b) in float64.
func naiveGemm(g gemmArgs) []float32 {
	out := make([]float32, g.m*g.ldc)
	copy(out, g.c)
	for i := 0; i < g.m; i++ {
		for j := 0; j < g.n; j++ {
			var s float64
			for p := 0; p < g.k; p++ {
				var av, bv float32
				if g.transA {
					av = g.a[p*g.lda+i]
				} else {
					av = g.a[i*g.lda+p]
				}
				if g.transB {
					bv = g.b[j*g.ldb+p]
				} else {
					bv = g.b[p*g.ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			if g.accumulate {
				s += float64(g.c[i*g.ldc+j])
			}
			out[i*g.ldc+j] = float32(s)
		}
	}
	return out
}

func TestGemm(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// Rows on both sides of thinRows, so that the thin paths (B in place,
	// the transposed product) and the packed one all run; columns that
	// end in a partial panel; depths over one kc block.
	shapes := [][3]int{{1, 1, 1}, {6, 16, 8}, {7, 17, 300}, {1, 100, 65}, {33, 5, 513}, {97, 50, 3}, {13, 40, 0},
		{thinRows, 48, 257}, {thinRows + 1, 33, 260}, {40, 200, 600}, {130, 70, 300}, {thinMinRows, 70, 40}, {thinMinRows - 1, 70, 40}}
	for _, s := range shapes {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				for _, acc := range []bool{false, true} {
					for _, threads := range []int{1, 2} {
						m, n, k := s[0], s[1], s[2]
						g := gemmArgs{m: m, n: n, k: k, a: randSlice(rng, m*k), b: randSlice(rng, k*n),
							c: randSlice(rng, m*n), ldc: n, transA: ta, transB: tb, accumulate: acc, threads: threads}
						g.lda, g.ldb = k, n
						if ta {
							g.lda = m
						}
						if tb {
							g.ldb = k
						}
						want := naiveGemm(g)
						gemm(g)
						for i := range want {
							if d := math.Abs(float64(want[i] - g.c[i])); d > 1e-4*(1+math.Abs(float64(want[i]))) {
								t.Fatalf("%v ta=%v tb=%v acc=%v threads=%d: c[%d]=%v want %v", s, ta, tb, acc, threads, i, g.c[i], want[i])
							}
						}
					}
				}
			}
		}
	}
}

func TestMatMulPacked(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, s := range [][3]int{{1, 300, 33}, {7, 513, 16}, {40, 64, 70}} {
		m, k, n := s[0], s[1], s[2]
		a, w := randSlice(rng, m*k), randSlice(rng, n*k)
		want, got := make([]float32, m*n), make([]float32, m*n)
		matMulNT(want, a, w, m, k, n, false)
		matMulPacked(got, a, m, packWeight(w, n, k), false)
		for i := range want {
			if math.Abs(float64(want[i]-got[i])) > 1e-4 {
				t.Fatalf("%v: [%d] %v vs %v", s, i, got[i], want[i])
			}
		}
	}
}

func TestKernelGoMatchesAsm(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	k, lda := 37, 41
	a, b := randSlice(rng, lda*k), randSlice(rng, k*nr)
	for _, trans := range []bool{false, true} {
		c1, c2 := randSlice(rng, mr*20), make([]float32, mr*20)
		copy(c2, c1)
		kernel6x16(k, a, lda, trans, b, c1, 20, true)
		kernel6x16Go(k, a, lda, trans, b, c2, 20, true)
		for i := range c1 {
			if math.Abs(float64(c1[i]-c2[i])) > 1e-4 {
				t.Fatalf("trans=%v c[%d]: %v vs %v", trans, i, c1[i], c2[i])
			}
		}
	}
}

func BenchmarkMatMul(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	// The last five are SmolLM2-135M shapes of a 32-token training step
	// (MLP up/down, the head both ways) and a 128-row one.
	for _, s := range [][3]int{{512, 512, 512}, {64, 768, 768}, {1024, 384, 1024}, {1, 384, 1024}, {32, 384, 1024},
		{32, 576, 1536}, {32, 1536, 576}, {32, 576, 49152}, {32, 49152, 576}, {128, 576, 1536}} {
		m, k, n := s[0], s[1], s[2]
		a, w, c := randSlice(rng, m*k), randSlice(rng, n*k), make([]float32, m*n)
		b.Run(fmt.Sprintf("NT_%dx%dx%d", m, k, n), func(b *testing.B) {
			for b.Loop() {
				matMulNT(c, a, w, m, k, n, false)
			}
			b.ReportMetric(2*float64(m*k*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		pw := packWeight(w, n, k)
		b.Run(fmt.Sprintf("Packed_%dx%dx%d", m, k, n), func(b *testing.B) {
			for b.Loop() {
				matMulPacked(c, a, m, pw, false)
			}
			b.ReportMetric(2*float64(m*k*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		b.Run(fmt.Sprintf("NN_%dx%dx%d", m, k, n), func(b *testing.B) {
			for b.Loop() {
				matMulNN(c, a, w, m, k, n, false)
			}
			b.ReportMetric(2*float64(m*k*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

func TestExpScaled(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{0, 1, 7, 8, 9, 64, 1001} {
		src := make([]float32, n)
		for i := range src {
			src[i] = float32(rng.Float64()*200 - 100)
		}
		if n > 3 {
			src[0], src[1], src[2] = -200, 0, 88
		}
		dst := make([]float32, n)
		expScaled(dst, src, 0.5, -1)
		for i, x := range src {
			want := math.Exp(float64(float32(float64(x)*0.5 + 1)))
			got := float64(dst[i])
			if want > 1e-37 && math.Abs(got-want) > 3e-7*want || want <= 1e-37 && got > 2e-38 {
				t.Fatalf("n=%d exp(%v·0.5+1) = %v, want %v", n, x, got, want)
			}
		}
		expScaled(src, src, 1, 0) // in place
	}
	for _, x := range []float32{-104, -90, -50, -1, 0, 1e-8, 0.3, 1, 10, 80, 88.5, 100} {
		if got, want := float64(expf(x)), math.Exp(float64(x)); math.Abs(got-want) > 3e-7*want+1e-44 && want < math.MaxFloat32 {
			t.Errorf("expf(%v) = %v, want %v", x, got, want)
		}
	}
}

func BenchmarkKernel(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	k := 256
	a := randSlice(rng, 6*k)
	bp := randSlice(rng, k*nr)
	c := make([]float32, 6*nr)
	for _, trans := range []bool{false, true} {
		lda := k
		if trans {
			lda = 6
		}
		b.Run(fmt.Sprintf("trans=%v", trans), func(b *testing.B) {
			for b.Loop() {
				kernel6x16(k, a, lda, trans, bp, c, nr, true)
			}
			b.ReportMetric(2*float64(6*nr*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkStepGEMM replays the small preset's linear-layer products of a
// 2048-token training step, one shape and product at a time.
func BenchmarkStepGEMM(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	const T = 2048
	for _, s := range [][2]int{{384, 384}, {384, 128}, {384, 1024}, {1024, 384}, {384, 4096}} {
		in, out := s[0], s[1]
		x, dy, w := randSlice(rng, T*in), randSlice(rng, T*out), randSlice(rng, out*in)
		y, dx, gw := make([]float32, T*out), make([]float32, T*in), make([]float32, out*in)
		flops := 2 * float64(T*in*out)
		for _, p := range []struct {
			name string
			run  func()
		}{
			{"NT", func() { matMulNT(y, x, w, T, in, out, false) }},
			{"NN", func() { matMulNN(dx, dy, w, T, out, in, false) }},
			{"TN", func() { matMulTN(gw, dy, x, out, T, in, true) }},
		} {
			b.Run(fmt.Sprintf("%s_%dx%d", p.name, in, out), func(b *testing.B) {
				for b.Loop() {
					p.run()
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// The vector AdamW kernel and its portable tail agree on every length.
func TestAdamwUpdateMatchesGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	k := adamConsts{scale: 0.7, b1: 0.9, omb1: 0.1, b2: 0.95, omb2: 0.05, dec: 0.999, lrc: 0.01, isb2: 1.2, eps: 1e-8}
	for _, n := range []int{0, 1, 7, 8, 9, 64, 1001} {
		w, g, m, v := randSlice(rng, n), randSlice(rng, n), randSlice(rng, n), randSlice(rng, n)
		for i := range v {
			v[i] *= v[i]
		}
		w2, g2, m2, v2 := slices.Clone(w), slices.Clone(g), slices.Clone(m), slices.Clone(v)
		adamwUpdate(w, g, m, v, &k)
		adamwGo(w2, g2, m2, v2, &k)
		for i := range w {
			// The vector kernel fuses multiply-adds, so allow a few ulp.
			near := func(a, b float32) bool { return math.Abs(float64(a-b)) <= 1e-6*math.Max(1, math.Abs(float64(b))) }
			if !near(w[i], w2[i]) || !near(m[i], m2[i]) || !near(v[i], v2[i]) || g[i] != 0 || g2[i] != 0 {
				t.Fatalf("n=%d i=%d: w %v vs %v, m %v vs %v, g %v %v", n, i, w[i], w2[i], m[i], m2[i], g[i], g2[i])
			}
		}
	}
}
