package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestLoRAStepBench times one LoRA training step (forward_backward +
// AdamW over the adapter) on a real model against PyTorch + PEFT, side by
// side: each round runs the engine, then testdata/bench_lora_torch.py,
// and the engine/PyTorch ratio is taken per round, then the median.
// Heavy, so it runs only with ASEARCHER_BENCH_LORA_MODEL (a model
// directory) and ASEARCHER_BENCH_LORA_PYTHON (a Python with torch,
// transformers and peft); scripts/bench_lora_step.sh sets them.
// ASEARCHER_BENCH_LORA_SHAPE is "SEQS,SEQ_LEN,RANK,ROUNDS" [1,128,32,3].
func TestLoRAStepBench(t *testing.T) {
	dir, py := os.Getenv("ASEARCHER_BENCH_LORA_MODEL"), os.Getenv("ASEARCHER_BENCH_LORA_PYTHON")
	if dir == "" || py == "" {
		t.Skip("set ASEARCHER_BENCH_LORA_MODEL and ASEARCHER_BENCH_LORA_PYTHON (scripts/bench_lora_step.sh does)")
	}
	seqs, seqLen, rank, rounds := 1, 128, 32, 3
	if s := os.Getenv("ASEARCHER_BENCH_LORA_SHAPE"); s != "" {
		if _, err := fmt.Sscanf(s, "%d,%d,%d,%d", &seqs, &seqLen, &rank, &rounds); err != nil {
			t.Fatalf("ASEARCHER_BENCH_LORA_SHAPE %q: want SEQS,SEQ_LEN,RANK,ROUNDS", s)
		}
	}
	w, err := LoadWeights(dir)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	var ex []Example
	for s := 0; s < seqs; s++ {
		e := Example{}
		for i := 0; i < seqLen; i++ {
			e.Input = append(e.Input, rng.IntN(w.Config.VocabSize))
			e.Target = append(e.Target, rng.IntN(w.Config.VocabSize))
		}
		ex = append(ex, e)
	}
	ctx := context.Background()
	opt := AdamW{LR: 1e-4, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8}
	script := filepath.Join("testdata", "bench_lora_torch.py")
	var ours, theirs, ratios []float64
	var meta map[string]any
	for r := 0; r < rounds; r++ {
		l, err := NewLoRALearner(w, LoRAConfig{Rank: rank, Alpha: 32}, 1)
		if err != nil {
			t.Fatal(err)
		}
		step := func() float64 {
			start := time.Now()
			if _, err := l.ForwardBackward(ctx, ex, Loss{Fn: CrossEntropy}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.OptimStep(ctx, opt); err != nil {
				t.Fatal(err)
			}
			return time.Since(start).Seconds()
		}
		step() // warm-up: arena, page faults
		st := median([]float64{step(), step(), step()})
		tps := float64(seqs*seqLen) / st
		out, err := exec.CommandContext(ctx, py, script, "--model", dir, "--rank", strconv.Itoa(rank), "--alpha", "32",
			"--seqs", strconv.Itoa(seqs), "--seq-len", strconv.Itoa(seqLen), "--threads", "2").Output()
		if err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		if err := json.Unmarshal(out, &meta); err != nil {
			t.Fatalf("%s printed %q: %v", script, out, err)
		}
		pt := meta["tokens_per_sec"].(float64)
		ours, theirs, ratios = append(ours, tps), append(theirs, pt), append(ratios, tps/pt)
		t.Logf("round %d: engine %.1f tok/s (step %.2f s), PyTorch+PEFT %.1f tok/s (step %.2f s), ratio %.2f",
			r+1, tps, st, pt, meta["step_seconds"], tps/pt)
	}
	ad, _ := NewAdapter(w.Config, LoRAConfig{Rank: rank})
	t.Logf("model %s (%.1fM parameters), LoRA rank %d alpha 32 on 7 modules (%d trainable; PEFT %v), batch %d×%d, %d rounds; torch %v, peft %v, %v threads",
		filepath.Base(dir), float64(w.Config.ParamCount())/1e6, rank, len(ad.Flat), meta["trainable_params"], seqs, seqLen, rounds, meta["torch"], meta["peft"], meta["threads"])
	t.Logf("| LoRA training step (fwd+bwd+AdamW), tokens/s | engine %.1f | PyTorch+PEFT %.1f | engine/PyTorch %.2f× (median of per-round ratios) |",
		median(ours), median(theirs), median(ratios))
}
