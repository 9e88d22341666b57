package embedded

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/trainer"
)

// WeightsSink receives each published weight version; *engine.Sampler is one.
type WeightsSink interface {
	SetWeights(w *engine.Weights, version int)
}

// AdapterSink is a WeightsSink that takes a LoRA trainer's adapters as
// they are (to sample through them over the base model) instead of
// merged weights.
type AdapterSink interface {
	WeightsSink
	SetAdapter(ad *engine.Adapter, version int)
}

// TrainerOptions configure an Trainer trainer.
type TrainerOptions struct {
	// Dir receives sampler weights (Dir/sampler_weights/NAME) and training
	// state (Dir/state/NAME). Empty keeps sampler weights in memory only
	// and makes SaveState an error.
	Dir string
	// SourceDir is the model directory training started from; its
	// tokenizer files are copied into every directory written, so each is
	// a complete model directory.
	SourceDir string
	// Sinks get every version SaveWeightsForSampler publishes.
	Sinks []WeightsSink
}

// Trainer implements Trainer over the in-process engine.
type Trainer struct {
	opts    TrainerOptions
	learner *engine.Learner
	mu      sync.Mutex
	version int
	// restored is set by LoadState until the weights change: the next
	// SaveWeightsForSampler publishes them under the restored version
	// instead of a new one, so a resumed run's samplers are stamped with
	// the version its controller resumes at.
	restored bool
}

var _ trainer.Trainer = (*Trainer)(nil)

// NewTrainer starts training from w. Weight version 0 is w itself; each
// SaveWeightsForSampler publishes the next version.
func NewTrainer(w *engine.Weights, opts TrainerOptions) *Trainer {
	return &Trainer{opts: opts, learner: engine.NewLearner(w)}
}

// NewLoRATrainer trains a LoRA adapter of shape lc over the frozen w
// (initialised as PEFT does, from seed). Sampler weights and states are
// PEFT adapter directories; sinks that are AdapterSinks get the adapter,
// others the merged weights.
func NewLoRATrainer(w *engine.Weights, lc engine.LoRAConfig, seed uint64, opts TrainerOptions) (*Trainer, error) {
	if lc.BaseModel == "" {
		lc.BaseModel = opts.SourceDir
	}
	l, err := engine.NewLoRALearner(w, lc, seed)
	if err != nil {
		return nil, err
	}
	return &Trainer{opts: opts, learner: l}, nil
}

// Learner exposes the engine learner (for benchmarks and tools).
func (e *Trainer) Learner() *engine.Learner { return e.learner }

// AddSink registers another receiver of published weights.
func (e *Trainer) AddSink(s WeightsSink) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.opts.Sinks = append(e.opts.Sinks, s)
}

// Version is the last published weight version.
func (e *Trainer) Version() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.version
}

func toExamples(data []trainer.Datum) []engine.Example {
	ex := make([]engine.Example, len(data))
	for i, d := range data {
		ex[i] = engine.Example{Input: d.Input, Target: d.Target, Weights: d.Weights, Logprobs: d.Logprobs, Advantages: d.Advantages}
	}
	return ex
}

func toLoss(fn trainer.LossFn, cfg trainer.LossConfig) engine.Loss {
	return engine.Loss{Fn: string(fn), ClipLow: cfg.ClipLow, ClipHigh: cfg.ClipHigh, TokenMean: cfg.TokenMean, Temperature: cfg.Temperature}
}

func toOutput(r *engine.StepResult) *trainer.Output {
	return &trainer.Output{Logprobs: r.Logprobs, Loss: r.Loss, LossReported: true, Metrics: r.Metrics}
}

// Forward computes logprobs and the loss without touching gradients.
func (e *Trainer) Forward(ctx context.Context, data []trainer.Datum, loss trainer.LossFn, cfg trainer.LossConfig) (*trainer.Output, error) {
	r, err := e.learner.Forward(ctx, toExamples(data), toLoss(loss, cfg))
	if err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	return toOutput(r), nil
}

// ForwardBackward accumulates the loss's gradient until OptimStep.
func (e *Trainer) ForwardBackward(ctx context.Context, data []trainer.Datum, loss trainer.LossFn, cfg trainer.LossConfig) (*trainer.Output, error) {
	r, err := e.learner.ForwardBackward(ctx, toExamples(data), toLoss(loss, cfg))
	if err != nil {
		return nil, fmt.Errorf("forward_backward: %w", err)
	}
	return toOutput(r), nil
}

// OptimStep applies AdamW with the accumulated gradients.
func (e *Trainer) OptimStep(ctx context.Context, p trainer.AdamParams) (map[string]float64, error) {
	m, err := e.learner.OptimStep(ctx, engine.AdamW{LR: p.LearningRate, Beta1: p.Beta1, Beta2: p.Beta2,
		Eps: p.Eps, WeightDecay: p.WeightDecay, GradClipNorm: p.GradClipNorm})
	if err != nil {
		return nil, fmt.Errorf("optim_step: %w", err)
	}
	e.mu.Lock()
	e.restored = false // new weights get a new version
	e.mu.Unlock()
	return m, nil
}

var safeName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

func checkName(name string) error {
	if !safeName.MatchString(name) || name == "." || name == ".." {
		return fmt.Errorf("checkpoint name %q: use letters, digits, '.', '_' and '-' only", name)
	}
	return nil
}

// SaveWeightsForSampler snapshots the weights as the next version, hands
// them to every sink (samplers switch between decoding steps), and, with a
// Dir, also writes them as a model directory whose path it returns.
func (e *Trainer) SaveWeightsForSampler(ctx context.Context, name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if _, ok := e.learner.LoRA(); ok {
		return e.saveAdapterForSampler(name)
	}
	w := e.learner.Snapshot()
	v, sinks := e.nextVersion()
	path := "embedded://" + name
	if e.opts.Dir != "" {
		path = filepath.Join(e.opts.Dir, "sampler_weights", name)
		if err := engine.SaveWeights(path, w, engine.F32); err != nil {
			return "", fmt.Errorf("save weights for sampler: %w", err)
		}
		if err := copyTokenizerFiles(e.opts.SourceDir, path); err != nil {
			return "", err
		}
	}
	for _, s := range sinks {
		s.SetWeights(w, v)
	}
	return path, nil
}

// SaveModel writes the current weights, with a LoRA trainer's adapter
// merged in, as a complete model directory at dir (config, float32
// safetensors and the source's tokenizer files). It publishes nothing: a
// LoRA warm-up ends in a model that full-weight or LoRA training starts
// from like any imported one.
func (e *Trainer) SaveModel(ctx context.Context, dir string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := engine.SaveWeights(dir, e.learner.Snapshot(), engine.F32); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	return copyTokenizerFiles(e.opts.SourceDir, dir)
}

// nextVersion numbers the weights about to be published: one past the last,
// except right after LoadState, which restored the version they carry.
func (e *Trainer) nextVersion() (int, []WeightsSink) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.restored {
		e.version++
	}
	e.restored = false
	return e.version, append([]WeightsSink(nil), e.opts.Sinks...)
}

// saveAdapterForSampler is SaveWeightsForSampler for a LoRA trainer: the
// adapter is written as a PEFT directory and published as such.
func (e *Trainer) saveAdapterForSampler(name string) (string, error) {
	ad := e.learner.Adapter()
	v, sinks := e.nextVersion()
	path := "embedded://" + name
	if e.opts.Dir != "" {
		path = filepath.Join(e.opts.Dir, "sampler_weights", name)
		if err := ad.SaveAdapter(path, e.opts.SourceDir); err != nil {
			return "", fmt.Errorf("save weights for sampler: %w", err)
		}
	}
	var merged *engine.Weights
	for _, s := range sinks {
		if as, ok := s.(AdapterSink); ok {
			as.SetAdapter(ad, v)
			continue
		}
		if merged == nil {
			merged = e.learner.Snapshot()
		}
		s.SetWeights(merged, v)
	}
	return path, nil
}

// SaveState writes weights and optimiser state atomically under
// Dir/state/NAME and returns that path. A name that is a directory path
// (the RL controller hands one inside its checkpoint, so the state is
// renamed and pruned with it) is written there as is.
func (e *Trainer) SaveState(ctx context.Context, name string) (string, error) {
	path := name
	if !strings.ContainsAny(name, `/\`) {
		if err := checkName(name); err != nil {
			return "", err
		}
		if e.opts.Dir == "" {
			return "", fmt.Errorf("save state: the embedded trainer has no output directory")
		}
		path = filepath.Join(e.opts.Dir, "state", name)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := e.learner.SaveState(path, e.Version()); err != nil {
		return "", err
	}
	if _, ok := e.learner.LoRA(); ok {
		return path, nil // an adapter state, not a model directory
	}
	if err := copyTokenizerFiles(e.opts.SourceDir, path); err != nil {
		return "", err
	}
	return path, nil
}

// LoadState restores weights, and with withOptimizer the AdamW state, from
// a SaveState directory (or weights from any model directory). The weight
// version is restored too: the next SaveWeightsForSampler, unless an
// OptimStep comes first, publishes the restored weights under the saved
// version, and later ones continue from it.
func (e *Trainer) LoadState(ctx context.Context, path string, withOptimizer bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	v, err := e.learner.LoadState(path, withOptimizer)
	if err != nil {
		return fmt.Errorf("load state: %w", err)
	}
	e.mu.Lock()
	e.version = max(e.version, v)
	e.restored = true
	e.mu.Unlock()
	return nil
}

// tokenizerFiles are copied next to every weight directory written.
var tokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"}

func copyTokenizerFiles(src, dst string) error {
	if src == "" {
		return nil
	}
	for _, f := range tokenizerFiles {
		in, err := os.Open(filepath.Join(src, f))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("copy %s: %w", f, err)
		}
		data, err := io.ReadAll(in)
		in.Close()
		if err != nil {
			return fmt.Errorf("copy %s: %w", f, err)
		}
		if err := atomicfile.WriteFile(filepath.Join(dst, f), data); err != nil {
			return fmt.Errorf("copy %s: %w", f, err)
		}
	}
	return nil
}
