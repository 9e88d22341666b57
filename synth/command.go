package synth

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/retrieval"
	"github.com/asearcher/asearcher/reward"
	"github.com/asearcher/asearcher/tools"
)

// Options are the settings of one synthesis run as `asearcher synth`
// takes them: its flags, and the keys of the synth: block of a config
// file. DefaultOptions holds the defaults.
type Options struct {
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

// DefaultOptions are the defaults of every setting (asearcher synth's
// flag defaults).
func DefaultOptions() Options {
	return Options{
		Access: "auto", ToolCacheMode: "live", N: 10, Seed: 1, Concurrency: 4, MaxTurns: 16, Attempts: 8,
		MaxSolveRate: 0.5, MaxLinks: 10, Retries: 2, MaxPageChars: 6000, Agent: agent.AgentASearcher,
		Temperature: 0.8, TopP: 0.95, MaxTokens: 2048, SolverTemperature: 0.6, SolverMaxTokens: 1024,
	}
}

// LoadOptions decodes the synth: block of a config file over o; unknown
// keys are errors.
func LoadOptions(path string, o *Options) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	var file struct {
		Synth *Options `yaml:"synth"`
	}
	file.Synth = o
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w (keys are the flag names with _ under a synth: block)", path, err)
	}
	return nil
}

// RunEnv is what a run of Options needs from its program.
type RunEnv struct {
	// Backends opens the model specs (nil: llm.NewBackends).
	Backends *llm.Backends
	// Stdout gets the statistics, Stderr the repair notes.
	Stdout, Stderr io.Writer
	// NoProgress logs progress lines instead of drawing a bar.
	NoProgress bool
	// Repair resumes an output with damaged lines (OutputOptions.Repair).
	Repair bool
}

// RunOptions runs one synthesis: it opens the models and the seed source,
// then synthesises into o.Out, resuming what it already holds.
func RunOptions(ctx context.Context, o Options, env RunEnv) error {
	w, stderr := env.Stdout, env.Stderr
	if w == nil {
		w = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	backends := env.Backends
	if backends == nil {
		backends = llm.NewBackends()
	}
	if o.Out == "" || o.Model == "" {
		return errors.New("synth: out and model are required")
	}
	if (o.Index == "") == (o.Search == "") {
		return errors.New("synth: give exactly one of index (a built index) and search (a retrieval server or serper)")
	}
	cfg := Config{
		Seeds: o.N, Concurrency: o.Concurrency, MaxTurns: o.MaxTurns, SolverAttempts: o.Attempts,
		MaxSolveRate: o.MaxSolveRate, ExitSolveRate: o.ExitSolveRate, MaxLinks: o.MaxLinks,
		MaxParseRetries: o.Retries, MaxPageChars: o.MaxPageChars,
		Params:       &llm.Params{Temperature: o.Temperature, TopP: o.TopP, MaxNewTokens: o.MaxTokens},
		SolverParams: &llm.Params{Temperature: o.SolverTemperature, MaxNewTokens: o.SolverMaxTokens},
	}
	models := &synthModels{ctx: ctx, backends: backends, opts: llm.OpenOptions{ModelName: o.ModelName}, open: map[string]llm.Sampler{}}
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
	if env.NoProgress {
		cfg.Progress = ProgressLog
	}
	s, err := New(cfg)
	if err != nil {
		return err
	}
	out, err := OpenOutputWith(o.Out, OutputOptions{Repair: env.Repair})
	if err != nil {
		return err
	}
	defer out.Close()
	for _, line := range out.Repaired {
		fmt.Fprintln(stderr, "repair:", line)
	}
	if err := WriteOptions(o.Out+".config.yaml", o); err != nil {
		return err
	}
	stats, runErr := s.Run(ctx, out)
	stats.WriteText(w)
	if runErr == nil {
		fmt.Fprintf(w, "wrote %s (%d questions); stats in %s\n", o.Out, stats.Accepted, StatsPath(o.Out))
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

// synthSource sets cfg.Source from index (a local index's passages and
// links) or search with seeds, and returns the tools the search agent
// of tool_attempts uses.
func synthSource(o Options, cfg *Config) (tools.Tools, func(), error) {
	if o.Index != "" {
		ix, err := retrieval.Open(o.Index, retrieval.OpenOptions{NoDense: true})
		if err != nil {
			return tools.Tools{}, nil, fmt.Errorf("index %s: %w (build one with asearcher index build)", o.Index, err)
		}
		var l Links
		if o.Links != "" {
			if l, err = LoadLinks(o.Links); err != nil {
				ix.Close()
				return tools.Tools{}, nil, err
			}
		}
		if cfg.Source, err = NewCorpusSource(ix, l, o.Seed); err != nil {
			ix.Close()
			return tools.Tools{}, nil, err
		}
		return tools.Tools{Search: IndexTools{Index: ix}, Browse: IndexTools{Index: ix}}, func() { ix.Close() }, nil
	}
	if o.Seeds == "" {
		return tools.Tools{}, nil, errors.New("search needs seeds: a file of seed queries or page titles, one per line")
	}
	queries, err := readLines(o.Seeds)
	if err != nil {
		return tools.Tools{}, nil, err
	}
	t, err := tools.Open(tools.Config{Search: o.Search, Access: o.Access, AllowPrivateFetch: o.AllowPrivateFetch, Cache: o.ToolCache, CacheMode: o.ToolCacheMode}, nil)
	if err != nil {
		return tools.Tools{}, nil, err
	}
	cfg.Source = &SearchSource{Search: t.Search, Browse: t.Browse, Queries: queries}
	return t, func() {}, nil
}

// WriteOptions records the settings of a run beside its output, as a
// config file with a synth: block that LoadOptions reads back.
func WriteOptions(path string, o Options) error {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(map[string]Options{"synth": o}); err != nil {
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
