// Package export turns a model trained with asearcher into a directory that
// other tools load: an embedded checkpoint (a training run, one of its
// checkpoints, or any model directory the engine wrote) becomes a Hugging
// Face model directory — config.json, model.safetensors and the tokenizer
// files — that transformers (and so SGLang and vLLM) loads with the logits
// the engine computes.
package export

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/peft"
	"github.com/asearcher/asearcher/rl"
	"github.com/asearcher/asearcher/tokenizer"
)

// Options say what to export where.
type Options struct {
	// Source is a training run directory (its latest checkpoint), one
	// checkpoint directory (checkpoints/step_N), or a model directory
	// (config.json + model.safetensors: a trainer state, sampler weights,
	// a warm-up or init directory).
	Source string
	// Out is the directory to create; it must not exist or be empty.
	Out string
	// DType of the written weights: F32 (exact, the default), BF16 or F16.
	DType engine.DType
	// Base is the base model directory of a LoRA source (a PEFT adapter
	// directory); empty uses the adapter's base_model_name_or_path when
	// that is a local model directory.
	Base string
	// AdapterOut, for a LoRA source, also writes the adapter as a PEFT
	// directory with target_modules set.
	AdapterOut string
}

// Result describes an export.
type Result struct {
	// Model is the model directory the weights were read from.
	Model string `json:"model"`
	Out   string `json:"out"`
	// Params counts the weights written.
	Params int `json:"params"`
	// Files are the files written, by name.
	Files []string `json:"files"`
}

// tokenizerFiles are copied when present; tokenizer.json is required.
var tokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"}

// ResolveSource finds the model directory behind a run, checkpoint or
// model directory.
func ResolveSource(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("export source: %w", err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("export source %s is not a directory: give a run, checkpoint or model directory", path)
	}
	if isModelDir(path) || isAdapterDir(path) {
		return path, nil
	}
	if exists(filepath.Join(path, "checkpoints")) {
		_, trainer, err := rl.LoadCheckpoint(path)
		if err != nil {
			return "", fmt.Errorf("export source %s: %w", path, err)
		}
		if trainer == "" {
			return "", fmt.Errorf("export source %s has no checkpoint yet", path)
		}
		return checkpointModel(path, trainer)
	}
	if exists(filepath.Join(path, "controller.json")) {
		// One checkpoint: its trainer state sits in trainer/.
		return checkpointModel(path, filepath.Join(path, "trainer"))
	}
	return "", fmt.Errorf("export source %s is not a run directory (checkpoints/), a checkpoint (controller.json) or a model directory (config.json + model.safetensors)", path)
}

func checkpointModel(src, trainer string) (string, error) {
	if strings.Contains(trainer, "://") {
		return "", fmt.Errorf("export source %s: the checkpoint's trainer state is %s, on a Tinker server; export reads embedded checkpoints only", src, trainer)
	}
	if !isModelDir(trainer) && !isAdapterDir(trainer) {
		return "", fmt.Errorf("export source %s: the checkpoint's trainer state %s has no config.json and model.safetensors", src, trainer)
	}
	return trainer, nil
}

// isAdapterDir says whether dir is a PEFT LoRA adapter (a LoRA learner's
// state or sampler weights).
func isAdapterDir(dir string) bool {
	return exists(filepath.Join(dir, peft.ConfigFile)) && !exists(filepath.Join(dir, "model.safetensors"))
}

func isModelDir(dir string) bool {
	return exists(filepath.Join(dir, "config.json")) && exists(filepath.Join(dir, "model.safetensors"))
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// HF exports o.Source to a Hugging Face model directory at o.Out. The
// directory appears whole or not at all: it is written beside Out and
// renamed into place. Optimiser state and trainer bookkeeping stay behind.
func HF(o Options) (*Result, error) {
	if o.Out == "" {
		return nil, errors.New("export: no output directory")
	}
	if o.DType == "" {
		o.DType = engine.F32
	}
	src, err := ResolveSource(o.Source)
	if err != nil {
		return nil, err
	}
	if err := checkOut(o.Out); err != nil {
		return nil, err
	}
	if isAdapterDir(src) {
		return hfFromAdapter(src, o)
	}
	if o.AdapterOut != "" {
		return nil, fmt.Errorf("export: %s holds full weights, not a LoRA adapter; drop --adapter-out", src)
	}
	w, err := engine.LoadWeights(src)
	if err != nil {
		return nil, fmt.Errorf("export: read %s: %w", src, err)
	}
	if !exists(filepath.Join(src, "tokenizer.json")) {
		return nil, fmt.Errorf("export: %s has no tokenizer.json; a model directory without its tokenizer cannot be used by other tools", src)
	}
	tok, err := tokenizer.Load(filepath.Join(src, "tokenizer.json"))
	if err != nil {
		return nil, fmt.Errorf("export: tokenizer of %s: %w", src, err)
	}
	if n := tok.VocabSize(); n > w.Config.VocabSize {
		return nil, fmt.Errorf("export: the tokenizer of %s has %d ids but the model only %d", src, n, w.Config.VocabSize)
	}

	res := &Result{Model: src, Out: o.Out, Params: len(w.Flat)}
	if res.Files, err = writeModel(o.Out, src, w, o.DType); err != nil {
		return nil, err
	}
	return res, nil
}

// checkOut refuses to write over anything: Out must not exist, or be an
// empty directory.
func checkOut(out string) error {
	entries, err := os.ReadDir(out)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("export: output %s: %w", out, err)
	case len(entries) > 0:
		return fmt.Errorf("export: output %s exists and is not empty; choose a new directory", out)
	}
	return nil
}

// copyFile copies src to dst atomically; a missing src copies nothing.
func copyFile(src, dst string) (bool, error) {
	in, err := os.Open(src)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer in.Close()
	data, err := io.ReadAll(in)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", src, err)
	}
	return true, atomicfile.WriteFile(dst, data)
}

// hfFromAdapter merges a LoRA source into its base model.
func hfFromAdapter(src string, o Options) (*Result, error) {
	a, err := peft.Load(src)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	base := o.Base
	if base == "" {
		if b := a.Config.BaseModel; b != "" && isModelDir(b) {
			base = b
		} else {
			return nil, fmt.Errorf("export: %s is a LoRA adapter on base model %q, which is not a local model directory; give it with --base", src, a.Config.BaseModel)
		}
	}
	if o.AdapterOut != "" {
		if err := checkOut(o.AdapterOut); err != nil {
			return nil, err
		}
	}
	res, err := MergeAdapter(a, base, o.Out, o.DType)
	if err != nil {
		return nil, err
	}
	if o.AdapterOut != "" {
		if err := writeDir(o.AdapterOut, a.Save); err != nil {
			return nil, err
		}
	}
	return &Result{Model: src, Out: o.Out, Params: res.Params, Files: res.Files}, nil
}
