package main

import (
	"log/slog"

	"github.com/spf13/cobra"

	rolloutbench "github.com/asearcher/asearcher/bench/rollout"
)

func newBenchRolloutCmd() *cobra.Command {
	o := rolloutbench.DefaultOptions()
	var asJSON bool
	c := &cobra.Command{
		Use:   "rollout",
		Short: "Async (η=4, interruptible) vs sync RL throughput of the real controller on a simulated engine",
		Long: `Runs the real rl controller twice per run on the same simulated hardware:
synchronous (η=0) and asynchronous (η=--eta, interruptible generation). A
simulated engine (decode step = --decode-step-s + --decode-per-seq-s × running
sequences, shared by every request; abort and pause like SGLang) replaces the
inference servers and a simulated trainer with a fixed step time replaces the
training cluster. Trajectories follow ASearcher's long tail (log-normal turn
counts up to 128, log-normal tokens per turn, tool latencies). Time is scaled
real time (--speedup simulated seconds per real second). It prints trained
trajectories per simulated hour, the engine idle fraction and the largest
trained staleness of each mode, their ratio (median of --runs), and controller
CPU per turn and heap with --scale concurrent trajectories in one process.`,
		Example: `  asearcher bench rollout
  asearcher bench rollout --runs 5 --json > rollout.json
  asearcher bench rollout --scale 0 --steps 6 --runs 1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Logger = slog.Default()
			rep, err := rolloutbench.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				return rolloutbench.WriteJSON(cmd.OutOrStdout(), rep)
			}
			rolloutbench.WriteTable(cmd.OutOrStdout(), rep)
			return nil
		},
	}
	f := c.Flags()
	f.IntVar(&o.Runs, "runs", o.Runs, "sync/async pairs to run; medians are reported")
	f.IntVar(&o.Steps, "steps", o.Steps, "training steps per run")
	f.IntVar(&o.Warmup, "warmup", o.Warmup, "first steps excluded from throughput")
	f.IntVar(&o.BatchGroups, "batch-groups", o.BatchGroups, "B: groups per training step")
	f.IntVar(&o.GroupSize, "group-size", o.GroupSize, "G: trajectories per group")
	f.IntVar(&o.AsyncEta, "eta", o.AsyncEta, "η of the async mode")
	f.Float64Var(&o.TrainStepSec, "train-step-s", o.TrainStepSec, "simulated seconds per training step")
	f.Float64Var(&o.WeightSyncSec, "weight-sync-s", o.WeightSyncSec, "simulated seconds to load new weights into the engine")
	f.Float64Var(&o.Hardware.StepSec, "decode-step-s", o.Hardware.StepSec, "simulated seconds of one decode step for a lone sequence")
	f.Float64Var(&o.Hardware.PerSeqSec, "decode-per-seq-s", o.Hardware.PerSeqSec, "simulated seconds each running sequence adds to a decode step")
	f.IntVar(&o.Workload.MaxTurns, "max-turns", o.Workload.MaxTurns, "turn limit per trajectory")
	f.Float64Var(&o.Speedup, "speedup", o.Speedup, "simulated seconds per real second")
	f.IntVar(&o.ScaleTrajectories, "scale", o.ScaleTrajectories, "concurrent trajectories for the CPU/memory measurement; 0 skips it")
	f.Int64Var(&o.Seed, "seed", o.Seed, "seed of the first run")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return c
}
