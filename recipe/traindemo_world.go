package recipe

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/asearcher/asearcher/rl"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/dataset"
	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/retrieval"
	"github.com/asearcher/asearcher/synth"
)

// demoWorld is one generated world with its own BM25 index, so that names
// reused by another world never leak facts across worlds.
type demoWorld struct {
	world *dataset.World
	index *retrieval.Index
	tools synth.IndexTools
}

// demoQuestion is the payload of one question handed to rollouts.
type demoQuestion struct {
	world *demoWorld
	q     dataset.WorldQuestion
}

// worldSet is which of a run's world sets a world belongs to.
type worldSet int

const (
	// setTrain worlds feed RL (and the warm-up unless it has its own).
	setTrain worldSet = iota
	// setHeldOut worlds are evaluated on only.
	setHeldOut
	// setWarmup worlds feed the warm-up only (warmup.worlds).
	setWarmup
)

// worldSeed separates the sets: each lives in its own range of seeds, so
// no held-out world is ever a training or warm-up world.
func worldSeed(seed int64, set worldSet, i int) uint64 {
	base := uint64(seed) * 1_000_003
	switch set {
	case setHeldOut:
		base += 500_000
	case setWarmup:
		base += 250_000
	}
	return base + uint64(i)
}

// buildWorlds generates n worlds of a set and indexes each under dir.
// With world.split_names, held-out worlds draw from the held-out half of
// the two-word names and the others from the training half.
func buildWorlds(ctx context.Context, dir string, cfg *DemoConfig, set worldSet, n int) ([]*demoWorld, error) {
	var out []*demoWorld
	for i := range n {
		names := dataset.NamesAll
		switch {
		case cfg.World.SplitNames && set == setHeldOut:
			names = dataset.NamesHeldOut
		case cfg.World.SplitNames:
			names = dataset.NamesTrain
		}
		w, err := dataset.NewWorld(dataset.WorldOptions{Seed: worldSeed(cfg.Seed, set, i), People: cfg.World.People,
			TwoHopFraction: cfg.World.TwoHopFraction, ThreeHopFraction: cfg.World.ThreeHopFraction,
			Relations: cfg.World.Relations, Names: names})
		if err != nil {
			closeWorlds(out)
			return nil, err
		}
		wdir := filepath.Join(dir, fmt.Sprintf("world_%d", w.Seed))
		ix, err := indexWorld(ctx, wdir, w)
		if err != nil {
			closeWorlds(out)
			return nil, err
		}
		out = append(out, &demoWorld{world: w, index: ix, tools: synth.IndexTools{Index: ix}})
	}
	return out, nil
}

func closeWorlds(ws []*demoWorld) {
	for _, w := range ws {
		w.index.Close()
	}
}

// indexWorld writes the world's passages and questions as JSONL and builds
// a BM25 index over the passages.
func indexWorld(ctx context.Context, dir string, w *dataset.World) (*retrieval.Index, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("world directory: %w", err)
	}
	var corpus, qs []byte
	for _, p := range w.Passages {
		line, _ := json.Marshal(p)
		corpus = append(append(corpus, line...), '\n')
	}
	for _, q := range w.Questions {
		line, _ := json.Marshal(q)
		qs = append(append(qs, line...), '\n')
	}
	cpath := filepath.Join(dir, "corpus.jsonl")
	if err := atomicfile.WriteFile(cpath, corpus); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "questions.jsonl"), qs); err != nil {
		return nil, err
	}
	idx := filepath.Join(dir, "index")
	if _, err := retrieval.Build(ctx, retrieval.BuildOptions{Corpus: cpath, Out: idx, Workers: 1,
		MemoryMB: 16, Progress: retrieval.ProgressOff, NoSync: true}); err != nil {
		return nil, fmt.Errorf("index world %d: %w", w.Seed, err)
	}
	ix, err := retrieval.Open(idx, retrieval.OpenOptions{NoDense: true})
	if err != nil {
		return nil, fmt.Errorf("open world index: %w", err)
	}
	return ix, nil
}

// worldQuestions lists every question of the worlds in order.
func worldQuestions(ws []*demoWorld) []demoQuestion {
	var out []demoQuestion
	for _, w := range ws {
		for _, q := range w.world.Questions {
			out = append(out, demoQuestion{world: w, q: q})
		}
	}
	return out
}

// questionSet adapts the training questions to rl.Dataset.
type questionSet []demoQuestion

func (s questionSet) Len() int { return len(s) }
func (s questionSet) Question(i int) (string, any) {
	return s[i].q.ID, s[i]
}

// demoAgent holds what every trajectory of the demo shares.
type demoAgent struct {
	wf  *agent.SearchAgent
	env agent.Env // template: Sampler and Search are set per run
}

func newDemoAgent(cfg *DemoConfig, tok agent.Tokenizer, stops []int) (*demoAgent, error) {
	ac := agent.TinyConfig()
	ac.TopK, ac.DocChars = cfg.Agent.TopK, cfg.Agent.DocChars
	wf, err := agent.NewSearchAgent(ac)
	if err != nil {
		return nil, err
	}
	return &demoAgent{wf: wf, env: agent.Env{
		Tokenizer: tok, StopTokenIDs: stops,
		Sampling: llm.Params{Temperature: cfg.Agent.Temperature},
		Limits: agent.Limits{MaxTurns: cfg.Agent.MaxTurns, MaxContextTokens: cfg.Agent.MaxContext,
			MaxCallTokens: cfg.Agent.MaxCallToken, MinCallTokens: 4},
	}}, nil
}

// envFor returns a run environment on the sampler and the world's tools.
func (a *demoAgent) envFor(s llm.Sampler, w *demoWorld, temperature float64) *agent.Env {
	env := a.env
	env.Sampler = s
	env.Search, env.Browse = w.tools, w.tools
	env.Sampling.Temperature = temperature
	return &env
}

// rollout is the controller's Rollout: the real agent, tools and reward,
// through the same adapter a custom workflow uses.
func (a *demoAgent) rollout(temperature float64) rl.Rollout {
	return rl.WorkflowRollout{
		Workflow: a.wf,
		Env: func(q rl.Question) (*agent.Env, agent.Task, error) {
			dq, ok := q.Payload.(demoQuestion)
			if !ok {
				return nil, agent.Task{}, fmt.Errorf("payload %T is not a demo question", q.Payload)
			}
			return a.envFor(nil, dq.world, temperature), agent.Task{ID: dq.q.ID, Question: dq.q.Question, Answers: []string{dq.q.Answer}}, nil
		},
	}
}

// demoKind is how a warm-up demonstration answers a 1-hop question.
type demoKind int

const (
	// demoSearch searches the question's name and answers from its passage.
	demoSearch demoKind = iota
	// demoGuess answers at once with a plausible value of the right kind.
	demoGuess
	// demoRetry searches twice, the second time for the question's name.
	demoRetry
	// demoBridge is a 2-hop question with its first hop stated in it.
	demoBridge
)

// pickDemoKind draws a demonstration's kind: a guess with the guess
// fraction, else a retry with the retry fraction, else a plain search.
func pickDemoKind(cfg *WarmupConfig, r *rand.Rand) demoKind {
	switch {
	case r.Float64() < cfg.GuessFraction:
		return demoGuess
	case cfg.RetryFraction > 0 && r.Float64() < cfg.RetryFraction:
		return demoRetry
	}
	return demoSearch
}

// demonstration is the scripted replies for one 1-hop training question.
// Multi-hop questions have none: ok is false, because a demonstration of
// them would show the chaining RL is meant to discover. Every query a
// demonstration writes is the question's name or, for a retry's first
// search, a person drawn before anything was observed.
func demonstration(w *dataset.World, q dataset.WorldQuestion, kind demoKind, misrememberFrac float64, r *rand.Rand) (replies []string, ok bool) {
	if q.Hops != 1 || len(q.Queries) != 1 {
		return nil, false
	}
	switch kind {
	case demoGuess:
		pool := w.AnswerPool(q.Relation)
		return []string{"<answer> " + pool[r.IntN(len(pool))] + " </answer>"}, true
	case demoRetry:
		// Some retries start from a misremembered name, the others
		// search the question's name twice (checking again after a hit).
		first := q.Queries[0]
		if r.Float64() < misrememberFrac {
			if wrong, found := misremembered(w, q.Queries[0], r); found {
				first = wrong
			}
		}
		replies = append(replies, "<search> "+first+" </search>")
	}
	return append(replies, "<search> "+q.Queries[0]+" </search>", "<answer> "+q.Answer+" </answer>"), true
}

// bridgedDemonstration turns a 2-hop question into a 1-search one by
// stating its first hop in the question ("Favok is mentored by Lomel.
// Where does the mentor of Favok live?"): the demonstration searches the
// mentor's name, which the question now contains, and answers. It teaches
// reading a relation and searching the person it names, from the question
// only: no search in it follows an observation.
func bridgedDemonstration(q dataset.WorldQuestion) (question string, replies []string, ok bool) {
	if q.Hops != 2 || len(q.Queries) != 2 {
		return "", nil, false
	}
	question = q.Queries[0] + " is mentored by " + q.Queries[1] + ". " + q.Question
	return question, []string{"<search> " + q.Queries[1] + " </search>", "<answer> " + q.Answer + " </answer>"}, true
}

// misremembered picks another person of w for a retry's first search: not
// the person asked about, not their mentor and not mentored by them, so
// the passage it returns never names the person asked about or leads
// anywhere the question needs.
func misremembered(w *dataset.World, name string, r *rand.Rand) (string, bool) {
	target := -1
	for i, p := range w.People {
		if p.Name == name {
			target = i
		}
	}
	if target < 0 {
		return "", false
	}
	var cands []string
	for i, p := range w.People {
		if i != target && i != w.People[target].Mentor && p.Mentor != target {
			cands = append(cands, p.Name)
		}
	}
	if len(cands) == 0 {
		return "", false
	}
	return cands[r.IntN(len(cands))], true
}

// worldTexts is what the tokenizer is trained on: passages, questions and
// the agent's tags as the demonstrations write them.
func worldTexts(ws []*demoWorld) []string {
	var out []string
	for _, w := range ws {
		for _, p := range w.world.Passages {
			out = append(out, p.Title+"\n"+p.Text)
		}
		// One search per text: the tokenizer never sees a chain either.
		for _, q := range w.world.Questions {
			out = append(out, "Q: "+q.Question+"\n<search> "+q.Queries[0]+
				" </search>\n<information>\n</information>\n<answer> "+q.Answer+" </answer>")
		}
	}
	return out
}
