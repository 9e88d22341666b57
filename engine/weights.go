package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// paramSpec names one tensor of the model with its Hugging Face name and
// shape; paramLayout lists them in the order they sit in the flat buffer.
type paramSpec struct {
	name  string
	shape []int
}

func (s paramSpec) size() int {
	n := 1
	for _, d := range s.shape {
		n *= d
	}
	return n
}

func paramLayout(c *Config) []paramSpec {
	d, hd := c.HiddenSize, c.headDim()
	qd, kvd, ff := c.NumAttentionHeads*hd, c.NumKeyValueHeads*hd, c.IntermediateSize
	specs := []paramSpec{{"model.embed_tokens.weight", []int{c.VocabSize, d}}}
	for l := 0; l < c.NumHiddenLayers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		specs = append(specs,
			paramSpec{p + "input_layernorm.weight", []int{d}},
			paramSpec{p + "self_attn.q_proj.weight", []int{qd, d}},
			paramSpec{p + "self_attn.k_proj.weight", []int{kvd, d}},
			paramSpec{p + "self_attn.v_proj.weight", []int{kvd, d}},
		)
		if c.qkvBias() {
			specs = append(specs,
				paramSpec{p + "self_attn.q_proj.bias", []int{qd}},
				paramSpec{p + "self_attn.k_proj.bias", []int{kvd}},
				paramSpec{p + "self_attn.v_proj.bias", []int{kvd}},
			)
		}
		if c.qkNorm() {
			specs = append(specs,
				paramSpec{p + "self_attn.q_norm.weight", []int{hd}},
				paramSpec{p + "self_attn.k_norm.weight", []int{hd}},
			)
		}
		specs = append(specs, paramSpec{p + "self_attn.o_proj.weight", []int{d, qd}})
		if c.oBias() {
			specs = append(specs, paramSpec{p + "self_attn.o_proj.bias", []int{d}})
		}
		specs = append(specs,
			paramSpec{p + "post_attention_layernorm.weight", []int{d}},
			paramSpec{p + "mlp.gate_proj.weight", []int{ff, d}},
			paramSpec{p + "mlp.up_proj.weight", []int{ff, d}},
			paramSpec{p + "mlp.down_proj.weight", []int{d, ff}},
		)
	}
	specs = append(specs, paramSpec{"model.norm.weight", []int{d}})
	if !c.TieWordEmbeddings {
		specs = append(specs, paramSpec{"lm_head.weight", []int{c.VocabSize, d}})
	}
	return specs
}

// layerParams are views into a flat buffer for one decoder layer. Weight
// matrices are [out, in] row-major, as in PyTorch's nn.Linear. Optional
// tensors (biases, q/k norms) are nil when the architecture lacks them.
type layerParams struct {
	inNorm, postNorm  []float32
	wq, wk, wv, wo    []float32
	bq, bk, bv, bo    []float32
	qNorm, kNorm      []float32
	wGate, wUp, wDown []float32
}

// Params are named views into one flat []float32. The same type holds
// weights, gradients and optimiser moments, so every update is a loop over
// Flat.
type Params struct {
	Flat   []float32
	embed  []float32
	layers []layerParams
	norm   []float32
	lmHead []float32 // aliases embed when the embeddings are tied
	byName map[string][]float32
	cfg    *Config
}

// newParams lays out views over flat (allocated when nil).
func newParams(c *Config, flat []float32) *Params {
	specs := paramLayout(c)
	total := 0
	for _, s := range specs {
		total += s.size()
	}
	if flat == nil {
		flat = make([]float32, total)
	}
	p := &Params{Flat: flat[:total], byName: make(map[string][]float32, len(specs)), cfg: c,
		layers: make([]layerParams, c.NumHiddenLayers)}
	off := 0
	for _, s := range specs {
		v := p.Flat[off : off+s.size() : off+s.size()]
		off += s.size()
		p.byName[s.name] = v
	}
	p.embed = p.byName["model.embed_tokens.weight"]
	p.norm = p.byName["model.norm.weight"]
	if c.TieWordEmbeddings {
		p.lmHead = p.embed
	} else {
		p.lmHead = p.byName["lm_head.weight"]
	}
	for l := range p.layers {
		n := func(s string) []float32 { return p.byName[fmt.Sprintf("model.layers.%d.%s", l, s)] }
		p.layers[l] = layerParams{
			inNorm: n("input_layernorm.weight"), postNorm: n("post_attention_layernorm.weight"),
			wq: n("self_attn.q_proj.weight"), wk: n("self_attn.k_proj.weight"),
			wv: n("self_attn.v_proj.weight"), wo: n("self_attn.o_proj.weight"),
			bq: n("self_attn.q_proj.bias"), bk: n("self_attn.k_proj.bias"),
			bv: n("self_attn.v_proj.bias"), bo: n("self_attn.o_proj.bias"),
			qNorm: n("self_attn.q_norm.weight"), kNorm: n("self_attn.k_norm.weight"),
			wGate: n("mlp.gate_proj.weight"), wUp: n("mlp.up_proj.weight"), wDown: n("mlp.down_proj.weight"),
		}
	}
	return p
}

// Clone returns a deep copy with its own buffer.
func (p *Params) Clone() *Params {
	flat := make([]float32, len(p.Flat))
	copy(flat, p.Flat)
	return newParams(p.cfg, flat)
}

// Tensor returns the view of a tensor by its Hugging Face name.
func (p *Params) Tensor(name string) ([]float32, bool) {
	v, ok := p.byName[name]
	return v, ok
}

// Weights is an immutable snapshot of a model's parameters, shared by
// samplers. Trainers never mutate a Weights they have published.
type Weights struct {
	Config *Config
	*Params
}

// NewRandomWeights initialises a model like transformers does: normal
// weights with std initializer_range, ones for norms, zeros for biases.
func NewRandomWeights(c *Config, seed uint64) (*Weights, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	p := newParams(c, nil)
	std := c.InitRange
	if std == 0 {
		std = 0.02
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for _, s := range paramLayout(c) {
		v := p.byName[s.name]
		switch {
		case len(s.shape) == 1 && isNormName(s.name):
			for i := range v {
				v[i] = 1
			}
		case len(s.shape) == 1: // bias
		default:
			for i := range v {
				v[i] = float32(rng.NormFloat64() * std)
			}
		}
	}
	return &Weights{Config: c, Params: p}, nil
}

func isNormName(name string) bool {
	for _, suf := range []string{"layernorm.weight", "norm.weight"} {
		if len(name) >= len(suf) && name[len(name)-len(suf):] == suf {
			return true
		}
	}
	return false
}

// checkFinite reports the first non-finite parameter, so a diverged
// training run is caught before it is published.
func checkFinite(p *Params) error {
	for _, s := range paramLayout(p.cfg) {
		for i, x := range p.byName[s.name] {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("parameter %s[%d] is %v", s.name, i, x)
			}
		}
	}
	return nil
}
