package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
)

func benchModel(b *testing.B, seqLen int) (*Weights, []Example) {
	b.Helper()
	cfg, err := Preset("small", 4096)
	if err != nil {
		b.Fatal(err)
	}
	w, err := NewRandomWeights(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	var ex []Example
	for s := 0; s < 2048/seqLen; s++ {
		e := Example{}
		for i := 0; i < seqLen; i++ {
			e.Input = append(e.Input, rng.IntN(cfg.VocabSize))
			e.Target = append(e.Target, rng.IntN(cfg.VocabSize))
		}
		ex = append(ex, e)
	}
	return w, ex
}

// BenchmarkTrainStep is forward_backward + AdamW on 2048 tokens of the
// ~10M-parameter "small" preset.
func BenchmarkTrainStep(b *testing.B) {
	w, ex := benchModel(b, 1024)
	l := NewLearner(w)
	ctx := context.Background()
	for b.Loop() {
		if _, err := l.ForwardBackward(ctx, ex, Loss{Fn: CrossEntropy}); err != nil {
			b.Fatal(err)
		}
		if _, err := l.OptimStep(ctx, AdamW{LR: 1e-4, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(2048*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkSample is continuous-batching generation on the "small" preset:
// batch concurrent requests of 32 prompt tokens, 64 new tokens each.
func BenchmarkSample(b *testing.B) {
	w, _ := benchModel(b, 1024)
	for _, batch := range []int{1, 32} {
		b.Run(fmt.Sprintf("batch%d", batch), func(b *testing.B) {
			o := BenchOptions{Prompt: 32, NewTokens: 64}
			var tokens float64
			for b.Loop() {
				tps, err := benchSample(context.Background(), w, o, batch)
				if err != nil {
					b.Fatal(err)
				}
				tokens += tps
			}
			b.ReportMetric(tokens/float64(b.N), "tokens/s")
		})
	}
}
