package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/retrieval"
	"github.com/asearcher/asearcher/reward"
	"github.com/asearcher/asearcher/synth"
	"github.com/asearcher/asearcher/tools"
)

// synthOptions are the synth command's knobs: its flags, and the keys of
// a --config YAML file (flags given on the command line win).
type synthOptions struct {
	Index             string  `yaml:"index"`
	Search            string  `yaml:"search"`
	Access            string  `yaml:"access"`
	AllowPrivateFetch bool    `yaml:"allow_private_fetch"`
	ToolCache         string  `yaml:"tool_cache"`
	ToolCacheMode     string  `yaml:"tool_cache_mode"`
	Seeds             string  `yaml:"seeds"`
	Links             string  `yaml:"links"`
	Out               string  `yaml:"out"`
	Model             string  `yaml:"model"`
	ModelName         string  `yaml:"model_name"`
	SolverModel       string  `yaml:"solver_model"`
	JudgeModel        string  `yaml:"judge_model"`
	JudgeCache        string  `yaml:"judge_cache"`
	N                 int     `yaml:"n"`
	Seed              uint64  `yaml:"seed"`
	Concurrency       int     `yaml:"concurrency"`
	MaxTurns          int     `yaml:"max_turns"`
	Attempts          int     `yaml:"attempts"`
	MaxSolveRate      float64 `yaml:"max_solve_rate"`
	ExitSolveRate     float64 `yaml:"exit_solve_rate"`
	MaxLinks          int     `yaml:"max_links"`
	Retries           int     `yaml:"retries"`
	MaxPageChars      int     `yaml:"max_page_chars"`
	ToolAttempts      int     `yaml:"tool_attempts"`
	Agent             string  `yaml:"agent"`
	Temperature       float64 `yaml:"temperature"`
	TopP              float64 `yaml:"top_p"`
	MaxTokens         int     `yaml:"max_tokens"`
	SolverTemperature float64 `yaml:"solver_temperature"`
	SolverMaxTokens   int     `yaml:"solver_max_tokens"`
}

// loadSynthConfig reads a --config file (a synth: block, unknown keys
// refused) over o; flags set on the command line win.
func loadSynthConfig(fs *pflag.FlagSet, path string, o *synthOptions) error {
	return applyConfigFile(fs, func() error {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("--config: %w", err)
		}
		defer f.Close()
		var file struct {
			Synth *synthOptions `yaml:"synth"`
		}
		file.Synth = o
		dec := yaml.NewDecoder(f)
		dec.KnownFields(true)
		if err := dec.Decode(&file); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("--config %s: %w (keys are the flag names with _ under a synth: block)", path, err)
		}
		return nil
	}, "config")
}

func newSynthCmd() *cobra.Command {
	var (
		o          synthOptions
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
			return runSynth(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o, noProgress, repair)
		},
	}
	f := c.Flags()
	f.StringVar(&configPath, "config", "", "YAML file with a synth: block of these settings (flags override it)")
	f.StringVar(&o.Index, "index", "", "a built local index (asearcher index build) whose corpus supplies seeds, pages and links")
	f.StringVar(&o.Seeds, "seeds", "", "with --search: a file of seed queries or titles, one per line")
	f.StringVar(&o.Links, "links", "", "with --index: links file (JSON page → [pages] or {links, in_links}, or JSONL); default: titles mentioned in the text")
	f.StringVar(&o.Out, "out", "", "output JSONL (appended; rerun to resume)")
	o.Access, o.ToolCacheMode = "auto", "live"
	addBackendFlags(f, backendFlagVars{model: &o.Model, modelName: &o.ModelName,
		search: &o.Search, access: &o.Access, allowPrivateFetch: &o.AllowPrivateFetch, toolCache: &o.ToolCache, toolCacheMode: &o.ToolCacheMode})
	f.StringVar(&o.SolverModel, "solver-model", "", "model that answers without tools for the difficulty check, same forms as --model (default: --model)")
	f.StringVar(&o.JudgeModel, "judge-model", "", "model that grades the solver's answers (default: --model)")
	f.StringVar(&o.JudgeCache, "judge-cache", "", "file caching judge verdicts across runs")
	f.IntVar(&o.N, "n", 10, "seeds to process in total (a resumed run counts the finished ones)")
	f.Uint64Var(&o.Seed, "seed", 1, "seed of the random seed-page sample (--index)")
	f.IntVar(&o.Concurrency, "concurrency", 4, "seeds worked on at once")
	f.IntVar(&o.MaxTurns, "max-turns", 16, "edits tried per seed")
	f.IntVar(&o.Attempts, "attempts", 8, "solver answers per candidate (difficulty check)")
	f.Float64Var(&o.MaxSolveRate, "max-solve-rate", 0.5, "write versions whose solve rate is at most this")
	f.Float64Var(&o.ExitSolveRate, "exit-solve-rate", 0, "offer exit once a version's solve rate was at most this")
	f.IntVar(&o.MaxLinks, "max-links", 10, "linked entities offered for injection")
	f.IntVar(&o.Retries, "retries", 2, "repeats of a call whose reply does not parse")
	f.IntVar(&o.MaxPageChars, "max-page-chars", 6000, "characters of a page shown to the model")
	f.IntVar(&o.ToolAttempts, "tool-attempts", 0, "also run the search agent this many times per validated version (records tool_solve_rate)")
	f.StringVar(&o.Agent, "agent", agent.AgentASearcher, "agent for --tool-attempts")
	f.Float64Var(&o.Temperature, "temperature", 0.8, "generator temperature")
	f.Float64Var(&o.TopP, "top-p", 0.95, "generator nucleus sampling threshold")
	f.IntVar(&o.MaxTokens, "max-tokens", 2048, "most tokens of one generator reply")
	f.Float64Var(&o.SolverTemperature, "solver-temperature", 0.6, "solver temperature")
	f.IntVar(&o.SolverMaxTokens, "solver-max-tokens", 1024, "most tokens of one solver reply")
	f.BoolVar(&noProgress, "no-progress", false, "log progress lines instead of drawing a bar")
	f.BoolVar(&repair, "repair", false, "resume an output with damaged lines: back the files up (FILE.bak-<time>), drop the damaged lines and redo their seeds (without it a damaged output is refused)")
	c.AddCommand(newSynthFilterCmd())
	return c
}

// runSynth runs one synth command: it opens the models and the seed
// source, then synthesises into o.Out.
func runSynth(ctx context.Context, w, stderr io.Writer, o synthOptions, noProgress, repair bool) error {
	if o.Out == "" || o.Model == "" {
		return errors.New("--out and --model are required")
	}
	if (o.Index == "") == (o.Search == "") {
		return errors.New("give exactly one of --index DIR and --search URL|serper")
	}
	cfg := synth.Config{
		Seeds: o.N, Concurrency: o.Concurrency, MaxTurns: o.MaxTurns, SolverAttempts: o.Attempts,
		MaxSolveRate: o.MaxSolveRate, ExitSolveRate: o.ExitSolveRate, MaxLinks: o.MaxLinks,
		MaxParseRetries: o.Retries, MaxPageChars: o.MaxPageChars,
		Params:       &llm.Params{Temperature: o.Temperature, TopP: o.TopP, MaxNewTokens: o.MaxTokens},
		SolverParams: &llm.Params{Temperature: o.SolverTemperature, MaxNewTokens: o.SolverMaxTokens},
	}
	models := &synthModels{ctx: ctx, backends: modelBackends(), opts: llm.OpenOptions{ModelName: o.ModelName}, open: map[string]llm.Sampler{}}
	defer models.close()
	var err error
	if cfg.Generator, err = models.get(o.Model); err != nil {
		return err
	}
	cfg.GeneratorName = cmpOrStr(o.ModelName, o.Model)
	if o.SolverModel != "" {
		if cfg.Solver, err = models.get(o.SolverModel); err != nil {
			return err
		}
		cfg.SolverName = o.SolverModel
	}
	if o.JudgeModel != "" {
		if cfg.Judge, err = models.get(o.JudgeModel); err != nil {
			return err
		}
		cfg.JudgeName = o.JudgeModel
	}
	if o.JudgeCache != "" {
		if cfg.JudgeCache, err = reward.OpenJudgeCache(o.JudgeCache); err != nil {
			return err
		}
	}
	t, closeSource, err := synthSource(o, &cfg)
	if err != nil {
		return err
	}
	defer closeSource()
	if o.ToolAttempts > 0 {
		wf, err := agent.NewRegistry().New(o.Agent, agent.Options{})
		if err != nil {
			return err
		}
		p, err := models.get(cmpOrStr(o.SolverModel, o.Model))
		if err != nil {
			return err
		}
		cfg.ToolSolver, cfg.ToolAttempts = wf, o.ToolAttempts
		cfg.ToolEnv = &agent.Env{Sampler: p, Search: t.Search, Browse: t.Browse, Sampling: *cfg.SolverParams, Limits: agent.Limits{}.WithDefaults()}
	}
	if noProgress {
		cfg.Progress = synth.ProgressLog
	}
	s, err := synth.New(cfg)
	if err != nil {
		return err
	}
	out, err := synth.OpenOutputWith(o.Out, synth.OutputOptions{Repair: repair})
	if err != nil {
		return err
	}
	defer out.Close()
	for _, line := range out.Repaired {
		fmt.Fprintln(stderr, "repair:", line)
	}
	if err := writeSynthConfig(o.Out+".config.yaml", o); err != nil {
		return err
	}
	stats, runErr := s.Run(ctx, out)
	stats.WriteText(w)
	if runErr == nil {
		fmt.Fprintf(w, "wrote %s (%d questions); stats in %s\n", o.Out, stats.Accepted, synth.StatsPath(o.Out))
	}
	return runErr
}

// synthModels opens each model spec of a synth run once (the generator,
// solver and judge may share one).
type synthModels struct {
	ctx      context.Context
	backends *llm.Backends
	opts     llm.OpenOptions
	open     map[string]llm.Sampler
	closers  []func() error
}

func (m *synthModels) get(spec string) (llm.Sampler, error) {
	if s, ok := m.open[spec]; ok {
		return s, nil
	}
	s, closeFn, err := m.backends.Open(m.ctx, spec, m.opts)
	if err != nil {
		return nil, err
	}
	m.open[spec] = s
	m.closers = append(m.closers, closeFn)
	return s, nil
}

func (m *synthModels) close() {
	for _, c := range m.closers {
		c()
	}
}

// synthSource sets cfg.Source from --index (a local index's passages and
// links) or --search with --seeds, and returns the tools the search agent
// of --tool-attempts uses.
func synthSource(o synthOptions, cfg *synth.Config) (tools.Tools, func(), error) {
	if o.Index != "" {
		ix, err := retrieval.Open(o.Index, retrieval.OpenOptions{NoDense: true})
		if err != nil {
			return tools.Tools{}, nil, fmt.Errorf("--index %s: %w (build one with asearcher index build)", o.Index, err)
		}
		var l synth.Links
		if o.Links != "" {
			if l, err = synth.LoadLinks(o.Links); err != nil {
				ix.Close()
				return tools.Tools{}, nil, err
			}
		}
		if cfg.Source, err = synth.NewCorpusSource(ix, l, o.Seed); err != nil {
			ix.Close()
			return tools.Tools{}, nil, err
		}
		return tools.Tools{Search: synth.IndexTools{Index: ix}, Browse: synth.IndexTools{Index: ix}}, func() { ix.Close() }, nil
	}
	if o.Seeds == "" {
		return tools.Tools{}, nil, errors.New("--search needs --seeds FILE: one seed query or page title per line")
	}
	queries, err := readLines(o.Seeds)
	if err != nil {
		return tools.Tools{}, nil, err
	}
	t, err := tools.Open(tools.Config{Search: o.Search, Access: o.Access, AllowPrivateFetch: o.AllowPrivateFetch, Cache: o.ToolCache, CacheMode: o.ToolCacheMode}, nil)
	if err != nil {
		return tools.Tools{}, nil, err
	}
	cfg.Source = &synth.SearchSource{Search: t.Search, Browse: t.Browse, Queries: queries}
	return t, func() {}, nil
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

// writeSynthConfig records the settings of a run beside its output.
func writeSynthConfig(path string, o synthOptions) error {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(map[string]synthOptions{"synth": o}); err != nil {
		return err
	}
	enc.Close()
	return atomicfile.WriteFile(path, b.Bytes())
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
