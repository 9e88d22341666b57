package export

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/peft"
)

// On the real SkyRL adapter (skyrlArchive), merging agrees with the
// engine's forward through the adapter itself (engine.LogitsLoRA), and the
// exported config keeps SkyRL's own fields. The fixture's lora_B are all
// zero (its ppo step left the adapter at PEFT's init), which would make
// the comparison vacuous, so B gets random values; A, r, alpha and the
// module set stay SkyRL's.
func TestSkyRLAdapterMergeMatchesForward(t *testing.T) {
	cfg, err := engine.Preset("tiny", 16)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "tiny")
	if _, err := engine.InitModelDir(context.Background(), base, engine.InitOptions{Config: cfg, Seed: 7, DType: engine.F32}); err != nil {
		t.Fatal(err)
	}
	if _, err := FromArchive(context.Background(), ArchiveOptions{Archive: skyrlArchive, Base: base, AdapterOut: filepath.Join(dir, "adapter")}); err != nil {
		t.Fatal(err)
	}
	a, err := peft.Load(filepath.Join(dir, "adapter"))
	if err != nil {
		t.Fatal(err)
	}
	if string(a.Config.Extra["peft_version"]) != `"0.18.1"` {
		t.Errorf("SkyRL's peft_version became %s in the exported adapter_config.json", a.Config.Extra["peft_version"])
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, m := range a.Modules {
		for i := range m.B {
			m.B[i] = float32(rng.NormFloat64() * 0.05)
		}
	}
	if _, err := MergeAdapter(a, base, filepath.Join(dir, "merged"), engine.F32); err != nil {
		t.Fatal(err)
	}
	bw, err := engine.LoadWeights(base)
	if err != nil {
		t.Fatal(err)
	}
	ad, err := engine.AdapterFromPEFT(bw.Config, a)
	if err != nil {
		t.Fatal(err)
	}
	mw, err := engine.LoadWeights(filepath.Join(dir, "merged"))
	if err != nil {
		t.Fatal(err)
	}
	bm := engine.NewModel(bw, 0)
	seq := []int{5, 17, 42, 9, 100, 3, 77, 250, 1}
	viaAdapter, err := bm.LogitsLoRA(context.Background(), seq, ad)
	if err != nil {
		t.Fatal(err)
	}
	merged, err := engine.NewModel(mw, 0).Logits(context.Background(), seq)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := bm.Logits(context.Background(), seq)
	d, moved := maxAbsDiff(viaAdapter, merged), maxAbsDiff(viaAdapter, plain)
	t.Logf("merged vs adapter forward: %.3g; the adapter moves the logits by %.3g", d, moved)
	if d > 1e-4 || math.IsNaN(d) {
		t.Errorf("merged logits differ from the adapter forward by %.3g", d)
	}
	if moved < 1e-2 {
		t.Errorf("the adapter moves the logits by only %.3g: the comparison would not see a lost merge", moved)
	}
}
