package engine

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/asearcher/asearcher/internal/atomicfile"
)

// Training state on disk: a model directory (config.json and an f32
// model.safetensors, loadable by transformers) plus optimizer.safetensors
// (AdamW moments under "exp_avg.<name>" and "exp_avg_sq.<name>") and
// trainer_state.json. Accumulated, not yet applied gradients are not saved:
// checkpoints are taken after an optimiser step, as with Tinker.

type trainerState struct {
	Step    int `json:"step"`
	Version int `json:"version"`
	// Optimizer says optimizer.safetensors was written beside it, so a
	// load that wants the moments must find it.
	Optimizer bool `json:"optimizer,omitempty"`
	// LoRARank is set for a LoRA learner's state: the directory then holds
	// a PEFT adapter (adapter_config.json, adapter_model.safetensors) and
	// the base's config as base_config.json, not full weights.
	LoRARank int `json:"lora_rank,omitempty"`
}

// writeLoRAState writes a LoRA learner's state into dir: the adapter in
// PEFT format, the base's config as base_config.json (to refuse another
// architecture on load; not config.json, which would make the directory
// look like a full model), the adapter's AdamW moments and trainer_state.json.
func (l *Learner) writeLoRAState(dir string, version int) error {
	if err := l.adapter.SaveAdapter(dir, l.baseModel); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	cj, err := json.MarshalIndent(l.model.Config, "", "  ")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "base_config.json"), cj); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if l.am1 != nil {
		names, shapes, m1 := l.am1.Tensors()
		_, _, m2 := l.am2.Tensors()
		var ts []NamedTensor
		for i, n := range names {
			sh := []int{shapes[i][0], shapes[i][1]}
			ts = append(ts, NamedTensor{Name: "exp_avg." + n, Shape: sh, Data: m1[i]},
				NamedTensor{Name: "exp_avg_sq." + n, Shape: sh, Data: m2[i]})
		}
		buf, err := EncodeSafetensors(ts, F32, nil)
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, "optimizer.safetensors"), buf); err != nil {
			return fmt.Errorf("save state: %w", err)
		}
	}
	sj, _ := json.Marshal(trainerState{Step: l.step, Version: version, Optimizer: l.am1 != nil, LoRARank: l.adapter.Rank})
	if err := atomicfile.WriteFile(filepath.Join(dir, "trainer_state.json"), sj); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// loadLoRAState is LoadState for a LoRA learner: dir must hold a PEFT
// adapter of the learner's rank and modules (a state from SaveState, or
// any adapter directory for the factors only).
func (l *Learner) loadLoRAState(dir string, withOptimizer bool) (int, error) {
	if _, err := os.Stat(filepath.Join(dir, "adapter_config.json")); err != nil {
		return 0, fmt.Errorf("load state: %s holds no LoRA adapter (adapter_config.json), but this model trains a rank-%d adapter", dir, l.adapter.Rank)
	}
	if c, err := LoadConfig(filepath.Join(dir, "base_config.json")); err == nil && !sameArchitecture(c, l.model.Config) {
		return 0, fmt.Errorf("load state: %s was trained on a different architecture than the base model", dir)
	}
	ad, err := LoadAdapter(dir, l.model.Config)
	if err != nil {
		return 0, fmt.Errorf("load state: %w", err)
	}
	if ad.Rank != l.adapter.Rank || !slices.Equal(ad.Targets, l.adapter.Targets) {
		return 0, fmt.Errorf("load state: %s is a rank-%d adapter on %v, but this model trains rank %d on %v",
			dir, ad.Rank, ad.Targets, l.adapter.Rank, l.adapter.Targets)
	}
	var st trainerState
	isState := false
	if b, err := os.ReadFile(filepath.Join(dir, "trainer_state.json")); err == nil {
		if err := json.Unmarshal(b, &st); err != nil {
			return 0, fmt.Errorf("load state: %s: %w", filepath.Join(dir, "trainer_state.json"), err)
		}
		isState = true
	} else if !os.IsNotExist(err) {
		return 0, fmt.Errorf("load state: %w", err)
	}
	var m1, m2 *Adapter
	if withOptimizer {
		buf, err := os.ReadFile(filepath.Join(dir, "optimizer.safetensors"))
		switch {
		case os.IsNotExist(err) && isState && st.Optimizer:
			return 0, fmt.Errorf("load state: %s is missing: the optimiser state of step %d is lost; restore it, or resume from an earlier checkpoint", filepath.Join(dir, "optimizer.safetensors"), st.Step)
		case os.IsNotExist(err):
		case err != nil:
			return 0, fmt.Errorf("load state: %w", err)
		default:
			ts, err := DecodeSafetensors(buf)
			if err != nil {
				return 0, fmt.Errorf("load state: optimizer.safetensors: %w", err)
			}
			m1, m2 = ad.zeroLike(), ad.zeroLike()
			names, _, _ := ad.Tensors()
			for _, n := range names {
				a, b := ts["exp_avg."+n], ts["exp_avg_sq."+n]
				if err := m1.SetTensor(n, a.Shape, a.Data); err != nil {
					return 0, fmt.Errorf("load state: optimizer moments: %w", err)
				}
				if err := m2.SetTensor(n, b.Shape, b.Data); err != nil {
					return 0, fmt.Errorf("load state: optimizer moments: %w", err)
				}
			}
		}
	}
	copy(l.adapter.Flat, ad.Flat)
	clear(l.agrads.Flat)
	l.pending = 0
	if withOptimizer {
		l.am1, l.am2, l.step = m1, m2, st.Step
	}
	return st.Version, nil
}

// SaveState writes the learner's state into dir atomically: everything is
// written to a temporary sibling directory that then replaces dir.
func (l *Learner) SaveState(dir string, version int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp*")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer os.RemoveAll(tmp)
	if l.adapter != nil {
		if err := l.writeLoRAState(tmp, version); err != nil {
			return err
		}
		return swapDir(tmp, dir)
	}
	if err := SaveWeights(tmp, l.model.W, F32); err != nil {
		return err
	}
	if l.m1 != nil {
		var ts []NamedTensor
		for _, s := range paramLayout(l.model.Config) {
			ts = append(ts, NamedTensor{Name: "exp_avg." + s.name, Shape: s.shape, Data: l.m1.byName[s.name]},
				NamedTensor{Name: "exp_avg_sq." + s.name, Shape: s.shape, Data: l.m2.byName[s.name]})
		}
		buf, err := EncodeSafetensors(ts, F32, nil)
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(tmp, "optimizer.safetensors"), buf); err != nil {
			return fmt.Errorf("save state: %w", err)
		}
	}
	sj, _ := json.Marshal(trainerState{Step: l.step, Version: version, Optimizer: l.m1 != nil})
	if err := atomicfile.WriteFile(filepath.Join(tmp, "trainer_state.json"), sj); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return swapDir(tmp, dir)
}

// swapDir moves the complete directory tmp to dir, replacing any old one.
func swapDir(tmp, dir string) error {
	parent := filepath.Dir(dir)
	// Swap in: move any old state aside first so a crash leaves one of the
	// two complete directories, and fsync the parent after each rename so
	// a power loss cannot undo the swap's order.
	old := ""
	if _, err := os.Stat(dir); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("save state: %w", err)
		}
		if err := atomicfile.SyncDir(parent); err != nil {
			return fmt.Errorf("save state: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			if rerr := os.Rename(old, dir); rerr != nil {
				return fmt.Errorf("save state: %w; the previous state could not be moved back and is kept at %s: %v", err, old, rerr)
			}
		}
		return fmt.Errorf("save state: %w", err)
	}
	if err := atomicfile.SyncDir(parent); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}

// LoadState restores weights (and, with withOptimizer, the AdamW moments
// and step count) from a directory written by SaveState — or from any model
// directory, for weights only. It returns the saved weight version.
func (l *Learner) LoadState(dir string, withOptimizer bool) (int, error) {
	if l.adapter != nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.loadLoRAState(dir, withOptimizer)
	}
	if _, err := os.Stat(filepath.Join(dir, "adapter_config.json")); err == nil {
		if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err != nil {
			return 0, fmt.Errorf("load state: %s is a LoRA adapter state, but this model trains full weights; create the model with the same LoRA rank", dir)
		}
	}
	w, err := LoadWeights(dir)
	if err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !sameArchitecture(w.Config, l.model.Config) {
		return 0, fmt.Errorf("load state: %s holds a different architecture than the model being trained", dir)
	}
	var st trainerState
	isState := false
	b, err := os.ReadFile(filepath.Join(dir, "trainer_state.json"))
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &st); err != nil {
			return 0, fmt.Errorf("load state: %s: %w", filepath.Join(dir, "trainer_state.json"), err)
		}
		isState = true
	case !os.IsNotExist(err):
		return 0, fmt.Errorf("load state: %w", err)
	}
	var m1, m2 *Params
	if withOptimizer {
		buf, err := os.ReadFile(filepath.Join(dir, "optimizer.safetensors"))
		switch {
		case os.IsNotExist(err) && isState && (st.Optimizer || st.Step > 0):
			// A training state that had moments (states from before the
			// Optimizer field are recognised by their step count) must
			// not resume with fresh ones: that silently changes the run.
			return 0, fmt.Errorf("load state: %s is missing: the optimiser state of step %d is lost; restore it, or resume from an earlier checkpoint", filepath.Join(dir, "optimizer.safetensors"), st.Step)
		case os.IsNotExist(err):
			// Weights only (a model directory or a state saved before any
			// optimiser step): the optimiser starts fresh.
		case err != nil:
			return 0, fmt.Errorf("load state: %w", err)
		default:
			ts, err := DecodeSafetensors(buf)
			if err != nil {
				return 0, fmt.Errorf("load state: optimizer.safetensors: %w", err)
			}
			m1, m2 = newParams(l.model.Config, nil), newParams(l.model.Config, nil)
			for _, s := range paramLayout(l.model.Config) {
				a, b := ts["exp_avg."+s.name], ts["exp_avg_sq."+s.name]
				if !slices.Equal(a.Shape, s.shape) || !slices.Equal(b.Shape, s.shape) {
					return 0, fmt.Errorf("load state: optimizer moments for %s are missing or misshapen", s.name)
				}
				copy(m1.byName[s.name], a.Data)
				copy(m2.byName[s.name], b.Data)
			}
		}
	}
	copy(l.model.W.Flat, w.Flat)
	clear(l.grads.Flat)
	l.pending = 0
	if withOptimizer {
		l.m1, l.m2, l.step = m1, m2, st.Step
	}
	return st.Version, nil
}

func sameArchitecture(a, b *Config) bool {
	x, y := *a, *b
	for _, c := range []*Config{&x, &y} {
		c.TorchDtype, c.Dtype, c.Architectures, c.RopeParameters, c.RopeScaling = "", "", nil, nil, nil
		c.BOSTokenID, c.EOSTokenID, c.InitRange = nil, nil, 0
		c.ModelType = strings.ToLower(c.ModelType)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
