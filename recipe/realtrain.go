package recipe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/dataset"
	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/engine/embedded"
	"github.com/asearcher/asearcher/eval"
	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/internal/runlock"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/retrieval"
	"github.com/asearcher/asearcher/reward"
	"github.com/asearcher/asearcher/rl"
	"github.com/asearcher/asearcher/synth"
	"github.com/asearcher/asearcher/tokenizer"
	"github.com/asearcher/asearcher/trainer"
)

// RealOptions run RunReal.
type RealOptions struct {
	Config RealConfig
	// Out is the run directory; Resume continues the run in it with its
	// own config.yaml (finished phases skipped, RL from its checkpoint).
	Out      string
	Resume   bool
	Repair   bool
	Progress ProgressMode
	Logger   *slog.Logger
	OnStep   func(*rl.StepRecord)
}

// Paths inside a real-model run directory (besides the demo's names for
// config.yaml, warmup/, trainer/, eval-before/, eval-after/, the reports
// and the lock).
const (
	realCorpusFile = "corpus.jsonl"
	realIndexDir   = "index"
	realSplitFile  = "split.json"
)

// realPromptName is the agent prompt RunReal registers: the instructions
// below rendered as one user turn of the model's chat template.
const realPromptName = "real-chat"

// realInstructions is the user message of the real-model agent. It is
// short on purpose: every token of it is prefilled on every call.
const realInstructions = "Answer the question. To search Wikipedia, write <search> query </search>; " +
	"the top result comes back between <information> and </information>. " +
	"Search as often as you need, then give only the final answer, a few words, as <answer> answer </answer>.\n" +
	"Question: {question}"

// RunReal runs warm-up, the held-out evaluation, asynchronous RL and the
// evaluation again, on a real model (docs/real-model.md).
func RunReal(ctx context.Context, o RealOptions) (*RealReport, error) {
	rep, err := runReal(ctx, o)
	return rep, withResumeHint(err, o.Out)
}

func runReal(ctx context.Context, o RealOptions) (*RealReport, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	start := time.Now()
	cfg, err := realRunConfig(o)
	if err != nil {
		return nil, err
	}
	unlock, err := runlock.Acquire(filepath.Join(o.Out, trainLockFile), "train")
	if err != nil {
		return nil, err
	}
	defer unlock()

	// The model first: a wrong path fails before any indexing.
	w0, tok, err := engine.OpenModelDir(cfg.Real.ModelDir)
	if err != nil {
		return nil, fmt.Errorf("open model %s: %w", cfg.Real.ModelDir, err)
	}
	if tok == nil {
		return nil, fmt.Errorf("model %s has no tokenizer.json", cfg.Real.ModelDir)
	}
	set, err := dataset.Load(cfg.Real.Questions, dataset.Options{})
	if err != nil {
		return nil, err
	}
	train, held, err := SplitQuestions(set.Items, cfg.Seed, cfg.Real.Train, cfg.Real.HeldOut)
	if err != nil {
		return nil, err
	}
	if err := writeSplit(filepath.Join(o.Out, realSplitFile), train, held); err != nil {
		return nil, err
	}
	ix, err := realIndex(ctx, o.Out, cfg.Real.Corpus, log)
	if err != nil {
		return nil, err
	}
	defer ix.Close()

	stops := engine.StopTokens(cfg.Real.ModelDir, w0.Config, tok)
	ra, err := newRealAgent(&cfg, tok, stops, synth.IndexTools{Index: ix})
	if err != nil {
		return nil, err
	}

	warmStats, wWarm, err := realWarmupOnce(ctx, o, &cfg, ra, train, w0, log)
	if err != nil {
		return nil, err
	}
	sampler := engine.NewSampler(wWarm, 0, engine.SamplerOptions{Tokenizer: tok, StopTokenIDs: stops, MaxBatch: 32, PrefixCache: -1})
	defer sampler.Close()

	before, err := realEvalOnce(ctx, o, &cfg, ra, sampler, held, demoEvalBeforeDir, demoBeforeFile, log)
	if err != nil {
		return nil, err
	}
	log.Info("before RL", "em", round3(before.EM), "f1", round3(before.F1), "answered", round3(before.AnsweredRate), "searched", round3(before.SearchRate))

	tr, err := newRealTrainer(&cfg, wWarm, embedded.TrainerOptions{Dir: filepath.Join(o.Out, demoRLDir),
		SourceDir: filepath.Join(o.Out, demoWarmupModel), Sinks: []embedded.WeightsSink{sampler}}, cfg.LoRA.Rank > 0)
	if err != nil {
		return nil, err
	}
	sum, err := runRLPhase(ctx, rlPhase{
		RL: cfg.RL, Dataset: itemSet(train), Rollout: ra.rollout(cfg.Agent.Temperature, cfg.Real.Reward),
		Sampler: sampler, Trainer: tr, Out: o.Out, Resume: o.Resume, Repair: o.Repair,
		Progress: o.Progress, Log: log, OnStep: o.OnStep,
		Metric: func(r *rl.StepRecord) string { return fmt.Sprintf("reward %.2f", r.RewardMean) },
	})
	if err != nil {
		return nil, err
	}
	after, err := realEvaluate(ctx, ra, sampler, held, &cfg, filepath.Join(o.Out, demoEvalAfterDir), o.Progress, log)
	if err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(o.Out, demoAfterFile), after); err != nil {
		return nil, err
	}
	rep := newRealReport(&cfg, len(train), warmStats, before, after, sum, time.Since(start))
	if err := rep.write(o.Out); err != nil {
		return nil, err
	}
	log.Info("done", "em", [2]float64{round3(before.EM), round3(after.EM)}, "f1", [2]float64{round3(before.F1), round3(after.F1)},
		"f1_lift_ci95", [2]float64{round3(rep.F1LiftCI[0]), round3(rep.F1LiftCI[1])}, "report", filepath.Join(o.Out, demoReportMD))
	return rep, nil
}

// realRunConfig is the run's configuration: on resume the run directory's
// own, else o.Config validated and written into a new run directory.
func realRunConfig(o RealOptions) (RealConfig, error) {
	cfg := o.Config
	path := filepath.Join(o.Out, demoConfigFile)
	if o.Resume {
		tc, err := LoadTrainConfig(path)
		if err != nil {
			return cfg, fmt.Errorf("resume %s: %w", o.Out, err)
		}
		if tc.Mode != ModeReal {
			return cfg, fmt.Errorf("resume %s: its config.yaml is a %s run, not a real-model run", o.Out, tc.Mode)
		}
		return tc.Real, nil
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	if _, err := os.Stat(path); err == nil {
		return cfg, fmt.Errorf("%s already holds a run: pass --resume %s to continue it, or choose another --out", o.Out, o.Out)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return cfg, fmt.Errorf("create run directory: %w", err)
	}
	b, err := rl.MarshalYAML(cfg)
	if err != nil {
		return cfg, err
	}
	return cfg, atomicfile.WriteFile(path, b)
}

// SplitQuestions draws held out questions by seed and returns up to train
// of the others (0: all of them) and the held-out ones, each in source
// order. A question whose text repeats one already drawn as held out is
// never a training question, so no held-out question is trained on even
// under another id.
func SplitQuestions(items []dataset.Item, seed int64, train, heldOut int) ([]dataset.Item, []dataset.Item, error) {
	if heldOut < 1 || heldOut >= len(items) {
		return nil, nil, fmt.Errorf("%d questions: cannot hold out %d and train on the rest", len(items), heldOut)
	}
	perm := rand.New(rand.NewPCG(uint64(seed), 0x4e1d)).Perm(len(items))
	isHeld := make([]bool, len(items))
	heldText := map[string]bool{}
	for _, i := range perm[:heldOut] {
		isHeld[i] = true
		heldText[reward.NormalizeAnswer(items[i].Question)] = true
	}
	var tr, ho []dataset.Item
	for i, it := range items {
		switch {
		case isHeld[i]:
			ho = append(ho, it)
		case heldText[reward.NormalizeAnswer(it.Question)]:
		case train == 0 || len(tr) < train:
			tr = append(tr, it)
		}
	}
	if len(tr) == 0 {
		return nil, nil, errors.New("no training questions left after holding out")
	}
	return tr, ho, nil
}

// writeSplit records which questions train and which are held out, for
// reading (the split itself is recomputed from the seed).
func writeSplit(path string, train, held []dataset.Item) error {
	ids := func(items []dataset.Item) []string {
		out := make([]string, len(items))
		for i, it := range items {
			out[i] = it.ID
		}
		return out
	}
	return writeJSON(path, map[string][]string{"train": ids(train), "held_out": ids(held)})
}

// realIndex builds (once) and opens a BM25 index over a shipped corpus
// inside the run directory.
func realIndex(ctx context.Context, out, corpusName string, log *slog.Logger) (*retrieval.Index, error) {
	idx := filepath.Join(out, realIndexDir)
	if _, err := os.Stat(filepath.Join(idx, "index.json")); err != nil {
		log.Info("indexing corpus", "corpus", corpusName)
		rc, err := dataset.OpenCorpus(ctx, corpusName)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		cpath := filepath.Join(out, realCorpusFile)
		if err := atomicfile.WriteFile(cpath, b); err != nil {
			return nil, err
		}
		if _, err := retrieval.Build(ctx, retrieval.BuildOptions{Corpus: cpath, Out: idx, Workers: 1,
			MemoryMB: 64, Progress: retrieval.ProgressOff}); err != nil {
			return nil, fmt.Errorf("index %s: %w", corpusName, err)
		}
	}
	ix, err := retrieval.Open(idx, retrieval.OpenOptions{NoDense: true})
	if err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	return ix, nil
}

// itemSet adapts questions to rl.Dataset.
type itemSet []dataset.Item

func (s itemSet) Len() int                     { return len(s) }
func (s itemSet) Question(i int) (string, any) { return s[i].ID, s[i] }

func itemTask(it dataset.Item) agent.Task {
	return agent.Task{ID: it.ID, Question: it.Question, Answers: it.Answers}
}

// realAgent is the search agent in the model's chat format on the corpus
// index.
type realAgent struct {
	wf  *agent.SearchAgent
	env agent.Env
}

// RealPrompt renders the real-model agent's prompt: realInstructions as
// one user turn of tok's chat template with the assistant's generation
// prompt, {question} left as a slot. The agent then continues that one
// assistant turn (search, results, answer), so a demonstration and a
// rollout are the same token stream.
func RealPrompt(tok *tokenizer.Tokenizer) (agent.Prompt, error) {
	text, err := tok.ApplyChatTemplate([]tokenizer.Message{{Role: "user", Content: realInstructions}},
		tokenizer.ChatOptions{AddGenerationPrompt: true})
	if err != nil {
		return agent.Prompt{}, fmt.Errorf("real-model prompt: %w", err)
	}
	if !strings.Contains(text, "{question}") {
		return agent.Prompt{}, errors.New("real-model prompt: the chat template dropped the {question} slot")
	}
	return agent.Prompt{Name: realPromptName, Description: "the real-model agent's instructions in the model's chat template", Text: text}, nil
}

func newRealAgent(cfg *RealConfig, tok *tokenizer.Tokenizer, stops []int, tools synth.IndexTools) (*realAgent, error) {
	p, err := RealPrompt(tok)
	if err != nil {
		return nil, err
	}
	prompts := agent.NewPrompts()
	if err := prompts.Register(p); err != nil {
		return nil, err
	}
	wf, err := agent.NewSearchAgent(agent.SearchConfig{
		Name: "real", Prompt: realPromptName, Prompts: prompts, Style: agent.StyleCompact,
		TopK: cfg.Agent.TopK, DocChars: cfg.Agent.DocChars, MaxIdleTurns: 1,
		ExtraStops: []string{"<|im_end|>", "<|endoftext|>"},
	})
	if err != nil {
		return nil, err
	}
	return &realAgent{wf: wf, env: agent.Env{
		Tokenizer: tok, StopTokenIDs: stops, Search: tools, Browse: tools,
		Sampling: llm.Params{Temperature: cfg.Agent.Temperature},
		Limits: agent.Limits{MaxTurns: cfg.Agent.MaxTurns, MaxContextTokens: cfg.Agent.MaxContext,
			MaxCallTokens: cfg.Agent.MaxCallToken, MinCallTokens: 4},
	}}, nil
}

func (a *realAgent) envFor(s llm.Sampler, temperature float64) *agent.Env {
	env := a.env
	env.Sampler = s
	env.Sampling.Temperature = temperature
	return &env
}

// rollout is the controller's Rollout with the configured reward: token
// F1 or exact match of the answer, 0 without one.
func (a *realAgent) rollout(temperature float64, metric string) rl.Rollout {
	return rl.WorkflowRollout{
		Workflow: a.wf,
		Env: func(q rl.Question) (*agent.Env, agent.Task, error) {
			it, ok := q.Payload.(dataset.Item)
			if !ok {
				return nil, agent.Task{}, fmt.Errorf("payload %T is not a data set item", q.Payload)
			}
			return a.envFor(nil, temperature), itemTask(it), nil
		},
		Reward: func(_ context.Context, task agent.Task, traj *agent.Trajectory) (float64, error) {
			return answerReward(metric, task, traj), nil
		},
	}
}

func answerReward(metric string, task agent.Task, traj *agent.Trajectory) float64 {
	if traj == nil || !traj.Answered {
		return 0
	}
	if metric == "em" {
		return reward.EM(traj.Answer, task.Answers)
	}
	return reward.F1(traj.Answer, task.Answers)
}

// SupportingTitles are the distinct titles of a HotpotQA item's
// supporting_facts, in order.
func SupportingTitles(it dataset.Item) []string {
	facts, _ := it.Meta["supporting_facts"].([]any)
	var out []string
	for _, f := range facts {
		pair, ok := f.([]any)
		if !ok || len(pair) == 0 {
			continue
		}
		if t, ok := pair[0].(string); ok && strings.TrimSpace(t) != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// realReplies are the scripted replies of a demonstration: a search for
// each supporting title (as many as the turn limit leaves room for), then
// the gold answer. A question without supporting facts searches for the
// question itself.
func realReplies(it dataset.Item, maxTurns int) []string {
	titles := SupportingTitles(it)
	if len(titles) == 0 {
		titles = []string{it.Question}
	}
	if len(titles) > maxTurns-1 {
		titles = titles[:maxTurns-1]
	}
	var replies []string
	for _, t := range titles {
		replies = append(replies, "<search> "+t+" </search>")
	}
	return append(replies, "<answer> "+it.Answers[0]+" </answer>")
}

// RealWarmupStats summarise the supervised warm-up.
type RealWarmupStats struct {
	Demonstrations int     `json:"demonstrations"`
	Skipped        int     `json:"skipped"`
	Tokens         int     `json:"tokens_mean"`
	Steps          int     `json:"steps"`
	FirstLoss      float64 `json:"first_loss"`
	LastLoss       float64 `json:"last_loss"`
	Seconds        float64 `json:"seconds"`
	SecondsPerStep float64 `json:"seconds_per_step"`
}

// realDemonstrations renders a demonstration for every training question
// through the agent itself; ones the limits cut short are skipped.
func realDemonstrations(ctx context.Context, cfg *RealConfig, ra *realAgent, train []dataset.Item, log *slog.Logger) ([]trainer.Datum, *RealWarmupStats, error) {
	st := &RealWarmupStats{}
	var data []trainer.Datum
	tokens := 0
	for _, it := range train {
		if len(it.Answers) == 0 {
			st.Skipped++
			continue
		}
		traj, err := agent.Demonstrate(ctx, ra.wf, ra.envFor(nil, 0), itemTask(it), realReplies(it, cfg.Agent.MaxTurns))
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			log.Debug("demonstration skipped", "id", it.ID, "err", err)
			st.Skipped++
			continue
		}
		seqs, err := traj.Sequences()
		if err != nil {
			return nil, nil, err
		}
		for _, s := range seqs {
			data = append(data, supervisedDatum(s))
			tokens += len(s.Tokens)
		}
		st.Demonstrations++
	}
	if len(data) == 0 {
		return nil, nil, fmt.Errorf("warm-up: none of %d training questions gave a demonstration within the agent's limits; raise agent.max_context_tokens or max_call_tokens", len(train))
	}
	st.Tokens = tokens / len(data)
	return data, st, nil
}

// realWarmupOnce runs the warm-up unless the run directory holds its
// model; a warm-up killed midway starts over (it keeps no checkpoint).
func realWarmupOnce(ctx context.Context, o RealOptions, cfg *RealConfig, ra *realAgent, train []dataset.Item, w0 *engine.Weights, log *slog.Logger) (*RealWarmupStats, *engine.Weights, error) {
	warmDir := filepath.Join(o.Out, demoWarmupModel)
	st := &RealWarmupStats{}
	if _, err := os.Stat(filepath.Join(warmDir, "model.safetensors")); err != nil {
		if st, err = realWarmup(ctx, cfg, ra, train, w0, filepath.Join(o.Out, demoWarmupDir), o.Progress, log); err != nil {
			return nil, nil, err
		}
	} else if err := readJSON(filepath.Join(o.Out, demoWarmupDir, "warmup.json"), st); err != nil {
		log.Warn("warm-up statistics unreadable; the report leaves them out", "err", err)
	}
	w, err := engine.LoadWeights(warmDir)
	if err != nil {
		return nil, nil, fmt.Errorf("load warm-up weights: %w", err)
	}
	return st, w, nil
}

func realWarmup(ctx context.Context, cfg *RealConfig, ra *realAgent, train []dataset.Item, w *engine.Weights,
	dir string, mode ProgressMode, log *slog.Logger) (*RealWarmupStats, error) {
	t0 := time.Now()
	data, st, err := realDemonstrations(ctx, cfg, ra, train, log)
	if err != nil {
		return nil, err
	}
	st.Steps = cfg.Warmup.Steps
	log.Info("warm-up", "demonstrations", st.Demonstrations, "skipped", st.Skipped, "tokens_mean", st.Tokens, "steps", st.Steps)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	tr, err := newRealTrainer(cfg, w, embedded.TrainerOptions{Dir: dir, SourceDir: cfg.Real.ModelDir}, cfg.LoRA.Warmup)
	if err != nil {
		return nil, err
	}
	adam := trainer.AdamParams{LearningRate: cfg.Warmup.LR, Beta1: 0.9, Beta2: 0.98, Eps: 1e-8, GradClipNorm: 1}
	r := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x3a7))
	// Epochs over a shuffled order, so every demonstration is seen before
	// any repeats.
	var order []int
	bar := newDemoProgress(mode, log, "warm-up", st.Steps)
	for step := range st.Steps {
		batch := make([]trainer.Datum, cfg.Warmup.BatchSize)
		for i := range batch {
			if len(order) == 0 {
				order = r.Perm(len(data))
			}
			batch[i], order = data[order[0]], order[1:]
		}
		out, err := tr.ForwardBackward(ctx, batch, trainer.CrossEntropy, trainer.LossConfig{TokenMean: true})
		if err != nil {
			return nil, fmt.Errorf("warm-up step %d: %w", step, err)
		}
		a := adam
		a.LearningRate *= 1 - float64(step)/float64(st.Steps)
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
	// Written beside, then renamed: a resume takes warmup/model as a
	// finished warm-up, so it must never be half written.
	tmp := filepath.Join(dir, "model.tmp")
	if err := tr.SaveModel(ctx, tmp); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "model")); err != nil {
		return nil, fmt.Errorf("keep warm-up model: %w", err)
	}
	st.Seconds = time.Since(t0).Seconds()
	if st.Steps > 0 {
		st.SecondsPerStep = st.Seconds / float64(st.Steps)
	}
	log.Info("warm-up done", "loss_first", round3(st.FirstLoss), "loss_last", round3(st.LastLoss), "seconds", round3(st.Seconds))
	return st, writeJSON(filepath.Join(dir, "warmup.json"), st)
}

// newRealTrainer is the embedded trainer over w: a LoRA adapter of the
// configured shape when lora is set, full weights otherwise.
func newRealTrainer(cfg *RealConfig, w *engine.Weights, opts embedded.TrainerOptions, lora bool) (*embedded.Trainer, error) {
	if !lora {
		return embedded.NewTrainer(w, opts), nil
	}
	tr, err := embedded.NewLoRATrainer(w, cfg.LoRA.engineConfig(), uint64(cfg.Seed), opts)
	if err != nil {
		return nil, fmt.Errorf("lora: %w", err)
	}
	return tr, nil
}

// RealEval is a held-out evaluation: per-question mean EM and F1 over the
// samples, in question order, so two evaluations pair up.
type RealEval struct {
	Questions    []string  `json:"questions"`
	EMs          []float64 `json:"em_per_question"`
	F1s          []float64 `json:"f1_per_question"`
	EM           float64   `json:"em"`
	F1           float64   `json:"f1"`
	SearchRate   float64   `json:"search_rate"`
	AnsweredRate float64   `json:"answered_rate"`
	Seconds      float64   `json:"seconds"`
	// SecondsPerSample is the wall time per trajectory (they run
	// eval.concurrency at a time).
	SecondsPerSample float64 `json:"seconds_per_sample"`
}

func realEvalOnce(ctx context.Context, o RealOptions, cfg *RealConfig, ra *realAgent, s llm.Sampler, held []dataset.Item,
	dir, file string, log *slog.Logger) (*RealEval, error) {
	path := filepath.Join(o.Out, file)
	var r RealEval
	err := readJSON(path, &r)
	if err == nil {
		return &r, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		log.Warn("damaged; evaluating again", "file", path, "err", err)
	}
	out, err := realEvaluate(ctx, ra, s, held, cfg, filepath.Join(o.Out, dir), o.Progress, log)
	if err != nil {
		return nil, err
	}
	return out, writeJSON(path, out)
}

// realEvaluate runs the held-out questions through eval.Run into dir
// (resuming what it holds), with the same seeds every time.
func realEvaluate(ctx context.Context, ra *realAgent, s llm.Sampler, held []dataset.Item, cfg *RealConfig,
	dir string, mode ProgressMode, log *slog.Logger) (*RealEval, error) {
	if len(held) == 0 {
		return nil, errNoQuestions
	}
	t0 := time.Now()
	set := &dataset.Set{Name: "held-out", Source: "train:" + cfg.Real.Questions}
	h := sha256.New()
	for i, it := range held {
		it.Index = i
		set.Items = append(set.Items, it)
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00", it.ID, it.Question, strings.Join(it.Answers, "\x01"))
	}
	set.SHA256 = hex.EncodeToString(h.Sum(nil))
	reg := agent.NewRegistry()
	reg.Register(demoEvalAgent, func(agent.Options) (agent.Workflow, error) { return ra.wf, nil })
	ec := eval.DefaultConfig()
	ec.Out, ec.K, ec.Agent, ec.Seed = dir, cfg.Eval.Samples, demoEvalAgent, cfg.Seed
	ec.Access, ec.ToolCacheMode = "", ""
	ec.Temperature, ec.TopP, ec.TopK = cfg.Eval.Temperature, ra.env.Sampling.TopP, ra.env.Sampling.TopK
	ec.Limits = ra.env.Limits
	ec.Concurrency, ec.MaxAttempts = cfg.Eval.Concurrency, 1
	if _, err := eval.Run(ctx, ec, eval.Options{
		Registry: reg, Sets: []*dataset.Set{set}, Progress: mode, Log: log,
		EnvFor: func(_ *dataset.Set, _ *dataset.Item) (*agent.Env, error) {
			return ra.envFor(s, cfg.Eval.Temperature), nil
		},
		Seed: func(_ string, index, sample int) int64 {
			return rl.TrajectorySeed(cfg.Seed^0x0e7a1, int64(index), sample, 0)
		},
	}); err != nil {
		return nil, err
	}
	recs, err := eval.ReadResults(filepath.Join(dir, eval.ResultsFile))
	if err != nil {
		return nil, err
	}
	r, err := realEvalResult(held, cfg.Eval.Samples, recs)
	if err != nil {
		return nil, err
	}
	r.Seconds = time.Since(t0).Seconds()
	r.SecondsPerSample = r.Seconds / float64(len(held)*cfg.Eval.Samples)
	return r, nil
}

// realEvalResult summarises k samples of each held-out question.
func realEvalResult(held []dataset.Item, k int, recs []eval.Record) (*RealEval, error) {
	pos := make(map[string]int, len(held))
	for i, it := range held {
		pos[it.ID] = i
	}
	seen := make([]bool, len(held)*k)
	r := &RealEval{EMs: make([]float64, len(held)), F1s: make([]float64, len(held))}
	for i := range recs {
		rec := &recs[i]
		qi, ok := pos[rec.ID]
		if !ok || rec.Sample < 0 || rec.Sample >= k || seen[qi*k+rec.Sample] {
			return nil, fmt.Errorf("evaluation results: unexpected record %s sample %d", rec.ID, rec.Sample)
		}
		seen[qi*k+rec.Sample] = true
		if rec.Answered {
			r.EMs[qi] += rec.Scores[string(reward.MetricEM)] / float64(k)
			r.F1s[qi] += rec.Scores[string(reward.MetricF1)] / float64(k)
			r.AnsweredRate++
		}
		if rec.Stats.Searches+rec.Stats.Accesses+rec.Stats.OtherTools > 0 {
			r.SearchRate++
		}
	}
	for j, ok := range seen {
		if !ok {
			return nil, fmt.Errorf("evaluation results: question %s sample %d missing", held[j/k].ID, j%k)
		}
	}
	for i, it := range held {
		r.Questions = append(r.Questions, it.ID)
		r.EM += r.EMs[i] / float64(len(held))
		r.F1 += r.F1s[i] / float64(len(held))
	}
	n := float64(len(held) * k)
	r.SearchRate, r.AnsweredRate = r.SearchRate/n, r.AnsweredRate/n
	return r, nil
}

// RealReport is report.json of a real-model run.
type RealReport struct {
	Model            string  `json:"model"`
	HeldOutQuestions int     `json:"held_out_questions"`
	SamplesPerQ      int     `json:"samples_per_question"`
	TrainQuestions   int     `json:"train_questions"`
	EMBefore         float64 `json:"em_before_rl"`
	EMAfter          float64 `json:"em_after_rl"`
	F1Before         float64 `json:"f1_before_rl"`
	F1After          float64 `json:"f1_after_rl"`
	// The lifts' paired bootstrap 95% intervals (questions resampled).
	EMLiftCI [2]float64 `json:"em_lift_ci95"`
	F1LiftCI [2]float64 `json:"f1_lift_ci95"`
	// MeetsGoal: the F1 lift's interval lies above zero.
	MeetsGoal        bool    `json:"meets_goal"`
	AnsweredBefore   float64 `json:"answered_rate_before_rl"`
	AnsweredAfter    float64 `json:"answered_rate_after_rl"`
	SearchRateBefore float64 `json:"search_rate_before_rl"`
	SearchRateAfter  float64 `json:"search_rate_after_rl"`
	// LoRARank is the RL adapter's rank; 0 trained full weights.
	LoRARank           int              `json:"lora_rank"`
	RLSteps            int              `json:"rl_steps"`
	RLSeconds          float64          `json:"rl_seconds"`
	RLSecondsPerStep   float64          `json:"rl_seconds_per_step"`
	RewardFirst        float64          `json:"reward_first_step"`
	RewardLast         float64          `json:"reward_last_step"`
	GroupsFiltered     int64            `json:"groups_filtered"`
	Warmup             *RealWarmupStats `json:"warmup"`
	EvalSecondsBefore  float64          `json:"eval_before_seconds"`
	EvalSecondsAfter   float64          `json:"eval_after_seconds"`
	EvalSecondsPerTraj float64          `json:"eval_seconds_per_trajectory"`
	// WallSeconds is this process's wall time (a resumed run's last
	// leg); PhaseSeconds adds up the phases over every leg: warm-up, both
	// evaluations and RL (startup, indexing and checkpoint loads left out).
	WallSeconds  float64 `json:"wall_seconds"`
	PhaseSeconds float64 `json:"phase_seconds"`
}

func newRealReport(cfg *RealConfig, trainQuestions int, warm *RealWarmupStats, before, after *RealEval, sum *rl.Summary, wall time.Duration) *RealReport {
	r := &RealReport{Model: cfg.Real.ModelDir, HeldOutQuestions: len(after.Questions), SamplesPerQ: cfg.Eval.Samples,
		TrainQuestions: trainQuestions, EMBefore: before.EM, EMAfter: after.EM, F1Before: before.F1, F1After: after.F1,
		AnsweredBefore: before.AnsweredRate, AnsweredAfter: after.AnsweredRate,
		SearchRateBefore: before.SearchRate, SearchRateAfter: after.SearchRate,
		LoRARank: cfg.LoRA.Rank, RLSteps: len(sum.Records), RLSeconds: sum.Elapsed, GroupsFiltered: sum.Filtered, Warmup: warm,
		EvalSecondsBefore: before.Seconds, EvalSecondsAfter: after.Seconds, EvalSecondsPerTraj: after.SecondsPerSample,
		WallSeconds: wall.Seconds()}
	r.EMLiftCI, _ = PairedBootstrapCI(before.EMs, after.EMs, cfg.Eval.Bootstrap, uint64(cfg.Seed))
	r.F1LiftCI, _ = PairedBootstrapCI(before.F1s, after.F1s, cfg.Eval.Bootstrap, uint64(cfg.Seed)+1)
	r.MeetsGoal = r.F1LiftCI[0] > 0
	r.PhaseSeconds = before.Seconds + sum.Elapsed + after.Seconds
	if warm != nil {
		r.PhaseSeconds += warm.Seconds
	}
	if n := len(sum.Records); n > 0 {
		r.RLSecondsPerStep = sum.Elapsed / float64(n)
		r.RewardFirst, r.RewardLast = sum.Records[0].RewardMean, sum.Records[n-1].RewardMean
	}
	return r
}

func (r *RealReport) write(dir string) error {
	if err := writeJSON(filepath.Join(dir, demoReportJSON), r); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# asearcher train (real model): report\n\nModel: %s. Held out: %d questions × %d samples, never trained on.\n\n",
		r.Model, r.HeldOutQuestions, r.SamplesPerQ)
	b.WriteString("| | EM | F1 | answered | searched |\n|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| before RL (after warm-up) | %.3f | %.3f | %.3f | %.3f |\n", r.EMBefore, r.F1Before, r.AnsweredBefore, r.SearchRateBefore)
	fmt.Fprintf(&b, "| after RL | %.3f | %.3f | %.3f | %.3f |\n\n", r.EMAfter, r.F1After, r.AnsweredAfter, r.SearchRateAfter)
	fmt.Fprintf(&b, "EM lift %+.3f (paired bootstrap 95%% CI [%+.3f, %+.3f]); F1 lift %+.3f (CI [%+.3f, %+.3f]): ",
		r.EMAfter-r.EMBefore, r.EMLiftCI[0], r.EMLiftCI[1], r.F1After-r.F1Before, r.F1LiftCI[0], r.F1LiftCI[1])
	if r.MeetsGoal {
		b.WriteString("the F1 lift's CI is above zero.\n\n")
	} else {
		b.WriteString("the F1 lift's CI is NOT above zero.\n\n")
	}
	if w := r.Warmup; w != nil && w.Steps > 0 {
		fmt.Fprintf(&b, "Warm-up: %d demonstrations (%d skipped), %d tokens each on average, %d steps, loss %.3f → %.3f, %.0f s (%.1f s/step).\n",
			w.Demonstrations, w.Skipped, w.Tokens, w.Steps, w.FirstLoss, w.LastLoss, w.Seconds, w.SecondsPerStep)
	}
	training := "full weights"
	if r.LoRARank > 0 {
		training = fmt.Sprintf("a LoRA adapter of rank %d", r.LoRARank)
	}
	fmt.Fprintf(&b, "RL (%s): %d steps in %.0f s (%.1f s/step), reward %.3f → %.3f, %d zero-variance groups filtered.\n",
		training, r.RLSteps, r.RLSeconds, r.RLSecondsPerStep, r.RewardFirst, r.RewardLast, r.GroupsFiltered)
	fmt.Fprintf(&b, "Evaluation: %.0f s before, %.0f s after (%.1f s per trajectory).\nPhases: %.0f s in all; this process: %.0f s.\n\n",
		r.EvalSecondsBefore, r.EvalSecondsAfter, r.EvalSecondsPerTraj, r.PhaseSeconds, r.WallSeconds)
	b.WriteString("Curves: plots.html; per-step metrics: metrics.jsonl; sample trajectories: samples/; question split: split.json.\n")
	return atomicfile.WriteFile(filepath.Join(dir, demoReportMD), []byte(b.String()))
}
