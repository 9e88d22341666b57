package engine

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
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

// The side-by-side machinery of `bench engine`, with a stand-in for the
// PyTorch script that prints fixed numbers: per-round ratios, medians and
// the table.
func TestBenchEngineSideBySide(t *testing.T) {
	script := filepath.Join(t.TempDir(), "fake_torch.sh")
	body := `#!/bin/sh
echo '{"torch_version": "fake", "threads": 2, "peak_gflops": 10, "train_tokens_per_sec": 100, "sample1_tokens_per_sec": 50, "sample32_tokens_per_sec": 400, "kv_bytes_per_token": 512}'
`
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	o := BenchOptions{Preset: "tiny", Vocab: 64, Seqs: 1, SeqLen: 16, Prompt: 4, NewTokens: 4, Rounds: 2, Python: "/bin/sh", TorchScript: script}
	r, err := BenchEngine(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Torch == nil || r.Torch.TrainTokensPerSec != 100 || r.KVBytesPerToken != 512 {
		t.Fatalf("torch column %+v, kv %d", r.Torch, r.KVBytesPerToken)
	}
	// The stand-in reports the same numbers every round, so the median of
	// per-round ratios is the engine's median over its fixed number.
	for key, theirs := range map[string]float64{"peak": 10, "train": 100, "sample1": 50, "sample32": 400} {
		ours := map[string]float64{"peak": r.PeakGFLOPS, "train": r.TrainTokensPerSec,
			"sample1": r.Sample1TokensPerSec, "sample32": r.Sample32TokensPerSec}[key]
		if got := r.Ratios[key]; got <= 0 || math.Abs(got-ours/theirs) > 1e-9*got {
			t.Fatalf("ratio %s = %v, want %v", key, got, ours/theirs)
		}
	}
	var buf bytes.Buffer
	WriteBenchTable(&buf, r, o)
	for _, want := range []string{"| training tokens/s (fwd+bwd+AdamW) |", "100.0 tok/s", fmt.Sprintf("%.2f×", r.Ratios["sample32"]), "PyTorch fake, 2 threads"} {
		if !strings.Contains(buf.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, buf.String())
		}
	}
	o.TorchScript = filepath.Join(t.TempDir(), "missing.py")
	if _, err := BenchEngine(context.Background(), o); err == nil {
		t.Fatal("a failing PyTorch script was not reported")
	}
}

// BenchmarkOptimStep is one AdamW update (with clipping on) of the
// "small" preset's 11M parameters.
func BenchmarkOptimStep(b *testing.B) {
	w, _ := benchModel(b, 1024)
	l := NewLearner(w)
	ctx := context.Background()
	opt := AdamW{LR: 1e-4, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.01, GradClipNorm: 1}
	for b.Loop() {
		for i := range l.grads.Flat {
			l.grads.Flat[i] = 1e-3
		}
		if _, err := l.OptimStep(ctx, opt); err != nil {
			b.Fatal(err)
		}
	}
}
