package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/asearcher/asearcher/rl"
	"github.com/asearcher/asearcher/rl/demo"
)

func newTrainCmd() *cobra.Command {
	var out, configPath, resume string
	c := &cobra.Command{
		Use:   "train",
		Short: "Train a tiny search agent with fully asynchronous RL on synthetic search worlds",
		Long: `train runs the embedded end-to-end demo: it generates synthetic search worlds
(fresh invented people and places, one passage each), builds a tiny model from
scratch, warms it up on supervised demonstrations (cross_entropy), runs fully
asynchronous RL with the real search agent, tools and rewards, and evaluates
on held-out worlds before and after RL. The run directory gets report.md,
report.json (held-out accuracy before and after RL with the bootstrap 95% CI
of the lift), metrics.jsonl, metrics.prom, plots.html, sample trajectories and
checkpoints. With no flags it uses the built-in defaults and writes to
runs/train-<UTC time>.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := demo.DefaultConfig()
			if resume != "" {
				if out != "" {
					return errors.New("--resume names the run directory; drop --out")
				}
				out = resume
				if configPath == "" {
					configPath = out + "/config.yaml"
				}
			}
			if configPath != "" {
				f, err := os.Open(configPath)
				if err != nil {
					return fmt.Errorf("read config: %w", err)
				}
				err = rl.DecodeYAML(f, &cfg)
				f.Close()
				if err != nil {
					return fmt.Errorf("config %s: %w", configPath, err)
				}
			}
			if out == "" {
				out = "runs/train-" + time.Now().UTC().Format("20060102-150405")
			}
			log := slog.Default()
			rep, err := demo.Run(cmd.Context(), demo.Options{Config: cfg, Out: out, Resume: resume != "", Logger: log,
				Status: func(msg string) { log.Info(msg) }})
			if err != nil {
				return fmt.Errorf("%w (continue with: asearcher train --resume %s)", err, out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "held-out accuracy %.3f → %.3f (lift %+.3f, 95%% CI [%+.3f, %+.3f]); report: %s/report.md\n",
				rep.BeforeAccuracy, rep.AfterAccuracy, rep.Lift, rep.LiftCI95[0], rep.LiftCI95[1], out)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&out, "out", "", "run directory (default runs/train-<UTC time>)")
	f.StringVar(&configPath, "config", "", "YAML config over the defaults; unknown fields are errors")
	f.StringVar(&resume, "resume", "", "continue the run in this directory from its last checkpoint, with its config.yaml")
	return c
}
