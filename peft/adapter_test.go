package peft

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/safetensors"
)

// tiny is a two-layer base with distinct sizes so a transposed or swapped
// shape is caught.
var tiny = Dims{Layers: 2, Hidden: 8, Intermediate: 12, QDim: 8, KVDim: 4, Vocab: 16}

// randomAdapter builds an adapter on every module of tiny with rank r.
func randomAdapter(t *testing.T, r int, modules []string) *Adapter {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	a := &Adapter{Config: NewConfig("base", r, 32), Modules: map[string]*Module{}}
	for l := 0; l < tiny.Layers; l++ {
		for _, s := range modules {
			name := fmt.Sprintf("model.layers.%d.self_attn.%s", l, s)
			if slices.Contains(mlpModules, s) {
				name = fmt.Sprintf("model.layers.%d.mlp.%s", l, s)
			}
			out, in, err := tiny.Shape(name)
			if err != nil {
				t.Fatal(err)
			}
			m := &Module{Rank: r, In: in, Out: out, A: make([]float32, r*in), B: make([]float32, out*r)}
			for i := range m.A {
				m.A[i] = float32(rng.NormFloat64())
			}
			for i := range m.B {
				m.B[i] = float32(rng.NormFloat64())
			}
			a.Modules[name] = m
		}
	}
	return a
}

func encode(t *testing.T, a *Adapter) ([]byte, []byte) {
	t.Helper()
	c, w, err := a.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return c, w
}

// editConfig rewrites one field of an encoded config.
func editConfig(t *testing.T, cfg []byte, field string, value any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(cfg, &m); err != nil {
		t.Fatal(err)
	}
	if value == nil {
		m[field] = nil
	} else {
		m[field] = value
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// editWeights re-encodes the weights after f changes the tensor map.
func editWeights(t *testing.T, w []byte, f func(map[string]safetensors.Tensor)) []byte {
	t.Helper()
	ts, err := safetensors.Decode(w)
	if err != nil {
		t.Fatal(err)
	}
	f(ts)
	var named []safetensors.NamedTensor
	for k, v := range ts {
		named = append(named, safetensors.NamedTensor{Name: k, Shape: v.Shape, Data: v.Data})
	}
	out, err := safetensors.Encode(named, safetensors.F32, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRoundTripAndTargets(t *testing.T) {
	all7 := append(append([]string{}, attnModules...), mlpModules...)
	a := randomAdapter(t, 4, all7)
	dir := t.TempDir()
	if err := a.Save(dir); err != nil {
		t.Fatal(err)
	}
	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.Config.TargetModules, all7) {
		t.Errorf("target_modules written as %v, want %v", b.Config.TargetModules, all7)
	}
	if len(b.Modules) != len(a.Modules) {
		t.Fatalf("%d modules read back, %d written", len(b.Modules), len(a.Modules))
	}
	for name, m := range a.Modules {
		got := b.Modules[name]
		if got == nil || !slices.Equal(got.A, m.A) || !slices.Equal(got.B, m.B) || got.Rank != m.Rank {
			t.Fatalf("module %s changed in the round trip", name)
		}
	}
	if err := b.Check(tiny); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	for _, want := range []string{`"peft_type": "LORA"`, `"r": 4`, `"lora_alpha": 32`, `"task_type": "CAUSAL_LM"`, `"base_model_name_or_path": "base"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("adapter_config.json lacks %s:\n%s", want, raw)
		}
	}
}

// SkyRL writes target_modules: null; the modules come from the tensors and
// are written explicitly on save.
func TestNullTargetModulesInferred(t *testing.T) {
	a := randomAdapter(t, 2, []string{"q_proj", "down_proj", "v_proj"})
	cfg, w := encode(t, a)
	cfg = editConfig(t, cfg, "target_modules", nil)
	cfg = editConfig(t, cfg, "skyrl_extra", "kept")
	b, err := Decode(cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	if b.Config.TargetModules != nil {
		t.Errorf("null target_modules read as %v", b.Config.TargetModules)
	}
	if want := []string{"q_proj", "v_proj", "down_proj"}; !slices.Equal(b.Targets(), want) {
		t.Errorf("Targets() = %v, want %v", b.Targets(), want)
	}
	out, _, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(m["target_modules"]) != "[q_proj v_proj down_proj]" || m["skyrl_extra"] != "kept" {
		t.Errorf("rewritten config: target_modules %v, skyrl_extra %v", m["target_modules"], m["skyrl_extra"])
	}
}

func TestDecodeRejects(t *testing.T) {
	a := randomAdapter(t, 2, []string{"q_proj", "up_proj"})
	cfg, w := encode(t, a)
	qA := keyPrefix + "model.layers.0.self_attn.q_proj.lora_A.weight"
	qB := keyPrefix + "model.layers.0.self_attn.q_proj.lora_B.weight"
	cases := []struct {
		name string
		cfg  []byte
		w    []byte
		want string
	}{
		{"missing B", cfg, editWeights(t, w, func(m map[string]safetensors.Tensor) { delete(m, qB) }), "has lora_A but no lora_B"},
		{"missing A", cfg, editWeights(t, w, func(m map[string]safetensors.Tensor) { delete(m, qA) }), "has lora_B but no lora_A"},
		{"rank differs from r", editConfig(t, cfg, "r", 3), w, "rank 2 but adapter_config.json says r = 3"},
		{"A and B ranks differ", cfg, editWeights(t, w, func(m map[string]safetensors.Tensor) {
			m[qB] = safetensors.Tensor{Shape: []int{8, 1}, Data: make([]float32, 8)}
		}), "ranks differ"},
		{"unknown module", cfg, editWeights(t, w, func(m map[string]safetensors.Tensor) {
			m[keyPrefix+"model.layers.0.self_attn.qkv_proj.lora_A.weight"] = m[qA]
		}), "unknown module"},
		{"embedding lora", cfg, editWeights(t, w, func(m map[string]safetensors.Tensor) {
			m[keyPrefix+"model.embed_tokens.lora_embedding_A"] = m[qA]
		}), "not a lora_A.weight"},
		{"wrong prefix", cfg, editWeights(t, w, func(m map[string]safetensors.Tensor) {
			m["model.layers.0.self_attn.q_proj.lora_A.weight"] = m[qA]
		}), "does not start with"},
		{"non-finite", cfg, editWeights(t, w, func(m map[string]safetensors.Tensor) {
			m[qA].Data[1] = float32(math.NaN())
		}), "NaN"},
		{"module not targeted", editConfig(t, cfg, "target_modules", []string{"q_proj"}), w, "does not name it"},
		{"target without tensors", editConfig(t, cfg, "target_modules", []string{"q_proj", "up_proj", "k_proj"}), w, `target module "k_proj" has no LoRA tensors`},
		{"regex not matching", editConfig(t, cfg, "target_modules", ".*q_proj"), w, "does not name it"},
		{"bad regex", editConfig(t, cfg, "target_modules", "(("), w, "not a valid regular expression"},
		{"not lora", editConfig(t, cfg, "peft_type", "IA3"), w, "peft_type"},
		{"dora", editConfig(t, cfg, "use_dora", true), w, "DoRA"},
		{"fan in fan out", editConfig(t, cfg, "fan_in_fan_out", true), w, "fan_in_fan_out"},
		{"bias", editConfig(t, cfg, "bias", "all"), w, "bias"},
		{"modules to save", editConfig(t, cfg, "modules_to_save", []string{"lm_head"}), w, "modules_to_save"},
		{"rank pattern", editConfig(t, cfg, "rank_pattern", map[string]int{"q_proj": 4}), w, "rank_pattern"},
		{"zero rank", editConfig(t, cfg, "r", 0), w, "must be positive"},
		{"layers_to_transform", editConfig(t, cfg, "layers_to_transform", []int{0}), w, "layers_to_transform is set"},
		{"lora_bias", editConfig(t, cfg, "lora_bias", true), w, "lora_bias is set"},
		{"exclude_modules", editConfig(t, cfg, "exclude_modules", "q_proj"), w, "exclude_modules is set"},
		{"target_modules number", editConfig(t, cfg, "target_modules", 3), w, "target_modules"},
		{"config not json", []byte("{"), w, ConfigFile},
		{"config null", []byte("null"), w, "null"},
		{"weights garbage", cfg, []byte("garbage!"), WeightsFile},
		{"no tensors", editConfig(t, cfg, "target_modules", nil), editWeights(t, w, func(m map[string]safetensors.Tensor) { clear(m) }), "no LoRA tensors"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.cfg, tc.w)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode error %v, want one containing %q", err, tc.want)
			}
		})
	}
	// SkyRL/PEFT 0.18 write these unset; they are accepted.
	plain := cfg
	for k, v := range map[string]any{"layers_to_transform": nil, "lora_bias": false, "exclude_modules": nil, "rank_pattern": map[string]int{}, "peft_version": "0.18.1"} {
		plain = editConfig(t, plain, k, v)
	}
	if _, err := Decode(plain, w); err != nil {
		t.Errorf("unset extras: %v", err)
	}
	if _, err := Decode(editConfig(t, cfg, "target_modules", "all-linear"), w); err != nil {
		t.Errorf("all-linear: %v", err)
	}
	if _, err := Decode(editConfig(t, cfg, "target_modules", `model\.layers\.\d+\.(self_attn\.q_proj|mlp\.up_proj)`), w); err != nil {
		t.Errorf("regex target_modules: %v", err)
	}
}

func TestCheckAgainstBase(t *testing.T) {
	a := randomAdapter(t, 2, []string{"k_proj", "down_proj"})
	if err := a.Check(tiny); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		d    Dims
		want string
	}{
		{"fewer layers", Dims{Layers: 1, Hidden: 8, Intermediate: 12, QDim: 8, KVDim: 4, Vocab: 16}, "only 1 layers"},
		{"other kv width", Dims{Layers: 2, Hidden: 8, Intermediate: 12, QDim: 8, KVDim: 8, Vocab: 16}, "k_proj is [4, 8]"},
		{"other intermediate", Dims{Layers: 2, Hidden: 8, Intermediate: 16, QDim: 8, KVDim: 4, Vocab: 16}, "down_proj is [8, 12]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := a.Check(tc.d)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check error %v, want %q", err, tc.want)
			}
		})
	}
	head := &Adapter{Config: NewConfig("b", 1, 1), Modules: map[string]*Module{
		"lm_head": {Rank: 1, In: 8, Out: 16, A: make([]float32, 8), B: make([]float32, 16)}}}
	if err := head.Check(tiny); err != nil {
		t.Errorf("untied lm_head: %v", err)
	}
	tied := tiny
	tied.TiedEmbeddings = true
	if err := head.Check(tied); err == nil || !strings.Contains(err.Error(), "tied") {
		t.Errorf("tied lm_head: %v", err)
	}
}

// mapWeights is a base model as a map of flat tensors.
type mapWeights map[string][]float32

func (m mapWeights) Tensor(name string) ([]float32, bool) { v, ok := m[name]; return v, ok }

func baseWeights(d Dims, modules []string) mapWeights {
	w := mapWeights{}
	rng := rand.New(rand.NewPCG(7, 8))
	for l := 0; l < d.Layers; l++ {
		for _, s := range modules {
			name := fmt.Sprintf("model.layers.%d.self_attn.%s", l, s)
			if slices.Contains(mlpModules, s) {
				name = fmt.Sprintf("model.layers.%d.mlp.%s", l, s)
			}
			out, in, _ := d.Shape(name)
			v := make([]float32, out*in)
			for i := range v {
				v[i] = float32(rng.NormFloat64())
			}
			w[name+".weight"] = v
		}
	}
	return w
}

func TestMergeMatchesDefinition(t *testing.T) {
	mods := []string{"q_proj", "o_proj", "gate_proj", "down_proj"}
	for _, rs := range []bool{false, true} {
		a := randomAdapter(t, 3, mods)
		a.Config.UseRSLoRA = rs
		a.Config.LoraAlpha = 6
		scale := 2.0
		if rs {
			scale = 6 / math.Sqrt(3)
		}
		if a.Scale() != scale {
			t.Fatalf("rslora=%v: Scale() = %v, want %v", rs, a.Scale(), scale)
		}
		w := baseWeights(tiny, mods)
		before := mapWeights{}
		for k, v := range w {
			before[k] = slices.Clone(v)
		}
		if err := a.Merge(w, tiny); err != nil {
			t.Fatal(err)
		}
		for name, m := range a.Modules {
			got, want := w[name+".weight"], before[name+".weight"]
			for o := 0; o < m.Out; o++ {
				for i := 0; i < m.In; i++ {
					d := 0.0
					for k := 0; k < m.Rank; k++ {
						d += float64(m.B[o*m.Rank+k]) * float64(m.A[k*m.In+i])
					}
					exp := float64(want[o*m.In+i]) + scale*d
					if math.Abs(float64(got[o*m.In+i])-exp) > 1e-5*(1+math.Abs(exp)) {
						t.Fatalf("rslora=%v %s[%d,%d] = %v, want %v", rs, name, o, i, got[o*m.In+i], exp)
					}
				}
			}
		}
	}
}

// A merge that cannot complete leaves the base untouched.
func TestMergeFailsWhole(t *testing.T) {
	mods := []string{"q_proj", "v_proj"}
	a := randomAdapter(t, 2, mods)
	w := baseWeights(tiny, mods)
	delete(w, "model.layers.1.self_attn.v_proj.weight")
	q := slices.Clone(w["model.layers.0.self_attn.q_proj.weight"])
	err := a.Merge(w, tiny)
	if err == nil || !strings.Contains(err.Error(), "v_proj.weight") {
		t.Fatalf("Merge error %v", err)
	}
	if !slices.Equal(q, w["model.layers.0.self_attn.q_proj.weight"]) {
		t.Error("a failed merge changed the base weights")
	}
	w = baseWeights(tiny, mods)
	w["model.layers.0.self_attn.q_proj.weight"] = w["model.layers.0.self_attn.q_proj.weight"][:3]
	if err := a.Merge(w, tiny); err == nil || !strings.Contains(err.Error(), "has 3 values") {
		t.Errorf("short base tensor: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), ConfigFile) {
		t.Errorf("empty dir: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), make([]byte, maxConfigBytes+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("huge config: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	a := &Adapter{Config: NewConfig("b", 1, 2), Modules: map[string]*Module{
		"model.layers.0.self_attn.q_proj": {Rank: 1, In: 2, Out: 2, A: []float32{1, 2}, B: []float32{3, 4}}}}
	cfg, w, err := a.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cfg, w)
	f.Add([]byte(`{"peft_type":"LORA","r":1,"lora_alpha":32,"target_modules":null}`), w)
	f.Add([]byte(`{"peft_type":"LORA","r":1,"target_modules":"all-linear"}`), []byte{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '})
	f.Fuzz(func(t *testing.T, cfg, w []byte) {
		a, err := Decode(cfg, w)
		if err != nil {
			return
		}
		// Whatever decodes must encode and decode back to the same modules.
		c2, w2, err := a.Encode()
		if err != nil {
			t.Fatalf("decoded adapter does not encode: %v", err)
		}
		b, err := Decode(c2, w2)
		if err != nil {
			t.Fatalf("re-encoded adapter does not decode: %v", err)
		}
		if len(b.Modules) != len(a.Modules) {
			t.Fatalf("%d modules became %d", len(a.Modules), len(b.Modules))
		}
	})
}
