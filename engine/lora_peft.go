package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/asearcher/asearcher/peft"
)

// PEFTDims are the base model's sizes in the form package peft checks
// adapters against.
func (c *Config) PEFTDims() peft.Dims {
	hd := c.headDim()
	return peft.Dims{Layers: c.NumHiddenLayers, Hidden: c.HiddenSize, Intermediate: c.IntermediateSize,
		QDim: c.NumAttentionHeads * hd, KVDim: c.NumKeyValueHeads * hd, Vocab: c.VocabSize,
		TiedEmbeddings: c.TieWordEmbeddings}
}

// PEFT returns the adapter as a PEFT adapter (its tensors alias ad's), with
// baseModel as base_model_name_or_path; Save on it writes the directory
// PEFT, SGLang and vLLM load.
func (ad *Adapter) PEFT(baseModel string) *peft.Adapter {
	pa := &peft.Adapter{Config: peft.NewConfig(baseModel, ad.Rank, ad.Alpha), Modules: map[string]*peft.Module{}}
	pa.Config.TargetModules = slices.Clone(ad.Targets)
	for l, mods := range ad.layers {
		for m, pr := range mods {
			if pr.a == nil {
				continue
			}
			in, out := loraDims(ad.Config, m)
			name := fmt.Sprintf("model.layers.%d.%s%s", l, loraModulePrefix(m), LoRAModules[m])
			pa.Modules[name] = &peft.Module{Rank: ad.Rank, In: in, Out: out, A: pr.a, B: pr.b}
		}
	}
	return pa
}

// SaveAdapter writes ad as a PEFT adapter directory.
func (ad *Adapter) SaveAdapter(dir, baseModel string) error {
	return ad.PEFT(baseModel).Save(dir)
}

// AdapterFromPEFT builds an engine adapter for a model of configuration c
// from a decoded PEFT adapter. Modules missing from some layers stay zero
// there. rsLoRA's scale alpha/√r is kept by storing the equivalent alpha
// (scale·r), so the adapter computes the same function.
func AdapterFromPEFT(c *Config, pa *peft.Adapter) (*Adapter, error) {
	if err := pa.Check(c.PEFTDims()); err != nil {
		return nil, err
	}
	targets := pa.Targets()
	if slices.Contains(targets, "lm_head") {
		return nil, fmt.Errorf("lora: the adapter targets lm_head, which the engine does not adapt; merge it into full weights instead (asearcher export)")
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("lora: the adapter has no modules")
	}
	ad, err := NewAdapter(c, LoRAConfig{Rank: pa.Config.R, Alpha: pa.Scale() * float64(pa.Config.R), Targets: targets})
	if err != nil {
		return nil, err
	}
	for name, m := range pa.Modules {
		key := strings.TrimSuffix(name, ".weight")
		if err := ad.SetTensor(key+".lora_A.weight", []int{m.Rank, m.In}, m.A); err != nil {
			return nil, err
		}
		if err := ad.SetTensor(key+".lora_B.weight", []int{m.Out, m.Rank}, m.B); err != nil {
			return nil, err
		}
	}
	return ad, nil
}

// LoadAdapter reads a PEFT adapter directory for a model of configuration c.
func LoadAdapter(dir string, c *Config) (*Adapter, error) {
	pa, err := peft.Load(dir)
	if err != nil {
		return nil, err
	}
	ad, err := AdapterFromPEFT(c, pa)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return ad, nil
}
