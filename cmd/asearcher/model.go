package main

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/gguf"
)

func newModelInitCmd() *cobra.Command {
	var (
		configName, out, tokPath, dtype string
		trainText                       []string
		vocab                           int
		seed                            uint64
	)
	c := &cobra.Command{
		Use:   "init",
		Short: "Write a randomly initialised Qwen3-style model directory for the embedded engine",
		Long: `Writes config.json, model.safetensors, tokenizer.json and tokenizer_config.json.

--config is a preset (tiny: ~0.1M parameters plus embeddings, for tests and
the train demo; small: ~11M, the engine benchmark model) or a Hugging Face config.json (model_type qwen2 or
qwen3). The tokenizer is --tokenizer (a tokenizer.json or a model
directory) or a byte-level BPE trained on --train-text files with --vocab
ids; with neither it is the 256 bytes plus ChatML's special tokens.`,
		Example: `  asearcher model init --config small --out runs/model --train-text corpus.txt --vocab 4096
  asearcher model init --config tiny --out /tmp/tiny`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("--out is required: the directory to write the model into")
			}
			cfg, err := engine.Preset(configName, 16)
			if err != nil {
				if cfg, err = engine.LoadConfig(configName); err != nil {
					return fmt.Errorf("--config %q is neither a preset (tiny, small) nor a readable config.json: %w", configName, err)
				}
			}
			dt, err := engine.ParseDType(dtype)
			if err != nil {
				return err
			}
			texts, err := engine.ReadTrainTexts(trainText)
			if err != nil {
				return err
			}
			last := -1
			got, err := engine.InitModelDir(cmd.Context(), out, engine.InitOptions{
				Config: cfg, Seed: seed, DType: dt, TokenizerPath: tokPath, TrainTexts: texts, TrainVocab: vocab,
				Progress: func(done, total int) {
					if pct := 10 * done / max(total, 1); pct != last {
						last = pct
						slog.Info("training tokenizer", "merges", done, "of", total)
					}
				},
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %s, %d layers, hidden %d, vocab %d, %.2fM parameters\n",
				out, got.ModelType, got.NumHiddenLayers, got.HiddenSize, got.VocabSize, float64(got.ParamCount())/1e6)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&configName, "config", "tiny", "preset (tiny, small) or a config.json path")
	f.StringVar(&out, "out", "", "output model directory")
	f.StringVar(&tokPath, "tokenizer", "", "use this tokenizer.json or model directory's tokenizer instead of training one")
	f.StringSliceVar(&trainText, "train-text", nil, "text or JSONL files to train the byte-level BPE on (repeatable)")
	f.IntVar(&vocab, "vocab", 4096, "tokenizer vocabulary size when training on --train-text")
	f.Uint64Var(&seed, "seed", 1, "initialisation seed")
	f.StringVar(&dtype, "dtype", "float32", "weights on disk: float32, bfloat16 or float16")
	return c
}

func newModelImportCmd() *cobra.Command {
	var ggufPath, out, dtype string
	c := &cobra.Command{
		Use:   "import",
		Short: "Convert a GGUF model file (llama.cpp format) into a model directory",
		Long: `Reads a Llama-architecture GGUF file, dequantizes its tensors (F32, F16,
BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) and writes a Hugging Face model directory:
config.json, model.safetensors, generation_config.json, tokenizer.json and
tokenizer_config.json (with the file's chat template). The directory runs in
the embedded engine (embedded:DIR, generate, serve model) and loads in
transformers and SGLang.`,
		Example: `  asearcher model import --gguf SmolLM2-135M-Instruct.Q4_1.gguf --out models/smollm2-135m`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ggufPath == "" || out == "" {
				return fmt.Errorf("--gguf and --out are required: the GGUF file to read and the directory to write")
			}
			dt, err := engine.ParseDType(dtype)
			if err != nil {
				return err
			}
			f, err := gguf.Open(ggufPath)
			if err != nil {
				return err
			}
			defer f.Close()
			got, err := gguf.Convert(f, out, gguf.ConvertOptions{DType: dt})
			if err != nil {
				return err
			}
			c := got.Config
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %s, %d layers, hidden %d, %d/%d heads, vocab %d, %.1fM parameters, chat format %s; tensors %v\n",
				out, c.ModelType, c.NumHiddenLayers, c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads,
				c.VocabSize, float64(c.ParamCount())/1e6, got.ChatFormat, got.TensorTypes)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&ggufPath, "gguf", "", "GGUF file to import")
	f.StringVar(&out, "out", "", "output model directory")
	f.StringVar(&dtype, "dtype", "float32", "weights on disk: float32 (exact dequantized values), bfloat16 or float16")
	return c
}
