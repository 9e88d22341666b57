package main

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/asearcher/asearcher/engine"
)

func newBenchEngineCmd() *cobra.Command {
	var o engine.BenchOptions
	var asJSON bool
	c := &cobra.Command{
		Use:   "engine",
		Short: "Embedded engine: GEMM GFLOP/s, training and sampling tokens/s, side by side with PyTorch",
		Long: `Measures the embedded engine on a ~10M-parameter Qwen3-style model: the
SGEMM kernel's peak, the training step's matrix-multiply GFLOP/s against
that peak, training tokens/s (forward_backward + AdamW), sampling tokens/s
at batch 1 and 32, and KV-cache bytes per token. With --python pointing at
an interpreter that has torch and transformers, the same config runs in
PyTorch eager mode with the same thread count in every round, and the table
shows ratios.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Log = cmd.ErrOrStderr()
			r, err := engine.BenchEngine(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			engine.WriteBenchTable(cmd.OutOrStdout(), r, o)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&o.Preset, "preset", "small", "model preset: tiny or small")
	f.IntVar(&o.Vocab, "vocab", 4096, "vocabulary size")
	f.StringVar(&o.Model, "model", "", "measure this model directory's real weights instead of the preset (e.g. an imported GGUF)")
	f.IntVar(&o.Seqs, "seqs", 2, "training sequences per step")
	f.IntVar(&o.SeqLen, "seq-len", 1024, "tokens per training sequence")
	f.IntVar(&o.Prompt, "prompt", 32, "prompt tokens per sampling request")
	f.IntVar(&o.NewTokens, "new-tokens", 128, "generated tokens per sampling request")
	f.IntVar(&o.Rounds, "rounds", 3, "measurement rounds (medians are reported)")
	f.StringVar(&o.Python, "python", "", "Python with torch and transformers for the PyTorch column (skipped when empty)")
	f.StringVar(&o.TorchScript, "torch-script", "engine/testdata/bench_torch.py", "the PyTorch benchmark script")
	f.IntVar(&o.Threads, "threads", 0, "PyTorch threads (default: GOMAXPROCS)")
	f.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return c
}
