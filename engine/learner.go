package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
)

// StepResult is what Forward and ForwardBackward return.
type StepResult struct {
	// Logprobs[e][i] = log p(Target[i]) of example e under the weights used.
	Logprobs [][]float32
	// Elementwise[e][i] is token i's contribution to Loss.
	Elementwise [][]float32
	Loss        float64
	Metrics     map[string]float64
}

// AdamW holds one optimiser step's settings (Tinker's adam_params).
type AdamW struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
	// GradClipNorm rescales the accumulated gradient to this global L2
	// norm when it is larger; 0 disables clipping.
	GradClipNorm float64
}

// Learner trains one model: it owns the parameters, the accumulated
// gradients and the AdamW moments. Calls are serialised by a mutex.
type Learner struct {
	mu      sync.Mutex
	model   *Model // model.W.Params are the live, mutated parameters
	grads   *Params
	m1, m2  *Params
	step    int
	pending int // examples accumulated since the last optimiser step
	// scratch receives one call's gradients before they are added to
	// grads; kept across calls, like the arena's activation buffers, so
	// that a step does not fault in half a gigabyte of fresh pages.
	scratch *Params
	// scratchDirty is false while scratch is known to be all zeros.
	scratchDirty bool

	// LoRA mode (adapter != nil): the base weights are frozen and shared,
	// never copied or mutated; only the adapter's factors are trained, with
	// their own gradients, scratch and AdamW moments.
	adapter                    *Adapter
	agrads, ascratch, am1, am2 *Adapter
	baseModel                  string // base_model_name_or_path of saved adapters
}

// NewLearner starts training from w (which it copies).
func NewLearner(w *Weights) *Learner {
	own := &Weights{Config: w.Config, Params: w.Params.Clone()}
	l := &Learner{model: NewModel(own, 0), grads: newParams(w.Config, nil)}
	l.model.arena = newFloatArena()
	return l
}

// NewLoRALearner trains a LoRA adapter of shape lc on top of w, which
// stays frozen (and is shared, not copied: Weights are immutable). The
// adapter starts as PEFT initialises it (B = 0), seeded by seed.
func NewLoRALearner(w *Weights, lc LoRAConfig, seed uint64) (*Learner, error) {
	ad, err := NewAdapter(w.Config, lc)
	if err != nil {
		return nil, err
	}
	ad.InitPEFT(seed)
	l := &Learner{model: NewModel(w, 0), adapter: ad, agrads: ad.zeroLike(), ascratch: ad.zeroLike(), baseModel: lc.BaseModel}
	l.model.arena = newFloatArena()
	return l, nil
}

// LoRA reports whether the learner trains an adapter (and its rank).
func (l *Learner) LoRA() (rank int, ok bool) {
	if l.adapter == nil {
		return 0, false
	}
	return l.adapter.Rank, true
}

// Adapter copies the current adapter; nil for a full-weight learner.
func (l *Learner) Adapter() *Adapter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.adapter == nil {
		return nil
	}
	return l.adapter.Clone()
}

// Base is the frozen base model of a LoRA learner (nil otherwise).
func (l *Learner) Base() *Weights {
	if l.adapter == nil {
		return nil
	}
	return l.model.W
}

// Config is the model configuration.
func (l *Learner) Config() *Config { return l.model.Config }

// Step is the number of optimiser steps taken.
func (l *Learner) Step() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.step
}

// packBatch lays examples out back to back with no padding.
func packBatch(ex []Example) ([]int, []span) {
	total := 0
	for _, e := range ex {
		total += len(e.Input)
	}
	tokens := make([]int, 0, total)
	spans := make([]span, len(ex))
	for i, e := range ex {
		spans[i] = span{row: len(tokens), n: len(e.Input)}
		tokens = append(tokens, e.Input...)
	}
	return tokens, spans
}

// Forward computes logprobs and the loss without touching gradients.
func (l *Learner) Forward(ctx context.Context, ex []Example, loss Loss) (*StepResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.run(ctx, ex, loss, false)
}

// ForwardBackward computes logprobs and the loss and adds the loss's
// gradient to the accumulated gradients.
func (l *Learner) ForwardBackward(ctx context.Context, ex []Example, loss Loss) (*StepResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.run(ctx, ex, loss, true)
}

func (l *Learner) run(ctx context.Context, ex []Example, loss Loss, train bool) (*StepResult, error) {
	if err := loss.validate(l.model.Config, ex); err != nil {
		return nil, err
	}
	tokens, spans := packBatch(ex)
	defer l.model.arena.reset()
	p := l.model.W.Params
	for i := range spans {
		spans[i].lora = l.adapter
	}
	a, err := l.model.forward(ctx, p, tokens, spans, train, false)
	if err != nil {
		return nil, err
	}
	if !train {
		return l.model.headLoss(ctx, p, nil, a, ex, loss, nil)
	}
	if l.adapter != nil {
		return l.runLoRA(ctx, a, ex, loss)
	}
	// Gradients go to a scratch buffer first so that a cancelled call
	// leaves the accumulated gradients untouched.
	if l.scratch == nil {
		l.scratch = newParams(l.model.Config, nil)
	} else if l.scratchDirty {
		clearParallel(l.scratch.Flat)
	}
	l.scratchDirty = true
	g := l.scratch
	dhF := l.model.arena.get(a.T * l.model.Config.HiddenSize)
	res, err := l.model.headLoss(ctx, p, g, a, ex, loss, dhF)
	if err != nil {
		return nil, err
	}
	if err := l.model.backward(ctx, p, g, a, dhF, nil, nil); err != nil {
		return nil, err
	}
	if l.pending == 0 {
		// Nothing accumulated yet, so grads is all zeros (every path that
		// resets pending clears it): swap instead of adding.
		l.grads, l.scratch = g, l.grads
		l.scratchDirty = false
	} else {
		parallelRows(len(g.Flat), 1, func(lo, hi int) { addInto(l.grads.Flat[lo:hi], g.Flat[lo:hi]) })
	}
	l.pending += len(ex)
	return res, nil
}

// runLoRA is run's backward half in LoRA mode: the base gets no
// gradients, the adapter's go to a scratch adapter first so that a
// cancelled call leaves the accumulated ones untouched.
func (l *Learner) runLoRA(ctx context.Context, a *activations, ex []Example, loss Loss) (*StepResult, error) {
	p := l.model.W.Params
	clear(l.ascratch.Flat)
	dhF := l.model.arena.get(a.T * l.model.Config.HiddenSize)
	res, err := l.model.headLoss(ctx, p, nil, a, ex, loss, dhF)
	if err != nil {
		return nil, err
	}
	if err := l.model.backward(ctx, p, nil, a, dhF, l.adapter, l.ascratch); err != nil {
		return nil, err
	}
	addInto(l.agrads.Flat, l.ascratch.Flat)
	l.pending += len(ex)
	return res, nil
}

// gradFlat is the accumulated gradient: the adapter's in LoRA mode.
func (l *Learner) gradFlat() []float32 {
	if l.adapter != nil {
		return l.agrads.Flat
	}
	return l.grads.Flat
}

// GradNorm is the global L2 norm of the accumulated gradients.
func (l *Learner) GradNorm() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l2norm(l.gradFlat())
}

// l2norm sums squares in float64 over fixed chunks on all cores and adds
// the chunks in order, so the result does not depend on the core count.
func l2norm(v []float32) float64 {
	const chunk = 1 << 16
	parts := make([]float64, (len(v)+chunk-1)/chunk)
	parallelTasks(len(parts), 0, func(t int) {
		part := v[t*chunk : min(len(v), (t+1)*chunk)]
		var s0, s1, s2, s3 float64
		i := 0
		for ; i+4 <= len(part); i += 4 {
			x := part[i : i+4 : i+4]
			s0 += float64(x[0]) * float64(x[0])
			s1 += float64(x[1]) * float64(x[1])
			s2 += float64(x[2]) * float64(x[2])
			s3 += float64(x[3]) * float64(x[3])
		}
		for ; i < len(part); i++ {
			s0 += float64(part[i]) * float64(part[i])
		}
		parts[t] = (s0 + s1) + (s2 + s3)
	})
	var total float64
	for _, s := range parts {
		total += s
	}
	return math.Sqrt(total)
}

// OptimStep applies one AdamW update with the accumulated gradients and
// clears them. Weight decay is decoupled: w ← w − lr·(m̂/(√v̂+ε) + λ·w).
func (l *Learner) OptimStep(ctx context.Context, opt AdamW) (map[string]float64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opt.LR < 0 || opt.Beta1 < 0 || opt.Beta1 >= 1 || opt.Beta2 < 0 || opt.Beta2 >= 1 || opt.Eps < 0 || opt.WeightDecay < 0 || opt.GradClipNorm < 0 {
		return nil, fmt.Errorf("adam params out of range: %+v", opt)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var w, m1, m2 []float32
	if l.adapter != nil {
		if l.am1 == nil {
			l.am1, l.am2 = l.adapter.zeroLike(), l.adapter.zeroLike()
		}
		w, m1, m2 = l.adapter.Flat, l.am1.Flat, l.am2.Flat
	} else {
		if l.m1 == nil {
			l.m1, l.m2 = newParams(l.model.Config, nil), newParams(l.model.Config, nil)
		}
		w, m1, m2 = l.model.W.Flat, l.m1.Flat, l.m2.Flat
	}
	g := l.gradFlat()
	norm := l2norm(g)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		clear(g)
		l.pending = 0
		return nil, errors.New("gradient is not finite; the step was skipped and the gradients cleared")
	}
	scale := 1.0
	if opt.GradClipNorm > 0 && norm > opt.GradClipNorm {
		scale = opt.GradClipNorm / norm
	}
	l.step++
	b1, b2 := opt.Beta1, opt.Beta2
	bc1 := 1 - math.Pow(b1, float64(l.step))
	bc2 := 1 - math.Pow(b2, float64(l.step))
	lr, eps, wd := opt.LR, opt.Eps, opt.WeightDecay
	// In float32 like the stored moments: one division and one square root
	// per weight (√(v/bc2) = √v·(1/√bc2), 1/bc1 joins lr), and the gradient
	// is cleared in the same pass while it is in cache.
	k := adamConsts{scale: float32(scale), b1: float32(b1), omb1: float32(1 - b1), b2: float32(b2),
		omb2: float32(1 - b2), dec: float32(1 - lr*wd), lrc: float32(lr / bc1),
		isb2: float32(1 / math.Sqrt(bc2)), eps: float32(eps)}
	const block = 1 << 14 // whole blocks of 8-float vectors per task
	parallelTasks((len(w)+block-1)/block, 0, func(t int) {
		lo, hi := t*block, min(len(w), (t+1)*block)
		adamwUpdate(w[lo:hi], g[lo:hi], m1[lo:hi], m2[lo:hi], &k)
	})
	n := l.pending
	l.pending = 0
	return map[string]float64{"grad_norm": norm, "learning_rate": lr, "step": float64(l.step),
		"clipped": boolFloat(scale < 1), "examples": float64(n)}, nil
}

// adamConsts are one AdamW step's factors, in the order adamwAVX2 reads
// them.
type adamConsts struct {
	scale, b1, omb1, b2, omb2, dec, lrc, isb2, eps float32
}

// adamwGo is the portable AdamW update (and the vector kernel's tail).
func adamwGo(w, g, m, v []float32, k *adamConsts) {
	g, m, v = g[:len(w)], m[:len(w)], v[:len(w)]
	for i := range w {
		gi := g[i] * k.scale
		mi := k.b1*m[i] + k.omb1*gi
		vi := k.b2*v[i] + k.omb2*gi*gi
		m[i], v[i] = mi, vi
		w[i] = w[i]*k.dec - k.lrc*mi/(float32(math.Sqrt(float64(vi)))*k.isb2+k.eps)
		g[i] = 0
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Snapshot copies the current parameters into an immutable Weights, for a
// sampler or a checkpoint. In LoRA mode it is the base with the adapter
// merged in.
func (l *Learner) Snapshot() *Weights {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.adapter != nil {
		return l.adapter.merge(l.model.W) // made for this very model
	}
	return &Weights{Config: l.model.Config, Params: l.model.W.Params.Clone()}
}

// Schedule is a learning-rate schedule: linear warm-up then cosine or
// linear decay to MinRatio·peak, or constant.
type Schedule struct {
	Peak     float64
	Warmup   int
	Total    int
	Kind     string // "constant", "cosine" or "linear"
	MinRatio float64
}

// At returns the learning rate for optimiser step (0-based).
func (s Schedule) At(step int) float64 {
	if s.Warmup > 0 && step < s.Warmup {
		return s.Peak * float64(step+1) / float64(s.Warmup)
	}
	if s.Kind == "constant" || s.Kind == "" || s.Total <= s.Warmup {
		return s.Peak
	}
	frac := math.Min(1, float64(step-s.Warmup)/float64(s.Total-s.Warmup))
	lo := s.Peak * s.MinRatio
	switch s.Kind {
	case "linear":
		return lo + (s.Peak-lo)*(1-frac)
	default:
		return lo + (s.Peak-lo)*0.5*(1+math.Cos(math.Pi*frac))
	}
}
