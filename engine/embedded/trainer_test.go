package embedded

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/trainer"
)

func tinyWeights(t *testing.T, seed uint64) *engine.Weights {
	t.Helper()
	c, err := engine.Preset("tiny", 64)
	if err != nil {
		t.Fatal(err)
	}
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.HeadDim = 32, 64, 2, 8
	c.MaxPositionEmbeddings = 256
	w, err := engine.NewRandomWeights(c, seed)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func datum(seq []int, w float32) trainer.Datum {
	d := trainer.Datum{Input: seq[:len(seq)-1], Target: seq[1:]}
	for range d.Target {
		d.Weights = append(d.Weights, w)
	}
	return d
}

var adam = trainer.AdamParams{LearningRate: 1e-2, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.01, GradClipNorm: 1}

func TestEmbeddedCrossEntropyLearns(t *testing.T) {
	ctx := context.Background()
	tr := NewTrainer(tinyWeights(t, 1), TrainerOptions{})
	data := []trainer.Datum{datum([]int{1, 5, 9, 13, 17, 21, 25, 29, 33}, 1), datum([]int{2, 4, 8, 16, 32, 63}, 1)}
	first, last := 0.0, 0.0
	for step := 0; step < 40; step++ {
		out, err := tr.ForwardBackward(ctx, data, trainer.CrossEntropy, trainer.LossConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = out.Loss
		}
		last = out.Loss
		if _, err := tr.OptimStep(ctx, adam); err != nil {
			t.Fatal(err)
		}
	}
	if !(last < first/4) {
		t.Fatalf("loss %.3f -> %.3f: did not learn", first, last)
	}
}

// Gradients accumulate across calls: two half batches then one step equal
// one full batch then one step.
func TestEmbeddedGradientAccumulation(t *testing.T) {
	ctx := context.Background()
	a, b := datum([]int{1, 2, 3, 4, 5}, 1), datum([]int{9, 8, 7, 6, 5, 4, 3}, 0.5)
	split := NewTrainer(tinyWeights(t, 2), TrainerOptions{})
	whole := NewTrainer(tinyWeights(t, 2), TrainerOptions{})
	for _, d := range []trainer.Datum{a, b} {
		if _, err := split.ForwardBackward(ctx, []trainer.Datum{d}, trainer.CrossEntropy, trainer.LossConfig{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := whole.ForwardBackward(ctx, []trainer.Datum{a, b}, trainer.CrossEntropy, trainer.LossConfig{}); err != nil {
		t.Fatal(err)
	}
	ms, _ := split.OptimStep(ctx, adam)
	mw, _ := whole.OptimStep(ctx, adam)
	if math.Abs(ms["grad_norm"]-mw["grad_norm"]) > 1e-5*mw["grad_norm"] {
		t.Fatalf("grad norms %v vs %v", ms["grad_norm"], mw["grad_norm"])
	}
	ws, ww := split.Learner().Snapshot(), whole.Learner().Snapshot()
	for i := range ws.Flat {
		if math.Abs(float64(ws.Flat[i]-ww.Flat[i])) > 1e-6 {
			t.Fatalf("weights differ at %d: %v vs %v", i, ws.Flat[i], ww.Flat[i])
		}
	}
}

func TestEmbeddedBadInput(t *testing.T) {
	ctx := context.Background()
	tr := NewTrainer(tinyWeights(t, 3), TrainerOptions{})
	good := datum([]int{1, 2, 3}, 1)
	cases := map[string]struct {
		data []trainer.Datum
		loss trainer.LossFn
		cfg  trainer.LossConfig
	}{
		"unknown loss":   {[]trainer.Datum{good}, "mse", trainer.LossConfig{}},
		"no data":        {nil, trainer.CrossEntropy, trainer.LossConfig{}},
		"length":         {[]trainer.Datum{{Input: []int{1, 2}, Target: []int{2}}}, trainer.CrossEntropy, trainer.LossConfig{}},
		"token range":    {[]trainer.Datum{{Input: []int{1, 99}, Target: []int{2, 3}}}, trainer.CrossEntropy, trainer.LossConfig{}},
		"no advantages":  {[]trainer.Datum{good}, trainer.PPO, trainer.LossConfig{}},
		"bad clip":       {[]trainer.Datum{{Input: []int{1}, Target: []int{2}, Logprobs: []float32{-1}, Advantages: []float32{1}}}, trainer.PPO, trainer.LossConfig{ClipLow: 1.5}},
		"weights length": {[]trainer.Datum{{Input: []int{1}, Target: []int{2}, Weights: []float32{1, 1}}}, trainer.CrossEntropy, trainer.LossConfig{}},
		"too long":       {[]trainer.Datum{{Input: make([]int, 300), Target: make([]int, 300)}}, trainer.CrossEntropy, trainer.LossConfig{}},
	}
	for name, c := range cases {
		if _, err := tr.ForwardBackward(ctx, c.data, c.loss, c.cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := tr.OptimStep(ctx, trainer.AdamParams{LearningRate: 1, Beta1: 1.5}); err == nil {
		t.Error("beta1 1.5 accepted")
	}
	if _, err := tr.SaveWeightsForSampler(ctx, "../escape"); err == nil {
		t.Error("path-like name accepted")
	}
	if _, err := tr.SaveState(ctx, "x"); err == nil {
		t.Error("SaveState without a directory accepted")
	}
}

func TestEmbeddedStateRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := []trainer.Datum{datum([]int{3, 1, 4, 1, 5, 9, 2, 6}, 1)}
	step := func(tr *Trainer) {
		if _, err := tr.ForwardBackward(ctx, data, trainer.CrossEntropy, trainer.LossConfig{}); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.OptimStep(ctx, adam); err != nil {
			t.Fatal(err)
		}
	}
	a := NewTrainer(tinyWeights(t, 4), TrainerOptions{Dir: dir})
	step(a)
	step(a)
	if _, err := a.SaveWeightsForSampler(ctx, "v1"); err != nil {
		t.Fatal(err)
	}
	path, err := a.SaveState(ctx, "ckpt")
	if err != nil {
		t.Fatal(err)
	}
	// Saving again over the same name replaces it atomically.
	if _, err := a.SaveState(ctx, "ckpt"); err != nil {
		t.Fatal(err)
	}
	step(a)
	want := a.Learner().Snapshot()

	b := NewTrainer(tinyWeights(t, 5), TrainerOptions{Dir: dir})
	if err := b.LoadState(ctx, path, true); err != nil {
		t.Fatal(err)
	}
	if b.Version() != 1 {
		t.Fatalf("restored version %d, want 1", b.Version())
	}
	step(b)
	got := b.Learner().Snapshot()
	for i := range want.Flat {
		if want.Flat[i] != got.Flat[i] {
			t.Fatalf("resumed training differs at %d: %v vs %v", i, got.Flat[i], want.Flat[i])
		}
	}
	// Without the optimiser state the same step lands elsewhere.
	c := NewTrainer(tinyWeights(t, 5), TrainerOptions{Dir: dir})
	if err := c.LoadState(ctx, path, false); err != nil {
		t.Fatal(err)
	}
	step(c)
	same := true
	for i, v := range c.Learner().Snapshot().Flat {
		same = same && v == want.Flat[i]
	}
	if same {
		t.Fatal("loading without the optimizer gave the same update as with it")
	}
	if err := b.LoadState(ctx, filepath.Join(dir, "missing"), true); err == nil {
		t.Fatal("loading a missing directory succeeded")
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "state"))
	if len(entries) != 1 {
		t.Fatalf("state dir holds %d entries, want just the checkpoint", len(entries))
	}
}

// The sampler-and-trainer loop: sample with the sampler, score, train with
// ppo on the sampler's own logprobs, publish, repeat. The rewarded token
// becomes more frequent.
func TestEmbeddedPPOLoopRaisesReward(t *testing.T) {
	ctx := context.Background()
	w := tinyWeights(t, 6)
	sampler := engine.NewSampler(w, 0, engine.SamplerOptions{})
	defer sampler.Close()
	dir := t.TempDir()
	tr := NewTrainer(w, TrainerOptions{Dir: dir, Sinks: []WeightsSink{sampler}})
	const target = 7
	prompt := []int{1, 2, 3}
	rate := func(outs []*llm.Response) float64 {
		n, hit := 0, 0
		for _, o := range outs {
			for _, id := range o.OutputIDs {
				n++
				if id == target {
					hit++
				}
			}
		}
		return float64(hit) / float64(n)
	}
	var firstRate, lastRate float64
	for it := 0; it < 12; it++ {
		outs := make([]*llm.Response, 16)
		for i := range outs {
			s := int64(it*100 + i)
			o, err := sampler.Sample(ctx, &llm.Request{InputIDs: prompt, Params: llm.Params{Temperature: 1, MaxNewTokens: 8, Seed: &s}})
			if err != nil {
				t.Fatal(err)
			}
			if o.Versions[0] != it {
				t.Fatalf("iteration %d sampled with version %d", it, o.Versions[0])
			}
			outs[i] = o
		}
		r := rate(outs)
		if it == 0 {
			firstRate = r
		}
		lastRate = r
		var data []trainer.Datum
		for _, o := range outs {
			full := append(append([]int{}, prompt...), o.OutputIDs...)
			d := trainer.Datum{Input: full[:len(full)-1], Target: full[1:]}
			for i := range d.Target {
				gen := i >= len(prompt)-1
				lp, adv := float32(0), float32(0)
				if gen {
					lp = o.Logprobs[i-len(prompt)+1]
					if d.Target[i] == target {
						adv = 1
					} else {
						adv = -float32(r)
					}
				}
				d.Logprobs = append(d.Logprobs, lp)
				d.Advantages = append(d.Advantages, adv)
			}
			data = append(data, d)
		}
		out, err := tr.ForwardBackward(ctx, data, trainer.PPO, trainer.LossConfig{TokenMean: true})
		if err != nil {
			t.Fatal(err)
		}
		// On-policy: learner and sampler agree, so every ratio is 1.
		if math.Abs(out.Metrics["ratio_mean"]-1) > 1e-3 {
			t.Fatalf("on-policy ratio mean %v", out.Metrics["ratio_mean"])
		}
		if _, err := tr.OptimStep(ctx, trainer.AdamParams{LearningRate: 3e-2, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8}); err != nil {
			t.Fatal(err)
		}
		path, err := tr.SaveWeightsForSampler(ctx, "it")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := engine.LoadWeights(path); err != nil {
			t.Fatal(err)
		}
	}
	if !(lastRate > firstRate+0.3) {
		t.Fatalf("rewarded-token rate %.2f -> %.2f: trainer.PPO did not raise it", firstRate, lastRate)
	}
	t.Logf("rewarded-token rate %.2f -> %.2f", firstRate, lastRate)
}

type versionSink struct{ versions []int }

func (s *versionSink) SetWeights(_ *engine.Weights, version int) {
	s.versions = append(s.versions, version)
}

// TestEmbeddedLoadStateRestoresVersion: after LoadState the restored
// weights are published under the saved version (a resumed controller
// publishes them as that version), and an update after that gets the
// next one.
func TestEmbeddedLoadStateRestoresVersion(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := NewTrainer(tinyWeights(t, 4), TrainerOptions{Dir: dir})
	for range 3 {
		if _, err := a.SaveWeightsForSampler(ctx, "w"); err != nil {
			t.Fatal(err)
		}
	}
	path, err := a.SaveState(ctx, "ckpt")
	if err != nil {
		t.Fatal(err)
	}
	sink := &versionSink{}
	b := NewTrainer(tinyWeights(t, 5), TrainerOptions{Dir: dir, Sinks: []WeightsSink{sink}})
	if err := b.LoadState(ctx, path, true); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SaveWeightsForSampler(ctx, "restored"); err != nil {
		t.Fatal(err)
	}
	data := []trainer.Datum{datum([]int{3, 1, 4, 1, 5}, 1)}
	if _, err := b.ForwardBackward(ctx, data, trainer.CrossEntropy, trainer.LossConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.OptimStep(ctx, adam); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SaveWeightsForSampler(ctx, "next"); err != nil {
		t.Fatal(err)
	}
	if want := []int{3, 4}; !slices.Equal(sink.versions, want) {
		t.Fatalf("published versions %v, want %v", sink.versions, want)
	}
	if b.Version() != 4 {
		t.Fatalf("Version() = %d, want 4", b.Version())
	}
}

// TestEmbeddedSaveModelMergesLoRA: the model directory SaveModel writes
// for a trained LoRA adapter scores tokens exactly as the LoRA trainer
// does (the adapter is merged in), and a full-weight trainer's is its
// weights.
func TestEmbeddedSaveModelMergesLoRA(t *testing.T) {
	ctx := context.Background()
	base := tinyWeights(t, 3)
	data := []trainer.Datum{datum([]int{1, 5, 9, 13, 17, 21, 25, 29, 33}, 1)}
	lora, err := NewLoRATrainer(base, engine.LoRAConfig{Rank: 4, Alpha: 8}, 1, TrainerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, tr := range map[string]*Trainer{"lora": lora, "full": NewTrainer(base, TrainerOptions{})} {
		t.Run(name, func(t *testing.T) {
			for range 5 {
				if _, err := tr.ForwardBackward(ctx, data, trainer.CrossEntropy, trainer.LossConfig{}); err != nil {
					t.Fatal(err)
				}
				if _, err := tr.OptimStep(ctx, adam); err != nil {
					t.Fatal(err)
				}
			}
			want, err := tr.Forward(ctx, data, trainer.CrossEntropy, trainer.LossConfig{})
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "model")
			if err := tr.SaveModel(ctx, dir); err != nil {
				t.Fatal(err)
			}
			w, err := engine.LoadWeights(dir)
			if err != nil {
				t.Fatal(err)
			}
			got, err := NewTrainer(w, TrainerOptions{}).Forward(ctx, data, trainer.CrossEntropy, trainer.LossConfig{})
			if err != nil {
				t.Fatal(err)
			}
			baseOut, _ := NewTrainer(base, TrainerOptions{}).Forward(ctx, data, trainer.CrossEntropy, trainer.LossConfig{})
			if math.Abs(baseOut.Loss-want.Loss) < 1e-4 {
				t.Fatalf("training did not move the loss (%.5f)", want.Loss)
			}
			for i, lp := range want.Logprobs[0] {
				if d := math.Abs(float64(got.Logprobs[0][i] - lp)); d > 1e-4 {
					t.Fatalf("token %d: saved model logprob %.6f, trainer %.6f", i, got.Logprobs[0][i], lp)
				}
			}
		})
	}
}
