// Package demo is `asearcher train` on one machine: it builds synthetic
// search worlds, a tiny model from scratch, warms the model up on
// supervised demonstrations through the trainer's cross_entropy, runs the
// asynchronous RL controller with the real search agent against the
// embedded engine, and evaluates on held-out worlds before and after RL.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/rl"
	"github.com/asearcher/asearcher/rl/world"
	"github.com/asearcher/asearcher/tokenizer"
	"github.com/asearcher/asearcher/trainer"
)

// Config is the train config file. Unknown fields are rejected.
type Config struct {
	World  WorldConfig  `yaml:"world"`
	Model  ModelConfig  `yaml:"model"`
	Warmup WarmupConfig `yaml:"warmup"`
	Agent  AgentConfig  `yaml:"agent"`
	Eval   EvalConfig   `yaml:"eval"`
	RL     rl.Config    `yaml:"rl"`
}

// WorldConfig sizes the synthetic worlds.
type WorldConfig struct {
	People int     `yaml:"people"`
	TwoHop float64 `yaml:"two_hop"`
	// TrainWorlds are the worlds RL and warm-up draw questions from;
	// held-out worlds use other seeds.
	TrainWorlds int `yaml:"train_worlds"`
}

// ModelConfig is the model trained from scratch (or an existing model
// directory).
type ModelConfig struct {
	// Dir, when set, is an existing model directory to start from.
	Dir    string `yaml:"dir"`
	Preset string `yaml:"preset"`
	Vocab  int    `yaml:"vocab"`
	Seed   uint64 `yaml:"seed"`
	// Hidden and Layers, when set, override the preset's width and depth
	// (the MLP is 3× the width, heads are 16 wide).
	Hidden int `yaml:"hidden"`
	Layers int `yaml:"layers"`
}

// WarmupConfig is the supervised warm-up on demonstrations.
type WarmupConfig struct {
	Steps int     `yaml:"steps"`
	Batch int     `yaml:"batch"`
	LR    float64 `yaml:"lr"`
	// OneHopOnly warms up on 1-hop demonstrations only, so chaining two
	// searches must be discovered by RL.
	OneHopOnly bool `yaml:"one_hop_only"`
}

// AgentConfig bounds one trajectory.
type AgentConfig struct {
	MaxTurns      int     `yaml:"max_turns"`
	MaxCallTokens int     `yaml:"max_call_tokens"`
	MaxContext    int     `yaml:"max_context_tokens"`
	Temperature   float64 `yaml:"temperature"`
}

// EvalConfig is the held-out evaluation.
type EvalConfig struct {
	Worlds    int `yaml:"worlds"`
	Bootstrap int `yaml:"bootstrap"`
}

// DefaultConfig is sized for a 2-core laptop.
func DefaultConfig() Config {
	r := rl.DefaultConfig()
	r.Steps = 30
	r.BatchGroups = 8
	r.GroupSize = 4
	r.MaxStaleness = 2
	r.Optim.LR = 3e-4
	r.Optim.WeightDecay = 0
	r.Loss.MaxTokensPerCall = 4096
	r.DrainTimeoutMS = 1000
	return Config{
		World:  WorldConfig{People: 4, TwoHop: 0.5, TrainWorlds: 2000},
		Model:  ModelConfig{Preset: "tiny", Vocab: 1024, Seed: 1, Hidden: 128, Layers: 3},
		Warmup: WarmupConfig{Steps: 400, Batch: 16, LR: 3e-3},
		Agent:  AgentConfig{MaxTurns: 4, MaxCallTokens: 16, MaxContext: 256, Temperature: 1},
		Eval:   EvalConfig{Worlds: 100, Bootstrap: 2000},
		RL:     r,
	}
}

// Validate checks the demo's own fields; rl.Config checks itself.
func (c *Config) Validate() error {
	switch {
	case c.World.People < 2:
		return fmt.Errorf("world.people %d: want ≥ 2", c.World.People)
	case c.World.TwoHop < 0 || c.World.TwoHop > 1:
		return fmt.Errorf("world.two_hop %g: want in [0, 1]", c.World.TwoHop)
	case c.World.TrainWorlds < 1:
		return fmt.Errorf("world.train_worlds %d: want ≥ 1", c.World.TrainWorlds)
	case c.Warmup.Steps < 0 || c.Warmup.Batch < 1 || c.Warmup.LR <= 0:
		return errors.New("warmup: steps ≥ 0, batch ≥ 1 and lr > 0 required")
	case c.Agent.MaxTurns < 1 || c.Agent.MaxCallTokens < 1 || c.Agent.MaxContext < 32:
		return errors.New("agent: max_turns ≥ 1, max_call_tokens ≥ 1, max_context_tokens ≥ 32 required")
	case c.Eval.Worlds < 1 || c.Eval.Bootstrap < 100:
		return errors.New("eval: worlds ≥ 1 and bootstrap ≥ 100 required")
	case c.Model.Dir == "" && c.Model.Preset == "":
		return errors.New("model: set dir or preset")
	}
	return c.RL.Validate()
}

// Options run the demo.
type Options struct {
	Config Config
	Out    string
	Resume bool
	Logger *slog.Logger
	// OnStep is called after every RL step.
	OnStep func(*rl.StepRecord)
	// Status reports phases (warm-up progress, evaluation).
	Status func(msg string)
}

// held-out worlds use seeds from here on.
const evalSeedBase = 1 << 40

// Report is report.json.
type Report struct {
	BeforeAccuracy float64               `json:"accuracy_before_rl"`
	AfterAccuracy  float64               `json:"accuracy_after_rl"`
	Lift           float64               `json:"lift"`
	LiftCI95       [2]float64            `json:"lift_ci95"`
	Questions      int                   `json:"heldout_questions"`
	ByHops         map[string][2]float64 `json:"accuracy_by_hops"`
	WarmupSec      float64               `json:"warmup_s"`
	RLSec          float64               `json:"rl_s"`
	Steps          int                   `json:"rl_steps"`
	Version        int                   `json:"version"`
	TotalSec       float64               `json:"total_s"`
}

type item struct {
	q *world.Question
	s *world.Searcher
}

type dataset struct {
	cfg   WorldConfig
	base  uint64
	n     int
	cache sync.Map
}

func (d *dataset) Len() int { return d.n * d.cfg.People }

func (d *dataset) item(i int) item {
	wi := uint64(i / d.cfg.People)
	v, ok := d.cache.Load(wi)
	if !ok {
		v, _ = d.cache.LoadOrStore(wi, world.Generate(d.base+wi, world.Options{People: d.cfg.People, TwoHop: d.cfg.TwoHop}))
	}
	w := v.(*world.World)
	return item{q: &w.Questions[i%d.cfg.People], s: world.NewSearcher(w)}
}

func (d *dataset) Question(i int) (string, any) {
	it := d.item(i)
	return it.q.ID, it
}

type runner struct {
	cfg     Config
	tok     *tokenizer.Tokenizer
	stops   []int
	wf      agent.Workflow
	limits  agent.Limits
	log     *slog.Logger
	status  func(string)
	sampler *engine.Sampler
}

// Run runs the demo and writes report.md and report.json into Out.
func Run(ctx context.Context, o Options) (*Report, error) {
	start := time.Now()
	cfg := o.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Status == nil {
		o.Status = func(string) {}
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("create run directory: %w", err)
	}
	raw, err := rl.MarshalYAML(cfg)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(o.Out, "config.yaml")
	if o.Resume {
		if old, err := os.ReadFile(cfgPath); err == nil && string(old) != string(raw) {
			return nil, fmt.Errorf("%s differs from this run's config: resume with --config %s", cfgPath, cfgPath)
		}
	}
	if err := rl.WriteFileAtomic(cfgPath, raw); err != nil {
		return nil, err
	}

	modelDir := cfg.Model.Dir
	if modelDir == "" {
		modelDir = filepath.Join(o.Out, "model")
		if err := initModel(ctx, modelDir, cfg); err != nil {
			return nil, err
		}
	}
	w, tok, err := engine.OpenModelDir(modelDir)
	if err != nil {
		return nil, fmt.Errorf("open model: %w", err)
	}
	if tok == nil {
		return nil, fmt.Errorf("%s has no tokenizer.json", modelDir)
	}
	stops := engine.StopTokens(modelDir, w.Config, tok)
	tr := trainer.NewEmbedded(w, trainer.EmbeddedOptions{Dir: filepath.Join(o.Out, "trainer"), SourceDir: modelDir})
	sampler := engine.NewSampler(w, 0, engine.SamplerOptions{Tokenizer: tok, StopTokenIDs: stops, Logger: o.Logger})
	defer sampler.Close()
	acfg := agent.TinyConfig()
	acfg.TopK = 1
	wf, err := agent.NewSearchAgent(acfg)
	if err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, tok: tok, stops: stops, wf: wf, log: o.Logger, status: o.Status, sampler: sampler,
		limits: agent.Limits{MaxTurns: cfg.Agent.MaxTurns, MaxCallTokens: cfg.Agent.MaxCallTokens,
			MaxContextTokens: cfg.Agent.MaxContext, MinCallTokens: 4}}
	rep := &Report{}

	// Warm-up, once; a resumed run loads its result.
	warmDone := filepath.Join(o.Out, "warmup.json")
	warmState := filepath.Join(o.Out, "trainer", "state", "warmup")
	if _, err := os.Stat(warmDone); err == nil {
		if err := tr.LoadState(ctx, warmState, false); err != nil {
			return nil, fmt.Errorf("load warm-up weights: %w", err)
		}
		var wr struct {
			Sec float64 `json:"warmup_s"`
		}
		if b, err := os.ReadFile(warmDone); err == nil {
			_ = json.Unmarshal(b, &wr)
		}
		rep.WarmupSec = wr.Sec
	} else {
		t := time.Now()
		if err := r.warmup(ctx, tr); err != nil {
			return nil, err
		}
		rep.WarmupSec = time.Since(t).Seconds()
		if _, err := tr.SaveState(ctx, "warmup"); err != nil {
			return nil, err
		}
		b, _ := json.Marshal(map[string]float64{"warmup_s": rep.WarmupSec})
		if err := rl.WriteFileAtomic(warmDone, b); err != nil {
			return nil, err
		}
	}
	sampler.SetWeights(tr.Learner().Snapshot(), 0)

	evalSet := &dataset{cfg: cfg.World, base: evalSeedBase, n: cfg.Eval.Worlds}
	beforePath := filepath.Join(o.Out, "eval_before.json")
	var before []evalResult
	if b, err := os.ReadFile(beforePath); err == nil && json.Unmarshal(b, &before) == nil && len(before) == evalSet.Len() {
		o.Logger.Info("held-out accuracy before RL (from the run directory)", "accuracy", meanScore(before))
	} else {
		o.Status("evaluating before RL")
		before, err = r.evaluate(ctx, sampler, evalSet)
		if err != nil {
			return nil, err
		}
		b, _ := json.Marshal(before)
		if err := rl.WriteFileAtomic(beforePath, b); err != nil {
			return nil, err
		}
		o.Logger.Info("held-out accuracy before RL", "accuracy", meanScore(before))
	}

	t := time.Now()
	c, err := rl.New(rl.Options{
		Config:  cfg.RL,
		Dataset: &dataset{cfg: cfg.World, base: 1, n: cfg.World.TrainWorlds},
		Rollout: rl.RolloutFunc(r.rollout),
		Sampler: sampler,
		Trainer: tr,
		Publisher: rl.SwapPublisher{Load: func(_ context.Context, _ string, v int) error {
			// The controller numbers versions; the sampler stamps tokens
			// with the number it is given here.
			sampler.SetWeights(tr.Learner().Snapshot(), v)
			return nil
		}},
		RunDir: o.Out, Resume: o.Resume, OnStep: o.OnStep, Logger: o.Logger,
	})
	if err != nil {
		return nil, err
	}
	sum, err := c.Run(ctx)
	if err != nil {
		return nil, err
	}
	rep.RLSec = time.Since(t).Seconds()
	rep.Steps, rep.Version = cfg.RL.Steps, sum.Version

	o.Status("evaluating after RL")
	after, err := r.evaluate(ctx, sampler, evalSet)
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(after)
	if err := rl.WriteFileAtomic(filepath.Join(o.Out, "eval_after.json"), b); err != nil {
		return nil, err
	}
	rep.BeforeAccuracy, rep.AfterAccuracy = meanScore(before), meanScore(after)
	rep.Lift = rep.AfterAccuracy - rep.BeforeAccuracy
	rep.LiftCI95 = bootstrapLift(before, after, cfg.Eval.Bootstrap, uint64(cfg.RL.Seed))
	rep.Questions = len(after)
	rep.ByHops = byHops(before, after)
	rep.TotalSec = time.Since(start).Seconds()
	if err := writeReport(o.Out, rep, sum); err != nil {
		return nil, err
	}
	return rep, nil
}

func initModel(ctx context.Context, dir string, cfg Config) error {
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
		return nil
	}
	var texts []string
	for s := uint64(1); s <= 300; s++ {
		texts = append(texts, world.Generate(s, world.Options{People: cfg.World.People, TwoHop: cfg.World.TwoHop}).Texts()...)
	}
	texts = append(texts, "Q: \n<information><doc>\n</doc></information>\n")
	preset, err := engine.Preset(cfg.Model.Preset, cfg.Model.Vocab)
	if err != nil {
		return err
	}
	if h := cfg.Model.Hidden; h > 0 {
		preset.HiddenSize, preset.IntermediateSize = h, 3*h
		preset.HeadDim = 16
		preset.NumAttentionHeads = max(1, h/16)
		preset.NumKeyValueHeads = preset.NumAttentionHeads
	}
	if cfg.Model.Layers > 0 {
		preset.NumHiddenLayers = cfg.Model.Layers
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if _, err := engine.InitModelDir(ctx, tmp, engine.InitOptions{Config: preset, Seed: cfg.Model.Seed, DType: engine.F32, TrainTexts: texts, TrainVocab: cfg.Model.Vocab}); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

func (r *runner) env(s llm.Sampler, temp float64) *agent.Env {
	return &agent.Env{Sampler: s, Tokenizer: r.tok, StopTokenIDs: r.stops, Limits: r.limits,
		Sampling: llm.Params{Temperature: temp}, Log: r.log}
}

// warmup trains on demonstrations with cross_entropy.
func (r *runner) warmup(ctx context.Context, tr trainer.Trainer) error {
	cfg := r.cfg.Warmup
	env := r.env(nil, 0)
	rng := rand.New(rand.NewPCG(uint64(r.cfg.RL.Seed), 7))
	// Warm-up worlds are disjoint from RL's (seeds 1..TrainWorlds) and the
	// held-out ones.
	ds := &dataset{cfg: r.cfg.World, base: 1 << 30, n: 1 << 20}
	for step := range cfg.Steps {
		var data []trainer.Datum
		for len(data) < cfg.Batch {
			it := ds.item(rng.IntN(ds.Len()))
			if cfg.OneHopOnly && it.q.Hops != 1 {
				continue
			}
			e := *env
			e.Search = it.s
			traj, err := agent.Demonstrate(ctx, r.wf, &e, agent.Task{ID: it.q.ID, Question: it.q.Question, Answers: []string{it.q.Answer}}, it.q.Demo)
			if err != nil {
				return fmt.Errorf("demonstration %s: %w", it.q.ID, err)
			}
			seqs, err := traj.Sequences()
			if err != nil {
				return err
			}
			for _, s := range seqs {
				wts := make([]float32, len(s.Tokens)-1)
				for i := range wts {
					wts[i] = float32(s.LossMask[i+1])
				}
				data = append(data, trainer.Datum{Input: s.Tokens[:len(s.Tokens)-1], Target: s.Tokens[1:], Weights: wts})
			}
		}
		out, err := tr.ForwardBackward(ctx, data, trainer.CrossEntropy, trainer.LossConfig{TokenMean: true})
		if err != nil {
			return fmt.Errorf("warm-up step %d: %w", step, err)
		}
		lr := cfg.LR * min(1, float64(step+1)/10)
		if _, err := tr.OptimStep(ctx, trainer.AdamParams{LearningRate: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, GradClipNorm: 1}); err != nil {
			return fmt.Errorf("warm-up step %d: %w", step, err)
		}
		if step%10 == 0 || step == cfg.Steps-1 {
			r.status(fmt.Sprintf("warm-up %d/%d loss %.3f", step+1, cfg.Steps, out.Loss))
			r.log.Info("warm-up", "step", step, "loss", round3(out.Loss))
		}
	}
	return nil
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func score(answer, gold string) float64 {
	if strings.EqualFold(strings.TrimSpace(answer), gold) {
		return 1
	}
	return 0
}

// rollout is one RL trajectory.
func (r *runner) rollout(ctx context.Context, q rl.Question, s llm.Sampler, sample int, seed int64) (*rl.Sample, error) {
	it, ok := q.Payload.(item)
	if !ok {
		return nil, fmt.Errorf("question %s has no world", q.ID)
	}
	env := r.env(s, r.cfg.Agent.Temperature)
	env.Search = it.s
	traj, err := r.wf.Run(ctx, env, agent.Task{ID: q.ID, Sample: sample, Question: it.q.Question,
		Answers: []string{it.q.Answer}, Seed: &seed})
	if err != nil {
		return nil, err
	}
	seqs, err := traj.Sequences()
	if err != nil {
		return nil, err
	}
	out := &rl.Sample{Turns: traj.Stats().Turns, ToolCalls: len(traj.Tools)}
	for _, s := range seqs {
		rs := rl.Sequence{Tokens: s.Tokens, LossMask: make([]bool, len(s.Tokens)), Logprobs: s.Logprobs, Versions: s.Versions}
		for i, m := range s.LossMask {
			rs.LossMask[i] = m == 1
			if m == 1 && rs.Versions[i] < 0 {
				rs.Versions[i] = 0
			}
			if m == 0 {
				rs.Versions[i] = -1
			}
		}
		out.Sequences = append(out.Sequences, rs)
	}
	if traj.Answered {
		out.Score = score(traj.Answer, it.q.Answer)
	}
	out.Reward = out.Score
	if rec, err := json.Marshal(struct {
		Question string   `json:"question"`
		Answer   string   `json:"answer"`
		Gold     string   `json:"gold"`
		Replies  []string `json:"replies"`
	}{it.q.Question, traj.Answer, it.q.Answer, traj.Generations()}); err == nil {
		out.Record = rec
	}
	return out, nil
}

type evalResult struct {
	ID    string  `json:"id"`
	Hops  int     `json:"hops"`
	Score float64 `json:"score"`
	// Replies are the model's outputs, for reading what it did.
	Replies []string `json:"replies"`
}

// evaluate runs every held-out question once, greedily.
func (r *runner) evaluate(ctx context.Context, s llm.Sampler, d *dataset) ([]evalResult, error) {
	out := make([]evalResult, d.Len())
	errs := make([]error, d.Len())
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range d.Len() {
		it := d.item(i)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			env := r.env(s, 0)
			env.Search = it.s
			traj, err := r.wf.Run(ctx, env, agent.Task{ID: it.q.ID, Question: it.q.Question})
			if err != nil {
				errs[i] = err
				return
			}
			out[i] = evalResult{ID: it.q.ID, Hops: it.q.Hops, Replies: traj.Generations()}
			if traj.Answered {
				out[i].Score = score(traj.Answer, it.q.Answer)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	return out, nil
}

func meanScore(rs []evalResult) float64 {
	if len(rs) == 0 {
		return 0
	}
	var s float64
	for _, r := range rs {
		s += r.Score
	}
	return s / float64(len(rs))
}

// bootstrapLift is the 95% percentile interval of the paired lift.
func bootstrapLift(before, after []evalResult, n int, seed uint64) [2]float64 {
	rng := rand.New(rand.NewPCG(seed, 11))
	k := len(before)
	lifts := make([]float64, n)
	for b := range n {
		var s float64
		for range k {
			i := rng.IntN(k)
			s += after[i].Score - before[i].Score
		}
		lifts[b] = s / float64(k)
	}
	sort.Float64s(lifts)
	return [2]float64{lifts[int(0.025*float64(n))], lifts[int(0.975*float64(n))-1]}
}

func byHops(before, after []evalResult) map[string][2]float64 {
	out := map[string][2]float64{}
	count := map[string]float64{}
	for i := range before {
		h := fmt.Sprintf("%d-hop", before[i].Hops)
		v := out[h]
		v[0] += before[i].Score
		v[1] += after[i].Score
		out[h] = v
		count[h]++
	}
	for h, v := range out {
		out[h] = [2]float64{v[0] / count[h], v[1] / count[h]}
	}
	return out
}

func writeReport(dir string, rep *Report, sum *rl.Summary) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := rl.WriteFileAtomic(filepath.Join(dir, "report.json"), append(b, '\n')); err != nil {
		return err
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# asearcher train report\n\n")
	fmt.Fprintf(&md, "| | held-out accuracy |\n|---|---|\n| before RL (after warm-up) | %.3f |\n| after RL (%d steps) | %.3f |\n",
		rep.BeforeAccuracy, rep.Steps, rep.AfterAccuracy)
	fmt.Fprintf(&md, "\nLift %+.3f, bootstrap 95%% CI [%+.3f, %+.3f] over %d held-out questions.\n\n",
		rep.Lift, rep.LiftCI95[0], rep.LiftCI95[1], rep.Questions)
	hops := make([]string, 0, len(rep.ByHops))
	for h := range rep.ByHops {
		hops = append(hops, h)
	}
	sort.Strings(hops)
	for _, h := range hops {
		fmt.Fprintf(&md, "- %s: %.3f → %.3f\n", h, rep.ByHops[h][0], rep.ByHops[h][1])
	}
	fmt.Fprintf(&md, "\nWarm-up %.0f s, RL %.0f s, total %.0f s. Groups filtered (zero variance): %d. Curves: plots.html; per-step metrics: metrics.jsonl.\n",
		rep.WarmupSec, rep.RLSec, rep.TotalSec, sum.Filtered)
	return rl.WriteFileAtomic(filepath.Join(dir, "report.md"), []byte(md.String()))
}
