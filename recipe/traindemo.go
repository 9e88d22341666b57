package recipe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/engine/embedded"
	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/internal/runlock"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/rl"
	"github.com/asearcher/asearcher/trainer"
)

// DemoOptions run the train demo.
type DemoOptions struct {
	Config DemoConfig
	// Out is the run directory.
	Out string
	// Resume continues the run in Out: finished phases are skipped, RL
	// resumes from its latest checkpoint, and Out's own config is used.
	Resume bool
	// Repair lets a resume drop damaged log lines (backup kept) instead
	// of refusing them.
	Repair bool
	// Progress draws bars on a terminal (ProgressAuto), logs, or is silent.
	Progress ProgressMode
	Logger   *slog.Logger
	// OnStep, when set, is called after every RL step.
	OnStep func(*rl.StepRecord)
}

// Paths inside the run directory.
const (
	demoConfigFile  = "config.yaml"
	demoModelDir    = "model_init"
	demoWarmupDir   = "warmup"
	demoWarmupModel = "warmup/model"
	demoRLDir       = "trainer"
	demoBeforeFile  = "eval_before.json"
	demoAfterFile   = "eval_after.json"
	// The eval run directories behind them (results, trajectories and
	// eval's own reports).
	demoEvalBeforeDir = "eval-before"
	demoEvalAfterDir  = "eval-after"
	demoReportJSON    = "report.json"
	demoReportMD      = "report.md"
	trainLockFile     = "train.lock"
)

// withResumeHint tells how to continue a failed run once its directory
// holds its config (from then on any failure can be resumed).
func withResumeHint(err error, out string) error {
	if err != nil && !strings.Contains(err.Error(), "--resume") && !errors.Is(err, errNoVariance) {
		if _, serr := os.Stat(filepath.Join(out, demoConfigFile)); serr == nil {
			err = fmt.Errorf("%w (continue with --resume %s)", err, out)
		}
	}
	return err
}

// RunDemo runs the whole demo and returns its report. Each finished phase
// leaves a file behind, so a killed run resumed with Resume redoes only the
// phase it was in (RL from its last checkpoint).
func RunDemo(ctx context.Context, o DemoOptions) (*DemoReport, error) {
	rep, err := runDemo(ctx, o)
	return rep, withResumeHint(err, o.Out)
}

func runDemo(ctx context.Context, o DemoOptions) (*DemoReport, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	start := time.Now()
	cfg, err := demoRunConfig(o)
	if err != nil {
		return nil, err
	}

	// One process per run directory: a second train (or --resume) on it
	// would write the same checkpoints and logs.
	unlock, err := runlock.Acquire(filepath.Join(o.Out, trainLockFile), "train")
	if err != nil {
		return nil, err
	}
	defer unlock()

	log.Info("building worlds", "train", cfg.World.TrainWorlds, "held_out", cfg.World.EvalWorlds, "people", cfg.World.People)
	wdir := filepath.Join(o.Out, "worlds")
	trainW, err := buildWorlds(ctx, wdir, &cfg, setTrain, cfg.World.TrainWorlds)
	if err != nil {
		return nil, err
	}
	defer closeWorlds(trainW)
	evalW, err := buildWorlds(ctx, wdir, &cfg, setHeldOut, cfg.World.EvalWorlds)
	if err != nil {
		return nil, err
	}
	defer closeWorlds(evalW)

	modelDir := filepath.Join(o.Out, demoModelDir)
	if err := initDemoModel(ctx, modelDir, &cfg, trainW, log); err != nil {
		return nil, err
	}
	w0, tok, err := engine.OpenModelDir(modelDir)
	if err != nil {
		return nil, fmt.Errorf("open model: %w", err)
	}
	stops := engine.StopTokens(modelDir, w0.Config, tok)
	da, err := newDemoAgent(&cfg, tok, stops)
	if err != nil {
		return nil, err
	}

	// Warm-up: supervised demonstrations through cross_entropy.
	warmStats, wWarm, err := warmupOnce(ctx, o, &cfg, da, trainW, w0, modelDir, log)
	if err != nil {
		return nil, err
	}

	evalQs := worldQuestions(evalW)
	sampler := engine.NewSampler(wWarm, 0, engine.SamplerOptions{Tokenizer: tok, StopTokenIDs: stops, MaxBatch: 64, PrefixCache: 4 * 64})
	defer sampler.Close()

	before, err := evaluateBeforeOnce(ctx, o, &cfg, da, sampler, evalQs, log)
	if err != nil {
		return nil, err
	}
	log.Info("before RL", "accuracy", round3(before.Accuracy), "search_rate", round3(before.SearchRate))

	// Async RL. A fresh trainer starts from the warm-up weights at version
	// 0, which the sampler already serves.
	// The sampler is the trainer's weight sink: it switches to each version
	// between decoding steps, stamped with the trainer's version, which
	// LoadState restores on resume to the controller's.
	tr := embedded.NewTrainer(wWarm, embedded.TrainerOptions{Dir: filepath.Join(o.Out, demoRLDir), SourceDir: modelDir, Sinks: []embedded.WeightsSink{sampler}})
	sum, err := runRLPhase(ctx, rlPhase{
		RL: cfg.RL, Dataset: questionSet(worldQuestions(trainW)), Rollout: da.rollout(cfg.Agent.Temperature),
		Sampler: sampler, Trainer: tr, Out: o.Out, Resume: o.Resume, Repair: o.Repair,
		Progress: o.Progress, Log: log, OnStep: o.OnStep,
		Metric: func(r *rl.StepRecord) string { return fmt.Sprintf("acc %.2f", r.Accuracy) },
	})
	if err != nil {
		return nil, err
	}

	after, err := evaluate(ctx, da, sampler, evalQs, &cfg, filepath.Join(o.Out, demoEvalAfterDir), o.Progress, log)
	if err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(o.Out, demoAfterFile), after); err != nil {
		return nil, err
	}
	rep := newDemoReport(&cfg, warmStats, &before, after, sum, time.Since(start))
	if err := rep.write(o.Out); err != nil {
		return nil, err
	}
	log.Info("done", "before", round3(before.Accuracy), "after", round3(after.Accuracy),
		"lift", round3(rep.Lift), "ci95", [2]float64{round3(rep.LiftCI[0]), round3(rep.LiftCI[1])}, "report", filepath.Join(o.Out, demoReportMD))
	return rep, nil
}

// initDemoModel trains the tokenizer on the training worlds' text and

// demoRunConfig is the run's configuration: on resume the run directory's
// own, else o.Config validated and written into a new run directory.
func demoRunConfig(o DemoOptions) (DemoConfig, error) {
	cfg := o.Config
	cfgPath := filepath.Join(o.Out, demoConfigFile)
	if o.Resume {
		c, err := LoadDemoConfig(cfgPath)
		if err != nil {
			return cfg, fmt.Errorf("resume %s: %w", o.Out, err)
		}
		return c, nil
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	if _, err := os.Stat(cfgPath); err == nil {
		return cfg, fmt.Errorf("%s already holds a run: pass --resume %s to continue it, or choose another --out", o.Out, o.Out)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return cfg, fmt.Errorf("create run directory: %w", err)
	}
	b, err := rl.MarshalYAML(cfg)
	if err != nil {
		return cfg, err
	}
	return cfg, atomicfile.WriteFile(cfgPath, b)
}

// warmupOnce runs the warm-up unless the run directory already holds its
// model, and returns its statistics and the warmed-up weights.
func warmupOnce(ctx context.Context, o DemoOptions, cfg *DemoConfig, da *demoAgent, trainW []*demoWorld, w0 *engine.Weights,
	modelDir string, log *slog.Logger) (*WarmupStats, *engine.Weights, error) {
	warmDir := filepath.Join(o.Out, demoWarmupModel)
	var warmStats *WarmupStats
	if _, err := os.Stat(filepath.Join(warmDir, "model.safetensors")); err != nil {
		warmW := trainW
		if cfg.Warmup.Worlds > 0 {
			log.Info("building warm-up worlds", "worlds", cfg.Warmup.Worlds)
			if warmW, err = buildWorlds(ctx, filepath.Join(o.Out, "worlds"), cfg, setWarmup, cfg.Warmup.Worlds); err != nil {
				return nil, nil, err
			}
			defer closeWorlds(warmW)
		}
		warmStats, err = runWarmup(ctx, cfg, da, warmW, w0, modelDir, filepath.Join(o.Out, demoWarmupDir), o.Progress, log)
		if err != nil {
			return nil, nil, err
		}
	} else {
		warmStats = &WarmupStats{}
		if err := readJSON(filepath.Join(o.Out, demoWarmupDir, "warmup.json"), warmStats); err != nil {
			// Only the warm-up's statistics for the report; the weights
			// below are what the run continues from.
			log.Warn("warm-up statistics unreadable; the report leaves them out", "err", err)
		}
		log.Info("warm-up already done", "model", warmDir)
	}
	wWarm, err := engine.LoadWeights(warmDir)
	if err != nil {
		return nil, nil, fmt.Errorf("load warm-up weights: %w", err)
	}
	return warmStats, wWarm, nil
}

// evaluateBeforeOnce is the held-out evaluation before RL, read back from
// the run directory when a resumed run already has it.
func evaluateBeforeOnce(ctx context.Context, o DemoOptions, cfg *DemoConfig, da *demoAgent, sampler llm.Sampler, evalQs []demoQuestion, log *slog.Logger) (EvalResult, error) {
	var before EvalResult
	beforePath := filepath.Join(o.Out, demoBeforeFile)
	err := readJSON(beforePath, &before)
	if err == nil {
		return before, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		// A derived file: evaluating again recreates it from the warm-up
		// weights, so no work is lost.
		log.Warn("damaged; evaluating again", "file", beforePath, "err", err)
	}
	log.Info("held-out evaluation before RL", "questions", len(evalQs), "samples", cfg.Eval.Samples)
	r, err := evaluate(ctx, da, sampler, evalQs, cfg, filepath.Join(o.Out, demoEvalBeforeDir), o.Progress, log)
	if err != nil {
		return before, err
	}
	return *r, writeJSON(beforePath, *r)
}

// writes a randomly initialised model, unless one is already there.
func initDemoModel(ctx context.Context, dir string, cfg *DemoConfig, ws []*demoWorld, log *slog.Logger) error {
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err == nil {
		return nil
	}
	mc, err := engine.Preset(cfg.Model.Preset, 512)
	if err != nil {
		return err
	}
	if cfg.Model.HiddenSize > 0 {
		mc.HiddenSize = cfg.Model.HiddenSize
		mc.HeadDim = mc.HiddenSize / mc.NumAttentionHeads
	}
	if cfg.Model.IntermediateSize > 0 {
		mc.IntermediateSize = cfg.Model.IntermediateSize
	}
	if cfg.Model.Layers > 0 {
		mc.NumHiddenLayers = cfg.Model.Layers
	}
	mc.MaxPositionEmbeddings = max(mc.MaxPositionEmbeddings, cfg.Agent.MaxContext)
	log.Info("initialising model", "preset", cfg.Model.Preset, "hidden", mc.HiddenSize, "layers", mc.NumHiddenLayers, "vocab", cfg.Model.Vocab)
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	if _, err := engine.InitModelDir(ctx, tmp, engine.InitOptions{Config: mc, Seed: uint64(cfg.Seed), DType: engine.F32,
		TrainTexts: worldTexts(ws), TrainVocab: cfg.Model.Vocab}); err != nil {
		return err
	}
	_ = os.RemoveAll(dir)
	return os.Rename(tmp, dir)
}

// WarmupStats summarise the supervised warm-up.
type WarmupStats struct {
	Demonstrations int `json:"demonstrations"`
	Guesses        int `json:"guesses"`
	Retries        int `json:"retries"`
	Bridged        int `json:"bridged"`
	// MultiHopSkipped counts the training questions left out of the
	// warm-up because they need more than one hop.
	MultiHopSkipped int     `json:"multi_hop_skipped"`
	Steps           int     `json:"steps"`
	FirstLoss       float64 `json:"first_loss"`
	LastLoss        float64 `json:"last_loss"`
	Seconds         float64 `json:"seconds"`
}

// runWarmup trains on demonstrations with cross_entropy and saves the
// resulting model under dir/model.
func runWarmup(ctx context.Context, cfg *DemoConfig, da *demoAgent, ws []*demoWorld, w *engine.Weights,
	modelDir, dir string, mode ProgressMode, log *slog.Logger) (*WarmupStats, error) {
	t0 := time.Now()
	r := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5f7))
	trajs, st, err := warmupDemonstrations(ctx, cfg, da, ws, r)
	if err != nil {
		return nil, err
	}
	var data []trainer.Datum
	for _, traj := range trajs {
		seqs, err := traj.Sequences()
		if err != nil {
			return nil, err
		}
		if cfg.Warmup.MaskRetryQuery && len(traj.Tools) == 2 {
			// A retry (the only demonstrations that search twice): its
			// second search tag is trained, its query is not.
			maskQuery(seqs, traj, traj.Tools[1].Call, da.env.Tokenizer)
		}
		for _, s := range seqs {
			data = append(data, supervisedDatum(s))
		}
	}
	log.Info("warm-up", "demonstrations", st.Demonstrations, "guesses", st.Guesses, "retries", st.Retries, "bridged", st.Bridged,
		"multi_hop_skipped", st.MultiHopSkipped, "steps", cfg.Warmup.Steps)
	tr := embedded.NewTrainer(w, embedded.TrainerOptions{Dir: dir, SourceDir: modelDir})
	adam := trainer.AdamParams{LearningRate: cfg.Warmup.LR, Beta1: 0.9, Beta2: 0.98, Eps: 1e-8, GradClipNorm: 1}
	bar := newDemoProgress(mode, log, "warm-up", cfg.Warmup.Steps)
	for step := range cfg.Warmup.Steps {
		batch := make([]trainer.Datum, cfg.Warmup.BatchSize)
		for i := range batch {
			batch[i] = data[r.IntN(len(data))]
		}
		out, err := tr.ForwardBackward(ctx, batch, trainer.CrossEntropy, trainer.LossConfig{TokenMean: true})
		if err != nil {
			return nil, fmt.Errorf("warm-up step %d: %w", step, err)
		}
		// Linear decay keeps the last steps from undoing the fit.
		a := adam
		a.LearningRate *= 1 - float64(step)/float64(cfg.Warmup.Steps)
		if _, err := tr.OptimStep(ctx, a); err != nil {
			return nil, fmt.Errorf("warm-up step %d: %w", step, err)
		}
		if step == 0 {
			st.FirstLoss = out.Loss
		}
		st.LastLoss = out.Loss
		bar.Set(int64(step+1), fmt.Sprintf("loss %.3f", out.Loss))
	}
	bar.Finish()
	path, err := tr.SaveWeightsForSampler(ctx, "model")
	if err != nil {
		return nil, err
	}
	// SaveWeightsForSampler writes dir/sampler_weights/model; the run
	// directory keeps it at dir/model.
	if err := os.Rename(path, filepath.Join(dir, "model")); err != nil {
		return nil, fmt.Errorf("keep warm-up model: %w", err)
	}
	st.Seconds = time.Since(t0).Seconds()
	log.Info("warm-up done", "loss_first", round3(st.FirstLoss), "loss_last", round3(st.LastLoss), "seconds", round3(st.Seconds))
	return st, writeJSON(filepath.Join(dir, "warmup.json"), st)
}

// warmupDemonstrations runs the scripted demonstrations of the training
// worlds' 1-hop questions through the real agent and tools, drawing each
// one's kind from r; multi-hop questions are counted and left out.
func warmupDemonstrations(ctx context.Context, cfg *DemoConfig, da *demoAgent, ws []*demoWorld, r *rand.Rand) ([]*agent.Trajectory, *WarmupStats, error) {
	st := &WarmupStats{Steps: cfg.Warmup.Steps}
	var out []*agent.Trajectory
	for _, dq := range worldQuestions(ws) {
		kind := pickDemoKind(&cfg.Warmup, r)
		question := dq.q.Question
		replies, ok := demonstration(dq.world.world, dq.q, kind, cfg.Warmup.MisrememberedFraction, r)
		if !ok && cfg.Warmup.BridgeFraction > 0 && r.Float64() < cfg.Warmup.BridgeFraction {
			question, replies, ok = bridgedDemonstration(dq.q)
			kind = demoBridge
		}
		if !ok {
			st.MultiHopSkipped++
			continue
		}
		traj, err := agent.Demonstrate(ctx, da.wf, da.envFor(nil, dq.world, 0),
			agent.Task{ID: dq.q.ID, Question: question, Answers: []string{dq.q.Answer}}, replies)
		if err != nil {
			return nil, nil, fmt.Errorf("demonstration for %s: %w", dq.q.ID, err)
		}
		out = append(out, traj)
		st.Demonstrations++
		switch kind {
		case demoGuess:
			st.Guesses++
		case demoRetry:
			st.Retries++
		case demoBridge:
			st.Bridged++
		}
	}
	return out, st, nil
}

// maskQuery takes the query of act call i (output "<search> query
// </search>") out of the loss: only the tokens that spell the search tag
// stay trained, so the demonstration teaches searching again but not what
// to search.
func maskQuery(seqs []agent.Sequence, traj *agent.Trajectory, i int, tok agent.Tokenizer) {
	c := &traj.Calls[i]
	keep := 0
	for keep < len(c.Output) && strings.HasPrefix("<search>", tok.Decode(c.Output[:keep+1])) {
		keep++
	}
	for si := range seqs {
		if !slices.Contains(seqs[si].Calls, i) {
			continue
		}
		// A sequence holds each of its calls' full input as a prefix, so
		// the call's output starts at its input length.
		for k := c.InputLen + keep; k < c.InputLen+len(c.Output) && k < len(seqs[si].LossMask); k++ {
			seqs[si].LossMask[k] = 0
		}
	}
}

// supervisedDatum trains on the generated (mask 1) tokens of a sequence.
func supervisedDatum(s agent.Sequence) trainer.Datum {
	n := len(s.Tokens)
	d := trainer.Datum{Input: s.Tokens[:n-1], Target: s.Tokens[1:], Weights: make([]float32, n-1)}
	for i := 1; i < n; i++ {
		d.Weights[i-1] = float32(s.LossMask[i])
	}
	return d
}

// pruneSamplerWeights is the embedded publisher's Load: the sampler got
// the new weights as the trainer's sink already, so only the copy of the
// previous version on disk is removed.
func pruneSamplerWeights(dir string) func(context.Context, string, int) error {
	return func(_ context.Context, _ string, version int) error {
		if version > 1 {
			_ = os.RemoveAll(filepath.Join(dir, "sampler_weights", fmt.Sprintf("v%06d", version-1)))
		}
		return nil
	}
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'))
}

var _ llm.Sampler = (*engine.Sampler)(nil)

var errNoQuestions = errors.New("no held-out questions")

var errNoVariance = errors.New("every group got the same reward")

// varianceWatch stops RL when group after group gets one reward for all its
// samples: with zero-variance filtering on, no batch would ever form and
// the run would wait forever (a warm-up too short for the model ever to
// succeed, or a task it always solves).
type varianceWatch struct {
	mu     sync.Mutex
	size   int
	limit  int
	streak int
	groups map[int64][]float64
	stop   context.CancelCauseFunc
}

func newVarianceWatch(size, limit int, stop context.CancelCauseFunc) *varianceWatch {
	return &varianceWatch{size: size, limit: limit, groups: map[int64][]float64{}, stop: stop}
}

func (w *varianceWatch) wrap(r rl.Rollout) rl.Rollout {
	return rl.RolloutFunc(func(ctx context.Context, q rl.Question, s llm.Sampler, sample int, seed int64) (*rl.Sample, error) {
		out, err := r.Run(ctx, q, s, sample, seed)
		if err == nil && out != nil {
			w.observe(q.Index, out.Reward)
		}
		return out, err
	})
}

func (w *varianceWatch) observe(question int64, reward float64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rs := append(w.groups[question], reward)
	if len(rs) < w.size {
		w.groups[question] = rs
		return
	}
	delete(w.groups, question)
	if !rl.ZeroVariance(rs) {
		w.streak = 0
		return
	}
	w.streak++
	if w.streak == w.limit {
		w.stop(fmt.Errorf("RL: %w (%v) in %d groups in a row, so no batch can form; lengthen the warm-up (warmup.steps), try another seed, or set rl.filter_zero_variance: false (with rl.explore on, this is also what a run looks like when no exploring rollout ever succeeds: docs/rl.md, Multi-hop)",
			errNoVariance, reward, w.limit))
	}
}
