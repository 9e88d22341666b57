package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// LoRA (Hu et al. 2021) as PEFT implements it: each target projection
// y = x·Wᵀ gains a low-rank term s·(x·Aᵀ)·Bᵀ with A [r×in], B [out×r] and
// s = alpha/r. The base weights stay frozen; only A and B are trained.

// LoRAModules are the projections an adapter can target, in the order the
// decoder runs them; the names are PEFT's target_modules.
var LoRAModules = [loraNumModules]string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

const (
	loraQ = iota
	loraK
	loraV
	loraO
	loraGate
	loraUp
	loraDown
	loraNumModules
)

// loraModulePrefix is the Hugging Face submodule each projection sits in.
func loraModulePrefix(m int) string {
	if m <= loraO {
		return "self_attn."
	}
	return "mlp."
}

// loraDims returns (in, out) of projection m.
func loraDims(c *Config, m int) (in, out int) {
	d, qd, kvd, ff := c.HiddenSize, c.NumAttentionHeads*c.headDim(), c.NumKeyValueHeads*c.headDim(), c.IntermediateSize
	switch m {
	case loraQ:
		return d, qd
	case loraK, loraV:
		return d, kvd
	case loraO:
		return qd, d
	case loraGate, loraUp:
		return d, ff
	default:
		return ff, d
	}
}

// LoRAConfig chooses an adapter's shape.
type LoRAConfig struct {
	Rank  int
	Alpha float64 // 0 means Rank (scaling 1)
	// Targets are LoRAModules names; empty means all seven.
	Targets []string
	// BaseModel is written as base_model_name_or_path in saved adapters
	// (the base model's directory or hub id); optional.
	BaseModel string
}

// loraPair holds one projection's factors; both nil when not targeted.
type loraPair struct{ a, b []float32 }

// Adapter is a set of LoRA factors for one base model configuration. Its
// factors live in one flat buffer so that gradients and AdamW moments are
// loops over Flat, like Params.
type Adapter struct {
	Config  *Config
	Rank    int
	Alpha   float64
	Targets []string // in LoRAModules order
	Flat    []float32
	layers  [][loraNumModules]loraPair
}

// Scaling is alpha/r, the factor on B·A.
func (ad *Adapter) Scaling() float32 { return float32(ad.Alpha / float64(ad.Rank)) }

// loraSpec is one adapter tensor with its PEFT key (below the
// "base_model.model." prefix) and shape.
type loraSpec struct {
	layer, module int
	isB           bool
	name          string
	shape         [2]int
}

func (ad *Adapter) specs() []loraSpec {
	var out []loraSpec
	for l := 0; l < ad.Config.NumHiddenLayers; l++ {
		for m := range loraNumModules {
			if !slices.Contains(ad.Targets, LoRAModules[m]) {
				continue
			}
			in, o := loraDims(ad.Config, m)
			base := fmt.Sprintf("model.layers.%d.%s%s", l, loraModulePrefix(m), LoRAModules[m])
			out = append(out,
				loraSpec{l, m, false, base + ".lora_A.weight", [2]int{ad.Rank, in}},
				loraSpec{l, m, true, base + ".lora_B.weight", [2]int{o, ad.Rank}})
		}
	}
	return out
}

// NewAdapter allocates a zero adapter (every factor 0) for c.
func NewAdapter(c *Config, lc LoRAConfig) (*Adapter, error) {
	if lc.Rank <= 0 {
		return nil, fmt.Errorf("lora: rank must be positive, got %d", lc.Rank)
	}
	if lc.Alpha < 0 || math.IsNaN(lc.Alpha) || math.IsInf(lc.Alpha, 0) {
		return nil, fmt.Errorf("lora: alpha must be a non-negative number, got %v", lc.Alpha)
	}
	alpha := lc.Alpha
	if alpha == 0 {
		alpha = float64(lc.Rank)
	}
	var targets []string
	if len(lc.Targets) == 0 {
		targets = LoRAModules[:]
	} else {
		for _, t := range lc.Targets {
			if !slices.Contains(LoRAModules[:], t) {
				return nil, fmt.Errorf("lora: target module %q is not supported (want some of %v)", t, LoRAModules)
			}
		}
		for _, m := range LoRAModules {
			if slices.Contains(lc.Targets, m) {
				targets = append(targets, m)
			}
		}
	}
	ad := &Adapter{Config: c, Rank: lc.Rank, Alpha: alpha, Targets: targets}
	ad.layout(nil)
	return ad, nil
}

// layout points the per-layer views into flat (allocated when nil).
func (ad *Adapter) layout(flat []float32) {
	specs := ad.specs()
	total := 0
	for _, s := range specs {
		total += s.shape[0] * s.shape[1]
	}
	if flat == nil {
		flat = make([]float32, total)
	}
	ad.Flat = flat[:total]
	ad.layers = make([][loraNumModules]loraPair, ad.Config.NumHiddenLayers)
	off := 0
	for _, s := range specs {
		n := s.shape[0] * s.shape[1]
		v := ad.Flat[off : off+n : off+n]
		off += n
		if s.isB {
			ad.layers[s.layer][s.module].b = v
		} else {
			ad.layers[s.layer][s.module].a = v
		}
	}
}

// InitPEFT initialises the factors as PEFT's default init_lora_weights
// does: A from kaiming_uniform_(a=√5), i.e. U(−1/√in, 1/√in), and B zero,
// so the adapted model starts equal to the base.
func (ad *Adapter) InitPEFT(seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x10aa))
	for l := range ad.layers {
		for m := range loraNumModules {
			pr := ad.layers[l][m]
			if pr.a == nil {
				continue
			}
			in, _ := loraDims(ad.Config, m)
			bound := 1 / math.Sqrt(float64(in))
			for i := range pr.a {
				pr.a[i] = float32((2*rng.Float64() - 1) * bound)
			}
			clear(pr.b)
		}
	}
}

// Clone returns a deep copy with its own buffer.
func (ad *Adapter) Clone() *Adapter {
	c := &Adapter{Config: ad.Config, Rank: ad.Rank, Alpha: ad.Alpha, Targets: slices.Clone(ad.Targets)}
	c.layout(slices.Clone(ad.Flat))
	return c
}

// zeroLike is an adapter of the same shape with all factors zero (for
// gradients and optimiser moments).
func (ad *Adapter) zeroLike() *Adapter {
	c := &Adapter{Config: ad.Config, Rank: ad.Rank, Alpha: ad.Alpha, Targets: ad.Targets}
	c.layout(nil)
	return c
}

// Tensors returns every factor by its PEFT key without the
// "base_model.model." prefix, e.g. "model.layers.0.self_attn.q_proj.lora_A.weight",
// with its [rows, cols] shape. The slices alias the adapter.
func (ad *Adapter) Tensors() (names []string, shapes [][2]int, data [][]float32) {
	for _, s := range ad.specs() {
		pr := ad.layers[s.layer][s.module]
		v := pr.a
		if s.isB {
			v = pr.b
		}
		names = append(names, s.name)
		shapes = append(shapes, s.shape)
		data = append(data, v)
	}
	return names, shapes, data
}

// SetTensor copies one factor in by its key (with or without the
// "base_model.model." prefix), checking its shape.
func (ad *Adapter) SetTensor(name string, shape []int, v []float32) error {
	const prefix = "base_model.model."
	if len(name) > len(prefix) && name[:len(prefix)] == prefix {
		name = name[len(prefix):]
	}
	for _, s := range ad.specs() {
		if s.name != name {
			continue
		}
		if len(shape) != 2 || shape[0] != s.shape[0] || shape[1] != s.shape[1] {
			return fmt.Errorf("lora: tensor %s has shape %v, want %v", name, shape, s.shape)
		}
		pr := ad.layers[s.layer][s.module]
		dst := pr.a
		if s.isB {
			dst = pr.b
		}
		copy(dst, v)
		return nil
	}
	return fmt.Errorf("lora: tensor %s does not belong to a rank-%d adapter on %v of this model", name, ad.Rank, ad.Targets)
}

// MergeInto returns new weights W + s·B·A for every adapted projection;
// w is not modified.
func (ad *Adapter) MergeInto(w *Weights) (*Weights, error) {
	if err := ad.compatible(w.Config); err != nil {
		return nil, err
	}
	return ad.merge(w), nil
}

// merge is MergeInto for weights known to fit the adapter.
func (ad *Adapter) merge(w *Weights) *Weights {
	out := &Weights{Config: w.Config, Params: w.Params.Clone()}
	s := ad.Scaling()
	for l := range ad.layers {
		lp := &out.layers[l]
		dst := [loraNumModules][]float32{lp.wq, lp.wk, lp.wv, lp.wo, lp.wGate, lp.wUp, lp.wDown}
		for m, pr := range ad.layers[l] {
			if pr.a == nil {
				continue
			}
			in, o := loraDims(ad.Config, m)
			ba := make([]float32, o*in)
			matMulNN(ba, pr.b, pr.a, o, ad.Rank, in, false)
			for i, v := range ba {
				dst[m][i] += s * v
			}
		}
	}
	return out
}

// compatible reports whether the adapter fits a model of configuration c.
func (ad *Adapter) compatible(c *Config) error {
	for m := range loraNumModules {
		in, o := loraDims(ad.Config, m)
		in2, o2 := loraDims(c, m)
		if in != in2 || o != o2 {
			return fmt.Errorf("lora: adapter %s is %d→%d but the model's is %d→%d", LoRAModules[m], in, o, in2, o2)
		}
	}
	if ad.Config.NumHiddenLayers != c.NumHiddenLayers {
		return fmt.Errorf("lora: adapter has %d layers but the model has %d", ad.Config.NumHiddenLayers, c.NumHiddenLayers)
	}
	return nil
}

// CheckFinite reports the first non-finite factor.
func (ad *Adapter) CheckFinite() error {
	for i, x := range ad.Flat {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("lora: adapter value %d is %v", i, x)
		}
	}
	return nil
}

// loraForward adds the low-rank term of projection m for rows [r0, r0+n):
// dst += (s·x·Aᵀ)·Bᵀ. When u is non-nil (length n·r) it receives s·x·Aᵀ,
// which the backward pass needs.
func (ad *Adapter) loraForward(dst, x, u []float32, layer, m, r0, n int) {
	pr := ad.layers[layer][m]
	if pr.a == nil {
		return
	}
	in, out := loraDims(ad.Config, m)
	r := ad.Rank
	if u == nil {
		u = make([]float32, n*r)
	}
	matMulNT(u, x[r0*in:(r0+n)*in], pr.a, n, in, r, false)
	s := ad.Scaling()
	for i := range u[:n*r] {
		u[i] *= s
	}
	matMulNT(dst[r0*out:(r0+n)*out], u, pr.b, n, r, out, true)
}

// loraBackward accumulates projection m's factor gradients into g and adds
// the low-rank path's input gradient to dx (skipped when dx is nil: no
// one needs it), given the output gradient dy, the input x and
// u = s·x·Aᵀ saved by loraForward, over T rows.
//
//	dB += dyᵀ·u,  du = s·dy·B,  dA += duᵀ·x,  dx += du·A.
func (ad *Adapter) loraBackward(g *Adapter, dx, dy, x, u []float32, layer, m, T int) {
	pr := ad.layers[layer][m]
	if pr.a == nil {
		return
	}
	gp := g.layers[layer][m]
	in, out := loraDims(ad.Config, m)
	r := ad.Rank
	matMulTN(gp.b, dy, u, out, T, r, true)
	du := make([]float32, T*r)
	matMulNN(du, dy, pr.b, T, out, r, false)
	s := ad.Scaling()
	for i := range du {
		du[i] *= s
	}
	matMulTN(gp.a, du, x, r, T, in, true)
	if dx != nil {
		matMulNN(dx, du, pr.a, T, r, in, true)
	}
}
