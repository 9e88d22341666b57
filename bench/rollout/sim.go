package rollout

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/rl"
	"github.com/asearcher/asearcher/trainer"
)

// Workload is the shape of simulated ASearcher trajectories. Turn counts
// and per-turn lengths are log-normal, truncated, so most trajectories are
// short and a few run to MaxTurns: the long tail that makes synchronous RL
// wait for its slowest trajectory.
type Workload struct {
	TurnsMedian float64 `json:"turns_median"`
	TurnsSigma  float64 `json:"turns_sigma"`
	MaxTurns    int     `json:"max_turns"`
	// TokensMedian/TokensSigma: generated tokens per turn, capped at
	// MaxTokens.
	TokensMedian float64 `json:"tokens_median"`
	TokensSigma  float64 `json:"tokens_sigma"`
	MaxTokens    int     `json:"max_tokens"`
	// ObsTokens are tool-result tokens appended after each tool call
	// (loss-masked; prefill is not simulated).
	ObsTokens    int `json:"obs_tokens"`
	PromptTokens int `json:"prompt_tokens"`
	// ToolMedianSec/ToolSigma: simulated search/browse latency per call.
	ToolMedianSec float64 `json:"tool_median_s"`
	ToolSigma     float64 `json:"tool_sigma"`
}

func logNormal(r *rand.Rand, median, sigma float64) float64 {
	return median * math.Exp(sigma*r.NormFloat64())
}

func (w *Workload) turns(r *rand.Rand) int {
	return min(max(int(math.Round(logNormal(r, w.TurnsMedian, w.TurnsSigma))), 1), w.MaxTurns)
}

func (w *Workload) tokens(r *rand.Rand) int {
	return min(max(int(math.Round(logNormal(r, w.TokensMedian, w.TokensSigma))), 1), w.MaxTokens)
}

// question payload: the chance that a trajectory earns reward 1, so groups
// have reward variance like a real curriculum.
type question struct{ pSolve float64 }

type dataset []question

func (d dataset) Len() int { return len(d) }
func (d dataset) Question(i int) (string, any) {
	return fmt.Sprintf("sim-%05d", i), d[i]
}

func newDataset(n int, seed int64) dataset {
	r := rand.New(rand.NewPCG(uint64(seed), 11))
	d := make(dataset, n)
	for i := range d {
		d[i] = question{pSolve: 0.1 + 0.8*r.Float64()}
	}
	return d
}

// rolloutStats counts rollout activity across goroutines.
type rolloutStats struct {
	active, peakActive atomic.Int64
	turns              atomic.Int64
	tokens             atomic.Int64 // trajectory tokens appended so far
	started            atomic.Int64
}

func (s *rolloutStats) enter() {
	s.started.Add(1)
	n := s.active.Add(1)
	for {
		p := s.peakActive.Load()
		if n <= p || s.peakActive.CompareAndSwap(p, n) {
			return
		}
	}
}

// agentRollout is an ASearcher-shaped multi-turn agent: each turn sends
// the whole trajectory so far as input ids and generates a drawn number of
// tokens; between turns a tool call takes simulated time and appends its
// observation. The trajectory is one prefix-extended sequence.
func agentRollout(w Workload, clk *clock, st *rolloutStats) rl.RolloutFunc {
	return func(ctx context.Context, q rl.Question, s llm.Sampler, sample int, seed int64) (*rl.Sample, error) {
		st.enter()
		defer st.active.Add(-1)
		r := rand.New(rand.NewPCG(uint64(seed), 0x7eed))
		turns := w.turns(r)
		seq := rl.Sequence{}
		appendMasked := func(n int) {
			st.tokens.Add(int64(n))
			for range n {
				seq.Tokens = append(seq.Tokens, 3)
				seq.LossMask = append(seq.LossMask, false)
				seq.Logprobs = append(seq.Logprobs, 0)
				seq.Versions = append(seq.Versions, -1)
			}
		}
		appendMasked(w.PromptTokens)
		for t := range turns {
			n := w.tokens(r)
			resp, err := s.Sample(ctx, &llm.Request{
				ID:       fmt.Sprintf("%d/%d/%d", q.Index, sample, t),
				InputIDs: seq.Tokens[:len(seq.Tokens):len(seq.Tokens)],
				Params:   llm.Params{MaxNewTokens: n, Temperature: 1},
			})
			if err != nil {
				return nil, fmt.Errorf("turn %d: %w", t, err)
			}
			st.turns.Add(1)
			if len(resp.OutputIDs) != n || len(resp.Versions) != n {
				return nil, fmt.Errorf("turn %d: got %d tokens (%d versions), asked for %d", t, len(resp.OutputIDs), len(resp.Versions), n)
			}
			st.tokens.Add(int64(n))
			seq.Tokens = append(seq.Tokens, resp.OutputIDs...)
			seq.Logprobs = append(seq.Logprobs, resp.Logprobs...)
			seq.Versions = append(seq.Versions, resp.Versions...)
			for range n {
				seq.LossMask = append(seq.LossMask, true)
			}
			if t+1 < turns {
				if err := clk.sleep(ctx, logNormal(r, w.ToolMedianSec, w.ToolSigma)); err != nil {
					return nil, err
				}
				appendMasked(w.ObsTokens)
			}
		}
		reward := 0.0
		if p, ok := q.Payload.(question); ok && r.Float64() < p.pSolve {
			reward = 1
		}
		return &rl.Sample{Sequences: []rl.Sequence{seq}, Reward: reward, Score: reward,
			Turns: turns, ToolCalls: turns - 1}, nil
	}
}

// simTrainer implements trainer.Trainer with a fixed simulated step time,
// spent in OptimStep; Forward and ForwardBackward return well-formed
// logprobs at once.
type simTrainer struct {
	clk     *clock
	stepSec float64
	steps   atomic.Int64
}

func (t *simTrainer) out(data []trainer.Datum) *trainer.Output {
	o := &trainer.Output{Logprobs: make([][]float32, len(data))}
	for i, d := range data {
		row := make([]float32, len(d.Target))
		for j := range row {
			row[j] = -0.5
		}
		o.Logprobs[i] = row
	}
	return o
}

func (t *simTrainer) Forward(ctx context.Context, data []trainer.Datum, _ trainer.LossFn, _ trainer.LossConfig) (*trainer.Output, error) {
	return t.out(data), ctx.Err()
}

func (t *simTrainer) ForwardBackward(ctx context.Context, data []trainer.Datum, _ trainer.LossFn, _ trainer.LossConfig) (*trainer.Output, error) {
	return t.out(data), ctx.Err()
}

func (t *simTrainer) OptimStep(ctx context.Context, _ trainer.AdamParams) (map[string]float64, error) {
	if err := t.clk.sleep(ctx, t.stepSec); err != nil {
		return nil, err
	}
	t.steps.Add(1)
	return map[string]float64{}, nil
}

func (t *simTrainer) SaveWeightsForSampler(_ context.Context, name string) (string, error) {
	return "sim://" + name, nil
}

func (t *simTrainer) SaveState(_ context.Context, name string) (string, error) {
	if err := os.MkdirAll(name, 0o755); err != nil {
		return "", err
	}
	return name, atomicfile.WriteFile(filepath.Join(name, "state.json"), fmt.Appendf(nil, `{"steps":%d}`, t.steps.Load()))
}

func (t *simTrainer) LoadState(context.Context, string, bool) error { return nil }

// interruptPublisher follows SGLangPublisher's protocol on the simulated
// engine: pause (running requests return their partial output), drain the
// gate with aborts, load the weights (WeightSyncSec), resume on every path.
type interruptPublisher struct {
	eng     *engine
	clk     *clock
	loadSec float64
}

func (p *interruptPublisher) Publish(ctx context.Context, _ string, _ int, d rl.Drainer) error {
	p.eng.pause()
	defer p.eng.resume()
	if err := d.Drain(ctx, true); err != nil {
		return err
	}
	return p.clk.sleep(ctx, p.loadSec)
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
