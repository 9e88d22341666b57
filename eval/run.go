package eval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/corpus"
	"github.com/asearcher/asearcher/dataset"
	"github.com/asearcher/asearcher/internal/runlock"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/reward"
)

// File names inside a run directory.
const (
	ResultsFile      = "results.jsonl"
	TrajectoriesFile = "trajectories.jsonl.zst"
	ManifestFile     = "run.json"
	JudgeCacheFile   = "judge-cache.jsonl"
	ReportJSONFile   = "report.json"
	ReportMDFile     = "report.md"
	ReportHTMLFile   = "report.html"
)

// manifestVersion is the run.json layout version.
const manifestVersion = 1

// Options are the parts of a run that are not configuration.
type Options struct {
	// Registry supplies the workflow named by Config.Agent (nil: the
	// built-in agents). Register a custom workflow to evaluate it.
	Registry *agent.Registry
	// Env, when set, is used instead of building one from Config's model
	// and tool specs (the embedded engine, a custom sampler). Its Sampling
	// and Limits are still taken from Config.
	Env *agent.Env
	// EnvFor, when set, gives each question its own environment (a
	// per-question corpus or tool set), as rl.WorkflowRollout.Env does
	// for training; it is called once per sample and excludes Env. As
	// with Env, Config's sampling and limits are applied to what it
	// returns, and the run-wide in-flight caps are shared by all of them.
	// An error stops the run (finished samples are kept).
	EnvFor func(set *dataset.Set, item *dataset.Item) (*agent.Env, error)
	// Sets, when given, are evaluated instead of loading Config.Data
	// (which must then be empty): data made in memory by the calling
	// program. Each needs a distinct Name and unique item IDs; Source and
	// SHA256 go into the run's identity, so set SHA256 to a digest of the
	// items for resume to notice changed data. Limit and TextOnly apply
	// as to loaded sets; the caller's sets are not modified.
	Sets []*dataset.Set
	// Seed, when set, gives the seed of sample `sample` of the item at
	// Index `index` of the named set, in place of the default derived
	// from Config.Seed, the set name, the item ID and the sample (a
	// program that reproduces seeds of its own). It must be a pure
	// function: a resumed run relies on getting the same seeds.
	Seed func(set string, index, sample int) int64
	// Backends opens Config.Model (nil: llm.NewBackends, the HTTP and
	// Tinker backends; the program registers in-process ones such as
	// embedded:DIR).
	Backends *llm.Backends
	// Force accepts a run directory whose results came from a different
	// configuration.
	Force bool
	// Repair resumes a run directory with damaged records (other than a
	// torn last one, which is always repaired): each file changed is kept
	// as FILE.bak-<time>, damaged records are dropped and their samples
	// run again. Without it such a directory is refused.
	Repair   bool
	Progress ProgressMode
	Log      *slog.Logger
	// Stderr receives the progress bar (default os.Stderr).
	Stderr io.Writer
}

// job is one (question, sample) to run.
type job struct {
	set    *dataset.Set
	item   *dataset.Item
	sample int
	redact bool
}

// Run evaluates cfg, resuming what cfg.Out already holds, and writes the
// reports. It returns the report of everything in the run directory.
// Cancelling ctx stops the agents; what finished is kept and a rerun
// continues from there.
func Run(ctx context.Context, cfg Config, opts Options) (*Report, error) {
	if err := cfg.validate(len(opts.Sets) > 0); err != nil {
		return nil, err
	}
	if opts.Env != nil && opts.EnvFor != nil {
		return nil, errors.New("eval options: set Env or EnvFor, not both")
	}
	if opts.Env == nil && opts.EnvFor == nil && strings.TrimSpace(cfg.Model) == "" {
		return nil, errNoModel
	}
	cfg = cfg.withDefaults()
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	reg := opts.Registry
	if reg == nil {
		reg = agent.NewRegistry()
	}
	wf, err := reg.New(cfg.Agent, agent.Options{Prompt: cfg.Prompt})
	if err != nil {
		return nil, err
	}

	sets, err := loadSets(cfg, opts.Sets)
	if err != nil {
		return nil, err
	}
	if err := CheckGroupFields(cfg.GroupBy, sets); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("create run directory: %w", err)
	}
	unlock, err := runlock.Acquire(filepath.Join(cfg.Out, "eval.lock"), "eval")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := checkManifest(cfg, sets, opts.Force, opts.Repair, log); err != nil {
		return nil, err
	}

	resultsPath := filepath.Join(cfg.Out, ResultsFile)
	results, done, notes, err := openResults(resultsPath, opts.Repair)
	if err != nil {
		return nil, err
	}
	defer results.close()
	doneKeys := make(map[key]bool, len(done))
	for i := range done {
		doneKeys[done[i].key()] = true
	}

	var trajW *agent.Writer
	if !cfg.NoTrajectories {
		path := filepath.Join(cfg.Out, TrajectoriesFile)
		redacted := map[string]bool{}
		for _, set := range sets {
			redacted[set.Name] = isEncryptedSet(set)
		}
		stored := func(k key) bool { return !redacted[k.Dataset] }
		lost, tnotes, err := repairTrajectories(path, doneKeys, stored, opts.Repair)
		if err != nil {
			return nil, err
		}
		notes = append(notes, tnotes...)
		if len(lost) > 0 {
			// Their trajectories are gone: run those samples again, so the
			// run ends with a result and a trajectory for each.
			if done, err = results.drop(resultsPath, done, lost); err != nil {
				return nil, err
			}
			for k := range lost {
				delete(doneKeys, k)
			}
		}
		if trajW, err = agent.Append(path); err != nil {
			return nil, err
		}
		defer trajW.Close()
	}

	for _, n := range notes {
		log.Warn("repair: " + n)
	}

	var jobs []job
	total := 0
	for s := 0; s < cfg.K; s++ { // sample-major: every question gets a first sample early
		for _, set := range sets {
			redact := isEncryptedSet(set)
			for i := range set.Items {
				total++
				if doneKeys[key{set.Name, set.Items[i].ID, s}] {
					continue
				}
				jobs = append(jobs, job{set: set, item: &set.Items[i], sample: s, redact: redact})
			}
		}
	}
	log.Info("eval", "datasets", len(sets), "questions×samples", total, "done", total-len(jobs), "to run", len(jobs), "out", cfg.Out)

	if len(jobs) > 0 {
		env, closeEnv, err := buildEnv(ctx, cfg, opts, log)
		if err != nil {
			return nil, err
		}
		defer closeEnv()
		judge, closeJudge, err := buildJudge(cfg)
		if err != nil {
			return nil, err
		}
		defer closeJudge()
		r := &runner{cfg: cfg, wf: wf, env: env, envFor: opts.EnvFor, seed: opts.Seed, limits: newLimiter(cfg), judge: judge, results: results, traj: trajW, log: log}
		if env != nil {
			env = r.limits.apply(env, cfg, log)
			r.env = env
		}
		stderr := opts.Stderr
		if stderr == nil {
			stderr = os.Stderr
		}
		r.progress = newProgress(opts.Progress, stderr, log, total, done)
		err = r.run(ctx, jobs)
		r.progress.finish()
		if err != nil {
			return nil, err
		}
	}
	if err := results.f.Sync(); err != nil {
		return nil, fmt.Errorf("sync results: %w", err)
	}
	return WriteReportsGroupedBy(cfg.Out, cfg.GroupBy)
}

// loadSets loads cfg.Data, or takes the sets given in memory, and applies
// TextOnly and Limit to each.
func loadSets(cfg Config, given []*dataset.Set) ([]*dataset.Set, error) {
	var sets []*dataset.Set
	names := map[string]string{}
	add := func(set *dataset.Set, what string) error {
		if prev, ok := names[set.Name]; ok {
			return fmt.Errorf("%s and %s are both named %q; rename one", prev, what, set.Name)
		}
		names[set.Name] = what
		if cfg.TextOnly {
			var skipped int
			set.Items, skipped = dataset.TextOnly(set.Items)
			if skipped > 0 {
				slog.Info("text_only: skipping questions with attachments", "data", what, "skipped", skipped, "kept", len(set.Items))
			}
		} else if _, n := dataset.TextOnly(set.Items); n > 0 {
			slog.Warn("questions come with attachments the agent cannot read; --text-only skips them", "data", what, "with_attachment", n)
		}
		if cfg.Limit > 0 {
			set.Items = dataset.First(set.Items, cfg.Limit)
		}
		if len(set.Items) == 0 {
			return fmt.Errorf("%s: no questions", what)
		}
		ids := map[string]bool{}
		for _, it := range set.Items {
			if ids[it.ID] {
				return fmt.Errorf("%s: question id %q appears twice; results are keyed by id", what, it.ID)
			}
			ids[it.ID] = true
		}
		sets = append(sets, set)
		return nil
	}
	for i, g := range given {
		if g == nil {
			return nil, fmt.Errorf("eval options: set %d is nil", i)
		}
		set := *g // TextOnly and Limit must not change the caller's set
		if err := add(&set, fmt.Sprintf("set %q", g.Name)); err != nil {
			return nil, err
		}
	}
	for _, d := range cfg.Data {
		set, err := dataset.Load(d, dataset.Options{})
		if err != nil {
			return nil, fmt.Errorf("--data %s: %w", d, err)
		}
		if err := add(set, "--data "+d); err != nil {
			return nil, err
		}
	}
	return sets, nil
}

// isEncryptedSet says whether a set's plain text must stay off disk.
func isEncryptedSet(s *dataset.Set) bool {
	return strings.HasPrefix(s.Name, "xbench") || strings.Contains(strings.ToLower(s.Source), "xbench")
}

func identityOf(cfg Config, sets []*dataset.Set) runIdentity {
	id := runIdentity{
		K: cfg.K, Limit: cfg.Limit, TextOnly: cfg.TextOnly, Model: cfg.Model, ModelName: cfg.ModelName, Tokenizer: cfg.Tokenizer,
		Search: cfg.Search, Access: cfg.Access, Agent: cfg.Agent, Prompt: cfg.Prompt,
		Temperature: cfg.Temperature, TopP: cfg.TopP, TopK: cfg.TopK, Seed: cfg.Seed,
		Limits: cfg.Limits, Judge: cfg.Judge, JudgeModel: cfg.JudgeModel,
	}
	if cfg.Judge != "" {
		id.JudgeStyle, id.JudgePromptFile, id.JudgeTemperature = cfg.JudgeStyle, cfg.JudgePromptFile, cfg.JudgeTemperature
	}
	for _, s := range sets {
		id.Datasets = append(id.Datasets, datasetIdentity{Name: s.Name, Source: s.Source, SHA256: s.SHA256})
	}
	return id
}

// checkManifest refuses to resume a run directory made with a different
// configuration (unless forced) and writes run.json.
func checkManifest(cfg Config, sets []*dataset.Set, force, repair bool, log *slog.Logger) error {
	path := filepath.Join(cfg.Out, ManifestFile)
	id := identityOf(cfg, sets)
	m := runManifest{Hash: id.hash(), Identity: id, Config: cfg, Started: time.Now().UTC(), Version: manifestVersion}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		var old runManifest
		if err := json.Unmarshal(data, &old); err != nil {
			if !repair {
				return fmt.Errorf("%s is damaged (%v); nothing was changed. Rerun with --repair to keep a backup and write it anew from this command's configuration, or use a new --out", path, err)
			}
			backup, err := replaceWithBackup(path, data)
			if err != nil {
				return err
			}
			log.Warn("repair: " + fmt.Sprintf("%s was damaged: kept as %s and written anew from this command's configuration", path, backup))
			break
		}
		if old.Hash != m.Hash {
			changed := id.diff(old.Identity)
			slices.Sort(changed)
			if !force {
				return fmt.Errorf("%s holds results of a different configuration (changed: %s); use a new --out, or --force to keep them and continue",
					cfg.Out, strings.Join(changed, ", "))
			}
		} else {
			m.Started = old.Started
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := corpus.WriteJSONFile(path, m); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// buildEnv makes the Env from the config (or takes the one given), puts
// the run-wide limits around its sampler and tools, and checks that the
// servers answer, so a dead server is one clear error up front.
// With Options.EnvFor there is no run-wide Env: it returns nil.
func buildEnv(ctx context.Context, cfg Config, opts Options, log *slog.Logger) (*agent.Env, func() error, error) {
	if opts.EnvFor != nil {
		return nil, func() error { return nil }, nil
	}
	if opts.Env != nil {
		e := *opts.Env
		return &e, func() error { return nil }, nil
	}
	// Our own transport, so the connections it keeps are closed with the
	// run (a program that runs many evals does not pile them up).
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns = 2 * cfg.MaxLLMInFlight
	transport.MaxIdleConnsPerHost = cfg.MaxLLMInFlight
	ec := agent.EnvConfig{
		Model: cfg.Model, ModelName: cfg.ModelName, Tokenizer: cfg.Tokenizer,
		Search: cfg.Search, Access: cfg.Access, AllowPrivateFetch: cfg.AllowPrivateFetch,
		ToolCache: cfg.ToolCache, ToolCacheMode: cfg.ToolCacheMode, Log: log,
		Backends: opts.Backends,
		// The run's own in-flight limit, per server of a pool or as the
		// batch of an in-process engine.
		Open: llm.OpenOptions{MaxInFlight: cfg.MaxLLMInFlight, HTTPClient: &http.Client{Transport: transport}},
	}
	env, closeModel, err := ec.Build(ctx)
	if err != nil {
		transport.CloseIdleConnections()
		return nil, nil, err
	}
	closeEnv := func() error {
		err := closeModel()
		transport.CloseIdleConnections()
		return err
	}
	if err := agent.CheckEnv(ctx, env, ec, 10*time.Second); err != nil {
		closeEnv()
		return nil, nil, err
	}
	return env, closeEnv, nil
}

// limiter holds the run-wide in-flight caps, shared by every environment
// of the run (one, or one per question with Options.EnvFor).
type limiter struct {
	llm, search, access semaphore
}

func newLimiter(cfg Config) *limiter {
	return &limiter{llm: make(semaphore, cfg.MaxLLMInFlight), search: make(semaphore, cfg.MaxSearchInFlight),
		access: make(semaphore, cfg.MaxAccessInFlight)}
}

// apply sets the run's sampling and limits on env and puts the run-wide
// in-flight caps around its sampler and tools.
func (l *limiter) apply(env *agent.Env, cfg Config, log *slog.Logger) *agent.Env {
	env.Sampling = llm.Params{Temperature: cfg.Temperature, TopP: cfg.TopP, TopK: cfg.TopK}
	env.Limits = cfg.Limits
	env.Log = log
	env.Sampler = &limitedSampler{inner: env.Sampler, sem: l.llm}
	if env.Search != nil {
		env.Search = &limitedSearcher{inner: env.Search, sem: l.search}
	}
	if env.Browse != nil {
		env.Browse = &limitedBrowser{inner: env.Browse, sem: l.access}
	}
	return env
}

func checkModel(ctx context.Context, pool *llm.Pool, spec string) error {
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := llm.Ready(hctx, pool); err != nil {
		return fmt.Errorf("model server %s does not answer: start it or fix the setting (%v)", spec, err)
	}
	return nil
}

func buildJudge(cfg Config) (*reward.Judge, func() error, error) {
	if cfg.Judge == "" {
		return nil, func() error { return nil }, nil
	}
	pool, err := llm.NewClient(cfg.Judge, llm.ClientOptions{APIKey: llm.APIKeyFromEnv(), Model: cfg.JudgeModel})
	if err != nil {
		return nil, nil, fmt.Errorf("--judge: %w", err)
	}
	cache, err := reward.OpenJudgeCache(filepath.Join(cfg.Out, JudgeCacheFile))
	if err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("judge cache: %w", err)
	}
	if err := checkModel(context.Background(), pool, cfg.Judge); err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("--judge: %w", err)
	}
	j, err := reward.NewJudge(pool, reward.JudgeConfig{Model: cfg.JudgeModel, MaxAttempts: cfg.JudgeTries, MaxTokens: cfg.JudgeTokens,
		Style: cfg.JudgeStyle, PromptFile: cfg.JudgePromptFile, Temperature: cfg.JudgeTemperature}, cache)
	if err != nil {
		pool.Close()
		cache.Close()
		return nil, nil, fmt.Errorf("--judge: %w", err)
	}
	return j, func() error { cache.Close(); return pool.Close() }, nil
}

type runner struct {
	cfg      Config
	wf       agent.Workflow
	env      *agent.Env // nil with envFor
	envFor   func(*dataset.Set, *dataset.Item) (*agent.Env, error)
	seed     func(set string, index, sample int) int64
	limits   *limiter
	judge    *reward.Judge
	results  *resultsFile
	traj     *agent.Writer
	log      *slog.Logger
	progress *evalProgress
}

// run executes jobs on Concurrency workers. The first failure that is not
// the model's own (a dead model server after retries, a full disk) stops
// the run with that error; finished samples are already on disk.
func (r *runner) run(ctx context.Context, jobs []job) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ch := make(chan *job)
	var wg sync.WaitGroup
	for range min(r.cfg.Concurrency, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				if err := r.runJob(ctx, j); err != nil {
					cancel(err)
				}
			}
		}()
	}
feed:
	for i := range jobs {
		select {
		case ch <- &jobs[i]:
		case <-ctx.Done():
			break feed
		}
	}
	close(ch)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("eval interrupted (finished samples are saved; rerun the same command to resume): %w", err)
		}
		return err
	}
	return nil
}

// sampleSeed derives the seed of one sample, stable across resumes.
func sampleSeed(base int64, dataset, id string, sample int) int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%d", dataset, id, sample)
	return (base ^ int64(h.Sum64())) & 0x7fffffff
}

func (r *runner) runJob(ctx context.Context, j *job) error {
	if ctx.Err() != nil {
		return nil
	}
	seed := sampleSeed(r.cfg.Seed, j.set.Name, j.item.ID, j.sample)
	if r.seed != nil {
		seed = r.seed(j.set.Name, j.item.Index, j.sample)
	}
	env := r.env
	if r.envFor != nil {
		e, err := r.envFor(j.set, j.item)
		if err != nil {
			return fmt.Errorf("environment for %s question %s: %w", j.set.Name, j.item.ID, err)
		}
		if e == nil {
			return fmt.Errorf("environment for %s question %s: EnvFor returned none", j.set.Name, j.item.ID)
		}
		c := *e // the caller's Env keeps its own sampling and limits
		env = r.limits.apply(&c, r.cfg, r.log)
	}
	task := agent.Task{ID: j.item.ID, Sample: j.sample, Question: j.item.Question, Answers: j.item.Answers, Seed: &seed}
	start := time.Now()
	var (
		traj     *agent.Trajectory
		runErr   error
		attempts int
	)
	for attempts = 1; attempts <= r.cfg.MaxAttempts; attempts++ {
		traj, runErr = r.wf.Run(ctx, env, task)
		if ctx.Err() != nil {
			return nil // interrupted: not recorded, runs again on resume
		}
		if runErr == nil && traj != nil {
			break
		}
		r.log.Warn("agent run failed", "dataset", j.set.Name, "id", j.item.ID, "sample", j.sample, "attempt", attempts, "err", runErr)
	}
	if runErr != nil || traj == nil {
		if runErr == nil {
			runErr = fmt.Errorf("agent %s returned no trajectory", r.wf.Name())
		}
		return fmt.Errorf("%s question %s sample %d failed %d times, stopping (finished samples are saved; fix the cause and rerun to resume): %w",
			j.set.Name, j.item.ID, j.sample, r.cfg.MaxAttempts, runErr)
	}
	wall := time.Since(start)
	rec := &Record{
		Dataset: j.set.Name, ID: j.item.ID, Index: j.item.Index, Sample: j.sample, Seed: seed,
		Question: j.item.Question, Golds: j.item.Answers,
		Prediction: strings.TrimSpace(traj.Answer), Answered: traj.Answered, End: string(traj.End), Error: traj.Error,
		Stats: traj.Stats(), WallNS: int64(wall), Attempts: min(attempts, r.cfg.MaxAttempts), Meta: j.item.Meta,
	}
	rec.Scores = reward.Score(rec.Prediction, j.item.Answers)
	if rw, ok := r.wf.(agent.Rewarder); ok {
		v, err := rw.Reward(ctx, task, traj)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s reward of %s question %s: %w", r.wf.Name(), j.set.Name, j.item.ID, err)
		}
		rec.Reward = &v
	}
	if r.judge != nil {
		jd, err := r.judge.Judge(ctx, reward.JudgeInput{Question: j.item.Question, Golds: j.item.Answers, Prediction: rec.Prediction})
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("judge %s question %s: %w", j.set.Name, j.item.ID, err)
		}
		if jd.Verdict == reward.Unjudged && jd.Raw == "" && jd.Attempts > 0 {
			// Not one reply came back: the judge server or its model name
			// is wrong, and a 0 recorded now would never be retried.
			return fmt.Errorf("judge failed on %s question %s (%s); fix --judge / --judge-model and rerun to resume", j.set.Name, j.item.ID, jd.Error)
		}
		rec.Judge = &jd
	}
	if j.redact {
		rec.Question, rec.Golds = "", nil
	}
	// The trajectory goes first: a kill between the two writes leaves a
	// trajectory without a result, which the next run drops and redoes.
	if r.traj != nil && !j.redact {
		if traj.Extra == nil {
			traj.Extra = map[string]any{}
		}
		traj.TaskID, traj.Sample = j.item.ID, j.sample // custom workflows may leave them out
		traj.Extra["dataset"] = j.set.Name
		traj.Extra["golds"] = j.item.Answers
		if err := r.traj.Write(traj); err != nil {
			return fmt.Errorf("write trajectory: %w", err)
		}
		// On disk before the result that says the sample is done, so a
		// power loss cannot keep the result and lose its trajectory.
		if err := r.traj.Sync(); err != nil {
			return fmt.Errorf("sync trajectories: %w", err)
		}
	}
	if err := r.results.write(rec); err != nil {
		return err
	}
	r.progress.add(rec)
	return nil
}
