package rl

import (
	"context"
	"fmt"
	"math"

	"github.com/asearcher/asearcher/trainer"
)

// LossKind selects the policy-gradient objective.
type LossKind string

const (
	// DecoupledPPO is AReaL's objective: the PPO ratio is taken against the
	// proximal policy π_prox (the weights before this step, from one
	// Forward), and each token is weighted by the capped behaviour importance
	// weight π_prox/π_behav. With Tinker's ppo loss that weight moves into the
	// advantage: logprobs = π_prox, advantages = A·w.
	DecoupledPPO LossKind = "decoupled_ppo"
	// PPO clips the ratio against the behaviour logprobs directly.
	PPO LossKind = "ppo"
	// ImportanceSampling is REINFORCE with the ratio π_θ/π_behav, unclipped.
	ImportanceSampling LossKind = "importance_sampling"
)

// LossConfig configures the objective and how a batch is fed to the trainer.
type LossConfig struct {
	Kind LossKind `yaml:"kind"`
	// ClipEps is PPO's ε: ratios outside [1-ε, 1+ε_high] are clipped.
	ClipEps float64 `yaml:"clip_eps"`
	// ClipEpsHigh is the upper ε (DAPO "clip-higher"); 0 means ClipEps.
	ClipEpsHigh float64 `yaml:"clip_eps_high"`
	// BehavWeightCap caps π_prox/π_behav (decoupled_ppo); 0 disables it.
	BehavWeightCap float64 `yaml:"behav_weight_cap"`
	// BehavWeightMode is "clamp" (w = min(w, cap)) or "mask" (tokens with
	// w > cap get no gradient, as ASearcher's recipe does).
	BehavWeightMode string `yaml:"behav_weight_mode"`
	// Minibatches splits each batch (by whole groups) into sequential
	// optimiser steps.
	Minibatches int `yaml:"minibatches"`
	// MaxTokensPerCall bounds the tokens of one forward/forward_backward
	// call; bigger minibatches are sent in several calls whose gradients
	// accumulate.
	MaxTokensPerCall int `yaml:"max_tokens_per_call"`
	// DrGRPOTokens is the constant loss denominator per sample under
	// dr_grpo (the generation budget); 0 uses the longest sample.
	DrGRPOTokens int `yaml:"dr_grpo_tokens"`
}

func (c *LossConfig) validate() error {
	switch c.Kind {
	case DecoupledPPO, PPO, ImportanceSampling:
	default:
		return fmt.Errorf("loss.kind %q: want decoupled_ppo, ppo or importance_sampling", c.Kind)
	}
	if c.ClipEps <= 0 || c.ClipEps >= 1 {
		return fmt.Errorf("loss.clip_eps %g: want 0 < ε < 1", c.ClipEps)
	}
	if c.ClipEpsHigh < 0 {
		return fmt.Errorf("loss.clip_eps_high %g: want ≥ 0", c.ClipEpsHigh)
	}
	if c.BehavWeightCap != 0 && c.BehavWeightCap <= 1 {
		return fmt.Errorf("loss.behav_weight_cap %g: want > 1, or 0 for no cap", c.BehavWeightCap)
	}
	switch c.BehavWeightMode {
	case "clamp", "mask":
	default:
		return fmt.Errorf("loss.behav_weight_mode %q: want clamp or mask", c.BehavWeightMode)
	}
	if c.Minibatches < 1 {
		return fmt.Errorf("loss.minibatches %d: want ≥ 1", c.Minibatches)
	}
	if c.MaxTokensPerCall < 1 {
		return fmt.Errorf("loss.max_tokens_per_call %d: want ≥ 1", c.MaxTokensPerCall)
	}
	return nil
}

func (c *LossConfig) clipHigh() float64 {
	if c.ClipEpsHigh > 0 {
		return c.ClipEpsHigh
	}
	return c.ClipEps
}

// TrainStats summarises one training step.
type TrainStats struct {
	Samples       int     `json:"samples"`
	Sequences     int     `json:"sequences"`
	Tokens        int     `json:"tokens"`          // all tokens sent
	TrainTokens   int     `json:"train_tokens"`    // generated (loss) tokens
	Loss          float64 `json:"loss"`            // token-mean loss over the batch
	ClipFraction  float64 `json:"clip_fraction"`   // loss tokens whose ratio was clipped
	Entropy       float64 `json:"entropy"`         // −mean logp of sampled tokens under π_prox
	ImpWeightMean float64 `json:"imp_weight_mean"` // π_prox/π_behav over loss tokens
	ImpWeightMax  float64 `json:"imp_weight_max"`
	ImpWeightMin  float64 `json:"imp_weight_min"`
	ImpCapped     float64 `json:"imp_capped_fraction"`
	AdvAbsMean    float64 `json:"adv_abs_mean"`
	// Staleness counts loss tokens by (train version − token version).
	Staleness map[int]int        `json:"staleness"`
	Optim     map[string]float64 `json:"optim,omitempty"`
}

// datum is one sequence ready for the trainer plus what the loss needs.
type datum struct {
	d      trainer.Datum
	mask   []bool
	behav  []float32
	vers   []int
	adv    float64
	sample int
	group  int
}

// buildData turns groups into per-sequence data with per-sample advantages.
func buildData(groups []*Group, acfg *AdvantageConfig) ([]datum, []int, error) {
	var out []datum
	var sampleTokens []int
	var advs []float64
	sample := 0
	for gi, g := range groups {
		rewards := make([]float64, len(g.Samples))
		for i, s := range g.Samples {
			rewards[i] = s.Reward
		}
		adv := acfg.GroupAdvantages(rewards)
		for i, s := range g.Samples {
			advs = append(advs, adv[i])
			sampleTokens = append(sampleTokens, s.GeneratedTokens())
			for si := range s.Sequences {
				seq := &s.Sequences[si]
				if err := seq.Validate(); err != nil {
					return nil, nil, fmt.Errorf("question %s sample %d: %w", g.Question.ID, i, err)
				}
				if len(seq.Tokens) < 2 {
					continue
				}
				n := len(seq.Tokens) - 1
				out = append(out, datum{
					d: trainer.Datum{
						Input:  seq.Tokens[:n],
						Target: seq.Tokens[1:],
					},
					mask:   seq.LossMask[1:],
					behav:  seq.Logprobs[1:],
					vers:   seq.Versions[1:],
					sample: sample,
					group:  gi,
				})
			}
			sample++
		}
	}
	if acfg.GlobalNorm {
		acfg.GlobalNormalise(advs, sampleTokens)
	}
	for i := range out {
		out[i].adv = advs[out[i].sample]
	}
	return out, sampleTokens, nil
}

// chunks splits data into index ranges of at most maxTokens input tokens (a
// longer single datum goes alone).
func chunks(data []datum, maxTokens int) [][2]int {
	var out [][2]int
	start, tok := 0, 0
	for i := range data {
		n := len(data[i].d.Input)
		if i > start && tok+n > maxTokens {
			out = append(out, [2]int{start, i})
			start, tok = i, 0
		}
		tok += n
	}
	if start < len(data) {
		out = append(out, [2]int{start, len(data)})
	}
	return out
}

func trainerData(ds []datum) []trainer.Datum {
	out := make([]trainer.Datum, len(ds))
	for i := range ds {
		out[i] = ds[i].d
	}
	return out
}

// Train runs one training step on a batch: advantages, π_prox (decoupled
// PPO), then one forward_backward + optim_step per minibatch. version is
// the weight version being trained (used for the staleness histogram).
func Train(ctx context.Context, tr trainer.Trainer, groups []*Group, version int,
	acfg *AdvantageConfig, lcfg *LossConfig, adam trainer.AdamParams) (*TrainStats, error) {
	data, sampleTokens, err := buildData(groups, acfg)
	if err != nil {
		return nil, err
	}
	st := &TrainStats{Staleness: map[int]int{}, ImpWeightMin: math.Inf(1), Optim: map[string]float64{}}
	for _, g := range groups {
		st.Samples += len(g.Samples)
	}
	st.Sequences = len(data)
	if len(data) == 0 {
		return nil, fmt.Errorf("batch has no trainable sequence")
	}

	// π_prox: the current (pre-update) weights on the batch.
	prox := make([][]float32, len(data))
	if lcfg.Kind == DecoupledPPO {
		for _, r := range chunks(data, lcfg.MaxTokensPerCall) {
			base, ch := r[0], data[r[0]:r[1]]
			out, err := tr.Forward(ctx, trainerData(ch), trainer.CrossEntropy, trainer.LossConfig{})
			if err != nil {
				return nil, fmt.Errorf("forward for proximal logprobs: %w", err)
			}
			if len(out.Logprobs) != len(ch) {
				return nil, fmt.Errorf("forward returned %d logprob rows for %d sequences", len(out.Logprobs), len(ch))
			}
			for i := range ch {
				if len(out.Logprobs[i]) != len(ch[i].d.Target) {
					return nil, fmt.Errorf("forward returned %d logprobs for %d targets", len(out.Logprobs[i]), len(ch[i].d.Target))
				}
				prox[base+i] = out.Logprobs[i]
			}
		}
	} else {
		for i := range data {
			prox[i] = data[i].behav
		}
	}

	// Per-token behaviour weights, loss denominators, staleness.
	weights := make([][]float32, len(data))
	var wSum float64
	var wN, capped int
	var entropySum float64
	for i := range data {
		w := make([]float32, len(data[i].mask))
		for t, m := range data[i].mask {
			st.Tokens++
			if !m {
				continue
			}
			st.TrainTokens++
			st.Staleness[version-data[i].vers[t]]++
			entropySum -= float64(prox[i][t])
			wt := 1.0
			if lcfg.Kind == DecoupledPPO {
				lw := float64(prox[i][t]) - float64(data[i].behav[t])
				if math.IsNaN(lw) || math.IsInf(lw, 0) {
					lw = 0
				}
				wt = math.Exp(lw)
				st.ImpWeightMax = math.Max(st.ImpWeightMax, wt)
				st.ImpWeightMin = math.Min(st.ImpWeightMin, wt)
				wSum += wt
				wN++
				if lcfg.BehavWeightCap > 0 && wt > lcfg.BehavWeightCap {
					capped++
					if lcfg.BehavWeightMode == "mask" {
						wt = 0
					} else {
						wt = lcfg.BehavWeightCap
					}
				}
			}
			w[t] = float32(wt)
		}
		weights[i] = w
	}
	if st.TrainTokens == 0 {
		return nil, fmt.Errorf("batch has no generated tokens to train on")
	}
	st.Entropy = entropySum / float64(st.TrainTokens)
	if wN > 0 {
		st.ImpWeightMean = wSum / float64(wN)
		st.ImpCapped = float64(capped) / float64(wN)
	} else {
		st.ImpWeightMin, st.ImpWeightMax, st.ImpWeightMean = 1, 1, 1
	}

	lossFn := trainer.PPO
	if lcfg.Kind == ImportanceSampling {
		lossFn = trainer.ImportanceSampling
	}
	tcfg := trainer.LossConfig{ClipLow: 1 - lcfg.ClipEps, ClipHigh: 1 + lcfg.clipHigh()}
	if lossFn == trainer.ImportanceSampling {
		tcfg = trainer.LossConfig{}
	}

	var clipped, advAbs float64
	mbs := minibatches(data, lcfg.Minibatches)
	for _, mb := range mbs {
		lo, hi := mb[0], mb[1]
		denom := 0.0
		if acfg.Estimator == DrGRPO {
			per := lcfg.DrGRPOTokens
			if per <= 0 {
				for _, n := range sampleTokens {
					per = max(per, n)
				}
			}
			seen := map[int]bool{}
			for i := lo; i < hi; i++ {
				seen[data[i].sample] = true
			}
			denom = float64(len(seen) * max(per, 1))
		} else {
			for i := lo; i < hi; i++ {
				for _, m := range data[i].mask {
					if m {
						denom++
					}
				}
			}
		}
		if denom == 0 {
			continue
		}
		sub := make([]datum, hi-lo)
		copy(sub, data[lo:hi])
		for i := range sub {
			di := lo + i
			n := len(sub[i].mask)
			lp := make([]float32, n)
			adv := make([]float32, n)
			for t := range n {
				lp[t] = prox[di][t]
				if sub[i].mask[t] {
					a := data[di].adv * float64(weights[di][t]) / denom
					adv[t] = float32(a)
					advAbs += math.Abs(data[di].adv)
				}
			}
			sub[i].d.Logprobs = lp
			sub[i].d.Advantages = adv
		}
		for _, r := range chunks(sub, lcfg.MaxTokensPerCall) {
			ch := sub[r[0]:r[1]]
			out, err := tr.ForwardBackward(ctx, trainerData(ch), lossFn, tcfg)
			if err != nil {
				return nil, fmt.Errorf("forward_backward: %w", err)
			}
			st.Loss += out.Loss
			if len(out.Logprobs) == len(ch) {
				for i := range ch {
					clipped += clipCount(out.Logprobs[i], ch[i], lcfg)
				}
			}
		}
		om, err := tr.OptimStep(ctx, adam)
		if err != nil {
			return nil, fmt.Errorf("optim_step: %w", err)
		}
		for k, v := range om {
			st.Optim[k] = v
		}
	}
	st.ClipFraction = clipped / float64(st.TrainTokens)
	st.AdvAbsMean = advAbs / float64(st.TrainTokens)
	if acfg.Estimator != DrGRPO {
		// Each minibatch's loss is already a token mean; report their mean.
		st.Loss /= float64(len(mbs))
	}
	return st, nil
}

// clipCount counts loss tokens whose PPO ratio was clipped in the direction
// that removes their gradient.
func clipCount(logp []float32, d datum, lcfg *LossConfig) float64 {
	if lcfg.Kind == ImportanceSampling || len(logp) != len(d.mask) {
		return 0
	}
	lo, hi := 1-lcfg.ClipEps, 1+lcfg.clipHigh()
	n := 0.0
	for t, m := range d.mask {
		if !m {
			continue
		}
		r := math.Exp(float64(logp[t]) - float64(d.d.Logprobs[t]))
		a := d.d.Advantages[t]
		if (a > 0 && r > hi) || (a < 0 && r < lo) {
			n++
		}
	}
	return n
}

// minibatches splits data into n contiguous ranges on group boundaries.
func minibatches(data []datum, n int) [][2]int {
	groups := data[len(data)-1].group + 1
	n = min(n, groups)
	var out [][2]int
	lo := 0
	for k := 1; k <= n; k++ {
		cut := groups * k / n // first group of the next minibatch
		hi := lo
		for hi < len(data) && data[hi].group < cut {
			hi++
		}
		if hi > lo {
			out = append(out, [2]int{lo, hi})
		}
		lo = hi
	}
	return out
}
