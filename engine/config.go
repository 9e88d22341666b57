// Package engine is asearcher's embedded model: a Qwen2/Qwen3-family
// decoder-only transformer that trains (hand-written backward pass, AdamW)
// and samples (KV cache, continuous batching) on the CPU in pure Go.
//
// Weights use Hugging Face tensor names and the safetensors format, so a
// model directory written here loads in transformers and a small real
// checkpoint loads here.
package engine

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Config is the subset of a Hugging Face config.json that defines a Qwen2,
// Qwen3 or Llama decoder. Unknown fields are ignored on load (HF configs carry many
// generation and training extras).
type Config struct {
	Architectures         []string `json:"architectures,omitempty"`
	ModelType             string   `json:"model_type"`
	VocabSize             int      `json:"vocab_size"`
	HiddenSize            int      `json:"hidden_size"`
	IntermediateSize      int      `json:"intermediate_size"`
	NumHiddenLayers       int      `json:"num_hidden_layers"`
	NumAttentionHeads     int      `json:"num_attention_heads"`
	NumKeyValueHeads      int      `json:"num_key_value_heads"`
	HeadDim               int      `json:"head_dim,omitempty"`
	RMSNormEps            float64  `json:"rms_norm_eps"`
	RopeTheta             float64  `json:"rope_theta"`
	MaxPositionEmbeddings int      `json:"max_position_embeddings"`
	TieWordEmbeddings     bool     `json:"tie_word_embeddings"`
	// AttentionBias is Qwen3's and Llama's switch for q/k/v/o biases. Qwen2
	// always has q/k/v biases and no o bias, whatever this says.
	AttentionBias *bool `json:"attention_bias,omitempty"`
	// MLPBias is Llama's switch for biases in the MLP; only false is
	// implemented.
	MLPBias    bool     `json:"mlp_bias,omitempty"`
	HiddenAct  string   `json:"hidden_act,omitempty"`
	BOSTokenID *int     `json:"bos_token_id,omitempty"`
	EOSTokenID TokenIDs `json:"eos_token_id,omitempty"`
	TorchDtype string   `json:"torch_dtype,omitempty"`
	Dtype      string   `json:"dtype,omitempty"` // transformers 5 spelling of torch_dtype
	// RopeScaling (transformers 4) and RopeParameters (transformers 5)
	// describe the RoPE variant; only the default one is implemented.
	RopeScaling      *ropeParams `json:"rope_scaling,omitempty"`
	RopeParameters   *ropeParams `json:"rope_parameters,omitempty"`
	UseSlidingWindow bool        `json:"use_sliding_window,omitempty"`
	InitRange        float64     `json:"initializer_range,omitempty"`
}

// TokenIDs is a config field that holds one token id or a list of them
// (generation configs list several EOS ids).
type TokenIDs []int

// UnmarshalJSON accepts null, an integer or a list of integers.
func (t *TokenIDs) UnmarshalJSON(b []byte) error {
	var one *int
	if err := json.Unmarshal(b, &one); err == nil {
		*t = nil
		if one != nil {
			*t = TokenIDs{*one}
		}
		return nil
	}
	var many []int
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("token id: want an integer or a list of integers, got %s", b)
	}
	*t = many
	return nil
}

// MarshalJSON writes a single id as an integer, as transformers does.
func (t TokenIDs) MarshalJSON() ([]byte, error) {
	if len(t) == 1 {
		return json.Marshal(t[0])
	}
	return json.Marshal([]int(t))
}

type ropeParams struct {
	RopeType  string  `json:"rope_type,omitempty"`
	Type      string  `json:"type,omitempty"`
	RopeTheta float64 `json:"rope_theta,omitempty"`
}

// headDim is the per-head width: explicit for Qwen3, hidden/heads otherwise.
func (c *Config) headDim() int {
	if c.HeadDim > 0 {
		return c.HeadDim
	}
	if c.NumAttentionHeads == 0 {
		return 0
	}
	return c.HiddenSize / c.NumAttentionHeads
}

// qkvBias says whether q/k/v projections carry a bias.
func (c *Config) qkvBias() bool {
	if c.ModelType == "qwen2" {
		return true
	}
	return c.AttentionBias != nil && *c.AttentionBias
}

// oBias says whether the attention output projection carries a bias
// (Qwen3 and Llama with attention_bias; never Qwen2).
func (c *Config) oBias() bool {
	return c.ModelType != "qwen2" && c.AttentionBias != nil && *c.AttentionBias
}

// qkNorm says whether q and k get a per-head RMSNorm before RoPE (Qwen3).
func (c *Config) qkNorm() bool { return c.ModelType == "qwen3" }

// Validate reports the first inconsistency that would make the model
// unusable, in words a user can act on.
func (c *Config) Validate() error {
	switch c.ModelType {
	case "qwen2", "qwen3", "llama":
	default:
		return fmt.Errorf("config: model_type %q is not supported (want qwen2, qwen3 or llama)", c.ModelType)
	}
	if c.MLPBias {
		return fmt.Errorf("config: mlp_bias is not supported; set it to false")
	}
	pos := []struct {
		name string
		v    int
	}{
		{"vocab_size", c.VocabSize}, {"hidden_size", c.HiddenSize},
		{"intermediate_size", c.IntermediateSize}, {"num_hidden_layers", c.NumHiddenLayers},
		{"num_attention_heads", c.NumAttentionHeads}, {"num_key_value_heads", c.NumKeyValueHeads},
		{"max_position_embeddings", c.MaxPositionEmbeddings},
	}
	for _, p := range pos {
		if p.v <= 0 {
			return fmt.Errorf("config: %s must be positive, got %d", p.name, p.v)
		}
	}
	if c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
		return fmt.Errorf("config: num_attention_heads (%d) must be a multiple of num_key_value_heads (%d)",
			c.NumAttentionHeads, c.NumKeyValueHeads)
	}
	hd := c.headDim()
	if hd <= 0 || hd%2 != 0 {
		return fmt.Errorf("config: head_dim must be positive and even, got %d", hd)
	}
	if c.HeadDim == 0 && c.HiddenSize%c.NumAttentionHeads != 0 {
		return fmt.Errorf("config: hidden_size (%d) is not divisible by num_attention_heads (%d); set head_dim",
			c.HiddenSize, c.NumAttentionHeads)
	}
	if c.RMSNormEps <= 0 {
		return fmt.Errorf("config: rms_norm_eps must be positive")
	}
	if c.RopeTheta <= 0 {
		return fmt.Errorf("config: rope_theta must be positive")
	}
	if c.HiddenAct != "" && c.HiddenAct != "silu" {
		return fmt.Errorf("config: hidden_act %q is not supported (want silu)", c.HiddenAct)
	}
	for _, rp := range []*ropeParams{c.RopeScaling, c.RopeParameters} {
		if rp == nil {
			continue
		}
		if t := rp.RopeType + rp.Type; t != "" && t != "default" {
			return fmt.Errorf("config: rope type %q is not supported (only the default RoPE is)", t)
		}
	}
	if c.UseSlidingWindow {
		return fmt.Errorf("config: sliding-window attention is not supported; set use_sliding_window to false")
	}
	return nil
}

// ParseConfig decodes and validates a config.json.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if c.RMSNormEps == 0 {
		c.RMSNormEps = 1e-6
	}
	if c.RopeTheta == 0 && c.RopeParameters != nil {
		c.RopeTheta = c.RopeParameters.RopeTheta
	}
	if c.RopeTheta == 0 {
		c.RopeTheta = 10000
	}
	if c.TorchDtype == "" {
		c.TorchDtype = c.Dtype
	}
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// LoadConfig reads config.json from a model directory or a file path.
func LoadConfig(path string) (*Config, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "config.json")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read model config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Preset returns a named configuration for `asearcher model init`:
// "tiny" (tests, ~0.1M parameters) or "small" (~10M parameters, the
// embedded RL demo and the benchmark model). The vocabulary size is the
// tokenizer's, so it is given here.
func Preset(name string, vocab int) (*Config, error) {
	f := false
	c := &Config{
		Architectures: []string{"Qwen3ForCausalLM"},
		ModelType:     "qwen3", VocabSize: vocab, RMSNormEps: 1e-6, RopeTheta: 10000,
		TieWordEmbeddings: true, AttentionBias: &f, HiddenAct: "silu",
		EOSTokenID: TokenIDs{vocab - 1}, TorchDtype: "float32", InitRange: 0.02,
	}
	switch name {
	case "tiny":
		c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 64, 192, 2
		c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim = 4, 2, 16
		c.MaxPositionEmbeddings = 2048
	case "small":
		c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 384, 1024, 6
		c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim = 6, 2, 64
		c.MaxPositionEmbeddings = 8192
	default:
		return nil, fmt.Errorf("unknown model preset %q (want tiny or small, or a config.json path)", name)
	}
	return c, c.Validate()
}

// ParamCount is the number of trainable scalars.
func (c *Config) ParamCount() int {
	n := 0
	for _, s := range paramLayout(c) {
		n += s.size()
	}
	return n
}

// KVBytesPerToken is the KV-cache memory one token of context costs (f32).
func (c *Config) KVBytesPerToken() int {
	return c.NumHiddenLayers * 2 * c.NumKeyValueHeads * c.headDim() * 4
}
