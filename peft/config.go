// Package peft reads, checks, writes and merges PEFT LoRA adapter
// directories: adapter_config.json plus adapter_model.safetensors, the
// layout Hugging Face PEFT, SkyRL/Tinker sampler checkpoints, SGLang and
// vLLM all use for LoRA weights.
//
// A module is named by its base weight's name without ".weight"
// ("model.layers.3.self_attn.q_proj"); its tensors are stored as
// "base_model.model.<module>.lora_A.weight" [r, in] and
// "base_model.model.<module>.lora_B.weight" [out, r]. Merging adds
// scale·B·A to the base weight, scale = lora_alpha / r (lora_alpha / √r
// with use_rslora).
//
// The package imports no model code, so the engine can use it; the base
// model's shapes come in as Dims.
package peft

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
)

// Config is adapter_config.json. Fields the package does not interpret are
// kept in Extra and written back unchanged, so rewriting a PEFT adapter's
// config (to set target_modules) loses nothing.
type Config struct {
	PeftType string `json:"peft_type"`
	TaskType string `json:"task_type,omitempty"`
	// BaseModel is base_model_name_or_path: a hub id or a local directory.
	BaseModel string  `json:"base_model_name_or_path"`
	R         int     `json:"r"`
	LoraAlpha float64 `json:"lora_alpha"`
	// TargetModules lists module suffixes ("q_proj"). Nil means the file
	// said null (SkyRL writes null): the modules are then inferred from the
	// tensors. TargetRegex holds the string form PEFT also accepts (a regular
	// expression matched against the whole module name, or "all-linear").
	TargetModules []string `json:"-"`
	TargetRegex   string   `json:"-"`
	LoraDropout   float64  `json:"lora_dropout"`
	Bias          string   `json:"bias"`
	FanInFanOut   bool     `json:"fan_in_fan_out"`
	UseRSLoRA     bool     `json:"use_rslora"`
	UseDoRA       bool     `json:"use_dora"`
	InferenceMode bool     `json:"inference_mode"`
	// ModulesToSave, RankPattern and AlphaPattern are only accepted empty:
	// adapters that need them carry full tensors or per-module ranks this
	// package does not merge.
	ModulesToSave []string                   `json:"modules_to_save"`
	RankPattern   map[string]json.RawMessage `json:"rank_pattern,omitempty"`
	AlphaPattern  map[string]json.RawMessage `json:"alpha_pattern,omitempty"`
	// Extra holds every other field of the file as written.
	Extra map[string]json.RawMessage `json:"-"`
}

// known lists the JSON fields Config interprets; the rest go to Extra.
var known = []string{"peft_type", "task_type", "base_model_name_or_path", "r", "lora_alpha", "target_modules",
	"lora_dropout", "bias", "fan_in_fan_out", "use_rslora", "use_dora", "inference_mode", "modules_to_save",
	"rank_pattern", "alpha_pattern"}

// configAlias has Config's fields and tags without its methods.
type configAlias Config

// UnmarshalJSON reads adapter_config.json, accepting target_modules as
// null, a list of names or a string.
func (c *Config) UnmarshalJSON(b []byte) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	if all == nil {
		return errors.New("adapter config is null; want a JSON object")
	}
	var a configAlias
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	*c = Config(a)
	c.TargetModules, c.TargetRegex = nil, ""
	if raw, ok := all["target_modules"]; ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		var list []string
		if err := json.Unmarshal(raw, &list); err == nil {
			if list == nil {
				list = []string{}
			}
			c.TargetModules = list
		} else {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return fmt.Errorf("target_modules: want null, a list of module names or a string, got %s", raw)
			}
			c.TargetRegex = s
		}
	}
	c.Extra = nil
	for k, v := range all {
		if !slices.Contains(known, k) {
			if c.Extra == nil {
				c.Extra = map[string]json.RawMessage{}
			}
			c.Extra[k] = v
		}
	}
	return nil
}

// MarshalJSON writes the interpreted fields and Extra.
func (c Config) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(configAlias(c))
	if err != nil {
		return nil, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, err
	}
	for k, v := range c.Extra {
		if !slices.Contains(known, k) {
			all[k] = v
		}
	}
	var tm any
	switch {
	case c.TargetModules != nil:
		tm = c.TargetModules
	case c.TargetRegex != "":
		tm = c.TargetRegex
	}
	if all["target_modules"], err = json.Marshal(tm); err != nil {
		return nil, err
	}
	return json.Marshal(all)
}

// check rejects settings this package cannot apply faithfully.
func (c *Config) check() error {
	switch {
	case c.PeftType != "LORA":
		return fmt.Errorf("adapter config: peft_type %q is not supported (want LORA)", c.PeftType)
	case c.R <= 0:
		return fmt.Errorf("adapter config: r = %d; the LoRA rank must be positive", c.R)
	case math.IsNaN(c.LoraAlpha) || math.IsInf(c.LoraAlpha, 0):
		return fmt.Errorf("adapter config: lora_alpha %v is not a finite number", c.LoraAlpha)
	case c.UseDoRA:
		return errors.New("adapter config: use_dora is set; DoRA adapters cannot be merged as W += scale·B·A")
	case c.FanInFanOut:
		return errors.New("adapter config: fan_in_fan_out is set (Conv1D models such as GPT-2); only nn.Linear [out, in] weights are supported")
	case c.Bias != "" && c.Bias != "none":
		return fmt.Errorf("adapter config: bias %q is not supported (want \"none\")", c.Bias)
	case len(c.ModulesToSave) > 0:
		return fmt.Errorf("adapter config: modules_to_save %v carries full weights; only LoRA pairs are supported", c.ModulesToSave)
	case len(c.RankPattern) > 0 || len(c.AlphaPattern) > 0:
		return errors.New("adapter config: rank_pattern/alpha_pattern are set; only one rank and alpha for all modules is supported")
	}
	// PEFT settings that change which weights a LoRA touches or how; they
	// sit in Extra and must be unset (null, false, empty) to merge as
	// W += scale·B·A over whole layers.
	for _, k := range []string{"layers_to_transform", "exclude_modules", "target_parameters", "trainable_token_indices",
		"lora_bias", "use_qalora", "alora_invocation_tokens", "layer_replication"} {
		if raw, ok := c.Extra[k]; ok && !unset(raw) {
			return fmt.Errorf("adapter config: %s is set (%s); only plain LoRA on whole layers is supported", k, raw)
		}
	}
	if c.TargetRegex != "" && c.TargetRegex != allLinear {
		if _, err := regexp.Compile("^(?:" + c.TargetRegex + ")$"); err != nil {
			return fmt.Errorf("adapter config: target_modules %q is not a valid regular expression: %w", c.TargetRegex, err)
		}
	}
	return nil
}

// allLinear is PEFT's shorthand for every linear layer but the output head.
const allLinear = "all-linear"

// Scale is the factor merged with B·A: lora_alpha / r, or lora_alpha / √r
// with use_rslora.
func (c *Config) Scale() float64 {
	if c.UseRSLoRA {
		return c.LoraAlpha / math.Sqrt(float64(c.R))
	}
	return c.LoraAlpha / float64(c.R)
}

// targets reports whether the config's target_modules cover module (a
// full module name such as "model.layers.0.mlp.up_proj"). Null targets
// cover everything: the tensors decide.
func (c *Config) targets(module string) bool {
	suffix := module
	if i := lastDot(module); i >= 0 {
		suffix = module[i+1:]
	}
	switch {
	case c.TargetModules != nil:
		for _, t := range c.TargetModules {
			// PEFT matches a list entry against the whole name or its last
			// dotted components.
			if t == suffix || t == module || hasDottedSuffix(module, t) {
				return true
			}
		}
		return false
	case c.TargetRegex == allLinear:
		return suffix != "lm_head"
	case c.TargetRegex != "":
		re, err := regexp.Compile("^(?:" + c.TargetRegex + ")$")
		return err == nil && re.MatchString(module)
	}
	return true
}

func lastDot(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

func hasDottedSuffix(s, suffix string) bool {
	return len(s) > len(suffix) && s[len(s)-len(suffix)-1] == '.' && s[len(s)-len(suffix):] == suffix
}

// unset says whether a JSON value is null, false, 0, "" or empty.
func unset(raw json.RawMessage) bool {
	switch string(bytes.TrimSpace(raw)) {
	case "null", "false", "0", `""`, "[]", "{}":
		return true
	}
	return false
}
