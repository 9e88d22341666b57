//go:build unix

package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
)

// processCPU is the CPU time this process has used, user and system.
func processCPU(b *testing.B) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// BenchmarkRealStep is one training step (forward_backward + AdamW) on a
// real model directory, LoRA (rank 32 on all seven projections) and full
// weights, over 1 × 32 random tokens: the shape of an RL step on
// SmolLM2-135M. Heavy (a 135M-parameter model), so it runs only with
// ASEARCHER_BENCH_MODEL set to a model directory, e.g.
//
//	ASEARCHER_BENCH_MODEL=~/.cache/asearcher/models/smollm2-135m \
//	  go test ./engine -run XXX -bench RealStep -benchtime 5x
//
// ASEARCHER_BENCH_TOKENS overrides the sequence length, and
// ASEARCHER_BENCH_TRAINED=N gives loss weight to the last N tokens only
// (an RL sample: a long prompt and tool results, a short completion). Besides wall
// time it reports the process's CPU seconds per step (user + system):
// on a shared machine that moves much less with other jobs' load.
func BenchmarkRealStep(b *testing.B) {
	dir := os.Getenv("ASEARCHER_BENCH_MODEL")
	if dir == "" {
		b.Skip("set ASEARCHER_BENCH_MODEL to a model directory")
	}
	seqLen := 32
	if s := os.Getenv("ASEARCHER_BENCH_TOKENS"); s != "" {
		if _, err := fmt.Sscan(s, &seqLen); err != nil || seqLen <= 0 {
			b.Fatalf("ASEARCHER_BENCH_TOKENS %q: want a positive integer", s)
		}
	}
	w, err := LoadWeights(dir)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 3))
	e := Example{}
	for i := 0; i < seqLen; i++ {
		e.Input = append(e.Input, rng.IntN(w.Config.VocabSize))
		e.Target = append(e.Target, rng.IntN(w.Config.VocabSize))
	}
	if s := os.Getenv("ASEARCHER_BENCH_TRAINED"); s != "" {
		var n int
		if _, err := fmt.Sscan(s, &n); err != nil || n < 0 || n > seqLen {
			b.Fatalf("ASEARCHER_BENCH_TRAINED %q: want 0..%d", s, seqLen)
		}
		e.Weights = make([]float32, seqLen)
		for i := seqLen - n; i < seqLen; i++ {
			e.Weights[i] = 1
		}
	}
	ex := []Example{e}
	ctx := context.Background()
	opt := AdamW{LR: 1e-5, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8}
	run := func(b *testing.B, l *Learner) {
		step := func() {
			if _, err := l.ForwardBackward(ctx, ex, Loss{Fn: CrossEntropy}); err != nil {
				b.Fatal(err)
			}
			if _, err := l.OptimStep(ctx, opt); err != nil {
				b.Fatal(err)
			}
		}
		step() // warm-up: arena, page faults, moments
		b.ResetTimer()
		cpu0 := processCPU(b)
		for b.Loop() {
			step()
		}
		b.ReportMetric(float64(seqLen*b.N)/b.Elapsed().Seconds(), "tokens/s")
		b.ReportMetric((processCPU(b)-cpu0)/float64(b.N), "cpu-s/op")
	}
	b.Run("lora", func(b *testing.B) {
		l, err := NewLoRALearner(w, LoRAConfig{Rank: 32, Alpha: 32}, 1)
		if err != nil {
			b.Fatal(err)
		}
		run(b, l)
	})
	b.Run("full", func(b *testing.B) { run(b, NewLearner(w)) })
}
