package engine

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// One AdamW step against the update written out in float64 from the
// accumulated gradient: bias-corrected moments, decoupled weight decay
// (w shrinks by lr·λ·w even where the gradient is zero) and global-norm
// clipping (the moments see the rescaled gradient).
func TestAdamWStepMatchesFormula(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opt  AdamW
	}{
		{"plain", AdamW{LR: 1e-2, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8}},
		{"weight decay", AdamW{LR: 1e-2, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}},
		{"clipped", AdamW{LR: 1e-2, Beta1: 0.8, Beta2: 0.99, Eps: 1e-6, WeightDecay: 0.01, GradClipNorm: 0.05}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tinyConfig("qwen3", true)
			w, err := NewRandomWeights(c, 11)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			ex := randomExamples(rng, c, []int{6, 4})
			l := NewLearner(w)
			// Two steps, so the second uses non-trivial moments and bias
			// corrections with step = 2.
			m1 := make([]float64, len(w.Flat))
			m2 := make([]float64, len(w.Flat))
			for step := 1; step <= 2; step++ {
				if _, err := l.ForwardBackward(ctx, ex, Loss{Fn: CrossEntropy}); err != nil {
					t.Fatal(err)
				}
				g := append([]float32(nil), l.grads.Flat...)
				before := append([]float32(nil), l.model.W.Flat...)
				norm := l2norm(g)
				scale := 1.0
				if tc.opt.GradClipNorm > 0 && norm > tc.opt.GradClipNorm {
					scale = tc.opt.GradClipNorm / norm
				}
				met, err := l.OptimStep(ctx, tc.opt)
				if err != nil {
					t.Fatal(err)
				}
				if math.Abs(met["grad_norm"]-norm) > 1e-9*norm || met["step"] != float64(step) {
					t.Fatalf("metrics %v, want grad_norm %v step %d", met, norm, step)
				}
				if wantClip := scale < 1; (met["clipped"] == 1) != wantClip {
					t.Fatalf("clipped metric %v, want %v", met["clipped"], wantClip)
				}
				o := tc.opt
				bc1, bc2 := 1-math.Pow(o.Beta1, float64(step)), 1-math.Pow(o.Beta2, float64(step))
				worst := 0.0
				for i := range before {
					gi := float64(g[i]) * scale
					m1[i] = o.Beta1*m1[i] + (1-o.Beta1)*gi
					m2[i] = o.Beta2*m2[i] + (1-o.Beta2)*gi*gi
					want := float64(before[i]) - o.LR*((m1[i]/bc1)/(math.Sqrt(m2[i]/bc2)+o.Eps)+o.WeightDecay*float64(before[i]))
					worst = math.Max(worst, math.Abs(want-float64(l.model.W.Flat[i])))
				}
				// The update is at most lr·(1+λ|w|) per element, so 1e-6
				// is float32 rounding of the stored moments and weights.
				if worst > 1e-6 {
					t.Fatalf("step %d: weights differ from the AdamW formula by %.3g", step, worst)
				}
				for _, v := range l.grads.Flat {
					if v != 0 {
						t.Fatal("OptimStep left accumulated gradients behind")
					}
				}
			}
		})
	}
}

// TokenMean divides both the loss and its gradient by the number of active
// tokens in the call (non-zero weight for cross_entropy, non-zero advantage
// for the policy losses); without it the loss is Tinker's plain sum.
func TestTokenMeanNormalisation(t *testing.T) {
	ctx := context.Background()
	c := tinyConfig("qwen2", false)
	w, err := NewRandomWeights(c, 5)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	ex := randomExamples(rng, c, []int{7, 5})
	// Make some advantages zero so active counts differ per loss.
	ex[0].Advantages[1], ex[1].Advantages[3] = 0, 0
	for _, fn := range []string{CrossEntropy, ImportanceSampling, PPO} {
		t.Run(fn, func(t *testing.T) {
			active := 0
			for _, e := range ex {
				for i := range e.Target {
					if (Loss{Fn: fn}).active(&e, i) {
						active++
					}
				}
			}
			sum, mean := NewLearner(w), NewLearner(w)
			rs, err := sum.ForwardBackward(ctx, ex, Loss{Fn: fn})
			if err != nil {
				t.Fatal(err)
			}
			rm, err := mean.ForwardBackward(ctx, ex, Loss{Fn: fn, TokenMean: true})
			if err != nil {
				t.Fatal(err)
			}
			if rm.Metrics["active_tokens"] != float64(active) {
				t.Fatalf("active_tokens %v, want %d", rm.Metrics["active_tokens"], active)
			}
			if d := math.Abs(rm.Loss - rs.Loss/float64(active)); d > 1e-5*math.Max(1, math.Abs(rm.Loss)) {
				t.Fatalf("token-mean loss %v, sum/active %v", rm.Loss, rs.Loss/float64(active))
			}
			worst, scale := 0.0, 0.0
			for i, g := range sum.grads.Flat {
				scale = math.Max(scale, math.Abs(float64(g)))
				worst = math.Max(worst, math.Abs(float64(g)/float64(active)-float64(mean.grads.Flat[i])))
			}
			if worst > 1e-5*scale/float64(active) {
				t.Fatalf("token-mean gradient differs from sum/active by %.3g (scale %.3g)", worst, scale)
			}
			// Per-token logprobs do not depend on the normalisation.
			for i := range ex {
				if d := maxAbsDiff(rs.Logprobs[i], rm.Logprobs[i]); d != 0 {
					t.Fatalf("logprobs changed with TokenMean by %.3g", d)
				}
			}
		})
	}
}

// The per-token loss terms and their derivatives with Tinker's semantics,
// including both sides of the ppo clip for positive and negative advantages.
func TestLossTokenTerms(t *testing.T) {
	lp := func(r float64) float32 { return float32(math.Log(r)) } // learner logp with sampler logp 0
	cases := []struct {
		name             string
		loss             Loss
		ratio, adv, w    float64
		wantLoss, wantDL float64 // loss and dLoss/dlogp
		wantClip         bool
	}{
		{"ce", Loss{Fn: CrossEntropy}, 0.5, 0, 2, -2 * math.Log(0.5), -2, false},
		{"is", Loss{Fn: ImportanceSampling}, 1.5, 2, 0, -3, -3, false},
		{"ppo inside", Loss{Fn: PPO}, 1.1, 1, 0, -1.1, -1.1, false},
		{"ppo above, A>0: clipped", Loss{Fn: PPO}, 1.5, 1, 0, -1.2, 0, true},
		{"ppo above, A<0: unclipped", Loss{Fn: PPO}, 1.5, -1, 0, 1.5, 1.5, true},
		{"ppo below, A<0: clipped", Loss{Fn: PPO}, 0.5, -1, 0, 0.8, 0, true},
		{"ppo below, A>0: unclipped", Loss{Fn: PPO}, 0.5, 1, 0, -0.5, -0.5, true},
		{"ppo custom bounds", Loss{Fn: PPO, ClipLow: 0.9, ClipHigh: 1.05}, 1.1, 2, 0, -2.1, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := &Example{Weights: []float32{float32(c.w)}, Logprobs: []float32{0}, Advantages: []float32{float32(c.adv)}}
			loss, dl, clip := c.loss.tokenTerm(e, 0, lp(c.ratio))
			if math.Abs(float64(loss)-c.wantLoss) > 1e-5 || math.Abs(float64(dl)-c.wantDL) > 1e-5 || clip != c.wantClip {
				t.Fatalf("got loss %v dL/dlogp %v clipped %v, want %v %v %v", loss, dl, clip, c.wantLoss, c.wantDL, c.wantClip)
			}
		})
	}
}

func TestScheduleAt(t *testing.T) {
	cases := []struct {
		name string
		s    Schedule
		step int
		want float64
	}{
		{"constant", Schedule{Peak: 1e-3}, 500, 1e-3},
		{"warm-up first step", Schedule{Peak: 1, Warmup: 4, Total: 100, Kind: "cosine"}, 0, 0.25},
		{"warm-up last step", Schedule{Peak: 1, Warmup: 4, Total: 100, Kind: "cosine"}, 3, 1},
		{"cosine start", Schedule{Peak: 1, Warmup: 0, Total: 100, Kind: "cosine"}, 0, 1},
		{"cosine middle", Schedule{Peak: 1, Warmup: 0, Total: 100, Kind: "cosine", MinRatio: 0.1}, 50, 0.55},
		{"cosine end", Schedule{Peak: 1, Warmup: 10, Total: 110, Kind: "cosine", MinRatio: 0.1}, 110, 0.1},
		{"cosine past end", Schedule{Peak: 1, Warmup: 10, Total: 110, Kind: "cosine"}, 1000, 0},
		{"linear quarter", Schedule{Peak: 2, Warmup: 0, Total: 100, Kind: "linear"}, 25, 1.5},
		{"linear with floor", Schedule{Peak: 2, Warmup: 0, Total: 100, Kind: "linear", MinRatio: 0.5}, 100, 1},
		{"total not after warm-up", Schedule{Peak: 3, Warmup: 5, Total: 5, Kind: "linear"}, 9, 3},
	}
	for _, c := range cases {
		if got := c.s.At(c.step); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: At(%d) = %v, want %v", c.name, c.step, got, c.want)
		}
	}
}

// A cancelled ForwardBackward leaves the accumulated gradients as they were.
func TestForwardBackwardCancelKeepsGradients(t *testing.T) {
	c := tinyConfig("qwen3", false)
	w, err := NewRandomWeights(c, 2)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	ex := randomExamples(rng, c, []int{5})
	l := NewLearner(w)
	if _, err := l.ForwardBackward(context.Background(), ex, Loss{Fn: CrossEntropy}); err != nil {
		t.Fatal(err)
	}
	before := append([]float32(nil), l.grads.Flat...)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.ForwardBackward(ctx, ex, Loss{Fn: CrossEntropy}); err == nil {
		t.Fatal("cancelled call succeeded")
	}
	if d := maxAbsDiff(before, l.grads.Flat); d != 0 {
		t.Fatalf("cancelled call changed the gradients by %.3g", d)
	}
	if _, err := l.OptimStep(ctx, AdamW{LR: 1}); err == nil {
		t.Fatal("cancelled optimiser step succeeded")
	}
}

// TestThinAndPackedPathsAgree: one batch of more than thinRows rows runs
// the packed products (and the head packed once per call), the same
// examples in two calls of fewer rows run gemmThin (the transposed
// products, the head in place); the summed losses and the accumulated
// gradients, full-weight and LoRA, must agree to float rounding.
func TestThinAndPackedPathsAgree(t *testing.T) {
	w := scaledTinyWeights(t, "qwen2", true)
	rng := rand.New(rand.NewPCG(21, 22))
	ex := randomExamples(rng, w.Config, []int{70, 50, 40}) // 160 rows; 70 and 90 apart
	ctx := context.Background()
	loss := Loss{Fn: CrossEntropy}
	type run struct {
		loss  float64
		grads []float32
	}
	for _, lora := range []bool{false, true} {
		learner := func() *Learner {
			if !lora {
				return NewLearner(w)
			}
			l, err := NewLoRALearner(w, LoRAConfig{Rank: 4, Alpha: 8}, 1)
			if err != nil {
				t.Fatal(err)
			}
			randomizeAdapter(l.adapter, rand.New(rand.NewPCG(5, 6)), 0.3)
			return l
		}
		step := func(batches ...[]Example) run {
			l := learner()
			var r run
			for _, b := range batches {
				res, err := l.ForwardBackward(ctx, b, loss)
				if err != nil {
					t.Fatal(err)
				}
				r.loss += res.Loss
			}
			r.grads = slices.Clone(l.gradFlat())
			return r
		}
		packed, thin := step(ex), step(ex[:1], ex[1:])
		if math.Abs(packed.loss-thin.loss) > 1e-4*math.Abs(packed.loss) {
			t.Fatalf("lora=%v: loss %v in one batch, %v in two", lora, packed.loss, thin.loss)
		}
		scale := l2norm(packed.grads) / math.Sqrt(float64(len(packed.grads)))
		for i := range packed.grads {
			if d := math.Abs(float64(packed.grads[i] - thin.grads[i])); d > 1e-3*scale+1e-4*math.Abs(float64(packed.grads[i])) {
				t.Fatalf("lora=%v: gradient %d is %v in one batch, %v in two", lora, i, packed.grads[i], thin.grads[i])
			}
		}
	}
}
