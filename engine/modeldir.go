package engine

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/asearcher/asearcher/internal/atomicfile"
)

// LoadWeights reads a Hugging Face model directory: config.json and either
// model.safetensors or a sharded model.safetensors.index.json. Tensors of
// any supported dtype are widened to float32.
func LoadWeights(dir string) (*Weights, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	files := []string{filepath.Join(dir, "model.safetensors")}
	if idx, err := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json")); err == nil {
		var index struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(idx, &index); err != nil {
			return nil, fmt.Errorf("%s: model.safetensors.index.json: %w", dir, err)
		}
		seen := map[string]bool{}
		files = files[:0]
		for _, f := range index.WeightMap {
			if !seen[f] && !strings.Contains(f, "/") && !strings.Contains(f, `\`) {
				seen[f] = true
				files = append(files, filepath.Join(dir, f))
			}
		}
		sort.Strings(files)
	}
	tensors := map[string]Tensor{}
	for _, f := range files {
		buf, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read weights: %w", err)
		}
		ts, err := DecodeSafetensors(buf)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for k, v := range ts {
			tensors[k] = v
		}
	}
	w, err := WeightsFromTensors(cfg, tensors)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return w, nil
}

// WeightsFromTensors checks every tensor the config needs against its
// expected shape and copies it into a fresh flat buffer.
func WeightsFromTensors(cfg *Config, tensors map[string]Tensor) (*Weights, error) {
	p := newParams(cfg, nil)
	used := map[string]bool{}
	for _, s := range paramLayout(cfg) {
		t, ok := tensors[s.name]
		if !ok {
			return nil, fmt.Errorf("weights: tensor %s is missing", s.name)
		}
		if !slices.Equal(t.Shape, s.shape) {
			return nil, fmt.Errorf("weights: tensor %s has shape %v, config wants %v", s.name, t.Shape, s.shape)
		}
		copy(p.byName[s.name], t.Data)
		used[s.name] = true
	}
	for name := range tensors {
		if used[name] || name == "lm_head.weight" && cfg.TieWordEmbeddings || strings.HasSuffix(name, "rotary_emb.inv_freq") {
			continue
		}
		return nil, fmt.Errorf("weights: unexpected tensor %s for this config", name)
	}
	if err := checkFinite(p); err != nil {
		return nil, fmt.Errorf("weights: %w", err)
	}
	return &Weights{Config: cfg, Params: p}, nil
}

// SaveWeights writes config.json and model.safetensors into dir (created if
// needed), each atomically. dtype F16/BF16 halves the file; training state
// uses F32 so nothing is lost.
func SaveWeights(dir string, w *Weights, dtype DType) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	cfg := *w.Config
	cfg.RopeParameters, cfg.RopeScaling = nil, nil // rope_theta says it for both transformers 4 and 5
	switch dtype {
	case F32:
		cfg.TorchDtype = "float32"
	case F16:
		cfg.TorchDtype = "float16"
	case BF16:
		cfg.TorchDtype = "bfloat16"
	}
	cfg.Dtype = cfg.TorchDtype
	cj, err := json.MarshalIndent(&cfg, "", "  ")
	if err != nil {
		return err
	}
	var tensors []NamedTensor
	for _, s := range paramLayout(w.Config) {
		tensors = append(tensors, NamedTensor{Name: s.name, Shape: s.shape, Data: w.byName[s.name]})
	}
	buf, err := EncodeSafetensors(tensors, dtype, map[string]string{"format": "pt"})
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "model.safetensors"), buf); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "config.json"), append(cj, '\n')); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	return nil
}
