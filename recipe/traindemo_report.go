package recipe

import (
	"context"
	"fmt"
	"github.com/asearcher/asearcher/eval"
	"github.com/asearcher/asearcher/rl"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/internal/progress"
	"github.com/asearcher/asearcher/llm"
)

// EvalResult is a held-out evaluation: per-question mean exact match over
// the samples, in question order, so that two results pair up.
type EvalResult struct {
	Questions []string  `json:"questions"`
	Scores    []float64 `json:"scores"`
	Accuracy  float64   `json:"accuracy"`
	// SearchRate is the fraction of trajectories that searched at least
	// once; AnsweredRate those that gave an answer.
	SearchRate   float64 `json:"search_rate"`
	AnsweredRate float64 `json:"answered_rate"`
	ToolCalls    float64 `json:"tool_calls_mean"`
	Seconds      float64 `json:"seconds"`
	// Examples are a few trajectories' calls and tool results, for reading.
	Examples []EvalExample `json:"examples"`
}

// EvalExample is one evaluated trajectory in brief.
type EvalExample struct {
	Question string   `json:"question"`
	Gold     string   `json:"gold"`
	Outputs  []string `json:"outputs"`
	Score    float64  `json:"score"`
}

// evaluate runs every held-out question cfg.Eval.Samples times with fixed
// per-(question, sample) seeds.
func evaluate(ctx context.Context, da *demoAgent, s llm.Sampler, qs []demoQuestion, cfg *DemoConfig,
	desc string, mode ProgressMode, log *slog.Logger) (*EvalResult, error) {
	if len(qs) == 0 {
		return nil, errNoQuestions
	}
	t0 := time.Now()
	k := cfg.Eval.Samples
	scores := make([]float64, len(qs)*k)
	searched := make([]bool, len(qs)*k)
	answered := make([]bool, len(qs)*k)
	tools := make([]int, len(qs)*k)
	bar := newDemoProgress(mode, log, desc, len(scores))
	var mu sync.Mutex
	var done int
	var firstErr error
	var examples []EvalExample
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range cfg.Eval.Concurrency {
		wg.Go(func() {
			for j := range jobs {
				seed := rl.TrajectorySeed(cfg.Seed^0x0e7a1, int64(j/k), j%k, 0)
				traj, score, err := da.run(ctx, s, qs[j/k], j%k, seed, cfg.Eval.Temperature)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("evaluate %s: %w", qs[j/k].q.ID, err)
				}
				if traj != nil && j%k == 0 && len(examples) < 24 {
					ex := EvalExample{Question: qs[j/k].q.Question, Gold: qs[j/k].q.Answer, Score: score}
					for _, c := range traj.Calls {
						ex.Outputs = append(ex.Outputs, c.Text)
					}
					examples = append(examples, ex)
				}
				if traj != nil {
					scores[j], searched[j], answered[j], tools[j] = score, len(traj.Tools) > 0, traj.Answered, len(traj.Tools)
				}
				done++
				bar.Set(int64(done), "")
				mu.Unlock()
			}
		})
	}
	for j := range scores {
		if ctx.Err() != nil {
			break
		}
		jobs <- j
	}
	close(jobs)
	wg.Wait()
	bar.Finish()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if firstErr != nil {
		return nil, firstErr
	}
	r := &EvalResult{Seconds: time.Since(t0).Seconds(), Examples: examples}
	for i, q := range qs {
		var m float64
		for j := range k {
			m += scores[i*k+j]
		}
		r.Questions = append(r.Questions, q.q.ID)
		r.Scores = append(r.Scores, m/float64(k))
		r.Accuracy += m / float64(k)
	}
	r.Accuracy /= float64(len(qs))
	for j := range scores {
		if searched[j] {
			r.SearchRate++
		}
		if answered[j] {
			r.AnsweredRate++
		}
		r.ToolCalls += float64(tools[j])
	}
	n := float64(len(scores))
	r.SearchRate, r.AnsweredRate, r.ToolCalls = r.SearchRate/n, r.AnsweredRate/n, r.ToolCalls/n
	return r, nil
}

// PairedBootstrapCI is the percentile bootstrap 95% interval of the mean of
// after[i] − before[i], resampling questions with replacement
// (eval.PairedBootstrap with one stratum).
func PairedBootstrapCI(before, after []float64, resamples int, seed uint64) ([2]float64, error) {
	if len(before) != len(after) || len(before) == 0 {
		return [2]float64{}, fmt.Errorf("bootstrap: %d and %d scores; want the same non-zero number", len(before), len(after))
	}
	if resamples <= 0 {
		return [2]float64{}, fmt.Errorf("bootstrap: %d resamples", resamples)
	}
	return eval.PairedBootstrap([][]float64{before}, [][]float64{after}, resamples, seed), nil
}

// DemoReport is report.json.
type DemoReport struct {
	HeldOutQuestions int     `json:"held_out_questions"`
	SamplesPerQ      int     `json:"samples_per_question"`
	Before           float64 `json:"accuracy_before_rl"`
	After            float64 `json:"accuracy_after_rl"`
	Lift             float64 `json:"lift"`
	// LiftCI is the paired bootstrap 95% interval of the lift.
	LiftCI            [2]float64   `json:"lift_ci95"`
	CIExcludesZero    bool         `json:"lift_ci_excludes_zero"`
	MeetsGoal         bool         `json:"meets_goal"` // lift ≥ 0.10 and CI above 0
	SearchRateBefore  float64      `json:"search_rate_before_rl"`
	SearchRateAfter   float64      `json:"search_rate_after_rl"`
	TrainAccFirst     float64      `json:"train_accuracy_first_step"`
	TrainAccLast      float64      `json:"train_accuracy_last_step"`
	RLSteps           int          `json:"rl_steps"`
	RLSeconds         float64      `json:"rl_seconds"`
	GroupsFiltered    int64        `json:"groups_filtered"`
	Warmup            *WarmupStats `json:"warmup"`
	WallSeconds       float64      `json:"wall_seconds"`
	EvalBeforeSeconds float64      `json:"eval_before_seconds"`
	EvalAfterSeconds  float64      `json:"eval_after_seconds"`
}

func newDemoReport(cfg *DemoConfig, warm *WarmupStats, before, after *EvalResult, sum *rl.Summary, wall time.Duration) *DemoReport {
	r := &DemoReport{HeldOutQuestions: len(after.Scores), SamplesPerQ: cfg.Eval.Samples,
		Before: before.Accuracy, After: after.Accuracy, Lift: after.Accuracy - before.Accuracy,
		SearchRateBefore: before.SearchRate, SearchRateAfter: after.SearchRate,
		RLSteps: len(sum.Records), RLSeconds: sum.Elapsed, GroupsFiltered: sum.Filtered, Warmup: warm,
		WallSeconds: wall.Seconds(), EvalBeforeSeconds: before.Seconds, EvalAfterSeconds: after.Seconds}
	r.LiftCI, _ = PairedBootstrapCI(before.Scores, after.Scores, cfg.Eval.Bootstrap, uint64(cfg.Seed))
	r.CIExcludesZero = r.LiftCI[0] > 0 || r.LiftCI[1] < 0
	r.MeetsGoal = r.Lift >= 0.10 && r.LiftCI[0] > 0
	if n := len(sum.Records); n > 0 {
		r.TrainAccFirst, r.TrainAccLast = sum.Records[0].Accuracy, sum.Records[n-1].Accuracy
	}
	return r
}

func (r *DemoReport) write(dir string) error {
	if err := writeJSON(filepath.Join(dir, demoReportJSON), r); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# asearcher train: report\n\n")
	fmt.Fprintf(&b, "Held-out worlds: %d questions × %d samples (exact match).\n\n", r.HeldOutQuestions, r.SamplesPerQ)
	fmt.Fprintf(&b, "| | accuracy | searched at least once |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| before RL (after warm-up) | %.3f | %.3f |\n", r.Before, r.SearchRateBefore)
	fmt.Fprintf(&b, "| after RL | %.3f | %.3f |\n\n", r.After, r.SearchRateAfter)
	fmt.Fprintf(&b, "Lift: **%+.3f** (paired bootstrap 95%% CI [%+.3f, %+.3f]); ", r.Lift, r.LiftCI[0], r.LiftCI[1])
	if r.MeetsGoal {
		b.WriteString("meets the goal (lift ≥ 0.10 with a CI above zero).\n\n")
	} else {
		b.WriteString("does NOT meet the goal (lift ≥ 0.10 with a CI above zero).\n\n")
	}
	fmt.Fprintf(&b, "RL: %d steps in %.0f s, training-batch accuracy %.3f → %.3f, %d zero-variance groups filtered.\n",
		r.RLSteps, r.RLSeconds, r.TrainAccFirst, r.TrainAccLast, r.GroupsFiltered)
	if w := r.Warmup; w != nil && w.Steps > 0 {
		fmt.Fprintf(&b, "Warm-up: %d demonstrations (%d immediate guesses), %d steps, loss %.3f → %.3f, %.0f s.\n",
			w.Demonstrations, w.Guesses, w.Steps, w.FirstLoss, w.LastLoss, w.Seconds)
	}
	fmt.Fprintf(&b, "Wall time: %.0f s.\n\nCurves: plots.html; per-step metrics: metrics.jsonl; sample trajectories: samples/.\n", r.WallSeconds)
	return atomicfile.WriteFile(filepath.Join(dir, demoReportMD), []byte(b.String()))
}

// ProgressMode chooses how the demo reports progress.
type ProgressMode = progress.Mode

const (
	// ProgressAuto draws a bar when stderr is a terminal and logs otherwise.
	ProgressAuto = progress.Auto
	// ProgressLog only logs.
	ProgressLog = progress.Log
	// ProgressOff is silent.
	ProgressOff = progress.Off
)

func newDemoProgress(mode ProgressMode, log *slog.Logger, desc string, total int) *progress.Bar {
	return progress.New(mode, progress.Options{Desc: desc, Unit: "steps", Total: int64(total), Logger: log})
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
