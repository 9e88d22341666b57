package rl

import (
	"fmt"
	"math"
)

// Estimator names how group rewards become advantages.
type Estimator string

const (
	// GRPO centres rewards on the group mean, optionally divides by the
	// group std, and averages the loss over tokens.
	GRPO Estimator = "grpo"
	// DrGRPO only centres (no std division, which over-weights near-uniform
	// groups) and normalises the loss by a constant instead of the token
	// count (no length bias).
	DrGRPO Estimator = "dr_grpo"
)

// AdvantageConfig shapes rewards into per-trajectory advantages.
type AdvantageConfig struct {
	Estimator Estimator `yaml:"estimator"`
	// StdNorm divides centred rewards by the group std (grpo only; dr_grpo
	// never does).
	StdNorm bool `yaml:"std_norm"`
	// GlobalNorm additionally normalises advantages to mean 0, std 1 over
	// all generated tokens of the batch (AReaL's adv_norm batch/batch, which
	// ASearcher uses).
	GlobalNorm bool `yaml:"global_norm"`
	// Reward shaping before centring: r' = clip((r + bias)·scale, ±clip).
	RewardBias  float64 `yaml:"reward_bias"`
	RewardScale float64 `yaml:"reward_scale"`
	RewardClip  float64 `yaml:"reward_clip"`
	// Eps guards the std divisions.
	Eps float64 `yaml:"eps"`
}

func (c *AdvantageConfig) validate() error {
	switch c.Estimator {
	case GRPO, DrGRPO:
	default:
		return fmt.Errorf("advantage.estimator %q: want grpo or dr_grpo", c.Estimator)
	}
	if c.RewardScale == 0 {
		return fmt.Errorf("advantage.reward_scale is 0: every advantage would vanish")
	}
	if c.RewardClip < 0 || c.Eps < 0 {
		return fmt.Errorf("advantage.reward_clip and advantage.eps must be ≥ 0")
	}
	return nil
}

// ShapeReward applies bias, scale and clip.
func (c *AdvantageConfig) ShapeReward(r float64) float64 {
	r = (r + c.RewardBias) * c.RewardScale
	if c.RewardClip > 0 {
		r = math.Max(-c.RewardClip, math.Min(c.RewardClip, r))
	}
	return r
}

// ZeroVariance reports whether every reward of a group is the same, in which
// case every centred advantage is 0 and the group teaches nothing.
func ZeroVariance(rewards []float64) bool {
	for _, r := range rewards[1:] {
		if r != rewards[0] {
			return false
		}
	}
	return true
}

// GroupAdvantages turns one group's raw rewards into advantages.
func (c *AdvantageConfig) GroupAdvantages(rewards []float64) []float64 {
	n := float64(len(rewards))
	adv := make([]float64, len(rewards))
	var mean float64
	for i, r := range rewards {
		adv[i] = c.ShapeReward(r)
		mean += adv[i]
	}
	mean /= n
	for i := range adv {
		adv[i] -= mean
	}
	if c.Estimator == GRPO && c.StdNorm && len(adv) > 1 {
		// Unbiased std, as AReaL's default (std_unbiased=True).
		var ss float64
		for _, a := range adv {
			ss += a * a
		}
		std := math.Sqrt(ss / (n - 1))
		for i := range adv {
			adv[i] /= std + c.Eps
		}
	}
	return adv
}

// GlobalNormalise rescales per-sample advantages to mean 0 and std 1 over
// tokens, each sample weighted by its number of generated tokens.
func (c *AdvantageConfig) GlobalNormalise(adv []float64, tokens []int) {
	var w, sum float64
	for i, a := range adv {
		sum += a * float64(tokens[i])
		w += float64(tokens[i])
	}
	if w == 0 {
		return
	}
	mean := sum / w
	var ss float64
	for i, a := range adv {
		d := a - mean
		ss += d * d * float64(tokens[i])
	}
	std := math.Sqrt(ss / w)
	for i := range adv {
		adv[i] = (adv[i] - mean) / (std + c.Eps)
	}
}
