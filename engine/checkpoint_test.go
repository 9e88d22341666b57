package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/asearcher/asearcher/internal/atomicfile"
)

// A checkpoint the engine writes loads in transformers and gives the same
// logits. make_fixtures.py check-engine loaded the committed engine-written
// directories in transformers and stored its logits (hf_logits.safetensors);
// here the engine's logits on the same checkpoint must match them, and
// SaveWeights must still write those exact bytes.
//
// ENGINE_WRITE_FIXTURES=1 regenerates the directories (then rerun the
// Python check).
func TestEngineCheckpointLoadsInTransformers(t *testing.T) {
	for _, kind := range []string{"qwen2", "qwen3"} {
		t.Run(kind, func(t *testing.T) {
			dir := filepath.Join("testdata", "fidelity", "engine_ckpt_"+kind)
			if os.Getenv("ENGINE_WRITE_FIXTURES") == "1" {
				writeEngineCheckpoint(t, kind, dir)
			}
			w, err := LoadWeights(dir)
			if err != nil {
				t.Fatal(err)
			}
			tmp := t.TempDir()
			if err := SaveWeights(tmp, w, F32); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"config.json", "model.safetensors"} {
				a, _ := os.ReadFile(filepath.Join(dir, f))
				b, _ := os.ReadFile(filepath.Join(tmp, f))
				if !bytes.Equal(a, b) {
					t.Errorf("SaveWeights no longer writes the %s that transformers was checked against", f)
				}
			}
			buf, err := os.ReadFile(filepath.Join(dir, "hf_logits.safetensors"))
			if err != nil {
				t.Fatalf("%v (run: python engine/testdata/make_fixtures.py check-engine)", err)
			}
			hf, err := DecodeSafetensors(buf)
			if err != nil {
				t.Fatal(err)
			}
			_, fd, _ := loadFidelity(t, kind)
			for i, l := range logitsOf(t, w, fd.Sequences) {
				if d := maxAbsDiff(l, hf["logits."+strconv.Itoa(i)].Data); d > 1e-4 {
					t.Errorf("sequence %d: engine vs transformers on the engine checkpoint: %.3g", i, d)
				}
			}
		})
	}
}

// writeEngineCheckpoint trains the fixture model one AdamW step, saves it,
// and records the engine's logits for the Python side to compare.
func writeEngineCheckpoint(t *testing.T, kind, dir string) {
	w, fd, _ := loadFidelity(t, kind)
	l := NewLearner(w)
	var ex []Example
	for i, s := range fd.Sequences {
		ex = append(ex, Example{Input: s[:len(s)-1], Target: s[1:], Weights: fd.Weights[i]})
	}
	ctx := context.Background()
	if _, err := l.ForwardBackward(ctx, ex, Loss{Fn: CrossEntropy}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.OptimStep(ctx, AdamW{LR: 1e-2, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}); err != nil {
		t.Fatal(err)
	}
	trained := l.Snapshot()
	if err := SaveWeights(dir, trained, F32); err != nil {
		t.Fatal(err)
	}
	var ts []NamedTensor
	V := trained.Config.VocabSize
	for i, l := range logitsOf(t, trained, fd.Sequences) {
		ts = append(ts, NamedTensor{Name: "logits." + strconv.Itoa(i), Shape: []int{len(l) / V, V}, Data: l})
	}
	buf, err := EncodeSafetensors(ts, F32, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "engine_logits.safetensors"), buf); err != nil {
		t.Fatal(err)
	}
}

// Hugging Face checkpoints come sharded (model.safetensors.index.json) and
// in bf16/f16; both load into the same f32 parameters, and a checkpoint
// missing a tensor, carrying a foreign one or a wrong shape is refused.
func TestLoadShardedHalfPrecision(t *testing.T) {
	w, _, _ := loadFidelity(t, "qwen3")
	specs := paramLayout(w.Config)
	for _, dt := range []DType{F32, BF16, F16} {
		t.Run(string(dt), func(t *testing.T) {
			dir := t.TempDir()
			if err := SaveWeights(dir, w, dt); err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(dir, "model.safetensors"))
			index := map[string]any{"metadata": map[string]any{}, "weight_map": map[string]string{}}
			shards := [2][]NamedTensor{}
			for i, s := range specs {
				shards[i%2] = append(shards[i%2], NamedTensor{Name: s.name, Shape: s.shape, Data: w.byName[s.name]})
				index["weight_map"].(map[string]string)[s.name] = fmt.Sprintf("model-%05d-of-00002.safetensors", i%2+1)
			}
			for i, ts := range shards {
				buf, err := EncodeSafetensors(ts, dt, map[string]string{"format": "pt"})
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("model-%05d-of-00002.safetensors", i+1)), buf, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ij, _ := json.Marshal(index)
			if err := os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), ij, 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := LoadWeights(dir)
			if err != nil {
				t.Fatal(err)
			}
			tol := map[DType]float64{F32: 0, BF16: 1.0 / 128, F16: 1.0 / 1024}[dt]
			for i, v := range w.Flat {
				if d := math.Abs(float64(got.Flat[i] - v)); d > tol*math.Abs(float64(v))+1e-7 {
					t.Fatalf("value %d: %v loaded as %v", i, v, got.Flat[i])
				}
			}
		})
	}
	bad := func(name string, mutate func(map[string]Tensor)) {
		ts := map[string]Tensor{}
		for _, s := range specs {
			ts[s.name] = Tensor{Shape: s.shape, Data: w.byName[s.name]}
		}
		mutate(ts)
		if _, err := WeightsFromTensors(w.Config, ts); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	bad("missing", func(ts map[string]Tensor) { delete(ts, "model.norm.weight") })
	bad("foreign", func(ts map[string]Tensor) {
		ts["model.layers.9.mlp.up_proj.weight"] = Tensor{Shape: []int{1}, Data: []float32{0}}
	})
	bad("shape", func(ts map[string]Tensor) {
		ts["model.norm.weight"] = Tensor{Shape: []int{1, 32}, Data: w.byName["model.norm.weight"]}
	})
	bad("nan", func(ts map[string]Tensor) {
		v := append([]float32(nil), w.byName["model.norm.weight"]...)
		v[3] = float32(math.NaN())
		ts["model.norm.weight"] = Tensor{Shape: []int{len(v)}, Data: v}
	})
}
