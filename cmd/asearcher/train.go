package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/asearcher/asearcher/rl"
)

// newTrainCmd wires `asearcher train` to rl.RunDemo (docs/rl.md).
func newTrainCmd() *cobra.Command {
	var out, configPath, resume string
	var noProgress bool
	c := &cobra.Command{
		Use:   "train",
		Short: "Train a tiny search agent with fully asynchronous RL on synthetic search worlds",
		Long: `train runs the embedded end-to-end demo on the CPU: it generates synthetic
search worlds (invented people with a city, an employer and a mentor, one
passage each, a BM25 index per world), trains a byte-level BPE tokenizer and a
tiny model from scratch, warms the model up on supervised demonstrations
(cross_entropy), runs fully asynchronous RL with the real search agent, tools
and exact-match rewards, and evaluates on held-out worlds before and after RL.

The run directory gets report.md and report.json (held-out accuracy before and
after RL with the paired bootstrap 95% CI of the lift), metrics.jsonl,
metrics.prom, plots.html, sample trajectories and checkpoints. With no flags
it uses the built-in defaults (about two minutes on 2 CPU cores) and writes to
runs/train-<UTC time>. Every config field is in docs/configuration.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := rl.DemoOptions{Config: rl.DefaultDemoConfig(), Out: out, Logger: slog.Default()}
			if noProgress {
				opts.Progress = rl.ProgressLog
			}
			switch {
			case resume != "" && (out != "" || configPath != ""):
				return errors.New("--resume continues a run with its own directory and config.yaml; drop --out and --config")
			case resume != "":
				opts.Out, opts.Resume = resume, true
			case configPath != "":
				cfg, err := rl.LoadDemoConfig(configPath)
				if err != nil {
					return err
				}
				opts.Config = cfg
			}
			if opts.Out == "" {
				opts.Out = "runs/train-" + time.Now().UTC().Format("20060102-150405")
			}
			rep, err := rl.RunDemo(cmd.Context(), opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "held-out accuracy %.3f → %.3f (lift %+.3f, 95%% CI [%+.3f, %+.3f]); report: %s/report.md\n",
				rep.Before, rep.After, rep.Lift, rep.LiftCI[0], rep.LiftCI[1], opts.Out)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&out, "out", "", "run directory to create (default runs/train-<UTC time>); refused if it already holds a run")
	f.StringVar(&configPath, "config", "", "YAML file over the defaults (fields in docs/rl.md); unknown fields are errors")
	f.StringVar(&resume, "resume", "", "continue the run in this directory with its config.yaml: finished phases are skipped, RL resumes from its last checkpoint")
	f.BoolVar(&noProgress, "no-progress", false, "write progress as log lines instead of bars, even on a terminal")
	return c
}
