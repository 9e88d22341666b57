package gguf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/tokenizer"
)

// ConvertOptions control Convert.
type ConvertOptions struct {
	// DType of model.safetensors. F32 (the default) keeps the dequantized
	// values exactly, which is what the fidelity tests compare against.
	DType engine.DType
}

// Converted summarises what Convert wrote.
type Converted struct {
	Config      *engine.Config
	TensorTypes map[GGMLType]int // GGUF tensors by storage type
	ChatFormat  tokenizer.ChatFormat
}

// Convert writes a Hugging Face model directory from a Llama-architecture
// GGUF file: config.json, model.safetensors, generation_config.json,
// tokenizer.json and tokenizer_config.json. The directory loads in the
// engine, in transformers and in SGLang.
func Convert(f *File, dir string, opts ConvertOptions) (*Converted, error) {
	if opts.DType == "" {
		opts.DType = engine.F32
	}
	w, types, err := Weights(f)
	if err != nil {
		return nil, err
	}
	// The tokenizer is checked (and written) before the large weights file.
	format, err := WriteTokenizer(f, dir)
	if err != nil {
		return nil, err
	}
	if err := engine.SaveWeights(dir, w, opts.DType); err != nil {
		return nil, err
	}
	cfg := w.Config
	gen := map[string]any{"_from_model_config": true}
	if cfg.BOSTokenID != nil {
		gen["bos_token_id"] = *cfg.BOSTokenID
	}
	if len(cfg.EOSTokenID) > 0 {
		gen["eos_token_id"] = cfg.EOSTokenID
	}
	if pad, ok := f.Int("tokenizer.ggml.padding_token_id"); ok {
		gen["pad_token_id"] = pad
	}
	if err := writeJSON(filepath.Join(dir, "generation_config.json"), gen); err != nil {
		return nil, err
	}
	return &Converted{Config: cfg, TensorTypes: types, ChatFormat: format}, nil
}

// Weights dequantizes a Llama-architecture GGUF into engine weights under
// transformers' names and layout, and counts its tensors by storage type.
func Weights(f *File) (*engine.Weights, map[GGMLType]int, error) {
	cfg, err := llamaConfig(f)
	if err != nil {
		return nil, nil, err
	}
	tensors, types, err := llamaTensors(f, cfg)
	if err != nil {
		return nil, nil, err
	}
	w, err := engine.WeightsFromTensors(cfg, tensors)
	if err != nil {
		return nil, nil, fmt.Errorf("gguf: %w", err)
	}
	return w, types, nil
}

// WriteTokenizer writes tokenizer.json and tokenizer_config.json (with the
// file's chat template) into dir, creating it if needed, and returns the
// chat format the tokenizer package recognises in the template.
func WriteTokenizer(f *File, dir string) (tokenizer.ChatFormat, error) {
	tokJSON, tokCfg, err := tokenizerFiles(f)
	if err != nil {
		return "", err
	}
	tok, err := tokenizer.FromJSON(tokJSON)
	if err != nil {
		return "", fmt.Errorf("gguf: the tokenizer built from the metadata does not load: %w", err)
	}
	if emb, ok := f.Tensor("token_embd.weight"); ok && len(emb.Dims) == 2 && uint64(tok.VocabSize()) != emb.Dims[1] {
		return "", fmt.Errorf("gguf: the tokenizer has %d tokens but the embedding has %d rows", tok.VocabSize(), emb.Dims[1])
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("gguf: %w", err)
	}
	if err := tok.Save(filepath.Join(dir, "tokenizer.json")); err != nil {
		return "", err
	}
	if err := writeJSON(filepath.Join(dir, "tokenizer_config.json"), tokCfg); err != nil {
		return "", err
	}
	// What the engine's tokenizer makes of the chat template it will render.
	saved, err := tokenizer.Load(dir)
	if err != nil {
		return "", fmt.Errorf("gguf: the written tokenizer does not load: %w", err)
	}
	return saved.ChatFormat(), nil
}

func writeJSON(path string, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, b.Bytes()); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	return nil
}

// llamaConfig maps llama.* metadata to a transformers LlamaConfig.
func llamaConfig(f *File) (*engine.Config, error) {
	arch, _ := f.String("general.architecture")
	if arch != "llama" {
		return nil, fmt.Errorf("gguf: architecture %q is not supported (llama is)", arch)
	}
	need := func(key string) (int, error) {
		v, ok := f.Int("llama." + key)
		if !ok || v <= 0 || v > 1<<30 {
			return 0, fmt.Errorf("gguf: metadata llama.%s is missing or not a positive integer", key)
		}
		return int(v), nil
	}
	c := &engine.Config{Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama", HiddenAct: "silu",
		TorchDtype: "float32"}
	var err error
	for _, p := range []struct {
		key string
		dst *int
	}{
		{"block_count", &c.NumHiddenLayers}, {"embedding_length", &c.HiddenSize},
		{"feed_forward_length", &c.IntermediateSize}, {"attention.head_count", &c.NumAttentionHeads},
		{"context_length", &c.MaxPositionEmbeddings},
	} {
		if *p.dst, err = need(p.key); err != nil {
			return nil, err
		}
	}
	c.NumKeyValueHeads = c.NumAttentionHeads
	if _, ok := f.Meta["llama.attention.head_count_kv"]; ok {
		if c.NumKeyValueHeads, err = need("attention.head_count_kv"); err != nil {
			return nil, err
		}
	}
	// Vocabulary size: the embedding's row count is the truth.
	emb, ok := f.Tensor("token_embd.weight")
	if !ok || len(emb.Dims) != 2 {
		return nil, fmt.Errorf("gguf: tensor token_embd.weight is missing or not a matrix")
	}
	c.VocabSize = int(emb.Dims[1])
	eps, ok := f.Float("llama.attention.layer_norm_rms_epsilon")
	if !ok || eps <= 0 {
		return nil, fmt.Errorf("gguf: metadata llama.attention.layer_norm_rms_epsilon is missing")
	}
	// Stored as float32: write its shortest float32 spelling (1e-05, not
	// 9.999999747378752e-06); both round to the same float32.
	c.RMSNormEps, _ = strconv.ParseFloat(strconv.FormatFloat(eps, 'g', -1, 32), 64)
	c.RopeTheta = 10000
	if theta, ok := f.Float("llama.rope.freq_base"); ok {
		c.RopeTheta, _ = strconv.ParseFloat(strconv.FormatFloat(theta, 'g', -1, 32), 64)
	}
	if c.NumAttentionHeads > 0 && c.HiddenSize%c.NumAttentionHeads != 0 {
		return nil, fmt.Errorf("gguf: embedding_length %d is not divisible by head_count %d", c.HiddenSize, c.NumAttentionHeads)
	}
	headDim := c.HiddenSize / c.NumAttentionHeads
	if kl, ok := f.Int("llama.attention.key_length"); ok && int(kl) != headDim {
		c.HeadDim = int(kl)
		headDim = int(kl)
	}
	if rd, ok := f.Int("llama.rope.dimension_count"); ok && int(rd) != headDim {
		return nil, fmt.Errorf("gguf: partial RoPE (rope.dimension_count %d of head size %d) is not supported", rd, headDim)
	}
	if t, ok := f.String("llama.rope.scaling.type"); ok && t != "none" {
		return nil, fmt.Errorf("gguf: RoPE scaling %q is not supported (only the default RoPE is)", t)
	}
	if _, ok := f.Tensor("rope_freqs.weight"); ok {
		return nil, fmt.Errorf("gguf: tensor rope_freqs.weight (Llama 3 RoPE scaling) is not supported")
	}
	if _, ok := f.Tensor("output.weight"); !ok {
		c.TieWordEmbeddings = true
	}
	if _, ok := f.Tensor("blk.0.attn_q.bias"); ok {
		on := true
		c.AttentionBias = &on
	} else {
		off := false
		c.AttentionBias = &off
	}
	if id, ok := f.Int("tokenizer.ggml.bos_token_id"); ok {
		b := int(id)
		c.BOSTokenID = &b
	}
	if id, ok := f.Int("tokenizer.ggml.eos_token_id"); ok {
		c.EOSTokenID = engine.TokenIDs{int(id)}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	return c, nil
}

// tensorNames maps llama.cpp's per-layer tensor names to transformers'.
var tensorNames = map[string]string{
	"attn_norm.weight":   "input_layernorm.weight",
	"attn_q.weight":      "self_attn.q_proj.weight",
	"attn_k.weight":      "self_attn.k_proj.weight",
	"attn_v.weight":      "self_attn.v_proj.weight",
	"attn_output.weight": "self_attn.o_proj.weight",
	"attn_q.bias":        "self_attn.q_proj.bias",
	"attn_k.bias":        "self_attn.k_proj.bias",
	"attn_v.bias":        "self_attn.v_proj.bias",
	"attn_output.bias":   "self_attn.o_proj.bias",
	"ffn_norm.weight":    "post_attention_layernorm.weight",
	"ffn_gate.weight":    "mlp.gate_proj.weight",
	"ffn_up.weight":      "mlp.up_proj.weight",
	"ffn_down.weight":    "mlp.down_proj.weight",
}

var blockName = regexp.MustCompile(`^blk\.(\d+)\.(.+)$`)

// hfName is the transformers name of a GGUF tensor, or "" if unknown.
func hfName(name string) string {
	switch name {
	case "token_embd.weight":
		return "model.embed_tokens.weight"
	case "output_norm.weight":
		return "model.norm.weight"
	case "output.weight":
		return "lm_head.weight"
	}
	m := blockName.FindStringSubmatch(name)
	if m == nil {
		return ""
	}
	if hf, ok := tensorNames[m[2]]; ok {
		return "model.layers." + m[1] + "." + hf
	}
	return ""
}

// llamaTensors dequantizes every tensor under its transformers name, with
// the q/k projections' rows put back in transformers' order.
func llamaTensors(f *File, c *engine.Config) (map[string]engine.Tensor, map[GGMLType]int, error) {
	out := make(map[string]engine.Tensor, len(f.Tensors))
	types := map[GGMLType]int{}
	hd := c.HiddenSize / c.NumAttentionHeads
	if c.HeadDim > 0 {
		hd = c.HeadDim
	}
	for _, ti := range f.Tensors {
		name := hfName(ti.Name)
		if name == "" {
			return nil, nil, fmt.Errorf("gguf: tensor %q has no transformers counterpart in a llama model", ti.Name)
		}
		data, err := f.Float32(ti.Name)
		if err != nil {
			return nil, nil, err
		}
		types[ti.Type]++
		shape := ti.Shape()
		switch {
		case strings.HasSuffix(name, "q_proj.weight"), strings.HasSuffix(name, "q_proj.bias"):
			if data, err = unpermuteRoPE(data, shape, c.NumAttentionHeads, hd); err != nil {
				return nil, nil, fmt.Errorf("gguf: tensor %q: %w", ti.Name, err)
			}
		case strings.HasSuffix(name, "k_proj.weight"), strings.HasSuffix(name, "k_proj.bias"):
			if data, err = unpermuteRoPE(data, shape, c.NumKeyValueHeads, hd); err != nil {
				return nil, nil, fmt.Errorf("gguf: tensor %q: %w", ti.Name, err)
			}
		}
		out[name] = engine.Tensor{Shape: shape, Data: data}
	}
	return out, types, nil
}

// unpermuteRoPE undoes the row permutation llama.cpp's converter applies to
// q and k projections (weights and biases). transformers' Llama rotates
// the two halves of each head (rotate_half); llama.cpp rotates adjacent
// pairs, so the converter interleaves each head's halves: GGUF row
// h·hd + 2i + j holds transformers' row h·hd + j·hd/2 + i. This is the
// inverse transformers' GGUF loader applies (reverse_permute_weights).
func unpermuteRoPE(data []float32, shape []int, heads, hd int) ([]float32, error) {
	rows := shape[0]
	if rows != heads*hd || hd%2 != 0 {
		return nil, fmt.Errorf("%d rows are not %d heads of an even size %d", rows, heads, hd)
	}
	cols := len(data) / rows
	out := make([]float32, len(data))
	half := hd / 2
	for h := 0; h < heads; h++ {
		for i := 0; i < half; i++ {
			for j := 0; j < 2; j++ {
				src := (h*hd + 2*i + j) * cols
				dst := (h*hd + j*half + i) * cols
				copy(out[dst:dst+cols], data[src:src+cols])
			}
		}
	}
	return out, nil
}
