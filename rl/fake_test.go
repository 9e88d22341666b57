package rl

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/trainer"
)

// unigramTrainer is a tiny policy that ignores context: logp(t) =
// log_softmax(θ)[t]. It implements trainer.Trainer with Tinker's loss
// semantics and plain SGD, so controller tests can check that RL really
// moves probability mass the right way.
type unigramTrainer struct {
	mu      sync.Mutex
	theta   []float64
	grad    []float64
	saved   map[string][]float64
	calls   []string
	fbData  [][]trainer.Datum
	failFB  error
	history [][]int64 // per optim step: not used by the model, for tests
	steps   int       // optimiser steps taken, saved with the state
}

func newUnigramTrainer(vocab int) *unigramTrainer {
	return &unigramTrainer{theta: make([]float64, vocab), grad: make([]float64, vocab), saved: map[string][]float64{}}
}

func logSoftmax(theta []float64) []float64 {
	m := math.Inf(-1)
	for _, v := range theta {
		m = math.Max(m, v)
	}
	var z float64
	for _, v := range theta {
		z += math.Exp(v - m)
	}
	lz := m + math.Log(z)
	out := make([]float64, len(theta))
	for i, v := range theta {
		out[i] = v - lz
	}
	return out
}

func (u *unigramTrainer) forward(data []trainer.Datum, loss trainer.LossFn, cfg trainer.LossConfig, backward bool) (*trainer.Output, error) {
	lp := logSoftmax(u.theta)
	out := &trainer.Output{Logprobs: make([][]float32, len(data)), LossReported: true}
	lo, hi := cfg.ClipLow, cfg.ClipHigh
	if lo == 0 {
		lo = 0.8
	}
	if hi == 0 {
		hi = 1.2
	}
	for d, dt := range data {
		if len(dt.Input) != len(dt.Target) {
			return nil, fmt.Errorf("datum %d: input %d, target %d", d, len(dt.Input), len(dt.Target))
		}
		row := make([]float32, len(dt.Target))
		for i, tok := range dt.Target {
			if tok < 0 || tok >= len(u.theta) {
				return nil, fmt.Errorf("token %d out of vocabulary", tok)
			}
			l := lp[tok]
			row[i] = float32(l)
			var dLdl float64 // dLoss/dlogp
			switch loss {
			case trainer.CrossEntropy:
				w := 0.0
				if dt.Weights != nil {
					w = float64(dt.Weights[i])
				}
				out.Loss -= w * l
				dLdl = -w
			case trainer.ImportanceSampling:
				r := math.Exp(l - float64(dt.Logprobs[i]))
				a := float64(dt.Advantages[i])
				out.Loss -= r * a
				dLdl = -r * a
			case trainer.PPO:
				r := math.Exp(l - float64(dt.Logprobs[i]))
				a := float64(dt.Advantages[i])
				rc := math.Max(lo, math.Min(hi, r))
				un, cl := r*a, rc*a
				out.Loss -= math.Min(un, cl)
				if un <= cl {
					dLdl = -r * a
				}
			default:
				return nil, fmt.Errorf("unknown loss %q", loss)
			}
			if backward && dLdl != 0 {
				for k := range u.grad {
					ind := 0.0
					if k == tok {
						ind = 1
					}
					u.grad[k] += dLdl * (ind - math.Exp(lp[k]))
				}
			}
		}
		out.Logprobs[d] = row
	}
	return out, nil
}

func (u *unigramTrainer) Forward(_ context.Context, data []trainer.Datum, loss trainer.LossFn, cfg trainer.LossConfig) (*trainer.Output, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls = append(u.calls, "forward")
	return u.forward(data, loss, cfg, false)
}

func (u *unigramTrainer) ForwardBackward(_ context.Context, data []trainer.Datum, loss trainer.LossFn, cfg trainer.LossConfig) (*trainer.Output, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls = append(u.calls, "forward_backward:"+string(loss))
	if u.failFB != nil {
		return nil, u.failFB
	}
	cp := make([]trainer.Datum, len(data))
	copy(cp, data)
	u.fbData = append(u.fbData, cp)
	return u.forward(data, loss, cfg, true)
}

func (u *unigramTrainer) OptimStep(_ context.Context, p trainer.AdamParams) (map[string]float64, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls = append(u.calls, "optim_step")
	u.steps++
	var norm float64
	for _, g := range u.grad {
		norm += g * g
	}
	norm = math.Sqrt(norm)
	scale := 1.0
	if p.GradClipNorm > 0 && norm > p.GradClipNorm {
		scale = p.GradClipNorm / norm
	}
	for k := range u.theta {
		u.theta[k] -= p.LearningRate * scale * u.grad[k]
		u.grad[k] = 0
	}
	return map[string]float64{"grad_norm": norm}, nil
}

func (u *unigramTrainer) SaveWeightsForSampler(_ context.Context, name string) (string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.saved[name] = append([]float64(nil), u.theta...)
	return "mem://" + name, nil
}

func (u *unigramTrainer) weights(path string) ([]float64, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	w, ok := u.saved[path[len("mem://"):]]
	return w, ok
}

type unigramState struct {
	Theta   []float64 `json:"theta"`
	History [][]int64 `json:"history"`
	Steps   int       `json:"steps"`
}

func (u *unigramTrainer) SaveState(_ context.Context, name string) (string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	raw, _ := json.Marshal(unigramState{Theta: u.theta, History: u.history, Steps: u.steps})
	if err := os.MkdirAll(name, 0o755); err != nil {
		return "", err
	}
	return name, os.WriteFile(filepath.Join(name, "state.json"), raw, 0o644)
}

func (u *unigramTrainer) LoadState(_ context.Context, path string, _ bool) error {
	raw, err := os.ReadFile(filepath.Join(path, "state.json"))
	if err != nil {
		return err
	}
	var st unigramState
	if err := json.Unmarshal(raw, &st); err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.theta, u.history, u.steps = st.Theta, st.History, st.Steps
	return nil
}

func (u *unigramTrainer) prob(tok int) float64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return math.Exp(logSoftmax(u.theta)[tok])
}

// unigramSampler samples from published unigram weights; it never reports
// versions, so the gate's pinned version labels its tokens.
type unigramSampler struct {
	mu      sync.Mutex
	theta   []float64
	version int
	delay   time.Duration // per call, to make runs take time
}

func (s *unigramSampler) load(theta []float64, v int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.theta, s.version = append([]float64(nil), theta...), v
}

func (s *unigramSampler) Sample(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	lp := logSoftmax(s.theta)
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var seed uint64
	if req.Params.Seed != nil {
		seed = uint64(*req.Params.Seed)
	}
	r := rand.New(rand.NewPCG(seed, uint64(len(req.InputIDs))))
	resp := &llm.Response{Finish: llm.FinishLength}
	for range req.Params.MaxNewTokens {
		x := r.Float64()
		tok := len(lp) - 1
		for k, l := range lp {
			x -= math.Exp(l)
			if x < 0 {
				tok = k
				break
			}
		}
		resp.OutputIDs = append(resp.OutputIDs, tok)
		resp.Logprobs = append(resp.Logprobs, float32(lp[tok]))
	}
	return resp, nil
}

// banditRollout asks for n tokens; the reward is the fraction equal to
// target. The sequence is [0] + output.
func banditRollout(n, target int) RolloutFunc {
	return func(ctx context.Context, q Question, s llm.Sampler, sample int, seed int64) (*Sample, error) {
		resp, err := s.Sample(ctx, &llm.Request{ID: fmt.Sprintf("%s-%d", q.ID, sample), InputIDs: []int{0},
			Params: llm.Params{MaxNewTokens: n, Temperature: 1, Seed: &seed}})
		if err != nil {
			return nil, err
		}
		seq := Sequence{Tokens: []int{0}, LossMask: []bool{false}, Logprobs: []float32{0}, Versions: []int{-1}}
		hits := 0
		for i, tok := range resp.OutputIDs {
			seq.Tokens = append(seq.Tokens, tok)
			seq.LossMask = append(seq.LossMask, true)
			seq.Logprobs = append(seq.Logprobs, resp.Logprobs[i])
			seq.Versions = append(seq.Versions, resp.Versions[i])
			if tok == target {
				hits++
			}
		}
		rew := float64(hits) / float64(n)
		score := 0.0
		if rew >= 0.5 {
			score = 1
		}
		return &Sample{Sequences: []Sequence{seq}, Reward: rew, Score: score, Turns: 1}, nil
	}
}
