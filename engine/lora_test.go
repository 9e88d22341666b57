package engine

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/asearcher/asearcher/llm"
)

// randomizeAdapter fills every factor (B too, so that dA is not zero) with
// normal values of the given std.
func randomizeAdapter(ad *Adapter, rng *rand.Rand, std float64) {
	for i := range ad.Flat {
		ad.Flat[i] = float32(rng.NormFloat64() * std)
	}
}

func scaledTinyWeights(t *testing.T, typ string, tied bool) *Weights {
	t.Helper()
	c := tinyConfig(strings.TrimSuffix(typ, "_bias"), tied)
	if strings.HasSuffix(typ, "_bias") {
		on := true
		c.AttentionBias = &on
	}
	w, err := NewRandomWeights(c, 1)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range w.Flat {
		w.Flat[i] *= 10
	}
	for _, s := range paramLayout(c) {
		if len(s.shape) == 1 {
			for i, v := range w.byName[s.name] {
				w.byName[s.name][i] = v/10 + 0.1*float32(rng.NormFloat64())
			}
		}
	}
	return w
}

// TestLoRAGradientFD checks the adapter gradients of the whole model
// against central differences, for every architecture and loss family.
func TestLoRAGradientFD(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		tied bool
		loss Loss
		lc   LoRAConfig
	}{
		{"qwen2", false, Loss{Fn: CrossEntropy}, LoRAConfig{Rank: 4, Alpha: 8}},
		{"qwen3", true, Loss{Fn: PPO, ClipLow: 0.9, ClipHigh: 1.1}, LoRAConfig{Rank: 3, Alpha: 3}},
		{"llama", true, Loss{Fn: ImportanceSampling}, LoRAConfig{Rank: 2, Alpha: 16}},
		{"llama_bias", false, Loss{Fn: CrossEntropy, Temperature: 0.7}, LoRAConfig{Rank: 4, Targets: []string{"v_proj", "down_proj"}}},
	} {
		t.Run(tc.typ+"_"+string(tc.loss.Fn), func(t *testing.T) {
			w := scaledTinyWeights(t, tc.typ, tc.tied)
			base := slices.Clone(w.Flat)
			l, err := NewLoRALearner(w, tc.lc, 1)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(9, 10))
			randomizeAdapter(l.adapter, rng, 0.3)
			ex := randomExamples(rng, w.Config, []int{5, 9, 3})
			ctx := context.Background()
			lossAt := func() float64 {
				r, err := l.Forward(ctx, ex, tc.loss)
				if err != nil {
					t.Fatal(err)
				}
				return r.Loss
			}
			if _, err := l.ForwardBackward(ctx, ex, tc.loss); err != nil {
				t.Fatal(err)
			}
			g := slices.Clone(l.agrads.Flat)
			if l2norm(g) == 0 {
				t.Fatal("adapter gradient is zero")
			}
			checkFD(t, fdCase{"adapter", lossAt, func() []float32 { return g }, l.adapter.Flat}, 80, rng)
			if !slices.Equal(base, w.Flat) {
				t.Error("the frozen base weights changed")
			}
		})
	}
}

// TestLoRAStartsAtBase: B = 0 after PEFT's initialisation, so the adapted
// model's logprobs are the base's exactly.
func TestLoRAStartsAtBase(t *testing.T) {
	w := scaledTinyWeights(t, "qwen3", true)
	rng := rand.New(rand.NewPCG(1, 2))
	ex := randomExamples(rng, w.Config, []int{7, 4})
	ctx := context.Background()
	want, err := NewLearner(w).Forward(ctx, ex, Loss{Fn: CrossEntropy})
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLoRALearner(w, LoRAConfig{Rank: 8, Alpha: 16}, 5)
	if err != nil {
		t.Fatal(err)
	}
	for m := range loraNumModules {
		pr := l.adapter.layers[0][m]
		in, _ := loraDims(w.Config, m)
		bound := float32(1 / math.Sqrt(float64(in)))
		if slices.Max(pr.a) > bound || slices.Min(pr.a) < -bound || slices.Max(pr.a) == 0 {
			t.Errorf("%s: A is not U(±1/√in)", LoRAModules[m])
		}
		if slices.ContainsFunc(pr.b, func(v float32) bool { return v != 0 }) {
			t.Errorf("%s: B is not zero", LoRAModules[m])
		}
	}
	got, err := l.Forward(ctx, ex, Loss{Fn: CrossEntropy})
	if err != nil {
		t.Fatal(err)
	}
	for e := range ex {
		if !slices.Equal(got.Logprobs[e], want.Logprobs[e]) {
			t.Fatalf("example %d: logprobs %v, base %v", e, got.Logprobs[e], want.Logprobs[e])
		}
	}
}

// TestLoRAMergeMatches: the merged weights give the adapted model's
// logprobs, and training moves only the adapter.
func TestLoRAMergeMatches(t *testing.T) {
	for _, typ := range []string{"qwen2", "qwen3", "llama"} {
		t.Run(typ, func(t *testing.T) {
			w := scaledTinyWeights(t, typ, false)
			l, err := NewLoRALearner(w, LoRAConfig{Rank: 4, Alpha: 32}, 5)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			randomizeAdapter(l.adapter, rng, 0.2)
			ex := randomExamples(rng, w.Config, []int{6, 3})
			ctx := context.Background()
			got, err := l.Forward(ctx, ex, Loss{Fn: CrossEntropy})
			if err != nil {
				t.Fatal(err)
			}
			merged := l.Snapshot()
			want, err := NewLearner(merged).Forward(ctx, ex, Loss{Fn: CrossEntropy})
			if err != nil {
				t.Fatal(err)
			}
			for e := range ex {
				for i := range ex[e].Input {
					if d := math.Abs(float64(got.Logprobs[e][i] - want.Logprobs[e][i])); d > 1e-3*(1+math.Abs(float64(want.Logprobs[e][i]))) {
						t.Fatalf("example %d token %d: adapter %v, merged %v", e, i, got.Logprobs[e][i], want.Logprobs[e][i])
					}
				}
			}
		})
	}
}

// TestLoRATrainingLowersLoss: a few AdamW steps on one batch lower its
// loss, and the base weights are never written.
func TestLoRATrainingLowersLoss(t *testing.T) {
	w := scaledTinyWeights(t, "llama", true)
	for i := range w.Flat {
		w.Flat[i] /= 10
	}
	base := slices.Clone(w.Flat)
	l, err := NewLoRALearner(w, LoRAConfig{Rank: 4, Alpha: 8}, 1)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	ex := randomExamples(rng, w.Config, []int{8, 8})
	for i := range ex {
		for j := range ex[i].Weights {
			ex[i].Weights[j] = 1
		}
	}
	ctx := context.Background()
	var first, last float64
	for step := 0; step < 6; step++ {
		r, err := l.ForwardBackward(ctx, ex, Loss{Fn: CrossEntropy})
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = r.Loss
		}
		last = r.Loss
		m, err := l.OptimStep(ctx, AdamW{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})
		if err != nil {
			t.Fatal(err)
		}
		if m["grad_norm"] == 0 {
			t.Fatal("zero gradient norm")
		}
		if g := l2norm(l.agrads.Flat); g != 0 {
			t.Fatalf("gradients not cleared after the step: norm %v", g)
		}
	}
	if !(last < first) {
		t.Errorf("loss did not fall: %v → %v", first, last)
	}
	if !slices.Equal(base, w.Flat) {
		t.Error("the frozen base weights changed")
	}
}

func TestNewAdapterRejects(t *testing.T) {
	c := tinyConfig("qwen3", true)
	for _, lc := range []LoRAConfig{{Rank: 0}, {Rank: -1}, {Rank: 2, Alpha: math.NaN()}, {Rank: 2, Targets: []string{"lm_head"}}} {
		if _, err := NewAdapter(c, lc); err == nil {
			t.Errorf("%+v: no error", lc)
		}
	}
}

// TestSamplerMixedAdapters runs requests through two adapters and the
// base model at once (one batch mixes them) and checks each against a
// sampler over the corresponding merged weights: same greedy tokens, and
// logprobs within float rounding. The prefix cache must not hand one
// adapter's keys and values to another.
func TestSamplerMixedAdapters(t *testing.T) {
	s, w := testSampler(t, SamplerOptions{MaxBatch: 8})
	rng := rand.New(rand.NewPCG(21, 22))
	ads := make([]*Adapter, 2)
	for i := range ads {
		ad, err := NewAdapter(w.Config, LoRAConfig{Rank: 2 + 2*i, Alpha: 16})
		if err != nil {
			t.Fatal(err)
		}
		randomizeAdapter(ad, rng, 0.5)
		ads[i] = ad
	}
	prompt := []int{5, 9, 2, 14, 3, 7}
	ctx := context.Background()
	run := func(ad *Adapter) *llm.Response {
		r, err := s.SampleLoRA(ctx, &llm.Request{ID: "same-id", InputIDs: prompt, Params: llm.Params{MaxNewTokens: 12, Temperature: 0}}, ad, nil)
		if err != nil {
			t.Error(err)
			return nil
		}
		return r
	}
	got := make([]*llm.Response, 3)
	for round := 0; round < 2; round++ { // the second round meets the prefix cache
		var wg sync.WaitGroup
		for i, ad := range []*Adapter{nil, ads[0], ads[1]} {
			wg.Add(1)
			go func() { defer wg.Done(); got[i] = run(ad) }()
		}
		wg.Wait()
		for i, ad := range []*Adapter{nil, ads[0], ads[1]} {
			ref := w
			if ad != nil {
				ref = ad.merge(w)
			}
			rs := NewSampler(ref, 0, SamplerOptions{})
			want, err := rs.Sample(ctx, &llm.Request{InputIDs: prompt, Params: llm.Params{MaxNewTokens: 12, Temperature: 0}})
			rs.Close()
			if err != nil {
				t.Fatal(err)
			}
			if got[i] == nil {
				t.Fatal("no response")
			}
			if !slices.Equal(got[i].OutputIDs, want.OutputIDs) {
				t.Fatalf("round %d adapter %d: tokens %v, merged model %v", round, i, got[i].OutputIDs, want.OutputIDs)
			}
			for j := range want.Logprobs {
				if d := math.Abs(float64(got[i].Logprobs[j] - want.Logprobs[j])); d > 1e-3*(1+math.Abs(float64(want.Logprobs[j]))) {
					t.Fatalf("round %d adapter %d token %d: logprob %v, merged %v", round, i, j, got[i].Logprobs[j], want.Logprobs[j])
				}
			}
		}
	}
	if slices.Equal(got[0].OutputIDs, got[1].OutputIDs) && slices.Equal(got[1].OutputIDs, got[2].OutputIDs) {
		t.Error("the adapters did not change the output; the test proves nothing")
	}
}

// TestAdapterPEFTRoundTrip: an adapter saved as a PEFT directory loads back
// equal, names all seven modules in target_modules, and package peft's
// merge gives the engine's merged weights.
func TestAdapterPEFTRoundTrip(t *testing.T) {
	w := scaledTinyWeights(t, "qwen2", false)
	ad, err := NewAdapter(w.Config, LoRAConfig{Rank: 3, Alpha: 32})
	if err != nil {
		t.Fatal(err)
	}
	randomizeAdapter(ad, rand.New(rand.NewPCG(1, 1)), 0.1)
	dir := t.TempDir()
	if err := ad.SaveAdapter(dir, "base-dir"); err != nil {
		t.Fatal(err)
	}
	back, err := LoadAdapter(dir, w.Config)
	if err != nil {
		t.Fatal(err)
	}
	if back.Rank != 3 || back.Alpha != 32 || !slices.Equal(back.Targets, LoRAModules[:]) || !slices.Equal(back.Flat, ad.Flat) {
		t.Fatalf("round trip changed the adapter: rank %d alpha %v targets %v", back.Rank, back.Alpha, back.Targets)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range LoRAModules {
		if !strings.Contains(string(cfg), `"`+m+`"`) {
			t.Errorf("adapter_config.json does not list %s: %s", m, cfg)
		}
	}
	merged := ad.merge(w)
	viaPEFT := &Weights{Config: w.Config, Params: w.Params.Clone()}
	if err := ad.PEFT("").Merge(viaPEFT.Params, w.Config.PEFTDims()); err != nil {
		t.Fatal(err)
	}
	for i := range merged.Flat {
		if d := math.Abs(float64(merged.Flat[i] - viaPEFT.Flat[i])); d > 1e-5*(1+math.Abs(float64(merged.Flat[i]))) {
			t.Fatalf("value %d: engine merge %v, peft merge %v", i, merged.Flat[i], viaPEFT.Flat[i])
		}
	}
	// A different model shape is refused with a clear error.
	other := tinyConfig("qwen2", false)
	other.IntermediateSize = 64
	if _, err := LoadAdapter(dir, other); err == nil || !strings.Contains(err.Error(), "mlp") {
		t.Errorf("loading into another shape: %v", err)
	}
}

// TestLoRAStateResume: a LoRA learner saved after two steps and loaded
// into a fresh one continues exactly as the original does; a full-weight
// learner refuses the adapter state and vice versa.
func TestLoRAStateResume(t *testing.T) {
	w := scaledTinyWeights(t, "qwen3", true)
	for i := range w.Flat {
		w.Flat[i] /= 10
	}
	rng := rand.New(rand.NewPCG(5, 6))
	ex := randomExamples(rng, w.Config, []int{6, 5})
	ctx := context.Background()
	opt := AdamW{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
	lc := LoRAConfig{Rank: 4, Alpha: 8, BaseModel: "base"}
	step := func(l *Learner) float64 {
		r, err := l.ForwardBackward(ctx, ex, Loss{Fn: CrossEntropy})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.OptimStep(ctx, opt); err != nil {
			t.Fatal(err)
		}
		return r.Loss
	}
	a, _ := NewLoRALearner(w, lc, 1)
	step(a)
	step(a)
	dir := filepath.Join(t.TempDir(), "state")
	if err := a.SaveState(dir, 7); err != nil {
		t.Fatal(err)
	}
	b, _ := NewLoRALearner(w, lc, 99)
	v, err := b.LoadState(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if v != 7 || b.Step() != 2 {
		t.Fatalf("version %d step %d, want 7 and 2", v, b.Step())
	}
	for i := 0; i < 2; i++ {
		if la, lb := step(a), step(b); la != lb {
			t.Fatalf("resumed step %d: loss %v, original %v", i, lb, la)
		}
	}
	if !slices.Equal(a.adapter.Flat, b.adapter.Flat) {
		t.Fatal("resumed adapter differs from the original")
	}
	if _, err := NewLearner(w).LoadState(dir, true); err == nil || !strings.Contains(err.Error(), "LoRA") {
		t.Errorf("full-weight learner loading a LoRA state: %v", err)
	}
	other, _ := NewLoRALearner(w, LoRAConfig{Rank: 2}, 1)
	if _, err := other.LoadState(dir, true); err == nil || !strings.Contains(err.Error(), "rank") {
		t.Errorf("rank-2 learner loading a rank-4 state: %v", err)
	}
	if _, err := a.LoadState(t.TempDir(), true); err == nil || !strings.Contains(err.Error(), "adapter") {
		t.Errorf("loading an empty directory: %v", err)
	}
}
