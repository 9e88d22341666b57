package recipe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/rl"
	"github.com/asearcher/asearcher/trainer"
)

// rlPhase is the asynchronous RL phase that the synthetic demo and the
// real-model preset share: the controller over an embedded trainer whose
// sampler is its weight sink, the zero-variance watch, a progress bar and
// the resume hint when it stops.
type rlPhase struct {
	RL       rl.Config
	Dataset  rl.Dataset
	Rollout  rl.Rollout
	Sampler  llm.Sampler
	Trainer  trainer.Trainer
	Out      string
	Resume   bool
	Repair   bool
	Progress ProgressMode
	Log      *slog.Logger
	// Metric is the progress bar's text for a step.
	Metric func(*rl.StepRecord) string
	OnStep func(*rl.StepRecord)
}

func runRLPhase(ctx context.Context, p rlPhase) (*rl.Summary, error) {
	bar := newDemoProgress(p.Progress, p.Log, "RL", p.RL.Steps)
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	rollout, err := rl.WithExplore(p.Rollout, p.RL)
	if err != nil {
		return nil, err
	}
	if p.RL.FilterZeroVariance {
		// A model that never (or always) scores would otherwise leave the
		// controller waiting for a batch with reward variance forever.
		rollout = newVarianceWatch(p.RL.GroupSize, 32*p.RL.BatchGroups, stop).wrap(rollout)
	}
	ctl, err := rl.New(rl.Options{
		Config: p.RL, Dataset: p.Dataset, Rollout: rollout,
		Sampler: p.Sampler, Trainer: p.Trainer, Publisher: rl.SwapPublisher{Load: pruneSamplerWeights(filepath.Join(p.Out, demoRLDir))},
		RunDir: p.Out, Resume: p.Resume, Repair: p.Repair, Logger: p.Log,
		OnStep: func(r *rl.StepRecord) {
			bar.Set(int64(r.Step+1), p.Metric(r))
			if p.OnStep != nil {
				p.OnStep(r)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	sum, err := ctl.Run(runCtx)
	bar.Finish()
	if cause := context.Cause(runCtx); err != nil && errors.Is(cause, errNoVariance) {
		return nil, cause
	}
	if err != nil {
		return nil, fmt.Errorf("RL: %w (continue with --resume %s)", err, p.Out)
	}
	return sum, nil
}
