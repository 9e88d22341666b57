package synth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/reward"
)

// Config configures a Synthesizer. Zero values take the defaults in
// brackets.
type Config struct {
	Source Source
	// Generator writes and edits questions and runs the quality and
	// uniqueness checks (upstream's reasoning model).
	Generator     llm.Sampler
	GeneratorName string
	// Solver answers candidates without tools [Generator].
	Solver     llm.Sampler
	SolverName string
	// Judge grades solver answers against the answer [Generator].
	Judge     llm.Sampler
	JudgeName string
	// JudgeCache persists verdicts across runs (nil: in memory).
	JudgeCache *reward.JudgeCache
	// Prompts is the prompt registry; the synth prompts are added when
	// missing [agent.NewPrompts()].
	Prompts *agent.Prompts

	// Seeds is how many seeds the run covers in total, earlier runs of the
	// same output included [10].
	Seeds int
	// Concurrency is how many seeds run at once [4].
	Concurrency int
	// MaxTurns bounds the edits tried per seed [16].
	MaxTurns int
	// SolverAttempts is how many times the solver answers each candidate
	// [8].
	SolverAttempts int
	// MaxSolveRate: a validated version is written when its solve rate is
	// at most this (zero: only versions no solver attempt got right);
	// easier ones count as too_easy. The command's default is 0.5.
	MaxSolveRate float64
	// ExitSolveRate: exit is offered once a version's solve rate was at
	// most this [0, i.e. no solver attempt was right].
	ExitSolveRate float64
	// MaxLinks is how many linked entities are offered for injection [10].
	MaxLinks int
	// MaxParseRetries is how often a call is repeated after a reply that
	// does not parse (zero: never; the command's default is 2).
	MaxParseRetries int
	// MaxPageChars cuts pages shown to the model [6000].
	MaxPageChars int
	// Params sample the generator [temperature 0.8, top-p 0.95, 2048
	// tokens]; SolverParams the solver [temperature 0.6, 1024 tokens].
	Params       *llm.Params
	SolverParams *llm.Params

	// ToolSolver, when set, also runs the search agent on every validated
	// version ToolAttempts times [2]; its rate is recorded as
	// tool_solve_rate (and filtered on by Filter).
	ToolSolver   agent.Workflow
	ToolEnv      *agent.Env
	ToolAttempts int

	// Progress chooses how the run reports progress.
	Progress ProgressMode
	// Logger receives progress lines (when no bar is drawn) and warnings
	// about failed seeds [slog.Default()].
	Logger *slog.Logger
	// Now stamps records [time.Now].
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.Solver == nil {
		c.Solver, c.SolverName = c.Generator, cmpOr(c.SolverName, c.GeneratorName)
	}
	if c.Judge == nil {
		c.Judge, c.JudgeName = c.Generator, cmpOr(c.JudgeName, c.GeneratorName)
	}
	c.GeneratorName = cmpOr(c.GeneratorName, "generator")
	c.SolverName = cmpOr(c.SolverName, c.GeneratorName)
	c.JudgeName = cmpOr(c.JudgeName, c.GeneratorName)
	c.Seeds = cmpInt(c.Seeds, 10)
	c.Concurrency = cmpInt(c.Concurrency, 4)
	c.MaxTurns = cmpInt(c.MaxTurns, 16)
	c.SolverAttempts = cmpInt(c.SolverAttempts, 8)
	c.MaxLinks = cmpInt(c.MaxLinks, 10)
	c.MaxPageChars = cmpInt(c.MaxPageChars, 6000)
	if c.Params == nil {
		c.Params = &llm.Params{Temperature: 0.8, TopP: 0.95, MaxNewTokens: 2048}
	}
	if c.SolverParams == nil {
		c.SolverParams = &llm.Params{Temperature: 0.6, MaxNewTokens: 1024}
	}
	c.ToolAttempts = cmpInt(c.ToolAttempts, 2)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Synthesizer runs the synthesis agent.
type Synthesizer struct {
	cfg     Config
	prompts map[string]agent.Prompt
	judge   *reward.Judge
}

// New checks the config and builds a Synthesizer.
func New(cfg Config) (*Synthesizer, error) {
	if cfg.Source == nil || cfg.Generator == nil {
		return nil, errors.New("synth: a source and a generator model are required")
	}
	if cfg.ToolSolver != nil && cfg.ToolEnv == nil {
		return nil, errors.New("synth: a tool solver needs its environment (ToolEnv)")
	}
	cfg.defaults()
	if cfg.MaxParseRetries < 0 {
		cfg.MaxParseRetries = 0
	}
	reg := cfg.Prompts
	if reg == nil {
		reg = agent.NewPrompts()
	}
	s := &Synthesizer{cfg: cfg, prompts: map[string]agent.Prompt{}}
	defaults := builtinPrompts()
	for _, d := range defaults {
		p, err := reg.Get(d.Name)
		if err != nil {
			p = d
		}
		s.prompts[d.Name] = p
	}
	j, err := reward.NewJudge(cfg.Judge, reward.JudgeConfig{Model: cfg.JudgeName}, cfg.JudgeCache)
	if err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	s.judge = j
	return s, nil
}

// Run synthesises questions from the configured number of seeds, skipping
// seeds out already holds, and commits each seed as it finishes. It
// returns the stats over every finished seed. Seeds that fail (the model
// server is unreachable, ctx ends) are not committed, so a rerun does them
// again; the error then says how many failed.
func (s *Synthesizer) Run(ctx context.Context, out *Output) (Stats, error) {
	seeds, err := s.cfg.Source.Seeds(ctx, s.cfg.Seeds)
	if err != nil {
		return Stats{}, fmt.Errorf("synth seeds: %w", err)
	}
	if len(seeds) == 0 {
		return Stats{}, errors.New("synth: the source has no seed pages")
	}
	var todo []Page
	for _, p := range seeds {
		if !out.Done(pageKey(p)) {
			todo = append(todo, p)
		}
	}
	if skipped := len(seeds) - len(todo); skipped > 0 {
		s.cfg.Logger.Info("synth: resuming", "done", skipped, "to do", len(todo))
	}
	prog := newProgress(s.cfg.Progress, s.cfg.Logger, len(seeds), len(seeds)-len(todo))
	var (
		mu      sync.Mutex
		failed  int
		lastErr error
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.Concurrency)
	for _, p := range todo {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			res, err := s.runSeed(gctx, p)
			if err == nil {
				err = out.Commit(res)
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				s.cfg.Logger.Warn("synth: seed failed; it will be redone on resume", "seed", pageKey(p), "err", err)
				mu.Lock()
				failed++
				lastErr = err
				mu.Unlock()
				prog.add(0, true)
				return nil
			}
			prog.add(res.Accepted, false)
			return nil
		})
	}
	werr := g.Wait()
	prog.finish()
	stats := ComputeStats(out.Results())
	if err := writeStats(StatsPath(out.Path), stats); err != nil {
		return stats, err
	}
	if werr != nil {
		return stats, fmt.Errorf("synth interrupted; rerun the same command to resume: %w", werr)
	}
	if failed > 0 {
		return stats, fmt.Errorf("synth: %d of %d seeds failed (last: %w); rerun the same command to resume them", failed, len(todo), lastErr)
	}
	return stats, nil
}

// version is a question with everything known about it.
type version struct {
	question, answer string
	statements       []Evidence
	actions          []Action
	injections       int
	fuzzes           int
}

// seedRun is the mutable state of one seed's run.
type seedRun struct {
	id  string
	mu  sync.Mutex
	res SeedResult
}

func (r *seedRun) reject(reason string) {
	r.mu.Lock()
	r.res.Rejected[reason]++
	r.mu.Unlock()
}

func (r *seedRun) nextCall() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Calls++
	return r.res.Calls
}

// errUnparseable: the model never produced a reply matching the schema.
var errUnparseable = errors.New("no reply matched the schema")

func (s *Synthesizer) runSeed(ctx context.Context, seed Page) (SeedResult, error) {
	start := time.Now()
	run := &seedRun{id: pageKey(seed), res: SeedResult{
		SeedID: pageKey(seed), Title: seed.Title,
		Rejected: map[string]int{}, Tried: map[string]int{}, Passed: map[string]int{},
	}}
	defer func() { run.res.Duration = time.Since(start) }()
	rng := seedRand(run.id)

	var base baseQAReply
	err := s.ask(ctx, run, "base_qa", PromptBaseQA, map[string]string{
		"title": seed.Title, "text": clip(seed.Text, s.cfg.MaxPageChars),
	}, &base)
	if err != nil {
		return s.endSeed(run, "base_unparseable", err)
	}
	cur := version{
		question: strings.TrimSpace(base.Question), answer: strings.TrimSpace(base.Answer),
		statements: []Evidence{evidence(base.Statement, seed)},
	}
	run.res.Tried["base"]++
	ok, hard, err := s.check(ctx, run, seed, &cur, 0)
	if err != nil {
		return run.res, err
	}
	if !ok {
		run.res.End = "base_rejected"
		return run.res, nil
	}
	run.res.Passed["base"]++
	provedHard := hard

	pool, err := s.cfg.Source.Related(ctx, seed, s.cfg.MaxLinks)
	if err != nil {
		return run.res, err
	}
	used := map[string]bool{seed.Title: true}
	for turn := 1; turn <= s.cfg.MaxTurns; turn++ {
		run.res.Turns = turn
		offered := []string{ActionFuzz}
		if len(pool) > 0 {
			offered = append(offered, ActionInject)
		}
		if provedHard {
			offered = append(offered, ActionExit)
		}
		rng.Shuffle(len(offered), func(i, j int) { offered[i], offered[j] = offered[j], offered[i] })
		var act actionReply
		err := s.ask(ctx, run, "action", PromptAction, map[string]string{
			"question": cur.question, "answer": cur.answer, "statements": listStatements(cur.statements),
			"actions": describeActions(offered), "entities": listTitles(pool),
		}, &act)
		if err != nil {
			if errors.Is(err, errUnparseable) {
				run.reject(ReasonUnparseable)
				continue
			}
			return run.res, err
		}
		if !containsString(offered, act.Action) {
			run.reject(ReasonNotOffered)
			continue
		}
		run.res.Tried[act.Action]++
		var (
			cand   version
			reason string
			page   Page
		)
		switch act.Action {
		case ActionExit:
			run.res.End = "exit"
			return run.res, nil
		case ActionInject:
			i := findTitle(pool, act.Entity)
			if i < 0 {
				run.reject(ReasonUnknownEntity)
				continue
			}
			page = pool[i]
			pool = append(pool[:i:i], pool[i+1:]...)
			used[page.Title] = true
			cand, reason, err = s.inject(ctx, run, cur, page, turn)
		case ActionFuzz:
			cand, reason, err = s.fuzz(ctx, run, cur, turn)
		}
		if err != nil {
			return run.res, err
		}
		if reason != "" {
			run.reject(reason)
			continue
		}
		ok, hard, err := s.check(ctx, run, seed, &cand, turn)
		if err != nil {
			return run.res, err
		}
		if !ok {
			continue
		}
		provedHard = provedHard || hard
		if act.Action == ActionInject {
			// The new page's own links extend the chain: the next hop.
			more, err := s.cfg.Source.Related(ctx, page, s.cfg.MaxLinks)
			if err != nil {
				return run.res, err
			}
			for _, m := range more {
				if !used[m.Title] && findTitle(pool, m.Title) < 0 && len(pool) < 4*s.cfg.MaxLinks {
					pool = append(pool, m)
				}
			}
		}
		run.res.Passed[act.Action]++
		cur = cand
	}
	run.res.End = "max_turns"
	return run.res, nil
}

// endSeed ends a seed whose base question could not be made.
func (s *Synthesizer) endSeed(run *seedRun, end string, err error) (SeedResult, error) {
	if errors.Is(err, errUnparseable) {
		run.reject(ReasonUnparseable)
		run.res.End = end
		return run.res, nil
	}
	return run.res, err
}

func (s *Synthesizer) inject(ctx context.Context, run *seedRun, cur version, page Page, turn int) (version, string, error) {
	var r injectReply
	err := s.ask(ctx, run, "inject", PromptInject, map[string]string{
		"question": cur.question, "answer": cur.answer, "statements": listStatements(cur.statements),
		"title": page.Title, "text": clip(page.Text, s.cfg.MaxPageChars),
	}, &r)
	if errors.Is(err, errUnparseable) {
		return version{}, ReasonUnparseable, nil
	}
	if err != nil {
		return version{}, "", err
	}
	if !sameAnswer(r.Answer, cur.answer) {
		return version{}, ReasonAnswerChanged, nil
	}
	covered, err := s.covered(ctx, run, cur.statements, r.Fact)
	if errors.Is(err, errUnparseable) {
		return version{}, ReasonUnparseable, nil
	}
	if err != nil {
		return version{}, "", err
	}
	if covered {
		return version{}, ReasonCovered, nil
	}
	next := cur.extend(strings.TrimSpace(r.Question), Action{
		Turn: turn, Action: ActionInject, Entity: page.Title, Detail: strings.TrimSpace(r.Bridge),
	})
	next.statements = append(next.statements, evidence(r.Fact, page))
	next.injections++
	return next, "", nil
}

// covered: an exact repeat is caught without a model call.
func (s *Synthesizer) covered(ctx context.Context, run *seedRun, known []Evidence, fact string) (bool, error) {
	nf := reward.NormalizeText(fact)
	for _, e := range known {
		if reward.NormalizeText(e.Statement) == nf {
			return true, nil
		}
	}
	var r coveredReply
	if err := s.ask(ctx, run, "covered", PromptCovered, map[string]string{
		"statements": listStatements(known), "fact": fact,
	}, &r); err != nil {
		return false, err
	}
	return r.Covered, nil
}

func (s *Synthesizer) fuzz(ctx context.Context, run *seedRun, cur version, turn int) (version, string, error) {
	var r fuzzReply
	err := s.ask(ctx, run, "fuzz", PromptFuzz, map[string]string{
		"question": cur.question, "answer": cur.answer, "statements": listStatements(cur.statements),
	}, &r)
	if errors.Is(err, errUnparseable) {
		return version{}, ReasonUnparseable, nil
	}
	if err != nil {
		return version{}, "", err
	}
	if !sameAnswer(r.Answer, cur.answer) {
		return version{}, ReasonAnswerChanged, nil
	}
	next := cur.extend(strings.TrimSpace(r.Question), Action{Turn: turn, Action: ActionFuzz, Detail: strings.TrimSpace(r.Obscured)})
	next.fuzzes++
	return next, "", nil
}

func (v version) extend(question string, a Action) version {
	a.Question = question
	return version{
		question: question, answer: v.answer,
		statements: append([]Evidence(nil), v.statements...),
		actions:    append(append([]Action(nil), v.actions...), a),
		injections: v.injections, fuzzes: v.fuzzes,
	}
}

// check validates a candidate and, when it passes and is hard enough,
// keeps it as a record. ok says it passed validation (it becomes the
// current version); hard says it reached the exit solve rate.
func (s *Synthesizer) check(ctx context.Context, run *seedRun, seed Page, v *version, turn int) (ok, hard bool, err error) {
	verdict, err := s.validate(ctx, run, v)
	if err != nil {
		return false, false, err
	}
	if verdict.reason != "" {
		run.reject(verdict.reason)
		return false, false, nil
	}
	solved := fmt.Sprintf("%d/%d", verdict.correct, verdict.attempts)
	run.res.Solved = append(run.res.Solved, solved)
	rate := float64(verdict.correct) / float64(verdict.attempts)
	if rate > s.cfg.MaxSolveRate {
		run.reject(ReasonTooEasy)
		return true, false, nil
	}
	rec := Record{
		ID:       fmt.Sprintf("%s#v%d", run.id, turn),
		Question: v.question, Answer: v.answer,
		SeedID: run.id, Seed: seed, Version: turn,
		Evidence: v.statements, Actions: v.actions,
		Injections: v.injections, Fuzzes: v.fuzzes,
		SolveRate: rate, SolverCorrect: verdict.correct, SolverAttempts: verdict.attempts, SolverAnswers: verdict.answers,
		ToolSolveRate: verdict.toolRate,
		Models:        Models{Generator: s.cfg.GeneratorName, Solver: s.cfg.SolverName, Judge: s.cfg.JudgeName},
		Created:       s.cfg.Now().UTC(),
	}
	if rec.Actions == nil {
		rec.Actions = []Action{}
	}
	for _, e := range v.statements {
		rec.Statements = append(rec.Statements, e.Statement)
	}
	run.res.records = append(run.res.records, rec)
	run.res.Accepted++
	run.res.Kept = append(run.res.Kept, Kept{Version: turn, Injections: v.injections, Fuzzes: v.fuzzes, SolveRate: rate})
	return true, rate <= s.cfg.ExitSolveRate, nil
}

// verdict is the outcome of validating one candidate.
type verdict struct {
	reason            string // empty when it passed
	correct, attempts int
	answers           []string
	toolRate          *float64
}

// maxQuestionChars bounds a question; longer text is a paragraph, not a
// quiz question.
const (
	maxQuestionChars = 1500
	maxAnswerChars   = 200
)

func (s *Synthesizer) validate(ctx context.Context, run *seedRun, v *version) (verdict, error) {
	if len(v.question) < 10 || len(v.question) > maxQuestionChars || v.answer == "" || len(v.answer) > maxAnswerChars {
		return verdict{reason: ReasonMalformed}, nil
	}
	if na := reward.NormalizeAnswer(v.answer); na != "" && mentions(reward.NormalizeAnswer(v.question), na) {
		return verdict{reason: ReasonAnswerInQuestion}, nil
	}
	var q qualityReply
	err := s.ask(ctx, run, "quality", PromptQuality, map[string]string{
		"question": v.question, "answer": v.answer, "statements": listStatements(v.statements),
	}, &q)
	if errors.Is(err, errUnparseable) {
		return verdict{reason: ReasonUnparseable}, nil
	}
	if err != nil {
		return verdict{}, err
	}
	switch {
	case !q.WellFormed:
		return verdict{reason: ReasonMalformed}, nil
	case !q.Single:
		return verdict{reason: ReasonConcatenation}, nil
	case !q.Answerable:
		return verdict{reason: ReasonNotAnswerable}, nil
	case !q.AnswerCorrect:
		return verdict{reason: ReasonWrongAnswer}, nil
	}
	out, wrong, err := s.solve(ctx, run, v)
	if err != nil {
		return verdict{}, err
	}
	for _, alt := range wrong {
		var u uniqueReply
		err := s.ask(ctx, run, "unique", PromptUnique, map[string]string{
			"question": v.question, "answer": v.answer, "statements": listStatements(v.statements), "alternative": alt,
		}, &u)
		if errors.Is(err, errUnparseable) {
			return verdict{reason: ReasonUnparseable}, nil
		}
		if err != nil {
			return verdict{}, err
		}
		if u.AlsoCorrect {
			return verdict{reason: ReasonNotUnique}, nil
		}
	}
	if s.cfg.ToolSolver != nil {
		rate, err := s.toolSolve(ctx, run, v)
		if err != nil {
			return verdict{}, err
		}
		out.toolRate = &rate
	}
	return out, nil
}

// solve asks the solver SolverAttempts times without tools and judges each
// answer. It returns the distinct wrong answers for the uniqueness check.
func (s *Synthesizer) solve(ctx context.Context, run *seedRun, v *version) (verdict, []string, error) {
	n := s.cfg.SolverAttempts
	answers := make([]string, n)
	correct := make([]bool, n)
	prompt := s.prompts[PromptSolve].Render(map[string]string{"question": v.question})
	g, gctx := errgroup.WithContext(ctx)
	for i := range n {
		g.Go(func() error {
			params := *s.cfg.SolverParams
			resp, err := s.cfg.Solver.Sample(gctx, &llm.Request{
				ID:       fmt.Sprintf("synth-%s#%d", run.id, run.nextCall()),
				Messages: []llm.Message{{Role: "user", Content: prompt}},
				Params:   params,
			})
			if err != nil {
				return fmt.Errorf("solver: %w", err)
			}
			ans, ok := reward.ExtractAnswer(resp.Text)
			if !ok {
				return nil // no answer is a wrong answer, and not an alternative
			}
			answers[i] = clip(ans, maxAnswerChars)
			if reward.EM(ans, []string{v.answer}) == 1 {
				correct[i] = true
				return nil
			}
			j, err := s.judge.Judge(gctx, reward.JudgeInput{Question: v.question, Golds: []string{v.answer}, Prediction: ans})
			if err != nil {
				return fmt.Errorf("judge: %w", err)
			}
			correct[i] = j.Verdict == reward.Correct
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return verdict{}, nil, err
	}
	out := verdict{attempts: n, answers: answers}
	seen := map[string]bool{}
	var wrong []string
	for i, ok := range correct {
		if ok {
			out.correct++
			continue
		}
		na := reward.NormalizeAnswer(answers[i])
		if na != "" && !seen[na] {
			seen[na] = true
			wrong = append(wrong, answers[i])
		}
	}
	return out, wrong, nil
}

// toolSolve runs the search agent on the question and returns the fraction
// of its answers that are right (EM or the judge).
func (s *Synthesizer) toolSolve(ctx context.Context, run *seedRun, v *version) (float64, error) {
	right := 0
	for i := range s.cfg.ToolAttempts {
		tr, err := s.cfg.ToolSolver.Run(ctx, s.cfg.ToolEnv, agent.Task{
			ID: fmt.Sprintf("synth-%s#tool%d", run.id, run.nextCall()), Sample: i, Question: v.question, Answers: []string{v.answer},
		})
		if err != nil && ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if tr == nil || !tr.Answered {
			continue
		}
		if reward.EM(tr.Answer, []string{v.answer}) == 1 {
			right++
			continue
		}
		j, err := s.judge.Judge(ctx, reward.JudgeInput{Question: v.question, Golds: []string{v.answer}, Prediction: tr.Answer})
		if err != nil {
			return 0, fmt.Errorf("judge: %w", err)
		}
		if j.Verdict == reward.Correct {
			right++
		}
	}
	return float64(right) / float64(s.cfg.ToolAttempts), nil
}

// ask renders a prompt, samples the generator and parses the reply into
// dst, retrying unparseable replies. Each failed parse is recorded.
func (s *Synthesizer) ask(ctx context.Context, run *seedRun, step, prompt string, vars map[string]string, dst reply) error {
	text := s.prompts[prompt].Render(vars)
	for attempt := 0; attempt <= s.cfg.MaxParseRetries; attempt++ {
		resp, err := s.cfg.Generator.Sample(ctx, &llm.Request{
			ID:       fmt.Sprintf("synth-%s#%d", run.id, run.nextCall()),
			Messages: []llm.Message{{Role: "user", Content: text}},
			Params:   *s.cfg.Params,
		})
		if err != nil {
			return fmt.Errorf("%s: generator: %w", step, err)
		}
		perr := parseReply(resp.Text, dst)
		if perr == nil {
			return nil
		}
		run.mu.Lock()
		run.res.ParseFailures = append(run.res.ParseFailures, ParseFailure{
			Step: step, Attempt: attempt + 1, Error: perr.Error(), Reply: clip(resp.Text, 400),
		})
		run.mu.Unlock()
		s.cfg.Logger.Debug("synth: unparseable reply", "seed", run.id, "step", step, "attempt", attempt+1, "err", perr)
	}
	return errUnparseable
}

func evidence(statement string, p Page) Evidence {
	return Evidence{Statement: strings.TrimSpace(statement), ID: p.ID, URL: p.URL, Title: p.Title}
}

func sameAnswer(a, b string) bool {
	return reward.NormalizeAnswer(a) == reward.NormalizeAnswer(b)
}

func listStatements(es []Evidence) string {
	var b strings.Builder
	for i, e := range es {
		fmt.Fprintf(&b, "%d. %s\n", i+1, e.Statement)
	}
	return strings.TrimRight(b.String(), "\n")
}

func listTitles(ps []Page) string {
	if len(ps) == 0 {
		return "(none)"
	}
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "- %s\n", p.Title)
	}
	return strings.TrimRight(b.String(), "\n")
}

var actionHelp = map[string]string{
	ActionInject: "inject: take a fact from one linked entity's page and use it to hide a detail of the question (one more search hop)",
	ActionFuzz:   "fuzz: make one precise detail of the question vaguer",
	ActionExit:   "exit: stop; the question already needs extensive research and no single clue gives the answer away",
}

func describeActions(actions []string) string {
	var b strings.Builder
	for _, a := range actions {
		fmt.Fprintf(&b, "- %s\n", actionHelp[a])
	}
	return strings.TrimRight(b.String(), "\n")
}

func findTitle(ps []Page, name string) int {
	name = strings.TrimSpace(name)
	for i, p := range ps {
		if strings.EqualFold(p.Title, name) {
			return i
		}
	}
	return -1
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
