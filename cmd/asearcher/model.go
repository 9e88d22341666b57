package main

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/asearcher/asearcher/engine"
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
