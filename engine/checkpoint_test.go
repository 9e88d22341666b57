package engine

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
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
	if err := writeFileAtomic(filepath.Join(dir, "engine_logits.safetensors"), buf); err != nil {
		t.Fatal(err)
	}
}
