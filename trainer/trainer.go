// Package trainer is the training side of asearcher, in the shape of the
// Tinker API (forward, forward_backward, optim_step, save_weights_for_sampler)
// so that the embedded engine, the Tinker service and SkyRL tx are
// interchangeable behind one interface.
package trainer

import "context"

// LossFn names a per-token loss with Tinker's semantics.
type LossFn string

const (
	// CrossEntropy: loss = -Σ Weights·logp(Target).
	CrossEntropy LossFn = "cross_entropy"
	// ImportanceSampling: loss = -Σ exp(logp - Logprobs)·Advantages.
	ImportanceSampling LossFn = "importance_sampling"
	// PPO: loss = -Σ min(r·A, clip(r, ClipLow, ClipHigh)·A), r = exp(logp - Logprobs).
	PPO LossFn = "ppo"
)

// Datum is one training sequence in Tinker's layout: for the full sequence
// s, Input = s[:len-1] and Target = s[1:], so Input[i] predicts Target[i].
// Per-token slices have len(Target) entries.
type Datum struct {
	Input      []int     `json:"input"`
	Target     []int     `json:"target"`
	Weights    []float32 `json:"weights,omitempty"`    // cross_entropy
	Logprobs   []float32 `json:"logprobs,omitempty"`   // sampler logprobs of Target (importance_sampling, ppo)
	Advantages []float32 `json:"advantages,omitempty"` // importance_sampling, ppo
}

// LossConfig carries loss options; zero values take Tinker's defaults.
type LossConfig struct {
	ClipLow  float64 `json:"clip_low_threshold,omitempty"`  // ppo lower ratio bound (default 0.8)
	ClipHigh float64 `json:"clip_high_threshold,omitempty"` // ppo upper ratio bound (default 1.2)
	// TokenMean divides the summed loss by the number of active tokens
	// (non-zero weight, or non-zero advantage). An asearcher extension that
	// only the embedded trainer implements; Tinker always sums.
	TokenMean bool `json:"-"`
	// Temperature divides the logits before the log-softmax, so logprobs
	// (and the loss) are those of the policy sampled at that temperature;
	// 0 and 1 both mean none. The Tinker API has no such field: the Tinker
	// trainer refuses any other value rather than train on T = 1 logprobs.
	Temperature float64 `json:"-"`
}

// Output is the result of Forward or ForwardBackward.
type Output struct {
	// Logprobs[d][i] is logp(Target[i]) of datum d under the weights the
	// call ran with.
	Logprobs [][]float32 `json:"logprobs"`
	// Loss is the summed loss over all data (Tinker sums; callers normalise
	// through weights or advantages). It is meaningful only when
	// LossReported: some servers (SkyRL's forward_backward) return no loss.
	Loss         float64            `json:"loss"`
	LossReported bool               `json:"-"`
	Metrics      map[string]float64 `json:"metrics,omitempty"`
}

// AdamParams are the optimiser settings of one step (Tinker's adam_params).
type AdamParams struct {
	LearningRate float64 `json:"learning_rate"`
	Beta1        float64 `json:"beta1"`
	Beta2        float64 `json:"beta2"`
	Eps          float64 `json:"eps"`
	WeightDecay  float64 `json:"weight_decay"`   // decoupled (AdamW)
	GradClipNorm float64 `json:"grad_clip_norm"` // 0 disables clipping
}

// Trainer trains one model. Gradients from ForwardBackward calls accumulate
// until OptimStep.
type Trainer interface {
	// Forward computes logprobs (and the loss) without touching gradients.
	Forward(ctx context.Context, data []Datum, loss LossFn, cfg LossConfig) (*Output, error)
	ForwardBackward(ctx context.Context, data []Datum, loss LossFn, cfg LossConfig) (*Output, error)
	OptimStep(ctx context.Context, p AdamParams) (map[string]float64, error)
	// SaveWeightsForSampler publishes the current weights under name and
	// returns where a sampler can load them from (a directory or a
	// tinker:// path).
	SaveWeightsForSampler(ctx context.Context, name string) (string, error)
	// SaveState writes weights and optimiser state; LoadState restores them.
	SaveState(ctx context.Context, name string) (string, error)
	LoadState(ctx context.Context, path string, withOptimizer bool) error
}
