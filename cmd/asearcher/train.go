package main

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/asearcher/asearcher/recipe"
)

// newTrainCmd wires `asearcher train` to recipe.RunDemo (docs/rl.md).
func newTrainCmd() *cobra.Command {
	var out, configPath, resume, preset, modelDir string
	var noProgress, repair bool
	c := &cobra.Command{
		Use:   "train",
		Short: "Train a tiny search agent with fully asynchronous RL on synthetic search worlds",
		Long: `train runs the embedded end-to-end demo on the CPU: it generates synthetic
search worlds (invented people with a city, an employer and a mentor, one
passage each, a BM25 index per world), trains a byte-level BPE tokenizer and a
tiny model from scratch, warms the model up on supervised demonstrations
(cross_entropy), runs fully asynchronous RL with the real search agent, tools
and exact-match rewards, and evaluates on held-out worlds before and after RL.

Demo presets (--preset):
  multihop (default)  half the questions need two searches ("Where does the
                      mentor of Favok live?": search Favok, read the mentor's
                      name, search the mentor, answer). The warm-up never
                      shows a search whose query was read from an
                      observation; RL discovers chaining from the
                      exact-match reward, helped by exploration
                      (rl.explore: part of each group must search twice; the
                      query is the model's own). 5:50 on 2 shared cores
                      (load 4.6); met for the default seed, not for seed 2
                      (docs/rl.md, "Multi-hop").
  quick               1-hop questions only, about a minute and a half on 2
                      idle cores: RL learns to search instead of guessing.
Measured runs and their wall times are in docs/benchmarks.md.

The run directory gets report.md and report.json (held-out accuracy before and
after RL with the paired bootstrap 95% CI of the lift, and the same per hop
count with searches and turns), metrics.jsonl, metrics.prom, plots.html,
sample trajectories and checkpoints. Held-out worlds have their own seeds and
facts (world.split_names also keeps their people out of training). With no
--out it writes to runs/train-<UTC time>. --config is read over the preset;
every config field is in docs/configuration.md.

The config's blocks pick the mode. With a cluster: block (and optionally
launch:) train drives real backends instead: a Tinker trainer, an SGLang
fleet (or Tinker sampling), a retrieval server and a dataset, as
docs/cluster.md describes. Such a file is read as cluster:, launch: and rl:
only; demo settings (seed:, world:, model:, agent:, warmup:, eval:) beside
a cluster: block are an error.

--preset smollm2 --model DIR trains a real pretrained model instead (an
imported SmolLM2-135M-Instruct, or any model directory with a chat template):
the search agent in the model's own chat format over the shipped HotpotQA
questions and Wikipedia paragraphs, a warm-up on demonstrations the agent
renders itself, fully asynchronous RL, and held-out EM/F1 before and after RL
with paired bootstrap CIs (docs/real-model.md). --config FILE with a real:
block changes its settings; such a file alone selects this mode too.

A killed run continues with --resume DIR (relative or absolute), from its last
checkpoint; a second train on the same directory is refused while the first
runs (DIR/train.lock). On resume a torn last line of metrics.jsonl (a kill
mid-write) is cut; any other damaged line stops the resume with the file and
byte offset, changing nothing; add --repair to keep a backup
(metrics.jsonl.bak-<time>) and drop the damaged lines. A checkpoint missing
its optimiser state is refused, never resumed with a fresh optimiser.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if resume != "" && (out != "" || configPath != "" || preset != "" || modelDir != "") {
				return errors.New("--resume continues a run with its own directory and config.yaml; drop --out, --config, --preset and --model")
			}
			real := preset == recipe.RealPresetSmolLM2
			if preset != "" && !real && !slices.Contains(recipe.DemoPresets(), preset) {
				return fmt.Errorf("--preset %q: want a demo preset (%s) or %s (a real model, with --model DIR)",
					preset, strings.Join(recipe.DemoPresets(), ", "), recipe.RealPresetSmolLM2)
			}
			if real != (modelDir != "") {
				return errors.New("--preset smollm2 and --model DIR go together: the real-model run needs both")
			}
			progress := recipe.ProgressAuto
			if noProgress {
				progress = recipe.ProgressLog
			}
			if out == "" {
				out = cmp.Or(resume, "runs/train-"+time.Now().UTC().Format("20060102-150405"))
			}
			if real {
				cfg := recipe.DefaultRealConfig(modelDir)
				if configPath != "" {
					tc, err := recipe.LoadTrainConfig(configPath)
					if err != nil {
						return err
					}
					if tc.Mode != recipe.ModeReal {
						return fmt.Errorf("--preset %s takes a config with a real: block (docs/real-model.md); %s is a %s config", preset, configPath, tc.Mode)
					}
					cfg = tc.Real
					cfg.Real.ModelDir = modelDir
				}
				return runRealTrain(cmd, cfg, out, false, repair, progress)
			}
			base, err := recipe.DemoPreset(cmp.Or(preset, recipe.DefaultPreset))
			if err != nil {
				return err
			}
			opts := recipe.DemoOptions{Config: base, Out: out, Resume: resume != "", Repair: repair, Progress: progress, Logger: slog.Default()}
			if resume != "" || configPath != "" {
				// One loader picks the mode: a resumed run's own config.yaml
				// or the --config file (defaults, the file strictly, then
				// flags; no train flag sets a config field today).
				var tc recipe.TrainConfig
				load := func() (err error) {
					tc, err = recipe.LoadTrainConfigOver(cmp.Or(configPath, filepath.Join(resume, "config.yaml")), base)
					return err
				}
				if err := applyConfigFile(cmd.Flags(), load, "config"); err != nil {
					return err
				}
				switch tc.Mode {
				case recipe.ModeCluster:
					return runClusterTrain(cmd, tc.Cluster, out, resume != "", repair, progress)
				case recipe.ModeReal:
					return runRealTrain(cmd, tc.Real, out, resume != "", repair, progress)
				}
				opts.Config = tc.Demo
			}
			rep, err := recipe.RunDemo(cmd.Context(), opts)
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
	f.StringVar(&configPath, "config", "", "YAML file over the preset (fields in docs/rl.md); unknown fields are errors")
	f.StringVar(&resume, "resume", "", "continue the run in this directory with its config.yaml: finished phases are skipped, RL resumes from its last checkpoint")
	f.BoolVar(&noProgress, "no-progress", false, "write progress as log lines instead of bars, even on a terminal")
	f.StringVar(&preset, "preset", "", "demo preset: "+strings.Join(recipe.DemoPresets(), " (default), ")+
		"; or smollm2 with --model to train a real pretrained model instead (docs/real-model.md)")
	f.StringVar(&modelDir, "model", "", "with --preset: the model directory (asearcher model import writes one)")
	f.BoolVar(&repair, "repair", false, "with --resume: drop damaged lines of metrics.jsonl (a backup is kept) instead of refusing to resume")
	return c
}

// runClusterTrain wires `train --config` with a cluster: block (or
// --resume of such a run) to recipe.RunLaunched, which starts the servers
// of a launch: block first.
func runClusterTrain(cmd *cobra.Command, file recipe.ClusterFile, out string, resume, repair bool, progress recipe.ProgressMode) error {
	// On resume RunLaunched rereads the run directory's config.yaml itself.
	opts := recipe.ClusterOptions{File: file, Out: out, Resume: resume, Repair: repair, Progress: progress, Logger: slog.Default()}
	sum, err := recipe.RunLaunched(cmd.Context(), opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "trained to version %d; metrics: %s/metrics.jsonl, checkpoint: %s\n", sum.Version, out, sum.Checkpoint)
	return nil
}

// runRealTrain wires `train --preset smollm2 --model DIR` (or a config
// with a real: block, or --resume of such a run) to recipe.RunReal.
func runRealTrain(cmd *cobra.Command, cfg recipe.RealConfig, out string, resume, repair bool, progress recipe.ProgressMode) error {
	if pct, ok := realGCPercent(os.Getenv); ok {
		defer debug.SetGCPercent(debug.SetGCPercent(pct))
	}
	rep, err := recipe.RunReal(cmd.Context(), recipe.RealOptions{Config: cfg, Out: out, Resume: resume, Repair: repair, Progress: progress, Logger: slog.Default()})
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "held-out EM %.3f → %.3f, F1 %.3f → %.3f (F1 lift 95%% CI [%+.3f, %+.3f]); report: %s/report.md\n",
		rep.EMBefore, rep.EMAfter, rep.F1Before, rep.F1After, rep.F1LiftCI[0], rep.F1LiftCI[1], out)
	return nil
}

// realGCPercentDefault is the GC target of a real-model train run: the
// heap may grow 25% over what is live before a collection, not Go's
// default 100%. Training a real model keeps gigabytes of pointer-free
// float32 buffers live, which a collection barely has to scan, and at 100%
// SmolLM2-135M's full-weight RL ran at twice its ~4.7 GB live heap (11 GB
// RSS and an OOM kill on a shared 24 GB machine).
const realGCPercentDefault = 25

// realGCPercent is the GC percentage runRealTrain sets: none when the user
// chose one with GOGC or a limit with GOMEMLIMIT.
func realGCPercent(getenv func(string) string) (int, bool) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return 0, false
	}
	return realGCPercentDefault, true
}
