package recipe

import (
	"errors"
	"fmt"
	"github.com/asearcher/asearcher/rl"
)

// DemoConfig configures `asearcher train`: the end-to-end demo that builds
// synthetic search worlds, warms a tiny embedded model up on supervised
// demonstrations, runs asynchronous RL with the real search agent, tools
// and rewards, and evaluates on held-out worlds before and after RL. Every
// field is documented in docs/rl.md; unknown YAML fields are rejected.
type DemoConfig struct {
	// Seed derives every world, the model initialisation and sampling.
	Seed   int64           `yaml:"seed"`
	World  DemoWorldConfig `yaml:"world"`
	Model  DemoModelConfig `yaml:"model"`
	Agent  DemoAgentConfig `yaml:"agent"`
	Warmup WarmupConfig    `yaml:"warmup"`
	Eval   DemoEvalConfig  `yaml:"eval"`
	RL     rl.Config       `yaml:"rl"`
}

// DemoWorldConfig sizes the synthetic worlds.
type DemoWorldConfig struct {
	// People per world (one passage and one question each).
	People int `yaml:"people"`
	// TrainWorlds feed warm-up and RL; EvalWorlds are held out (fresh
	// names and facts, never trained on).
	TrainWorlds int `yaml:"train_worlds"`
	EvalWorlds  int `yaml:"eval_worlds"`
	// TwoHopFraction of questions need two searches (mentor's city).
	TwoHopFraction float64 `yaml:"two_hop_fraction"`
	// Relations are the 1-hop question kinds: city, employer, mentor.
	Relations []string `yaml:"relations"`
}

// DemoModelConfig shapes the randomly initialised model.
type DemoModelConfig struct {
	// Preset is an engine preset ("tiny" or "small"); the fields below
	// override its sizes when non-zero.
	Preset           string `yaml:"preset"`
	HiddenSize       int    `yaml:"hidden_size"`
	IntermediateSize int    `yaml:"intermediate_size"`
	Layers           int    `yaml:"layers"`
	// Vocab is the byte-level BPE vocabulary trained on the worlds' text.
	Vocab int `yaml:"vocab"`
}

// DemoAgentConfig is the search agent (the compact `tiny` prompt).
type DemoAgentConfig struct {
	TopK         int     `yaml:"topk"`
	DocChars     int     `yaml:"doc_chars"`
	MaxTurns     int     `yaml:"max_turns"`
	MaxCallToken int     `yaml:"max_call_tokens"`
	MaxContext   int     `yaml:"max_context_tokens"`
	Temperature  float64 `yaml:"temperature"`
}

// WarmupConfig is the supervised warm-up through the trainer's
// cross_entropy loss.
type WarmupConfig struct {
	Steps     int     `yaml:"steps"`
	BatchSize int     `yaml:"batch_size"`
	LR        float64 `yaml:"lr"`
	// GuessFraction of the demonstrations answer at once with a plausible
	// value of the right kind instead of searching, as a base model answers
	// from memory. In a fresh world those guesses are right only by
	// chance; RL has to learn that searching pays.
	GuessFraction float64 `yaml:"guess_fraction"`
}

// DemoEvalConfig is the held-out evaluation before and after RL.
type DemoEvalConfig struct {
	// Samples per held-out question, with the same seeds before and after
	// so the comparison is paired.
	Samples int `yaml:"samples"`
	// Temperature of evaluation sampling (the policy RL trains samples at
	// agent.temperature; 0 is greedy).
	Temperature float64 `yaml:"temperature"`
	// Bootstrap resamples for the CI of the lift.
	Bootstrap int `yaml:"bootstrap"`
	// Concurrency is the number of trajectories run at once.
	Concurrency int `yaml:"concurrency"`
}

// DefaultDemoConfig is the configuration of `asearcher train` without
// --config: sized to finish within minutes on 2 CPU cores.
func DefaultDemoConfig() DemoConfig {
	rl := rl.DefaultConfig()
	rl.Steps = 40
	rl.BatchGroups = 8
	rl.GroupSize = 8
	rl.MaxStaleness = 2
	// The embedded sampler batches every running trajectory into one
	// forward pass, so the demo keeps the staleness bound's full
	// concurrency, (η+1)·B groups, rather than the library's B.
	rl.MaxConcurrentGroups = (rl.MaxStaleness + 1) * rl.BatchGroups
	rl.Optim.LR = 1e-3
	rl.Optim.WeightDecay = 0
	rl.CheckpointEvery = 10
	rl.DumpSamples = 2
	rl.DrainTimeoutMS = 1000
	return DemoConfig{
		Seed:   1,
		World:  DemoWorldConfig{People: 24, TrainWorlds: 40, EvalWorlds: 5, Relations: []string{"city"}},
		Model:  DemoModelConfig{Preset: "tiny", Vocab: 1000},
		Agent:  DemoAgentConfig{TopK: 1, DocChars: 200, MaxTurns: 3, MaxCallToken: 24, MaxContext: 512, Temperature: 1},
		Warmup: WarmupConfig{Steps: 3000, BatchSize: 16, LR: 3e-3, GuessFraction: 0.5},
		Eval:   DemoEvalConfig{Samples: 4, Temperature: 1, Bootstrap: 2000, Concurrency: 32},
		RL:     rl,
	}
}

// Validate checks every field and names the wrong one.
func (c *DemoConfig) Validate() error {
	switch {
	case c.World.People < 2:
		return fmt.Errorf("world.people %d: want ≥ 2", c.World.People)
	case c.World.TrainWorlds < 1 || c.World.EvalWorlds < 1:
		return errors.New("world.train_worlds and world.eval_worlds must be ≥ 1")
	case c.World.TwoHopFraction < 0 || c.World.TwoHopFraction > 1:
		return fmt.Errorf("world.two_hop_fraction %g: want 0 to 1", c.World.TwoHopFraction)
	case c.Model.Vocab < 0 || c.Model.HiddenSize < 0 || c.Model.IntermediateSize < 0 || c.Model.Layers < 0:
		return errors.New("model sizes must be ≥ 0")
	case c.Agent.TopK < 1 || c.Agent.MaxTurns < 1 || c.Agent.MaxCallToken < 1 || c.Agent.MaxContext < 16:
		return errors.New("agent.topk, max_turns and max_call_tokens must be ≥ 1 and max_context_tokens ≥ 16")
	case c.Agent.Temperature < 0 || c.Eval.Temperature < 0:
		return errors.New("agent.temperature and eval.temperature must be ≥ 0")
	case c.Warmup.Steps < 0 || c.Warmup.BatchSize < 1 || c.Warmup.LR <= 0:
		return errors.New("warmup.steps must be ≥ 0, warmup.batch_size ≥ 1 and warmup.lr > 0")
	case c.Warmup.GuessFraction < 0 || c.Warmup.GuessFraction > 1:
		return fmt.Errorf("warmup.guess_fraction %g: want 0 to 1", c.Warmup.GuessFraction)
	case c.Eval.Samples < 1 || c.Eval.Bootstrap < 100 || c.Eval.Concurrency < 1:
		return errors.New("eval.samples and eval.concurrency must be ≥ 1 and eval.bootstrap ≥ 100")
	}
	return c.RL.Validate()
}
