package engine

import (
	"fmt"
	"math"
)

// Loss selects a per-token loss with Tinker's semantics. Losses are summed
// over tokens and sequences (Tinker sums; callers normalise through weights
// or advantages), unless TokenMean divides the sum by the number of active
// tokens in the call: tokens with a non-zero weight (cross_entropy) or a
// non-zero advantage (importance_sampling, ppo).
type Loss struct {
	Fn        string  // "cross_entropy", "importance_sampling" or "ppo"
	ClipLow   float64 // ppo lower ratio bound; 0 means 0.8
	ClipHigh  float64 // ppo upper ratio bound; 0 means 1.2
	TokenMean bool
	// Temperature divides the logits before the log-softmax (0 and 1 mean
	// none), so logprobs, loss and gradient are those of the policy that
	// samples at this temperature: what decoupled PPO needs when rollouts
	// were drawn at T ≠ 1.
	Temperature float64
}

// invTemperature is 1/T, or 1 when no temperature is set.
func (l Loss) invTemperature() float32 {
	if l.Temperature == 0 || l.Temperature == 1 {
		return 1
	}
	return float32(1 / l.Temperature)
}

// Loss function names.
const (
	CrossEntropy       = "cross_entropy"
	ImportanceSampling = "importance_sampling"
	PPO                = "ppo"
)

// Example is one training sequence in Tinker's layout: Input[i] predicts
// Target[i]; per-token inputs have len(Target) entries.
type Example struct {
	Input, Target []int
	Weights       []float32 // cross_entropy
	Logprobs      []float32 // sampler logprobs (importance_sampling, ppo)
	Advantages    []float32 // importance_sampling, ppo
}

func (l Loss) bounds() (lo, hi float32) {
	lo, hi = 0.8, 1.2
	if l.ClipLow != 0 {
		lo = float32(l.ClipLow)
	}
	if l.ClipHigh != 0 {
		hi = float32(l.ClipHigh)
	}
	return lo, hi
}

// validate checks shapes and token ids before any work is done, so a bad
// batch is rejected whole with an error that names the datum.
func (l Loss) validate(c *Config, ex []Example) error {
	switch l.Fn {
	case CrossEntropy, ImportanceSampling, PPO:
	default:
		return fmt.Errorf("unknown loss %q (want cross_entropy, importance_sampling or ppo)", l.Fn)
	}
	if lo, hi := l.bounds(); l.Fn == PPO && !(lo > 0 && lo <= 1 && hi >= 1) {
		return fmt.Errorf("ppo ratio bounds must satisfy 0 < clip_low <= 1 <= clip_high, got %v and %v", lo, hi)
	}
	if t := l.Temperature; t < 0 || math.IsNaN(t) || math.IsInf(t, 0) {
		return fmt.Errorf("loss temperature %v: want a finite number > 0 (0 means 1)", t)
	}
	if len(ex) == 0 {
		return fmt.Errorf("no data")
	}
	for i, e := range ex {
		n := len(e.Input)
		if n == 0 {
			return fmt.Errorf("datum %d: empty input", i)
		}
		if len(e.Target) != n {
			return fmt.Errorf("datum %d: %d targets for %d inputs", i, len(e.Target), n)
		}
		if n > c.MaxPositionEmbeddings {
			return fmt.Errorf("datum %d: %d tokens exceed the context length %d", i, n, c.MaxPositionEmbeddings)
		}
		for _, ids := range [][]int{e.Input, e.Target} {
			for _, t := range ids {
				if t < 0 || t >= c.VocabSize {
					return fmt.Errorf("datum %d: token id %d outside the vocabulary [0, %d)", i, t, c.VocabSize)
				}
			}
		}
		check := func(name string, v []float32, required bool) error {
			if v == nil && !required {
				return nil
			}
			if len(v) != n {
				return fmt.Errorf("datum %d: %s has %d values for %d targets", i, name, len(v), n)
			}
			for _, x := range v {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					return fmt.Errorf("datum %d: %s contains %v", i, name, x)
				}
			}
			return nil
		}
		if l.Fn == CrossEntropy {
			if err := check("weights", e.Weights, false); err != nil {
				return err
			}
		} else {
			if err := check("logprobs", e.Logprobs, true); err != nil {
				return err
			}
			if err := check("advantages", e.Advantages, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// tokenTerm returns one token's loss and dLoss/dlogp given its logp, and
// whether the ppo clip was active.
func (l Loss) tokenTerm(e *Example, i int, logp float32) (loss, coef float32, clipped bool) {
	switch l.Fn {
	case CrossEntropy:
		w := float32(1)
		if e.Weights != nil {
			w = e.Weights[i]
		}
		return -w * logp, -w, false
	case ImportanceSampling:
		r := expf(logp - e.Logprobs[i])
		a := e.Advantages[i]
		return -r * a, -r * a, false
	default: // ppo
		lo, hi := l.bounds()
		r := expf(logp - e.Logprobs[i])
		a := e.Advantages[i]
		un := r * a
		cl := min(max(r, lo), hi) * a
		if cl < un {
			// The clipped branch is the minimum and is constant in r.
			return -cl, 0, true
		}
		return -un, -un, r < lo || r > hi
	}
}

// active reports whether token i counts for TokenMean.
func (l Loss) active(e *Example, i int) bool {
	if l.Fn == CrossEntropy {
		return e.Weights == nil || e.Weights[i] != 0
	}
	return e.Advantages[i] != 0
}
