package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/corpus"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/retrieval"
	"github.com/asearcher/asearcher/reward"
	"github.com/asearcher/asearcher/synth"
	"github.com/asearcher/asearcher/tools"
)

func newSynthCmd() *cobra.Command {
	var (
		index, search, access, seedsFile, links, out string
		model, modelName, solverModel, judgeModel    string
		judgeCache, toolAgent                        string
		cfg                                          synth.Config
		gen, solve                                   llm.Params
		rngSeed                                      uint64
		toolAttempts                                 int
		noProgress                                   bool
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
question and the difficulty histogram. See docs/synth.md.`,
		Example: `  asearcher index build --corpus builtin:hotpotqa --out idx
  asearcher synth --index idx --model http://127.0.0.1:8000/v1 --n 100 --out synth.jsonl
  asearcher synth filter synth.jsonl --max-solve-rate 0 --per-seed 3 --out hard.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if out == "" || model == "" {
				return errors.New("--out and --model are required")
			}
			if (index == "") == (search == "") {
				return errors.New("give exactly one of --index DIR and --search URL|serper")
			}
			pools := map[string]*llm.Pool{}
			defer func() {
				for _, p := range pools {
					p.Close()
				}
			}()
			client := func(spec string) (*llm.Pool, error) {
				if p, ok := pools[spec]; ok {
					return p, nil
				}
				p, err := llm.NewClient(spec, llm.ClientOptions{APIKey: llm.APIKeyFromEnv(), Model: modelName})
				if err != nil {
					return nil, fmt.Errorf("model %q: %w", spec, err)
				}
				pools[spec] = p
				return p, nil
			}
			var err error
			if cfg.Generator, err = client(model); err != nil {
				return err
			}
			cfg.GeneratorName = cmpOrStr(modelName, model)
			if solverModel != "" {
				if cfg.Solver, err = client(solverModel); err != nil {
					return err
				}
				cfg.SolverName = solverModel
			}
			if judgeModel != "" {
				if cfg.Judge, err = client(judgeModel); err != nil {
					return err
				}
				cfg.JudgeName = judgeModel
			}
			if judgeCache != "" {
				if cfg.JudgeCache, err = reward.OpenJudgeCache(judgeCache); err != nil {
					return err
				}
			}
			var searcher tools.Searcher
			var browser tools.Browser
			if index != "" {
				ix, err := retrieval.Open(index, retrieval.OpenOptions{NoDense: true})
				if err != nil {
					return fmt.Errorf("--index %s: %w (build one with asearcher index build)", index, err)
				}
				defer ix.Close()
				var l synth.Links
				if links != "" {
					if l, err = synth.LoadLinks(links); err != nil {
						return err
					}
				}
				if cfg.Source, err = synth.NewCorpusSource(ix, l, rngSeed); err != nil {
					return err
				}
				searcher, browser = synth.IndexTools{Index: ix}, synth.IndexTools{Index: ix}
			} else {
				if seedsFile == "" {
					return errors.New("--search needs --seeds FILE: one seed query or page title per line")
				}
				queries, err := readLines(seedsFile)
				if err != nil {
					return err
				}
				if searcher, err = tools.SearcherFromSpec(search, tools.SpecOptions{}); err != nil {
					return err
				}
				acc := access
				if acc == "auto" {
					acc = "none"
					if strings.HasPrefix(search, "http") {
						acc = search
					}
				}
				if browser, err = tools.BrowserFromSpec(acc, tools.SpecOptions{}); err != nil {
					return err
				}
				cfg.Source = &synth.SearchSource{Search: searcher, Browse: browser, Queries: queries}
			}
			if toolAttempts > 0 {
				agents := agent.NewRegistry()
				wf, err := agents.New(toolAgent, agent.Options{})
				if err != nil {
					return err
				}
				solverSpec := cmpOrStr(solverModel, model)
				p, err := client(solverSpec)
				if err != nil {
					return err
				}
				cfg.ToolSolver, cfg.ToolAttempts = wf, toolAttempts
				cfg.ToolEnv = &agent.Env{Sampler: p, Search: searcher, Browse: browser, Sampling: solve, Limits: agent.Limits{}.WithDefaults()}
			}
			cfg.Params, cfg.SolverParams = &gen, &solve
			if noProgress {
				cfg.Progress = synth.ProgressLog
			}
			o, err := synth.OpenOutput(out)
			if err != nil {
				return err
			}
			defer o.Close()
			s, err := synth.New(cfg)
			if err != nil {
				return err
			}
			stats, runErr := s.Run(ctx, o)
			stats.WriteText(cmd.OutOrStdout())
			if runErr == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%d questions); stats in %s\n", out, stats.Accepted, synth.StatsPath(out))
			}
			return runErr
		},
	}
	f := c.Flags()
	f.StringVar(&index, "index", "", "a built local index (asearcher index build) whose corpus supplies seeds, pages and links")
	f.StringVar(&search, "search", "", "instead of --index: a retrieval server URL, addrdir:DIR or serper; seeds from --seeds")
	f.StringVar(&access, "access", "auto", "page reader with --search: auto (the retrieval server's /access, none for serper), fetch, jina, none or a URL")
	f.StringVar(&seedsFile, "seeds", "", "with --search: a file of seed queries or titles, one per line")
	f.StringVar(&links, "links", "", "with --index: links file (JSON page → [pages] or {links, in_links}, or JSONL); default: titles mentioned in the text")
	f.StringVar(&out, "out", "", "output JSONL (appended; rerun to resume)")
	f.StringVar(&model, "model", "", "generator model: an OpenAI-compatible base URL (http://host:port/v1) or sglang:http://host:port; comma-separated for a pool")
	f.StringVar(&modelName, "model-name", "", "model name for OpenAI-compatible servers (default: ask the server)")
	f.StringVar(&solverModel, "solver-model", "", "model that answers without tools for the difficulty check (default: --model)")
	f.StringVar(&judgeModel, "judge-model", "", "model that grades the solver's answers (default: --model)")
	f.StringVar(&judgeCache, "judge-cache", "", "file caching judge verdicts across runs")
	f.IntVar(&cfg.Seeds, "n", 10, "seeds to process in total (a resumed run counts the finished ones)")
	f.Uint64Var(&rngSeed, "seed", 1, "seed of the random seed-page sample (--index)")
	f.IntVar(&cfg.Concurrency, "concurrency", 4, "seeds worked on at once")
	f.IntVar(&cfg.MaxTurns, "max-turns", 16, "edits tried per seed")
	f.IntVar(&cfg.SolverAttempts, "attempts", 8, "solver answers per candidate (difficulty check)")
	f.Float64Var(&cfg.MaxSolveRate, "max-solve-rate", 0.5, "write versions whose solve rate is at most this")
	f.Float64Var(&cfg.ExitSolveRate, "exit-solve-rate", 0, "offer exit once a version's solve rate was at most this")
	f.IntVar(&cfg.MaxLinks, "max-links", 10, "linked entities offered for injection")
	f.IntVar(&cfg.MaxParseRetries, "retries", 2, "repeats of a call whose reply does not parse")
	f.IntVar(&cfg.MaxPageChars, "max-page-chars", 6000, "characters of a page shown to the model")
	f.IntVar(&toolAttempts, "tool-attempts", 0, "also run the search agent this many times per validated version (records tool_solve_rate)")
	f.StringVar(&toolAgent, "agent", agent.AgentASearcher, "agent for --tool-attempts")
	f.Float64Var(&gen.Temperature, "temperature", 0.8, "generator temperature")
	f.Float64Var(&gen.TopP, "top-p", 0.95, "generator nucleus sampling threshold")
	f.IntVar(&gen.MaxNewTokens, "max-tokens", 2048, "most tokens of one generator reply")
	f.Float64Var(&solve.Temperature, "solver-temperature", 0.6, "solver temperature")
	f.IntVar(&solve.MaxNewTokens, "solver-max-tokens", 1024, "most tokens of one solver reply")
	f.BoolVar(&noProgress, "no-progress", false, "log progress lines instead of drawing a bar")
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
			if err := corpus.WriteFileAtomic(out, []byte(b.String())); err != nil {
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

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no seed lines", path)
	}
	return out, nil
}

func cmpOrStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
