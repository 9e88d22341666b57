package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/tokenizer"
)

func newGenerateCmd() *cobra.Command {
	var (
		model, system string
		chat, think   bool
		o             engine.GenerateOptions
		seed          int64
	)
	c := &cobra.Command{
		Use:   "generate [flags] PROMPT",
		Short: "Stream a continuation (or, with --chat, a reply) from an embedded-engine model",
		Example: `  asearcher generate --model runs/model "The capital of France is"
  asearcher generate --model ~/models/Qwen3-0.6B --chat "What is BM25?"
  echo "prompt from stdin" | asearcher generate --model runs/model -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if model == "" {
				return fmt.Errorf("--model is required: a model directory (asearcher model init writes one)")
			}
			prompt := args[0]
			if prompt == "-" {
				b, err := io.ReadAll(cmd.InOrStdin())
				if err != nil {
					return err
				}
				prompt = strings.TrimRight(string(b), "\n")
			}
			if cmd.Flags().Changed("seed") {
				o.Params.Seed = &seed
			}
			o.Chat, o.System = chat, system
			s, err := engine.NewSamplerForDir(model, engine.SamplerOptions{}, tokenizer.ChatOptions{DisableThinking: !think})
			if err != nil {
				return err
			}
			defer s.Close()
			st, err := engine.Generate(cmd.Context(), s, prompt, o, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout())
			fmt.Fprintf(cmd.ErrOrStderr(), "[%d prompt + %d new tokens, %.1f tokens/s, finish: %s]\n", st.PromptTokens, st.NewTokens,
				float64(st.NewTokens)/st.Elapsed.Seconds(), st.Finish)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&model, "model", "", "model directory (config.json, model.safetensors, tokenizer.json)")
	f.BoolVar(&chat, "chat", false, "send the prompt as a user message through the chat template")
	f.StringVar(&system, "system", "", "system message (with --chat)")
	f.BoolVar(&think, "think", false, "let Qwen3 chat models think first (with --chat)")
	f.IntVar(&o.Params.MaxNewTokens, "max-new-tokens", 256, "most tokens to generate")
	f.Float64Var(&o.Params.Temperature, "temperature", 0.7, "sampling temperature; 0 is greedy")
	f.Float64Var(&o.Params.TopP, "top-p", 0.95, "nucleus sampling mass (1 disables)")
	f.IntVar(&o.Params.TopK, "top-k", 0, "keep the k most likely tokens (0 disables)")
	f.Int64Var(&seed, "seed", 0, "sampling seed (random when unset)")
	f.StringSliceVar(&o.Params.Stop, "stop", nil, "stop strings (repeatable)")
	return c
}
