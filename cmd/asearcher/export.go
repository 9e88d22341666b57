package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/export"
)

func newExportCmd() *cobra.Command {
	var out, adapterOut, base, dtype, tinkerURL string
	c := &cobra.Command{
		Use:   "export SOURCE",
		Short: "Export an embedded checkpoint or a Tinker checkpoint archive as a Hugging Face model (and PEFT adapter) directory",
		Long: `Writes config.json, model.safetensors and the tokenizer files into --out,
a directory that transformers, SGLang and vLLM load.

SOURCE is a training run directory (its latest checkpoint), one checkpoint
(RUN/checkpoints/step_N) or any model directory the engine wrote (trainer
state, sampler weights, RUN/warmup, RUN/model_init). Optimiser state stays
behind. A LoRA source (a PEFT adapter directory: a LoRA learner's state or
sampler weights) is merged into its base model: --base, or the adapter's
base_model_name_or_path when that is a local model directory; --adapter-out
also writes the adapter with target_modules set.

SOURCE may instead be a Tinker sampler checkpoint archive: a local .tar.gz,
a tinker://MODEL/sampler_weights/NAME path (downloaded from --tinker-url or
TINKER_BASE_URL with TINKER_API_KEY, through the server's
/api/v1/training_runs/MODEL/checkpoints/NAME/archive route), or an http(s)
URL. An archive holding a PEFT LoRA adapter (SkyRL, Tinker) is merged into
--base (W += alpha/r · B·A) for --out, and/or written as a PEFT adapter
directory with target_modules set (--adapter-out) for SGLang/vLLM LoRA
loading. An archive holding full weights exports as that model.

Every output must not exist or be empty; it appears whole or not at all.`,
		Example: `  asearcher export runs/demo --out runs/demo-hf
  asearcher export runs/demo/checkpoints/step_000040 --out /tmp/hf --dtype bf16
  asearcher export sampler-s1.tar.gz --base models/qwen3 --out /tmp/merged --adapter-out /tmp/adapter
  TINKER_BASE_URL=http://127.0.0.1:8000 asearcher export tinker://MODEL/sampler_weights/s3 --adapter-out /tmp/a`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dt, err := engine.ParseDType(dtype)
			if err != nil {
				return err
			}
			if export.IsArchive(args[0]) {
				if tinkerURL == "" {
					tinkerURL = os.Getenv("TINKER_BASE_URL")
				}
				res, err := export.FromArchive(cmd.Context(), export.ArchiveOptions{Archive: args[0], TinkerURL: tinkerURL,
					APIKey: os.Getenv("TINKER_API_KEY"), Base: base, Out: out, AdapterOut: adapterOut, DType: dt})
				if err != nil {
					return err
				}
				if res.Out != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "exported %s (%s, %d parameters, %s) to %s: %v\n", args[0], res.Kind, res.Params, dt, res.Out, res.Files)
				}
				if res.AdapterOut != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "wrote the PEFT adapter (r=%d, alpha=%g, target_modules %v) to %s\n", res.Rank, res.Alpha, res.Targets, res.AdapterOut)
				}
				return nil
			}
			if out == "" {
				return fmt.Errorf("--out is required: the directory to write the model into")
			}
			res, err := export.HF(export.Options{Source: args[0], Out: out, DType: dt, Base: base, AdapterOut: adapterOut})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "exported %s (%d parameters, %s) to %s: %v\n", res.Model, res.Params, dt, res.Out, res.Files)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "directory to create for the (merged) model")
	c.Flags().StringVar(&adapterOut, "adapter-out", "", "LoRA sources and archives: directory to create for the PEFT adapter")
	c.Flags().StringVar(&base, "base", "", "LoRA sources and archives: the base model directory the adapter was trained on")
	c.Flags().StringVar(&tinkerURL, "tinker-url", "", "archives only: Tinker server for tinker:// paths [$TINKER_BASE_URL]")
	c.Flags().StringVar(&dtype, "dtype", "f32", "weight type: f32 (exact), bf16 or f16")
	return c
}
