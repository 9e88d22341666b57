package export

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/asearcher/asearcher/engine"
)

// skyrlArchive is a sampler checkpoint that SkyRL 0.3.0's Tinker server
// (JAX, CPU) wrote in cmd/asearcher's TestTrainSkyRL: LoRA r 8 after one
// ppo step on the tiny random model engine.InitModelDir makes from the
// "tiny" preset (vocab 16 extra tokens, seed 7, F32). Its tar opens with a
// directory entry named "/", its adapter_config.json has target_modules
// null and lora_alpha 32.
const skyrlArchive = "testdata/archive/skyrl-0.3.0-tiny-sampler.tar.gz"

// TestSkyRLArchive: a real SkyRL archive unpacks (its "/" root entry is
// the archive's root, not an absolute path) and exports as a PEFT adapter
// with all seven projections and merged into its base model.
func TestSkyRLArchive(t *testing.T) {
	f, err := os.Open(skyrlArchive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dest := t.TempDir()
	if err := ExtractArchive(f, dest, ArchiveLimits{}); err != nil {
		t.Fatalf("SkyRL archive: %v", err)
	}
	var raw struct {
		Targets *[]string `json:"target_modules"`
		Alpha   float64   `json:"lora_alpha"`
		R       int       `json:"r"`
	}
	b, err := os.ReadFile(filepath.Join(dest, "adapter_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Targets != nil || raw.Alpha != 32 || raw.R != 8 {
		t.Fatalf("the fixture is not what SkyRL writes: target_modules %v, alpha %g, r %d", raw.Targets, raw.Alpha, raw.R)
	}

	cfg, err := engine.Preset("tiny", 16)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(t.TempDir(), "tiny")
	if _, err := engine.InitModelDir(context.Background(), base, engine.InitOptions{Config: cfg, Seed: 7, DType: engine.F32}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	res, err := FromArchive(context.Background(), ArchiveOptions{Archive: skyrlArchive, Base: base,
		Out: filepath.Join(dir, "merged"), AdapterOut: filepath.Join(dir, "adapter"), DType: engine.F32})
	if err != nil {
		t.Fatalf("export of the SkyRL archive: %v", err)
	}
	if res.Kind != "lora" || res.Rank != 8 || res.Alpha != 32 || len(res.Targets) != 7 {
		t.Errorf("export: %+v; want lora, r 8, alpha 32, seven target modules", res)
	}
	var out struct {
		Targets []string `json:"target_modules"`
	}
	b, err = os.ReadFile(filepath.Join(dir, "adapter", "adapter_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &out); err != nil || len(out.Targets) != 7 {
		t.Errorf("exported adapter_config.json target_modules %v (%v), want all seven", out.Targets, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "merged", "model.safetensors")); err != nil {
		t.Errorf("merged model: %v", err)
	}
}
