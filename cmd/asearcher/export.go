package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/export"
)

func newExportCmd() *cobra.Command {
	var out, dtype string
	c := &cobra.Command{
		Use:   "export SOURCE",
		Short: "Export an embedded checkpoint as a Hugging Face model directory",
		Long: `Writes config.json, model.safetensors and the tokenizer files into --out,
a directory that transformers, SGLang and vLLM load.

SOURCE is a training run directory (its latest checkpoint), one checkpoint
(RUN/checkpoints/step_N) or any model directory the engine wrote (trainer
state, sampler weights, RUN/warmup, RUN/model_init). Optimiser state stays
behind. --out must not exist or be empty; it appears whole or not at all.
Tinker-server checkpoints are not read.`,
		Example: `  asearcher export runs/demo --out runs/demo-hf
  asearcher export runs/demo/checkpoints/step_000040 --out /tmp/hf --dtype bf16`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("--out is required: the directory to write the model into")
			}
			dt, err := engine.ParseDType(dtype)
			if err != nil {
				return err
			}
			res, err := export.HF(export.Options{Source: args[0], Out: out, DType: dt})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "exported %s (%d parameters, %s) to %s: %v\n", res.Model, res.Params, dt, res.Out, res.Files)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "directory to create (required)")
	c.Flags().StringVar(&dtype, "dtype", "f32", "weight type: f32 (exact), bf16 or f16")
	return c
}
