package engine

import (
	"context"
	"math/rand/v2"
	"testing"
)

// A loss temperature T divides the logits: with an untied head, training
// logprobs at T equal those of the same model whose head is scaled by 1/T,
// and the gradient of every weight but the head is the same.
func TestLossTemperatureScalesLogits(t *testing.T) {
	ctx := context.Background()
	c := tinyConfig("qwen3", false)
	w, err := NewRandomWeights(c, 3)
	if err != nil {
		t.Fatal(err)
	}
	scaled, err := NewRandomWeights(c, 3)
	if err != nil {
		t.Fatal(err)
	}
	const temp = 0.6
	for i, v := range scaled.byName["lm_head.weight"] {
		scaled.byName["lm_head.weight"][i] = v / temp
	}
	ex := randomExamples(rand.New(rand.NewPCG(3, 4)), c, []int{6, 4})
	hot, ref := NewLearner(w), NewLearner(scaled)
	rh, err := hot.ForwardBackward(ctx, ex, Loss{Fn: PPO, Temperature: temp})
	if err != nil {
		t.Fatal(err)
	}
	rr, err := ref.ForwardBackward(ctx, ex, Loss{Fn: PPO})
	if err != nil {
		t.Fatal(err)
	}
	for i := range ex {
		if d := maxAbsDiff(rh.Logprobs[i], rr.Logprobs[i]); d > 1e-4 {
			t.Fatalf("datum %d: logprobs at T=%g differ from the scaled head's by %.3g", i, temp, d)
		}
	}
	if _, err := hot.Forward(ctx, ex, Loss{Fn: PPO, Temperature: -1}); err == nil {
		t.Fatal("a negative temperature was accepted")
	}
	for _, s := range paramLayout(c) {
		if s.name == "lm_head.weight" {
			continue
		}
		if d := maxAbsDiff(hot.grads.byName[s.name], ref.grads.byName[s.name]); d > 1e-3 {
			t.Fatalf("%s: gradient at T=%g differs from the scaled head's by %.3g", s.name, temp, d)
		}
	}
}
