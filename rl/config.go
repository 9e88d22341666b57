package rl

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"

	"go.yaml.in/yaml/v3"

	"github.com/asearcher/asearcher/trainer"
)

// Config is the RL controller's configuration (the `rl:` section of the
// train config). Defaults follow ASearcher's recipe where they make sense;
// see docs/configuration.md for every field.
type Config struct {
	Seed int64 `yaml:"seed"`
	// Steps is the number of training steps (weight versions) to run.
	Steps int `yaml:"steps"`
	// BatchGroups is B: questions (groups) consumed per step.
	BatchGroups int `yaml:"batch_groups"`
	// GroupSize is G: trajectories per question.
	GroupSize int `yaml:"group_size"`
	// MaxStaleness is η: a group admitted at version v is trained at a
	// version ≤ v+η. 0 is synchronous RL.
	MaxStaleness int `yaml:"max_staleness"`
	// MaxConcurrentGroups caps running groups; 0 means B, AReaL's fallback
	// (max_concurrent_rollouts = consumer_batch_size). The staleness bound
	// alone would allow (η+1)·B groups, (η+1)·B·G trajectories in flight
	// (10,240 with ASearcher's recipe), more than a fleet should be handed
	// at once; raise it to what the fleet sustains.
	MaxConcurrentGroups int `yaml:"max_concurrent_groups"`
	// TrajectoryTimeoutS is the wall-clock limit of one trajectory, in
	// seconds; 0 disables it. A trajectory cut there ends as timed out: the
	// workflow rollout keeps its tokens and scores it as a trajectory that
	// never answered; any other Rollout's error fails the trajectory (not
	// retried) and so its group. It bounds how long one straggler can hold
	// a step, since a step waits for every group due at it.
	TrajectoryTimeoutS float64 `yaml:"trajectory_timeout_s"`
	// FilterZeroVariance drops groups whose rewards are all equal.
	FilterZeroVariance bool `yaml:"filter_zero_variance"`
	// SampleRetries re-runs a trajectory that failed with an error this many
	// times before the whole group is rejected.
	SampleRetries int `yaml:"sample_retries"`

	Advantage AdvantageConfig `yaml:"advantage"`
	Loss      LossConfig      `yaml:"loss"`
	Optim     OptimConfig     `yaml:"optim"`

	// CheckpointEvery writes a checkpoint every this many steps (and after
	// the last); KeepCheckpoints old ones are kept.
	CheckpointEvery int `yaml:"checkpoint_every"`
	KeepCheckpoints int `yaml:"keep_checkpoints"`
	// DumpSamples trajectories of each step's batch are saved to the run
	// directory.
	DumpSamples int `yaml:"dump_samples"`
	// DrainGraceMS waits this long after pausing before aborting calls that
	// are still in flight, and between abort rounds.
	DrainGraceMS int `yaml:"drain_grace_ms"`
	// DrainTimeoutMS bounds an aborting drain; calls still in flight then
	// are held by paused servers and run on the new weights.
	DrainTimeoutMS int `yaml:"drain_timeout_ms"`
	// Explore is an exploration intervention in a fraction of each
	// group's rollouts (off by default; evaluations never explore).
	Explore ExploreConfig `yaml:"explore"`
}

// ExploreConfig makes part of each group search more than the policy
// would: behaviour the policy rarely samples (a second search that chains
// facts) then occurs often enough for the outcome reward to reinforce it.
// It is an intervention, not a demonstration: the forced search tag is
// prompt (loss mask 0), and the query after it is the model's, sampled
// and trained on with its real logprobs. Honoured by the workflow rollout
// for agents that implement agent.Explore (the built-in search agent).
type ExploreConfig struct {
	// Fraction of each group's rollouts that explore: samples
	// 0 … round(Fraction·GroupSize)−1 of every group. 0 is off.
	Fraction float64 `yaml:"fraction"`
	// UntilStep, when above 0, applies Fraction to groups admitted before
	// that training step and FractionAfter to later ones: e.g. every
	// rollout explores first (nothing is then learnt against searching
	// again, since no rollout of a group answers early while the others
	// search), then part of each group does not, and the policy's own
	// choice is compared with the explored one.
	UntilStep     int     `yaml:"until_step"`
	FractionAfter float64 `yaml:"fraction_after"`
	// MinSearches: in an exploring rollout an answer begun before this
	// many searches is replaced by a search (agent.Explore.MinSearches).
	MinSearches int `yaml:"min_searches"`
	// TrainTag trains the forced search tag as output of the exploring
	// policy (probability 1; loss.forced_tokens says how it is weighed),
	// so the decision to search again can be credited; off, the tag is
	// prompt (loss mask 0) and only the model's query is trained.
	TrainTag bool `yaml:"train_tag"`
}

// Explores says whether sample (0-based, within its group) of a group of
// groupSize admitted at weight version explores.
func (e ExploreConfig) Explores(sample, groupSize, version int) bool {
	f := e.Fraction
	if e.UntilStep > 0 && version >= e.UntilStep {
		f = e.FractionAfter
	}
	return e.MinSearches > 0 && sample < int(math.Round(f*float64(groupSize)))
}

func (e ExploreConfig) validate() error {
	switch {
	case e.Fraction < 0 || e.Fraction > 1 || math.IsNaN(e.Fraction):
		return fmt.Errorf("explore.fraction %g: want 0 to 1", e.Fraction)
	case e.FractionAfter < 0 || e.FractionAfter > 1 || math.IsNaN(e.FractionAfter):
		return fmt.Errorf("explore.fraction_after %g: want 0 to 1", e.FractionAfter)
	case e.UntilStep < 0:
		return fmt.Errorf("explore.until_step %d: want ≥ 0 (0: fraction for the whole run)", e.UntilStep)
	case e.MinSearches < 0:
		return fmt.Errorf("explore.min_searches %d: want ≥ 0 (0 is off)", e.MinSearches)
	case (e.Fraction > 0 || e.FractionAfter > 0) && e.MinSearches == 0:
		return fmt.Errorf("explore.fraction %g with min_searches 0 explores nothing: set min_searches (e.g. 2)", e.Fraction)
	}
	return nil
}

// OptimConfig is AdamW plus a learning-rate schedule.
type OptimConfig struct {
	LR           float64 `yaml:"lr"`
	Beta1        float64 `yaml:"beta1"`
	Beta2        float64 `yaml:"beta2"`
	Eps          float64 `yaml:"eps"`
	WeightDecay  float64 `yaml:"weight_decay"`
	GradClipNorm float64 `yaml:"grad_clip_norm"`
	// Schedule is constant, linear (decay to 0) or cosine; WarmupSteps of
	// linear warm-up come first.
	Schedule    string `yaml:"schedule"`
	WarmupSteps int    `yaml:"warmup_steps"`
}

// Adam returns the optimiser parameters of step (0-based) of total.
func (o *OptimConfig) Adam(step, total int) trainer.AdamParams {
	lr := o.LR
	if o.WarmupSteps > 0 && step < o.WarmupSteps {
		lr *= float64(step+1) / float64(o.WarmupSteps)
	} else if total > o.WarmupSteps {
		frac := float64(step-o.WarmupSteps) / float64(total-o.WarmupSteps)
		switch o.Schedule {
		case "linear":
			lr *= 1 - frac
		case "cosine":
			lr *= 0.5 * (1 + math.Cos(math.Pi*frac))
		}
	}
	return trainer.AdamParams{LearningRate: lr, Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps,
		WeightDecay: o.WeightDecay, GradClipNorm: o.GradClipNorm}
}

func (o *OptimConfig) validate() error {
	if o.LR <= 0 || math.IsNaN(o.LR) {
		return fmt.Errorf("optim.lr %g: want > 0", o.LR)
	}
	if o.Beta1 < 0 || o.Beta1 >= 1 || o.Beta2 < 0 || o.Beta2 >= 1 {
		return fmt.Errorf("optim.beta1/beta2 must be in [0, 1)")
	}
	if o.Eps < 0 || o.WeightDecay < 0 || o.GradClipNorm < 0 || o.WarmupSteps < 0 {
		return fmt.Errorf("optim.eps, weight_decay, grad_clip_norm and warmup_steps must be ≥ 0")
	}
	switch o.Schedule {
	case "constant", "linear", "cosine":
	default:
		return fmt.Errorf("optim.schedule %q: want constant, linear or cosine", o.Schedule)
	}
	return nil
}

// DefaultConfig returns ASearcher's recipe (asearcher_web.yaml): η = 4,
// G = 16, B = 128 with B groups running at most (ASearcher's web recipe
// runs 128), reward 10·(r − 0.5), group centring then batch normalisation,
// decoupled PPO with ε = 0.4 and tokens whose behaviour weight exceeds 5
// masked, Adam lr 5e-6 constant (full fine-tuning; a cluster file's
// defaults raise it for LoRA), one minibatch. Beyond the recipe: samples
// missing behaviour logprobs are rejected, and a trajectory is cut after
// 30 minutes.
func DefaultConfig() Config {
	return Config{
		Seed:               1,
		Steps:              200,
		BatchGroups:        128,
		GroupSize:          16,
		MaxStaleness:       4,
		TrajectoryTimeoutS: 1800,
		FilterZeroVariance: true,
		SampleRetries:      1,
		Advantage: AdvantageConfig{
			Estimator:   GRPO,
			GlobalNorm:  true,
			RewardBias:  -0.5,
			RewardScale: 10,
			RewardClip:  20,
			Eps:         1e-5,
		},
		Loss: LossConfig{
			Kind:             DecoupledPPO,
			ClipEps:          0.4,
			BehavWeightCap:   5,
			BehavWeightMode:  "mask",
			MissingLogprobs:  MissingReject,
			Minibatches:      1,
			MaxTokensPerCall: 8000,
			ForcedTokens:     ForcedImportance,
		},
		Optim: OptimConfig{
			LR: 5e-6, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01,
			GradClipNorm: 1.0, Schedule: "constant",
		},
		CheckpointEvery: 1,
		KeepCheckpoints: 2,
		DumpSamples:     4,
		DrainGraceMS:    100,
		DrainTimeoutMS:  5000,
	}
}

// Validate checks every field and says which one is wrong.
func (c *Config) Validate() error {
	switch {
	case c.Steps < 1:
		return fmt.Errorf("rl.steps %d: want ≥ 1", c.Steps)
	case c.BatchGroups < 1:
		return fmt.Errorf("rl.batch_groups %d: want ≥ 1", c.BatchGroups)
	case c.GroupSize < 1:
		return fmt.Errorf("rl.group_size %d: want ≥ 1", c.GroupSize)
	case c.GroupSize == 1 && c.FilterZeroVariance:
		return errors.New("rl.group_size is 1 with filter_zero_variance on: every group would be filtered and no batch would ever fill (ASearcher's 1.5b config trap); use group_size ≥ 2")
	case c.MaxStaleness < 0:
		return fmt.Errorf("rl.max_staleness %d: want ≥ 0", c.MaxStaleness)
	case c.MaxConcurrentGroups < 0:
		return fmt.Errorf("rl.max_concurrent_groups %d: want ≥ 0", c.MaxConcurrentGroups)
	case c.SampleRetries < 0:
		return fmt.Errorf("rl.sample_retries %d: want ≥ 0", c.SampleRetries)
	case c.CheckpointEvery < 1:
		return fmt.Errorf("rl.checkpoint_every %d: want ≥ 1", c.CheckpointEvery)
	case c.KeepCheckpoints < 1:
		return fmt.Errorf("rl.keep_checkpoints %d: want ≥ 1", c.KeepCheckpoints)
	case c.TrajectoryTimeoutS < 0 || math.IsNaN(c.TrajectoryTimeoutS):
		return fmt.Errorf("rl.trajectory_timeout_s %g: want ≥ 0 (0 disables the limit)", c.TrajectoryTimeoutS)
	case c.DumpSamples < 0 || c.DrainGraceMS < 0 || c.DrainTimeoutMS < 0:
		return errors.New("rl.dump_samples, rl.drain_grace_ms and rl.drain_timeout_ms must be ≥ 0")
	}
	if err := c.Advantage.validate(); err != nil {
		return fmt.Errorf("rl.%w", err)
	}
	if err := c.Loss.validate(); err != nil {
		return fmt.Errorf("rl.%w", err)
	}
	if err := c.Optim.validate(); err != nil {
		return fmt.Errorf("rl.%w", err)
	}
	if err := c.Explore.validate(); err != nil {
		return fmt.Errorf("rl.%w", err)
	}
	return nil
}

// DecodeYAML decodes YAML strictly (unknown fields are errors) over the
// values already in out, so absent fields keep their defaults.
func DecodeYAML(r io.Reader, out any) error {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// MarshalYAML renders a config for the run directory.
func MarshalYAML(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}
