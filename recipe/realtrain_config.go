package recipe

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/rl"
)

// RealPresetSmolLM2 is the name of the real-model train preset
// (`asearcher train --preset smollm2 --model DIR`).
const RealPresetSmolLM2 = "smollm2"

// RealConfig configures a train run on a real pretrained model over real
// questions: the search agent in the model's own chat format, a BM25 index
// over a shipped Wikipedia corpus, a supervised warm-up on demonstrations
// the agent itself renders, fully asynchronous RL, and held-out EM/F1
// before and after RL. A config file with a real: block is this mode; every
// field is in docs/configuration.md.
type RealConfig struct {
	Seed   int64            `yaml:"seed"`
	Real   RealSourceConfig `yaml:"real"`
	Agent  DemoAgentConfig  `yaml:"agent"`
	Warmup RealWarmupConfig `yaml:"warmup"`
	Eval   DemoEvalConfig   `yaml:"eval"`
	RL     rl.Config        `yaml:"rl"`
	LoRA   RealLoRAConfig   `yaml:"lora"`
}

// RealLoRAConfig trains a LoRA adapter over the frozen model instead of
// full weights: RL always when Rank > 0, the warm-up too with Warmup. The
// samplers get the adapter merged into the weights (no slower decoding),
// RL checkpoints hold the adapter and its AdamW moments only.
type RealLoRAConfig struct {
	// Rank of the adapter; 0 trains full weights.
	Rank int `yaml:"rank"`
	// Alpha scales the adapter by alpha/rank; 0 means rank (scaling 1).
	Alpha float64 `yaml:"alpha"`
	// Targets are the projections adapted (q_proj k_proj v_proj o_proj
	// gate_proj up_proj down_proj); empty means all seven.
	Targets []string `yaml:"targets"`
	// Warmup trains the warm-up as an adapter too and merges it into
	// warmup/model, which RL then adapts with a fresh adapter.
	Warmup bool `yaml:"warmup"`
}

// engineConfig is the engine's adapter shape.
func (l RealLoRAConfig) engineConfig() engine.LoRAConfig {
	return engine.LoRAConfig{Rank: l.Rank, Alpha: l.Alpha, Targets: l.Targets}
}

// RealSourceConfig names the model and the data.
type RealSourceConfig struct {
	// ModelDir is the model directory (e.g. `asearcher model import` of
	// SmolLM2's GGUF). A relative path is relative to the directory train
	// runs in, on resume as well.
	ModelDir string `yaml:"model_dir"`
	// Questions is a built-in data set (or a file) with HotpotQA-style
	// supporting_facts; Corpus is the shipped corpus the search tool reads.
	Questions string `yaml:"questions"`
	Corpus    string `yaml:"corpus"`
	// HeldOut questions (drawn by Seed) are only ever evaluated; Train of
	// the rest feed the warm-up and RL (0: all the rest).
	HeldOut int `yaml:"held_out"`
	Train   int `yaml:"train"`
	// Reward is the RL reward of an answered trajectory: "f1" (token F1,
	// denser for a small model) or "em"; an unanswered one gets 0.
	Reward string `yaml:"reward"`
}

// RealWarmupConfig is the supervised warm-up on demonstrations.
type RealWarmupConfig struct {
	Steps     int     `yaml:"steps"`
	BatchSize int     `yaml:"batch_size"`
	LR        float64 `yaml:"lr"`
}

// DefaultRealConfig is the smollm2 preset: sized for a 135M model on two
// CPU cores (short contexts, one hit and one search, one group of 4 per
// step, a LoRA adapter). The settings are those of the measured 40-step
// run in docs/benchmarks.md; 200 RL steps are about 3 hours at its rates.
func DefaultRealConfig(modelDir string) RealConfig {
	r := rl.DefaultConfig()
	r.Steps = 200
	r.BatchGroups = 1
	r.GroupSize = 4
	r.MaxStaleness = 1
	r.MaxConcurrentGroups = (r.MaxStaleness + 1) * r.BatchGroups
	r.Optim.LR = 3e-4 // a LoRA rate (about 10× a full-weight one)
	r.Optim.WeightDecay = 0
	r.CheckpointEvery = 5
	r.KeepCheckpoints = 1
	r.DumpSamples = 2
	r.DrainTimeoutMS = 1000
	r.TrajectoryTimeoutS = 600
	return RealConfig{
		Seed: 1,
		Real: RealSourceConfig{ModelDir: modelDir, Questions: "hotpotqa-hipporag-100", Corpus: "hotpotqa-hipporag-100",
			HeldOut: 50, Train: 0, Reward: "f1"},
		Agent:  DemoAgentConfig{TopK: 1, DocChars: 200, MaxTurns: 2, MaxCallToken: 32, MaxContext: 768, Temperature: 1},
		Warmup: RealWarmupConfig{Steps: 10, BatchSize: 2, LR: 1e-4},
		Eval:   DemoEvalConfig{Samples: 4, Temperature: 1, Bootstrap: 2000, Concurrency: 10},
		RL:     r,
		LoRA:   RealLoRAConfig{Rank: 16, Alpha: 32},
	}
}

// Validate checks every field and names the wrong one.
func (c *RealConfig) Validate() error {
	switch {
	case strings.TrimSpace(c.Real.ModelDir) == "":
		return errors.New("real.model_dir: the model directory is required (asearcher model import writes one)")
	case c.Real.Questions == "" || c.Real.Corpus == "":
		return errors.New("real.questions and real.corpus are required")
	case c.Real.HeldOut < 1 || c.Real.Train < 0:
		return errors.New("real.held_out must be ≥ 1 and real.train ≥ 0")
	case c.Real.Reward != "f1" && c.Real.Reward != "em":
		return fmt.Errorf("real.reward %q: want f1 or em", c.Real.Reward)
	case c.Agent.TopK < 1 || c.Agent.MaxTurns < 1 || c.Agent.MaxCallToken < 1 || c.Agent.MaxContext < 16 || c.Agent.DocChars < 1:
		return errors.New("agent.topk, doc_chars, max_turns and max_call_tokens must be ≥ 1 and max_context_tokens ≥ 16")
	case c.Agent.Temperature < 0 || c.Eval.Temperature < 0:
		return errors.New("agent.temperature and eval.temperature must be ≥ 0")
	case c.Warmup.Steps < 0 || c.Warmup.BatchSize < 1 || c.Warmup.LR <= 0:
		return errors.New("warmup.steps must be ≥ 0, warmup.batch_size ≥ 1 and warmup.lr > 0")
	case c.Eval.Samples < 1 || c.Eval.Bootstrap < 100 || c.Eval.Concurrency < 1:
		return errors.New("eval.samples and eval.concurrency must be ≥ 1 and eval.bootstrap ≥ 100")
	case c.LoRA.Rank < 0 || c.LoRA.Alpha < 0:
		return errors.New("lora.rank and lora.alpha must be ≥ 0 (rank 0 trains full weights)")
	case c.LoRA.Rank == 0 && (c.LoRA.Warmup || len(c.LoRA.Targets) > 0 || c.LoRA.Alpha > 0):
		return errors.New("lora.warmup, lora.alpha and lora.targets need lora.rank ≥ 1")
	}
	for _, t := range c.LoRA.Targets {
		if !slices.Contains(engine.LoRAModules[:], t) {
			return fmt.Errorf("lora.targets: %q is not one of %s", t, strings.Join(engine.LoRAModules[:], ", "))
		}
	}
	return c.RL.Validate()
}
