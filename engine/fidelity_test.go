package engine

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// The fidelity tests compare the engine with Hugging Face transformers and
// torch autograd on the committed fixtures from testdata/make_fixtures.py.

type fidelityData struct {
	Sequences  [][]int     `json:"sequences"`
	Weights    [][]float32 `json:"weights"`
	Logprobs   [][]float32 `json:"logprobs"`
	Advantages [][]float32 `json:"advantages"`
	ClipLow    float64     `json:"clip_low"`
	ClipHigh   float64     `json:"clip_high"`
	Losses     map[string]struct {
		Loss     float64     `json:"loss"`
		Logprobs [][]float32 `json:"logprobs"`
	} `json:"losses"`
}

func loadFidelity(t *testing.T, kind string) (*Weights, *fidelityData, map[string]Tensor) {
	t.Helper()
	dir := filepath.Join("testdata", "fidelity", kind)
	w, err := LoadWeights(dir)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fd fidelityData
	if err := json.Unmarshal(raw, &fd); err != nil {
		t.Fatal(err)
	}
	buf, err := os.ReadFile(filepath.Join(dir, "expected.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	exp, err := DecodeSafetensors(buf)
	if err != nil {
		t.Fatal(err)
	}
	return w, &fd, exp
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// logitsOf runs the inference path (KV cache, packed weights) over whole
// sequences and returns every position's logits.
func logitsOf(t *testing.T, w *Weights, seqs [][]int) [][]float32 {
	t.Helper()
	m := NewModel(w, 0)
	var out [][]float32
	for _, s := range seqs {
		l, err := m.Logits(context.Background(), s[:len(s)-1])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

func TestFidelityLogits(t *testing.T) {
	for _, kind := range []string{"qwen2", "qwen3", "llama"} {
		t.Run(kind, func(t *testing.T) {
			w, fd, exp := loadFidelity(t, kind)
			for i, l := range logitsOf(t, w, fd.Sequences) {
				want := exp["logits."+strconv.Itoa(i)].Data
				if d := maxAbsDiff(l, want); d > 1e-4 {
					t.Errorf("sequence %d: max |logit − transformers| = %.3g > 1e-4", i, d)
				} else {
					t.Logf("sequence %d: max |logit − transformers| = %.3g", i, d)
				}
			}
		})
	}
}

func TestFidelityTrainingStep(t *testing.T) {
	for _, kind := range []string{"qwen2", "qwen3", "llama"} {
		for _, loss := range []string{CrossEntropy, ImportanceSampling, PPO} {
			t.Run(kind+"/"+loss, func(t *testing.T) {
				w, fd, exp := loadFidelity(t, kind)
				var ex []Example
				for i, s := range fd.Sequences {
					ex = append(ex, Example{Input: s[:len(s)-1], Target: s[1:], Weights: fd.Weights[i],
						Logprobs: fd.Logprobs[i], Advantages: fd.Advantages[i]})
				}
				l := NewLearner(w)
				res, err := l.ForwardBackward(context.Background(), ex, Loss{Fn: loss, ClipLow: fd.ClipLow, ClipHigh: fd.ClipHigh})
				if err != nil {
					t.Fatal(err)
				}
				want := fd.Losses[loss]
				if d := math.Abs(res.Loss - want.Loss); d > 1e-4*math.Max(1, math.Abs(want.Loss)) {
					t.Errorf("loss %.6f, torch %.6f", res.Loss, want.Loss)
				}
				for i := range ex {
					if d := maxAbsDiff(res.Logprobs[i], want.Logprobs[i]); d > 1e-4 {
						t.Errorf("datum %d logprobs differ from torch by %.3g", i, d)
					}
				}
				worst := 0.0
				for _, s := range paramLayout(w.Config) {
					g := exp[loss+".grad."+s.name]
					if g.Data == nil {
						t.Fatalf("fixture has no gradient for %s", s.name)
					}
					scale := 0.0
					for _, v := range g.Data {
						scale = math.Max(scale, math.Abs(float64(v)))
					}
					d := maxAbsDiff(l.grads.byName[s.name], g.Data)
					worst = math.Max(worst, d)
					if d > 1e-4*math.Max(1, scale) {
						t.Errorf("grad %s: max |Δ| = %.3g (scale %.3g)", s.name, d, scale)
					}
				}
				t.Logf("loss %.6f (torch %.6f), worst gradient |Δ| %.3g", res.Loss, want.Loss, worst)
			})
		}
	}
}
