package engine

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// LoRA against Hugging Face PEFT: testdata/fidelity/lora_KIND/adapter is a
// PEFT adapter written by the engine (ENGINE_WRITE_FIXTURES=1 go test
// -run TestLoRAFidelity ./engine) on the base model testdata/fidelity/KIND;
// testdata/lora_golden.py loads it with PEFT (checking that all seven
// target modules of every layer are wrapped) and writes PEFT's logits for
// the fidelity sequences to lora_KIND/expected.safetensors, and those of
// PEFT's merge_and_unload model as merged.N, and one cross-entropy
// backward pass's loss and adapter gradients.

// loraFixtureAdapter is the adapter the fixtures were made from: rank 4,
// alpha 8, every factor random (a trained B is not zero).
func loraFixtureAdapter(t *testing.T, c *Config, kind string) *Adapter {
	t.Helper()
	ad, err := NewAdapter(c, LoRAConfig{Rank: 4, Alpha: 8})
	if err != nil {
		t.Fatal(err)
	}
	seed := map[string]uint64{"qwen2": 1, "qwen3": 2, "llama": 3}[kind]
	randomizeAdapter(ad, rand.New(rand.NewPCG(seed, 77)), 0.2)
	return ad
}

func TestLoRAFidelity(t *testing.T) {
	for _, kind := range []string{"qwen2", "qwen3", "llama"} {
		t.Run(kind, func(t *testing.T) {
			w, fd, _ := loadFidelity(t, kind)
			dir := filepath.Join("testdata", "fidelity", "lora_"+kind)
			if os.Getenv("ENGINE_WRITE_FIXTURES") == "1" {
				ad := loraFixtureAdapter(t, w.Config, kind)
				if err := ad.SaveAdapter(filepath.Join(dir, "adapter"), "../"+kind); err != nil {
					t.Fatal(err)
				}
				t.Logf("wrote %s/adapter; now run testdata/lora_golden.py", dir)
			}
			ad, err := LoadAdapter(filepath.Join(dir, "adapter"), w.Config)
			if err != nil {
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
			var wrapped struct {
				Modules []string `json:"modules"`
			}
			raw, err := os.ReadFile(filepath.Join(dir, "modules.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &wrapped); err != nil {
				t.Fatal(err)
			}
			if want := 7 * w.Config.NumHiddenLayers; len(wrapped.Modules) != want {
				t.Errorf("PEFT wrapped %d modules, want %d (seven per layer): %v", len(wrapped.Modules), want, wrapped.Modules)
			}
			// One cross-entropy step: the loss and every adapter gradient
			// against PEFT's autograd.
			l, err := NewLoRALearner(w, LoRAConfig{Rank: ad.Rank, Alpha: ad.Alpha}, 0)
			if err != nil {
				t.Fatal(err)
			}
			copy(l.adapter.Flat, ad.Flat)
			var ex []Example
			for _, s := range fd.Sequences {
				ones := make([]float32, len(s)-1)
				for i := range ones {
					ones[i] = 1
				}
				ex = append(ex, Example{Input: s[:len(s)-1], Target: s[1:], Weights: ones})
			}
			res, err := l.ForwardBackward(context.Background(), ex, Loss{Fn: CrossEntropy})
			if err != nil {
				t.Fatal(err)
			}
			if want := float64(exp["ce.loss"].Data[0]); math.Abs(res.Loss-want) > 1e-4*math.Max(1, math.Abs(want)) {
				t.Errorf("cross-entropy %.6f, PEFT %.6f", res.Loss, want)
			}
			names, _, grads := l.agrads.Tensors()
			worst := 0.0
			for i, n := range names {
				g := exp["grad.base_model.model."+n].Data
				if g == nil {
					t.Fatalf("fixture has no gradient for %s", n)
				}
				scale := 0.0
				for _, v := range g {
					scale = math.Max(scale, math.Abs(float64(v)))
				}
				d := maxAbsDiff(grads[i], g)
				worst = math.Max(worst, d/math.Max(1, scale))
				if d > 1e-4*math.Max(1, scale) {
					t.Errorf("grad %s: max |Δ| %.3g (scale %.3g)", n, d, scale)
				}
			}
			t.Logf("loss %.6f, worst adapter gradient |Δ|/max(1,scale) %.3g", res.Loss, worst)

			m := NewModel(w, 0)
			merged := NewModel(ad.merge(w), 0)
			for i, s := range fd.Sequences {
				want := exp["peft."+strconv.Itoa(i)].Data
				got, err := m.LogitsLoRA(context.Background(), s[:len(s)-1], ad)
				if err != nil {
					t.Fatal(err)
				}
				scale := 0.0
				for _, v := range want {
					scale = math.Max(scale, math.Abs(float64(v)))
				}
				if d := maxAbsDiff(got, want); d > 1e-4*math.Max(1, scale) {
					t.Errorf("sequence %d: engine with adapter vs PEFT: max |Δ| %.3g (logit scale %.3g)", i, d, scale)
				} else {
					t.Logf("sequence %d: engine with adapter vs PEFT: max |Δ| %.3g (logit scale %.3g)", i, d, scale)
				}
				gm, err := merged.Logits(context.Background(), s[:len(s)-1])
				if err != nil {
					t.Fatal(err)
				}
				if d := maxAbsDiff(gm, exp["merged."+strconv.Itoa(i)].Data); d > 1e-4*math.Max(1, scale) {
					t.Errorf("sequence %d: engine merge vs PEFT merge_and_unload: max |Δ| %.3g", i, d)
				}
				base := exp["base."+strconv.Itoa(i)].Data
				if d := maxAbsDiff(base, want); d < 1e-2 {
					t.Errorf("sequence %d: the adapter moves the logits by only %.3g; the fixture proves nothing", i, d)
				}
			}
		})
	}
}
