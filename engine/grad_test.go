package engine

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// Finite-difference checks: each op's backward against central differences
// of a random linear functional of its forward output, then the whole tiny
// model. Forward passes are float32, so the step is 1e-2 and the tolerance
// relative to the gradient scale.

type fdCase struct {
	name string
	// f computes Σ r·forward(x) for the current x.
	f func() float64
	// grad returns the analytic gradient of that sum w.r.t. x.
	grad func() []float32
	x    []float32
}

func checkFD(t *testing.T, c fdCase, probes int, rng *rand.Rand) {
	t.Helper()
	g := c.grad()
	scale := 0.0
	for _, v := range g {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	for p := 0; p < probes; p++ {
		i := rng.IntN(len(c.x))
		old := c.x[i]
		const h = 1e-2
		c.x[i] = old + h
		fp := c.f()
		c.x[i] = old - h
		fm := c.f()
		c.x[i] = old
		num := (fp - fm) / (2 * h)
		if d := math.Abs(num - float64(g[i])); d > 2e-2*scale+1e-4 {
			t.Errorf("%s: d/dx[%d] analytic %.6g, numeric %.6g (scale %.3g)", c.name, i, g[i], num, scale)
		}
	}
}

func dotF(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func TestOpGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	rows, dim := 5, 12
	x := randSlice(rng, rows*dim)
	w := randSlice(rng, dim)
	r := randSlice(rng, rows*dim)

	t.Run("rmsnorm", func(t *testing.T) {
		out, inv := make([]float32, rows*dim), make([]float32, rows)
		f := func() float64 { rmsNormForward(out, inv, x, w, rows, dim, 1e-6); return dotF(r, out) }
		grad := func() []float32 {
			f()
			dx, dw := make([]float32, rows*dim), make([]float32, dim)
			rmsNormBackward(dx, dw, r, x, inv, w, rows, dim)
			return dx
		}
		checkFD(t, fdCase{"rmsnorm dx", f, grad, x}, 20, rng)
		gradW := func() []float32 {
			f()
			dx, dw := make([]float32, rows*dim), make([]float32, dim)
			rmsNormBackward(dx, dw, r, x, inv, w, rows, dim)
			return dw
		}
		checkFD(t, fdCase{"rmsnorm dw", f, gradW, w}, 10, rng)
	})
	t.Run("rope", func(t *testing.T) {
		tab := newRopeTable(4, 10000)
		cos, sin := tab.upTo(50)
		pos := []int{0, 3, 7, 20, 49}
		y := make([]float32, rows*dim)
		f := func() float64 {
			copy(y, x)
			ropeApply(y, dim, rows, 3, 2, pos, cos, sin, false)
			return dotF(r, y)
		}
		grad := func() []float32 {
			g := append([]float32(nil), r...)
			ropeApply(g, dim, rows, 3, 2, pos, cos, sin, true)
			return g
		}
		checkFD(t, fdCase{"rope", f, grad, x}, 20, rng)
	})
	t.Run("swiglu", func(t *testing.T) {
		n := rows * dim
		gate, up := randSlice(rng, n), randSlice(rng, n)
		act := make([]float32, n)
		f := func() float64 { swigluForward(act, gate, up); return dotF(r, act) }
		grads := func(which int) func() []float32 {
			return func() []float32 {
				dg, du := make([]float32, n), make([]float32, n)
				swigluBackward(dg, du, r, gate, up)
				if which == 0 {
					return dg
				}
				return du
			}
		}
		checkFD(t, fdCase{"swiglu gate", f, grads(0), gate}, 20, rng)
		checkFD(t, fdCase{"swiglu up", f, grads(1), up}, 20, rng)
	})
	t.Run("linear", func(t *testing.T) {
		// y = x·Wᵀ + b with W [out×in], the way every projection runs.
		in, out := dim, 7
		wt, b := randSlice(rng, out*in), randSlice(rng, out)
		ry := randSlice(rng, rows*out)
		y := make([]float32, rows*out)
		f := func() float64 {
			matMulNT(y, x, wt, rows, in, out, false)
			addBias(y, b, rows, out)
			return dotF(ry, y)
		}
		grads := func() (dx, dw, db []float32) {
			dx, dw, db = make([]float32, rows*in), make([]float32, out*in), make([]float32, out)
			matMulNN(dx, ry, wt, rows, out, in, false)
			matMulTN(dw, ry, x, out, rows, in, true)
			biasGrad(db, ry, rows, out)
			return
		}
		checkFD(t, fdCase{"linear dx", f, func() []float32 { dx, _, _ := grads(); return dx }, x}, 20, rng)
		checkFD(t, fdCase{"linear dW", f, func() []float32 { _, dw, _ := grads(); return dw }, wt}, 20, rng)
		checkFD(t, fdCase{"linear db", f, func() []float32 { _, _, db := grads(); return db }, b}, 7, rng)
	})
	t.Run("attention", func(t *testing.T) {
		// 70 queries crosses the 64-row block boundary.
		n, hd := 70, 8
		q, k, v := randSlice(rng, n*hd), randSlice(rng, n*hd), randSlice(rng, n*hd)
		out, lse := make([]float32, n*hd), make([]float32, n)
		ro := randSlice(rng, n*hd)
		head := func() attnHead {
			return attnHead{q: q, ldq: hd, k: k, v: v, ldkv: hd, out: out, ldo: hd, lse: lse, ldl: 1, nq: n, hd: hd, scale: 0.35}
		}
		f := func() float64 {
			attnForward(head(), make([]float32, attnBlock*n))
			return dotF(ro, out)
		}
		grad := func(which int) func() []float32 {
			return func() []float32 {
				f()
				dq, dk, dv := make([]float32, n*hd), make([]float32, n*hd), make([]float32, n*hd)
				attnBackward(head(), attnGrad{dout: ro, dq: dq, dk: dk, dv: dv}, make([]float32, 2*attnBlock*n+attnBlock))
				return [][]float32{dq, dk, dv}[which]
			}
		}
		checkFD(t, fdCase{"attention dq", f, grad(0), q}, 15, rng)
		checkFD(t, fdCase{"attention dk", f, grad(1), k}, 15, rng)
		checkFD(t, fdCase{"attention dv", f, grad(2), v}, 15, rng)
	})
}

func tinyConfig(modelType string, tied bool) *Config {
	c, _ := Preset("tiny", 97)
	c.ModelType = modelType
	c.TieWordEmbeddings = tied
	c.HiddenSize, c.IntermediateSize = 32, 48
	c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim = 4, 2, 8
	switch modelType {
	case "qwen2":
		c.HeadDim = 0
		c.AttentionBias = nil
	case "llama":
		c.HeadDim = 0 // hidden / heads, as SmolLM2's config leaves it
	}
	return c
}

func TestModelGradientFD(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		tied bool
		loss Loss
	}{
		{"qwen2", false, Loss{Fn: CrossEntropy}},
		{"qwen3", true, Loss{Fn: ImportanceSampling}},
		{"qwen3", false, Loss{Fn: PPO, ClipLow: 0.9, ClipHigh: 1.1}},
		{"qwen3", false, Loss{Fn: PPO, ClipLow: 0.9, ClipHigh: 1.1, Temperature: 2}},
		{"qwen2", true, Loss{Fn: CrossEntropy, Temperature: 0.7}},
		{"llama", true, Loss{Fn: CrossEntropy}},
		{"llama_bias", false, Loss{Fn: ImportanceSampling}},
	} {
		t.Run(fmt.Sprintf("%s_%s_T%g", tc.typ, tc.loss.Fn, tc.loss.Temperature), func(t *testing.T) {
			c := tinyConfig(strings.TrimSuffix(tc.typ, "_bias"), tc.tied)
			if strings.HasSuffix(tc.typ, "_bias") {
				on := true
				c.AttentionBias = &on // q/k/v and o biases
			}
			w, err := NewRandomWeights(c, 1)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(9, 10))
			// Larger weights give gradients well above float32 noise.
			for i := range w.Flat {
				w.Flat[i] *= 10
			}
			for _, s := range paramLayout(c) {
				if len(s.shape) == 1 {
					for i, v := range w.byName[s.name] {
						w.byName[s.name][i] = v/10 + 0.1*float32(rng.NormFloat64())
					}
				}
			}
			ex := randomExamples(rng, c, []int{5, 9, 3})
			l := NewLearner(w)
			ctx := context.Background()
			lossAt := func() float64 {
				r, err := l.Forward(ctx, ex, tc.loss)
				if err != nil {
					t.Fatal(err)
				}
				return r.Loss
			}
			if _, err := l.ForwardBackward(ctx, ex, tc.loss); err != nil {
				t.Fatal(err)
			}
			g := append([]float32(nil), l.grads.Flat...)
			checkFD(t, fdCase{"model", lossAt, func() []float32 { return g }, l.model.W.Flat}, 60, rng)
		})
	}
}

func randomExamples(rng *rand.Rand, c *Config, lens []int) []Example {
	var ex []Example
	for _, n := range lens {
		e := Example{}
		for i := 0; i < n; i++ {
			e.Input = append(e.Input, rng.IntN(c.VocabSize))
			e.Target = append(e.Target, rng.IntN(c.VocabSize))
			e.Weights = append(e.Weights, float32(rng.IntN(2)))
			e.Logprobs = append(e.Logprobs, -float32(rng.Float64()*3)-2)
			e.Advantages = append(e.Advantages, float32(rng.NormFloat64()))
		}
		ex = append(ex, e)
	}
	return ex
}
