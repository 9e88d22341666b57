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

// What to do with samples whose behaviour logprobs are missing.
const (
	MissingReject    = "reject"
	MissingRecompute = "recompute"
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
	// BehavWeightMode is "mask" (tokens with w > cap get no gradient, as
	// ASearcher's recipe does; the default) or "clamp" (w = min(w, cap)).
	BehavWeightMode string `yaml:"behav_weight_mode"`
	// MissingLogprobs says what happens to a sample with generated tokens
	// whose behaviour logprob the sampler did not return: "reject" (the
	// default) fails the trajectory like any sampling error, so it is
	// retried and otherwise its group is rejected; "recompute" takes the
	// logprob from the trainer's forward pass when the token was generated
	// by the weights being trained (exact: the behaviour policy is then the
	// current one) and drops the sample from the loss otherwise. Either way
	// the tokens are never trained with a logprob of 0.
	MissingLogprobs string `yaml:"missing_logprobs"`
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
	// ForcedTokens weighs the tokens exploration wrote
	// (rl.explore.train_tag): "importance" (the default) treats them as
	// sampled by the exploring policy with probability 1, so w =
	// π_prox/1, the exact off-policy correction (their gradient grows with
	// the policy's own probability of them); "policy" takes π_behav = π_prox
	// (w = 1), as if the policy had sampled them: a biased, much stronger
	// push towards what exploration did when it paid.
	ForcedTokens string `yaml:"forced_tokens"`
}

// LossConfig.ForcedTokens values.
const (
	ForcedImportance = "importance"
	ForcedPolicy     = "policy"
)

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
	switch c.MissingLogprobs {
	case MissingReject, MissingRecompute:
	default:
		return fmt.Errorf("loss.missing_logprobs %q: want reject or recompute", c.MissingLogprobs)
	}
	switch c.ForcedTokens {
	case "", ForcedImportance, ForcedPolicy:
	default:
		return fmt.Errorf("loss.forced_tokens %q: want importance or policy", c.ForcedTokens)
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
	Samples     int `json:"samples"`
	Sequences   int `json:"sequences"`
	Tokens      int `json:"tokens"`       // all tokens sent
	TrainTokens int `json:"train_tokens"` // generated (loss) tokens
	// Loss is the token-mean loss over the batch as the trainer reports
	// it; nil (null in JSON) when the trainer reported none (SkyRL's
	// forward_backward returns no loss), never a made-up 0.
	Loss          *float64 `json:"loss"`
	ClipFraction  float64  `json:"clip_fraction"`   // loss tokens whose ratio was clipped
	Entropy       float64  `json:"entropy"`         // −mean logp of sampled tokens under π_prox
	ImpWeightMean float64  `json:"imp_weight_mean"` // π_prox/π_behav over loss tokens
	ImpWeightMax  float64  `json:"imp_weight_max"`
	ImpWeightMin  float64  `json:"imp_weight_min"`
	ImpCapped     float64  `json:"imp_capped_fraction"`
	AdvAbsMean    float64  `json:"adv_abs_mean"`
	// LogprobsRecomputed counts generated tokens whose missing behaviour
	// logprob was taken from the trainer's forward pass; SamplesDropped
	// counts samples left out of the loss because a missing logprob could
	// not be recomputed exactly (missing_logprobs: recompute).
	LogprobsRecomputed int `json:"logprobs_recomputed,omitempty"`
	SamplesDropped     int `json:"samples_dropped_missing_logprobs,omitempty"`
	// Temperature is the sampling temperature the loss's logprobs were
	// computed at.
	Temperature float64 `json:"temperature"`
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
	miss   []bool // behaviour logprob missing; nil when none is
	forced []bool // written by exploration (Sequence.Forced); nil when none is
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
					miss:   missingTail(seq),
					forced: forcedTail(seq),
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

// missingTail is the sequence's missing-logprob marks aligned with its
// targets, or nil when no generated token lacks a logprob.
func missingTail(seq *Sequence) []bool {
	if seq.MissingLogprobs() == 0 {
		return nil
	}
	return seq.LogprobMissing[1:]
}

// forcedTail is the sequence's exploration marks aligned with its
// targets, or nil when there are none.
func forcedTail(seq *Sequence) []bool {
	if seq.Forced == nil {
		return nil
	}
	return seq.Forced[1:]
}

// batchTemperature is the one sampling temperature of a batch's samples
// (0 read as 1); the loss computes its logprobs there.
func batchTemperature(groups []*Group) (float64, error) {
	t := 0.0
	for _, g := range groups {
		for _, s := range g.Samples {
			st := s.Temperature
			if st == 0 {
				st = 1
			}
			if t != 0 && st != t {
				return 0, fmt.Errorf("the batch mixes samples drawn at temperatures %g and %g; the loss computes logprobs at one temperature, so sample every trajectory at the same one", t, st)
			}
			t = st
		}
	}
	if t == 0 {
		t = 1
	}
	return t, nil
}

// resolveMissing applies missing_logprobs: recompute to the batch. A sample
// whose missing tokens were all generated at the version being trained
// can take them from the trainer's forward pass (π_behav is then π_prox,
// exactly); any other sample with a missing logprob is dropped from the
// loss. It returns the data kept and the number of samples dropped.
func resolveMissing(data []datum, version int, policy string) ([]datum, int, error) {
	stale := map[int]bool{}
	found := false
	for i := range data {
		for t, m := range data[i].miss {
			if m && data[i].mask[t] {
				found = true
				if data[i].vers[t] != version {
					stale[data[i].sample] = true
				}
			}
		}
	}
	if !found {
		return data, 0, nil
	}
	if policy != MissingRecompute {
		return nil, 0, fmt.Errorf("%w; rl.loss.missing_logprobs is %q", ErrMissingLogprobs, policy)
	}
	if len(stale) == 0 {
		return data, 0, nil
	}
	kept := data[:0:0]
	for _, d := range data {
		if !stale[d.sample] {
			kept = append(kept, d)
		}
	}
	return kept, len(stale), nil
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
// PPO, or to recompute missing behaviour logprobs), then one
// forward_backward + optim_step per minibatch, every logprob at the
// samples' sampling temperature. version is the weight version being
// trained (the staleness histogram, and which missing logprobs can be
// recomputed).
func Train(ctx context.Context, tr trainer.Trainer, groups []*Group, version int,
	acfg *AdvantageConfig, lcfg *LossConfig, adam trainer.AdamParams) (*TrainStats, error) {
	b, err := prepareBatch(groups, version, acfg, lcfg)
	if err != nil {
		return nil, err
	}
	if err := b.proximalLogprobs(ctx, tr, lcfg); err != nil {
		return nil, err
	}
	if err := b.tokenWeights(version, lcfg); err != nil {
		return nil, err
	}
	if err := b.optimise(ctx, tr, acfg, lcfg, adam); err != nil {
		return nil, err
	}
	return b.st, nil
}

// trainBatch is one training step's state as Train's phases fill it in.
type trainBatch struct {
	temp         float64
	data         []datum
	sampleTokens []int
	st           *TrainStats
	// behav and prox are the behaviour and proximal logprobs per datum
	// and token; weights the per-token behaviour weights.
	behav, prox, weights [][]float32
}

// prepareBatch builds the batch's sequences with their advantages and
// drops the samples whose missing behaviour logprobs cannot be recomputed.
func prepareBatch(groups []*Group, version int, acfg *AdvantageConfig, lcfg *LossConfig) (*trainBatch, error) {
	temp, err := batchTemperature(groups)
	if err != nil {
		return nil, err
	}
	data, sampleTokens, err := buildData(groups, acfg)
	if err != nil {
		return nil, err
	}
	st := &TrainStats{Staleness: map[int]int{}, ImpWeightMin: math.Inf(1), Optim: map[string]float64{}, Temperature: temp}
	for _, g := range groups {
		st.Samples += len(g.Samples)
	}
	if data, st.SamplesDropped, err = resolveMissing(data, version, lcfg.MissingLogprobs); err != nil {
		return nil, err
	}
	st.Sequences = len(data)
	if len(data) == 0 {
		if st.SamplesDropped > 0 {
			return nil, fmt.Errorf("every sample of the batch lacks behaviour logprobs for tokens of older weight versions, which cannot be recomputed; make the sampler return logprobs, or run synchronously (rl.max_staleness: 0) so every token is of the version trained")
		}
		return nil, fmt.Errorf("batch has no trainable sequence")
	}
	return &trainBatch{temp: temp, data: data, sampleTokens: sampleTokens, st: st}, nil
}

// proximalLogprobs sets behav (missing ones, kept only when generated by
// the current weights, filled in from a forward pass) and prox (π_prox:
// the current, pre-update weights on the batch for decoupled PPO, else
// the behaviour logprobs).
func (b *trainBatch) proximalLogprobs(ctx context.Context, tr trainer.Trainer, lcfg *LossConfig) error {
	data := b.data
	behav := make([][]float32, len(data))
	recompute := false
	asPolicy := lcfg.ForcedTokens == ForcedPolicy
	for i := range data {
		behav[i] = data[i].behav
		if data[i].miss != nil || (asPolicy && data[i].forced != nil) {
			behav[i] = append([]float32(nil), data[i].behav...)
			recompute = true
		}
	}
	var fwd [][]float32
	if lcfg.Kind == DecoupledPPO || recompute {
		fwd = make([][]float32, len(data))
		for _, r := range chunks(data, lcfg.MaxTokensPerCall) {
			base, ch := r[0], data[r[0]:r[1]]
			out, err := tr.Forward(ctx, trainerData(ch), trainer.CrossEntropy, trainer.LossConfig{Temperature: b.temp})
			if err != nil {
				return fmt.Errorf("forward for proximal logprobs: %w", err)
			}
			if len(out.Logprobs) != len(ch) {
				return fmt.Errorf("forward returned %d logprob rows for %d sequences", len(out.Logprobs), len(ch))
			}
			for i := range ch {
				if len(out.Logprobs[i]) != len(ch[i].d.Target) {
					return fmt.Errorf("forward returned %d logprobs for %d targets", len(out.Logprobs[i]), len(ch[i].d.Target))
				}
				fwd[base+i] = out.Logprobs[i]
			}
		}
	}
	for i := range data {
		for t, m := range data[i].miss {
			if m && data[i].mask[t] {
				behav[i][t] = fwd[i][t]
				b.st.LogprobsRecomputed++
			}
		}
		if asPolicy {
			// As if the policy had sampled what exploration wrote: w = 1.
			for t, f := range data[i].forced {
				if f && data[i].mask[t] {
					behav[i][t] = fwd[i][t]
				}
			}
		}
	}
	b.behav, b.prox = behav, behav
	if lcfg.Kind == DecoupledPPO {
		b.prox = fwd
	}
	return nil
}

// tokenWeights sets the per-token behaviour weights (π_prox/π_behav,
// capped or masked for decoupled PPO, else 1) and counts the tokens,
// staleness, entropy and importance-weight statistics.
func (b *trainBatch) tokenWeights(version int, lcfg *LossConfig) error {
	data, st, prox, behav := b.data, b.st, b.prox, b.behav
	b.weights = make([][]float32, len(data))
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
				lw := float64(prox[i][t]) - float64(behav[i][t])
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
		b.weights[i] = w
	}
	if st.TrainTokens == 0 {
		return fmt.Errorf("batch has no generated tokens to train on")
	}
	st.Entropy = entropySum / float64(st.TrainTokens)
	if wN > 0 {
		st.ImpWeightMean = wSum / float64(wN)
		st.ImpCapped = float64(capped) / float64(wN)
	} else {
		st.ImpWeightMin, st.ImpWeightMax, st.ImpWeightMean = 1, 1, 1
	}
	return nil
}

// optimise runs one forward_backward (in chunks of at most
// MaxTokensPerCall tokens) and one optim_step per minibatch, and records
// the loss, clip fraction, mean |advantage| and optimiser metrics.
func (b *trainBatch) optimise(ctx context.Context, tr trainer.Trainer, acfg *AdvantageConfig, lcfg *LossConfig, adam trainer.AdamParams) error {
	data, st, prox := b.data, b.st, b.prox
	lossFn := trainer.PPO
	if lcfg.Kind == ImportanceSampling {
		lossFn = trainer.ImportanceSampling
	}
	tcfg := trainer.LossConfig{ClipLow: 1 - lcfg.ClipEps, ClipHigh: 1 + lcfg.clipHigh(), Temperature: b.temp}
	if lossFn == trainer.ImportanceSampling {
		tcfg = trainer.LossConfig{Temperature: b.temp}
	}

	var clipped, advAbs, lossSum float64
	lossReported := true
	mbs := minibatches(data, lcfg.Minibatches)
	for _, mb := range mbs {
		lo, hi := mb[0], mb[1]
		denom := b.lossDenominator(lo, hi, acfg, lcfg)
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
					a := data[di].adv * float64(b.weights[di][t]) / denom
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
				return fmt.Errorf("forward_backward: %w", err)
			}
			lossSum += out.Loss
			lossReported = lossReported && out.LossReported
			if len(out.Logprobs) == len(ch) {
				for i := range ch {
					clipped += clipCount(out.Logprobs[i], ch[i], lcfg)
				}
			}
		}
		om, err := tr.OptimStep(ctx, adam)
		if err != nil {
			return fmt.Errorf("optim_step: %w", err)
		}
		for k, v := range om {
			st.Optim[k] = v
		}
	}
	st.ClipFraction = clipped / float64(st.TrainTokens)
	st.AdvAbsMean = advAbs / float64(st.TrainTokens)
	if acfg.Estimator != DrGRPO {
		// Each minibatch's loss is already a token mean; report their mean.
		lossSum /= float64(len(mbs))
	}
	if lossReported {
		st.Loss = &lossSum
	}
	return nil
}

// lossDenominator is the loss normaliser of minibatch data[lo:hi]: for
// Dr. GRPO its samples times a constant token count (DrGRPOTokens, else
// the batch's longest sample), else its loss tokens.
func (b *trainBatch) lossDenominator(lo, hi int, acfg *AdvantageConfig, lcfg *LossConfig) float64 {
	data := b.data
	if acfg.Estimator == DrGRPO {
		per := lcfg.DrGRPOTokens
		if per <= 0 {
			for _, n := range b.sampleTokens {
				per = max(per, n)
			}
		}
		seen := map[int]bool{}
		for i := lo; i < hi; i++ {
			seen[data[i].sample] = true
		}
		return float64(len(seen) * max(per, 1))
	}
	denom := 0.0
	for i := lo; i < hi; i++ {
		for _, m := range data[i].mask {
			if m {
				denom++
			}
		}
	}
	return denom
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
