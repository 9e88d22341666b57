package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/synth"
)

// loadSynthConfig reads a --config file (a synth: block, unknown keys
// refused: synth.LoadOptions) over o; flags set on the command line win.
func loadSynthConfig(fs *pflag.FlagSet, path string, o *synth.Options) error {
	return applyConfigFile(fs, func() error { return synth.LoadOptions(path, o) }, "config")
}

func newSynthCmd() *cobra.Command {
	var (
		o          = synth.DefaultOptions()
		configPath string
		noProgress bool
		repair     bool
	)
	c := &cobra.Command{
		Use:   "synth --index DIR|--search URL|serper --model URL --n N --out FILE",
		Short: "Synthesise hard, verified multi-hop questions with an LLM agent",
		Long: `synth makes QA data the way ASearcher's synthesis agent does: from a seed
page it asks the model for a simple question, then repeatedly injects a fact
from a linked page (one more hop; the bridge entity disappears) or fuzzes a
detail, keeping an edit only when it passes the checks: quality (one
well-formed question, answerable from the collected statements, answer
correct), difficulty (the solver answers --attempts times without tools; the
solve rate is the fraction judged correct) and uniqueness (no wrong solver
answer is also right). Versions with a solve rate of at most
--max-solve-rate are written to --out, one JSON line each with evidence and
history; eval and train read the file as a QA set.

Seeds come from --index (random passages of a built index; links from
--links or from titles mentioned in the text) or, with --search, from the
queries in --seeds. The run appends to --out and keeps a journal beside it
(FILE.seeds.jsonl): rerun the same command after a stop to resume; finished
seeds are skipped. FILE.stats.json holds the rejection reasons, edits per
question and the difficulty histogram. See docs/synth.md.

A second run on the same --out is refused while the first holds FILE.lock.
On resume a torn last line (a kill mid-write) is cut off; any other damaged
line stops the run with the file and byte offset, changing nothing. Rerun
with --repair to back the files up (FILE.bak-<time>), drop the damaged
lines and redo their seeds; it prints what it dropped.`,
		Example: `  asearcher index build --corpus builtin:hotpotqa --out idx
  asearcher synth --index idx --model http://127.0.0.1:8000/v1 --n 100 --out synth.jsonl
  asearcher synth filter synth.jsonl --max-solve-rate 0 --per-seed 3 --out hard.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if configPath != "" {
				if err := loadSynthConfig(cmd.Flags(), configPath, &o); err != nil {
					return err
				}
			}
			return synth.RunOptions(cmd.Context(), o, synth.RunEnv{Backends: modelBackends(),
				Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr(), NoProgress: noProgress, Repair: repair})
		},
	}
	f := c.Flags()
	f.StringVar(&configPath, "config", "", "YAML file with a synth: block of these settings (flags override it)")
	f.StringVar(&o.Index, "index", "", "a built local index (asearcher index build) whose corpus supplies seeds, pages and links")
	f.StringVar(&o.Seeds, "seeds", "", "with --search: a file of seed queries or titles, one per line")
	f.StringVar(&o.Links, "links", "", "with --index: links file (JSON page → [pages] or {links, in_links}, or JSONL); default: titles mentioned in the text")
	f.StringVar(&o.Out, "out", "", "output JSONL (appended; rerun to resume)")
	addBackendFlags(f, backendFlagVars{model: &o.Model, modelName: &o.ModelName,
		search: &o.Search, access: &o.Access, allowPrivateFetch: &o.AllowPrivateFetch, toolCache: &o.ToolCache, toolCacheMode: &o.ToolCacheMode})
	f.StringVar(&o.SolverModel, "solver-model", "", "model that answers without tools for the difficulty check, same forms as --model (default: --model)")
	f.StringVar(&o.JudgeModel, "judge-model", "", "model that grades the solver's answers (default: --model)")
	f.StringVar(&o.JudgeCache, "judge-cache", "", "file caching judge verdicts across runs")
	f.IntVar(&o.N, "n", o.N, "seeds to process in total (a resumed run counts the finished ones)")
	f.Uint64Var(&o.Seed, "seed", o.Seed, "seed of the random seed-page sample (--index)")
	f.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "seeds worked on at once")
	f.IntVar(&o.MaxTurns, "max-turns", o.MaxTurns, "edits tried per seed")
	f.IntVar(&o.Attempts, "attempts", o.Attempts, "solver answers per candidate (difficulty check)")
	f.Float64Var(&o.MaxSolveRate, "max-solve-rate", o.MaxSolveRate, "write versions whose solve rate is at most this")
	f.Float64Var(&o.ExitSolveRate, "exit-solve-rate", o.ExitSolveRate, "offer exit once a version's solve rate was at most this")
	f.IntVar(&o.MaxLinks, "max-links", o.MaxLinks, "linked entities offered for injection")
	f.IntVar(&o.Retries, "retries", o.Retries, "repeats of a call whose reply does not parse")
	f.IntVar(&o.MaxPageChars, "max-page-chars", o.MaxPageChars, "characters of a page shown to the model")
	f.IntVar(&o.ToolAttempts, "tool-attempts", o.ToolAttempts, "also run the search agent this many times per validated version (records tool_solve_rate)")
	f.StringVar(&o.Agent, "agent", o.Agent, "agent for --tool-attempts")
	f.Float64Var(&o.Temperature, "temperature", o.Temperature, "generator temperature")
	f.Float64Var(&o.TopP, "top-p", o.TopP, "generator nucleus sampling threshold")
	f.IntVar(&o.MaxTokens, "max-tokens", o.MaxTokens, "most tokens of one generator reply")
	f.Float64Var(&o.SolverTemperature, "solver-temperature", o.SolverTemperature, "solver temperature")
	f.IntVar(&o.SolverMaxTokens, "solver-max-tokens", o.SolverMaxTokens, "most tokens of one solver reply")
	f.BoolVar(&noProgress, "no-progress", false, "log progress lines instead of drawing a bar")
	f.BoolVar(&repair, "repair", false, "resume an output with damaged lines: back the files up (FILE.bak-<time>), drop the damaged lines and redo their seeds (without it a damaged output is refused)")
	c.AddCommand(newSynthFilterCmd())
	return c
}

func newSynthFilterCmd() *cobra.Command {
	var (
		out      string
		opts     synth.FilterOptions
		toolRate float64
	)
	c := &cobra.Command{
		Use:   "filter FILE --out FILE",
		Short: "Keep the hard versions of a synth output (at most M per seed)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("--out is required")
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			recs, err := synth.ReadRecords(f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if cmd.Flags().Changed("max-tool-solve-rate") {
				opts.MaxToolSolveRate = &toolRate
			}
			kept := synth.Filter(recs, opts)
			var b strings.Builder
			if err := synth.WriteRecords(&b, kept); err != nil {
				return err
			}
			if err := atomicfile.WriteFile(out, []byte(b.String())); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "kept %d of %d versions in %s\n", len(kept), len(recs), out)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "output JSONL")
	c.Flags().Float64Var(&opts.MaxSolveRate, "max-solve-rate", 0, "keep versions whose solve rate is at most this")
	c.Flags().Float64Var(&toolRate, "max-tool-solve-rate", 1, "also bound the search agent's solve rate (when recorded)")
	c.Flags().IntVar(&opts.PerSeed, "per-seed", 3, "keep at most this many versions per seed, hardest first (0: all)")
	return c
}
