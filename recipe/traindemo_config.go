package recipe

import (
	"errors"
	"fmt"
	"strings"

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
	// TwoHopFraction of questions need two searches (mentor's city),
	// ThreeHopFraction three (mentor's mentor's city). The warm-up never
	// demonstrates them: chaining searches is left for RL to discover.
	TwoHopFraction   float64 `yaml:"two_hop_fraction"`
	ThreeHopFraction float64 `yaml:"three_hop_fraction"`
	// SplitNames gives people two-word names, held-out worlds drawing from
	// one half of them and training and warm-up worlds from the other, so
	// no held-out person is ever trained on. Without it every world draws
	// one-word names from one shared pool (facts still differ per world).
	SplitNames bool `yaml:"split_names"`
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
	// RetryFraction of the searching demonstrations search twice: first
	// for the name in the question (half of them) or for a misremembered
	// name (another person of the world, drawn before any observation),
	// then for the name in the question, and answer. It teaches that a
	// search can follow an observation; the query of the second search
	// always comes from the question, never from what the first returned.
	RetryFraction float64 `yaml:"retry_fraction"`
	// MisrememberedFraction of the retries start from a misremembered
	// name; the others search the question's name twice.
	MisrememberedFraction float64 `yaml:"misremembered_fraction"`
	// MaskRetryQuery keeps a retry's second query out of the loss: the
	// warm-up then teaches that a search may follow an observation (the
	// search tag is trained) without teaching what to search (the name in
	// the question again would be the wrong habit for chaining).
	MaskRetryQuery bool `yaml:"mask_retry_query"`
	// BridgeFraction of the 2-hop questions are demonstrated with their
	// first hop stated in the question ("Favok is mentored by Lomel.
	// Where does the mentor of Favok live?"): one search, for the name
	// the question states. The rest of the multi-hop questions get no
	// demonstration. Searching a name read from an observation is never
	// shown.
	BridgeFraction float64 `yaml:"bridge_fraction"`
	// Worlds, when above 0, are generated for the warm-up alone (their
	// own seeds, the training half of the names) instead of warming up on
	// the RL worlds' questions: with many fresh worlds a small model
	// cannot memorise answers and has to learn to read them.
	Worlds int `yaml:"worlds"`
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

// The demo presets (`asearcher train --preset NAME`).
const (
	// PresetQuick is 1-hop questions only, about a minute and a half on 2
	// cores: RL learns to search instead of guessing.
	PresetQuick = "quick"
	// PresetMultiHop mixes 1- and 2-hop questions and never demonstrates
	// a search read from an observation: RL has to discover chaining.
	PresetMultiHop = "multihop"
	// DefaultPreset is what `asearcher train` runs without --preset: the
	// multihop one, where RL makes the agent chain searches (issue 16).
	DefaultPreset = PresetMultiHop
)

// DemoPresets names every preset, the default first.
func DemoPresets() []string { return []string{PresetMultiHop, PresetQuick} }

// DemoPreset returns the named preset's configuration.
func DemoPreset(name string) (DemoConfig, error) {
	switch name {
	case PresetQuick:
		return QuickDemoConfig(), nil
	case PresetMultiHop:
		return MultiHopDemoConfig(), nil
	}
	return DemoConfig{}, fmt.Errorf("unknown preset %q; want one of %s", name, strings.Join(DemoPresets(), ", "))
}

// DefaultDemoConfig is the configuration of `asearcher train` without
// --config or --preset: the DefaultPreset.
func DefaultDemoConfig() DemoConfig {
	c, err := DemoPreset(DefaultPreset)
	if err != nil {
		panic(err) // DefaultPreset is one of the presets
	}
	return c
}

// MultiHopDemoConfig is the multihop preset (the default): half the
// questions ask for a person's mentor's city, which takes two searches
// where the second query is read from the first search's result. The
// warm-up shows 1-hop questions (city and mentor), retries whose second
// query is not trained and bridged 2-hop questions, never a search read
// from an observation, so chaining is RL's to find, with rl.explore making
// second searches occur; 5:50 on 2 shared cores (docs/rl.md).
func MultiHopDemoConfig() DemoConfig {
	c := QuickDemoConfig()
	c.World = DemoWorldConfig{People: 24, TrainWorlds: 40, EvalWorlds: 8, TwoHopFraction: 0.5,
		Relations: []string{"city", "mentor"}}
	c.Agent.MaxTurns = 4
	c.Warmup.GuessFraction, c.Warmup.RetryFraction, c.Warmup.MaskRetryQuery = 0.2, 0.2, true
	c.Warmup.Worlds, c.Warmup.Steps, c.Warmup.BridgeFraction = 300, 4000, 0.5
	// Every rollout explores for 20 steps (the model learns what to search
	// second, and nothing pushes against searching again), then half of
	// each group does not, so the policy's own choice to search again is
	// compared with answering at once (docs/rl.md, "Multi-hop").
	c.RL.Explore = rl.ExploreConfig{Fraction: 1, MinSearches: 2, UntilStep: 20, FractionAfter: 0.5}
	c.RL.Steps = 160
	c.RL.CheckpointEvery = 20
	return c
}

// QuickDemoConfig is the quick preset: sized to finish within a minute or
// two on 2 CPU cores.
func QuickDemoConfig() DemoConfig {
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
	case c.World.TwoHopFraction < 0 || c.World.ThreeHopFraction < 0 || c.World.TwoHopFraction+c.World.ThreeHopFraction > 1:
		return fmt.Errorf("world.two_hop_fraction %g and three_hop_fraction %g: want each ≥ 0 and their sum ≤ 1",
			c.World.TwoHopFraction, c.World.ThreeHopFraction)
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
	case c.Warmup.BridgeFraction < 0 || c.Warmup.BridgeFraction > 1:
		return fmt.Errorf("warmup.bridge_fraction %g: want 0 to 1", c.Warmup.BridgeFraction)
	case c.Warmup.Worlds < 0:
		return fmt.Errorf("warmup.worlds %d: want ≥ 0", c.Warmup.Worlds)
	case c.Warmup.RetryFraction < 0 || c.Warmup.RetryFraction > 1:
		return fmt.Errorf("warmup.retry_fraction %g: want 0 to 1", c.Warmup.RetryFraction)
	case c.Warmup.MisrememberedFraction < 0 || c.Warmup.MisrememberedFraction > 1:
		return fmt.Errorf("warmup.misremembered_fraction %g: want 0 to 1", c.Warmup.MisrememberedFraction)
	case c.Eval.Samples < 1 || c.Eval.Bootstrap < 100 || c.Eval.Concurrency < 1:
		return errors.New("eval.samples and eval.concurrency must be ≥ 1 and eval.bootstrap ≥ 100")
	}
	return c.RL.Validate()
}
