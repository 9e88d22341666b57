package peft

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/safetensors"
)

// File names inside an adapter directory.
const (
	ConfigFile  = "adapter_config.json"
	WeightsFile = "adapter_model.safetensors"
)

// maxConfigBytes bounds adapter_config.json; real ones are a few KB.
const maxConfigBytes = 1 << 20

// keyPrefix is what PEFT puts before a module name in the weights file.
const keyPrefix = "base_model.model."

// Suffixes of the modules this package knows, in the order they are
// listed in target_modules when written.
var (
	attnModules = []string{"q_proj", "k_proj", "v_proj", "o_proj"}
	mlpModules  = []string{"gate_proj", "up_proj", "down_proj"}
	// AllModules are the seven projections of a Qwen2/Qwen3/Llama layer
	// (what SkyRL/Tinker trains) plus the output head.
	AllModules = append(append(append([]string{}, attnModules...), mlpModules...), "lm_head")
)

// Module is one LoRA pair. A is [Rank, In] and B is [Out, Rank], row-major,
// as nn.Linear stores them.
type Module struct {
	Rank, In, Out int
	A, B          []float32
}

// Adapter is a decoded adapter directory.
type Adapter struct {
	Config Config
	// Modules by module name ("model.layers.0.self_attn.q_proj", "lm_head").
	Modules map[string]*Module
}

// Load reads an adapter directory.
func Load(dir string) (*Adapter, error) {
	cfg, err := readBounded(filepath.Join(dir, ConfigFile), maxConfigBytes)
	if err != nil {
		return nil, fmt.Errorf("peft adapter %s: %w", dir, err)
	}
	weights, err := os.ReadFile(filepath.Join(dir, WeightsFile))
	if err != nil {
		return nil, fmt.Errorf("peft adapter %s: %w", dir, err)
	}
	a, err := Decode(cfg, weights)
	if err != nil {
		return nil, fmt.Errorf("peft adapter %s: %w", dir, err)
	}
	return a, nil
}

func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d an adapter config may have", filepath.Base(path), st.Size(), limit)
	}
	buf := make([]byte, st.Size())
	if _, err := f.ReadAt(buf, 0); err != nil && st.Size() > 0 {
		return nil, err
	}
	return buf, nil
}

// Decode parses adapter_config.json and adapter_model.safetensors held in
// memory and checks everything that does not need the base model: the
// config's settings, that every module has both halves, that the halves'
// shapes agree with each other and with r, that every tensor is finite,
// and that the modules are the ones target_modules names.
func Decode(configJSON, weights []byte) (*Adapter, error) {
	var c Config
	if err := json.Unmarshal(configJSON, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", ConfigFile, err)
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	tensors, err := safetensors.Decode(weights)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", WeightsFile, err)
	}
	a := &Adapter{Config: c, Modules: map[string]*Module{}}
	halves := map[string][2]*safetensors.Tensor{}
	for key, t := range tensors {
		module, half, err := parseKey(key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", WeightsFile, err)
		}
		h := halves[module]
		t := t
		h[half] = &t
		halves[module] = h
	}
	for module, h := range halves {
		switch {
		case h[0] == nil:
			return nil, fmt.Errorf("%s: module %s has lora_B but no lora_A", WeightsFile, module)
		case h[1] == nil:
			return nil, fmt.Errorf("%s: module %s has lora_A but no lora_B", WeightsFile, module)
		case len(h[0].Shape) != 2 || len(h[1].Shape) != 2:
			return nil, fmt.Errorf("%s: module %s: lora_A %v and lora_B %v must be matrices", WeightsFile, module, h[0].Shape, h[1].Shape)
		}
		m := &Module{Rank: h[0].Shape[0], In: h[0].Shape[1], Out: h[1].Shape[0], A: h[0].Data, B: h[1].Data}
		switch {
		case h[1].Shape[1] != m.Rank:
			return nil, fmt.Errorf("%s: module %s: lora_A is %v and lora_B %v; their ranks differ", WeightsFile, module, h[0].Shape, h[1].Shape)
		case m.Rank != c.R:
			return nil, fmt.Errorf("%s: module %s has rank %d but adapter_config.json says r = %d", WeightsFile, module, m.Rank, c.R)
		case m.In == 0 || m.Out == 0:
			return nil, fmt.Errorf("%s: module %s has an empty dimension (lora_A %v, lora_B %v)", WeightsFile, module, h[0].Shape, h[1].Shape)
		}
		if err := finite(module, m); err != nil {
			return nil, fmt.Errorf("%s: %w", WeightsFile, err)
		}
		if !c.targets(module) {
			return nil, fmt.Errorf("%s: module %s has LoRA tensors but target_modules %s does not name it", WeightsFile, module, c.targetsString())
		}
		a.Modules[module] = m
	}
	if len(a.Modules) == 0 {
		return nil, fmt.Errorf("%s holds no LoRA tensors", WeightsFile)
	}
	for _, t := range c.TargetModules {
		if !slices.ContainsFunc(a.moduleNames(), func(m string) bool { return m == t || strings.HasSuffix(m, "."+t) }) {
			return nil, fmt.Errorf("%s: target module %q has no LoRA tensors", WeightsFile, t)
		}
	}
	return a, nil
}

func (c *Config) targetsString() string {
	if c.TargetModules != nil {
		return fmt.Sprint(c.TargetModules)
	}
	return strconv.Quote(c.TargetRegex)
}

// parseKey splits "base_model.model.<module>.lora_{A,B}.weight" into the
// module name and 0 for A, 1 for B, accepting only modules this package can
// merge.
func parseKey(key string) (string, int, error) {
	rest, ok := strings.CutPrefix(key, keyPrefix)
	if !ok {
		return "", 0, fmt.Errorf("tensor %q does not start with %q", key, keyPrefix)
	}
	var half int
	switch {
	case strings.HasSuffix(rest, ".lora_A.weight"):
		rest, half = strings.TrimSuffix(rest, ".lora_A.weight"), 0
	case strings.HasSuffix(rest, ".lora_B.weight"):
		rest, half = strings.TrimSuffix(rest, ".lora_B.weight"), 1
	default:
		return "", 0, fmt.Errorf("tensor %q is not a lora_A.weight or lora_B.weight (embedding LoRA, biases and DoRA magnitudes are not supported)", key)
	}
	if _, _, err := splitModule(rest); err != nil {
		return "", 0, fmt.Errorf("tensor %q: %w", key, err)
	}
	return rest, half, nil
}

// splitModule parses "model.layers.N.self_attn.q_proj" into (N, "q_proj"),
// and "lm_head" into (-1, "lm_head").
func splitModule(module string) (int, string, error) {
	if module == "lm_head" {
		return -1, "lm_head", nil
	}
	parts := strings.Split(module, ".")
	if len(parts) == 5 && parts[0] == "model" && parts[1] == "layers" {
		n, err := strconv.Atoi(parts[2])
		if err == nil && n >= 0 && strconv.Itoa(n) == parts[2] {
			switch {
			case parts[3] == "self_attn" && slices.Contains(attnModules, parts[4]),
				parts[3] == "mlp" && slices.Contains(mlpModules, parts[4]):
				return n, parts[4], nil
			}
		}
	}
	return 0, "", fmt.Errorf("unknown module %q: want model.layers.N.self_attn.{q,k,v,o}_proj, model.layers.N.mlp.{gate,up,down}_proj or lm_head", module)
}

func finite(module string, m *Module) error {
	for _, v := range [2][]float32{m.A, m.B} {
		for i, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("module %s: value %d is %v", module, i, x)
			}
		}
	}
	return nil
}

func (a *Adapter) moduleNames() []string {
	names := make([]string, 0, len(a.Modules))
	for n := range a.Modules {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Targets are the module suffixes the adapter has tensors for, in the
// canonical order (q, k, v, o, gate, up, down, lm_head) — what
// target_modules must say for PEFT to load every tensor (SkyRL writes null,
// which PEFT reads as its per-architecture default, dropping modules).
func (a *Adapter) Targets() []string {
	seen := map[string]bool{}
	for name := range a.Modules {
		_, suffix, _ := splitModule(name)
		seen[suffix] = true
	}
	var out []string
	for _, s := range AllModules {
		if seen[s] {
			out = append(out, s)
		}
	}
	return out
}

// Scale is the factor merged with B·A.
func (a *Adapter) Scale() float64 { return a.Config.Scale() }

// Dims are the base model's sizes that fix every module's shape.
type Dims struct {
	Layers, Hidden, Intermediate int
	// QDim is heads × head_dim, KVDim key/value heads × head_dim.
	QDim, KVDim, Vocab int
	// TiedEmbeddings: lm_head is the embedding matrix, which a LoRA on
	// lm_head cannot be merged into without changing the input embeddings.
	TiedEmbeddings bool
}

// Shape is the base weight's [out, in] for a module name.
func (d Dims) Shape(module string) (out, in int, err error) {
	layer, suffix, err := splitModule(module)
	if err != nil {
		return 0, 0, err
	}
	if layer >= d.Layers {
		return 0, 0, fmt.Errorf("module %s: the base model has only %d layers", module, d.Layers)
	}
	switch suffix {
	case "q_proj":
		return d.QDim, d.Hidden, nil
	case "k_proj", "v_proj":
		return d.KVDim, d.Hidden, nil
	case "o_proj":
		return d.Hidden, d.QDim, nil
	case "gate_proj", "up_proj":
		return d.Intermediate, d.Hidden, nil
	case "down_proj":
		return d.Hidden, d.Intermediate, nil
	}
	return d.Vocab, d.Hidden, nil // lm_head
}

// Check compares every module with the base model's shapes.
func (a *Adapter) Check(d Dims) error {
	for _, name := range a.moduleNames() {
		m := a.Modules[name]
		out, in, err := d.Shape(name)
		if err != nil {
			return fmt.Errorf("peft adapter: %w", err)
		}
		if m.Out != out || m.In != in {
			return fmt.Errorf("peft adapter: module %s is [%d, %d] (lora_B rows, lora_A columns) but the base model's weight is [%d, %d]; was the adapter trained on another base model?",
				name, m.Out, m.In, out, in)
		}
		if name == "lm_head" && d.TiedEmbeddings {
			return errors.New("peft adapter: a LoRA on lm_head cannot be merged into a model whose lm_head is tied to the embeddings")
		}
	}
	return nil
}

// Weights is a base model's parameters by Hugging Face name; the engine's
// Params satisfies it.
type Weights interface {
	Tensor(name string) ([]float32, bool)
}

// Merge adds scale·B·A to every targeted base weight in place, after
// checking every module first so that a failed merge changes nothing.
func (a *Adapter) Merge(w Weights, d Dims) error {
	if err := a.Check(d); err != nil {
		return err
	}
	names := a.moduleNames()
	views := make([][]float32, len(names))
	for i, name := range names {
		m := a.Modules[name]
		v, ok := w.Tensor(name + ".weight")
		if !ok {
			return fmt.Errorf("peft merge: the base model has no tensor %s.weight", name)
		}
		if len(v) != m.Out*m.In {
			return fmt.Errorf("peft merge: %s.weight has %d values, want %d×%d", name, len(v), m.Out, m.In)
		}
		views[i] = v
	}
	scale := a.Scale()
	for i, name := range names {
		a.Modules[name].addTo(views[i], scale)
	}
	return nil
}

// addTo adds scale·B·A to w [Out, In]. Each product row is summed in
// float64 and rounded once, so the merge is as exact as the float32 result
// allows.
func (m *Module) addTo(w []float32, scale float64) {
	row := make([]float64, m.In)
	for o := 0; o < m.Out; o++ {
		clear(row)
		for k := 0; k < m.Rank; k++ {
			b := float64(m.B[o*m.Rank+k])
			if b == 0 {
				continue
			}
			a := m.A[k*m.In : (k+1)*m.In]
			for i, x := range a {
				row[i] += b * float64(x)
			}
		}
		wr := w[o*m.In : (o+1)*m.In]
		for i := range wr {
			wr[i] = float32(float64(wr[i]) + scale*row[i])
		}
	}
}

// Encode serialises the adapter: its config with target_modules set to the
// modules present, and its tensors in F32.
func (a *Adapter) Encode() (configJSON, weights []byte, err error) {
	c := a.Config
	if c.PeftType == "" {
		c.PeftType = "LORA"
	}
	if c.Bias == "" {
		c.Bias = "none"
	}
	c.TargetModules, c.TargetRegex = a.Targets(), ""
	for name, m := range a.Modules {
		if m.Rank != c.R {
			return nil, nil, fmt.Errorf("peft adapter: module %s has rank %d, config r = %d", name, m.Rank, c.R)
		}
	}
	if err := c.check(); err != nil {
		return nil, nil, err
	}
	if configJSON, err = json.MarshalIndent(c, "", "  "); err != nil {
		return nil, nil, err
	}
	var ts []safetensors.NamedTensor
	for _, name := range a.moduleNames() {
		m := a.Modules[name]
		if _, _, err := splitModule(name); err != nil {
			return nil, nil, fmt.Errorf("peft adapter: %w", err)
		}
		ts = append(ts,
			safetensors.NamedTensor{Name: keyPrefix + name + ".lora_A.weight", Shape: []int{m.Rank, m.In}, Data: m.A},
			safetensors.NamedTensor{Name: keyPrefix + name + ".lora_B.weight", Shape: []int{m.Out, m.Rank}, Data: m.B})
	}
	if weights, err = safetensors.Encode(ts, safetensors.F32, map[string]string{"format": "pt"}); err != nil {
		return nil, nil, fmt.Errorf("peft adapter: %w", err)
	}
	return append(configJSON, '\n'), weights, nil
}

// Save writes the adapter into dir (created if needed), each file
// atomically; the weights go first so a config never names missing weights.
func (a *Adapter) Save(dir string) error {
	cfg, weights, err := a.Encode()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save adapter: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, WeightsFile), weights); err != nil {
		return fmt.Errorf("save adapter: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ConfigFile), cfg); err != nil {
		return fmt.Errorf("save adapter: %w", err)
	}
	return nil
}

// NewConfig is the adapter_config.json of a fresh LoRA adapter, with the
// values PEFT itself writes for a causal LM.
func NewConfig(baseModel string, rank int, alpha float64) Config {
	return Config{PeftType: "LORA", TaskType: "CAUSAL_LM", BaseModel: baseModel, R: rank, LoraAlpha: alpha,
		Bias: "none", InferenceMode: true}
}
