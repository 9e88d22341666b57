package recipe

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/asearcher/asearcher/rl"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

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

// worldSeed separates train and held-out worlds: held-out seeds live in
// another range, so no held-out world is ever a training world.
func worldSeed(seed int64, heldOut bool, i int) uint64 {
	base := uint64(seed) * 1_000_003
	if heldOut {
		base += 500_000
	}
	return base + uint64(i)
}

// buildWorlds generates n worlds and indexes each under dir.
func buildWorlds(ctx context.Context, dir string, cfg *DemoConfig, heldOut bool, n int) ([]*demoWorld, error) {
	var out []*demoWorld
	for i := range n {
		w, err := dataset.NewWorld(dataset.WorldOptions{Seed: worldSeed(cfg.Seed, heldOut, i),
			People: cfg.World.People, TwoHopFraction: cfg.World.TwoHopFraction, Relations: cfg.World.Relations})
		if err != nil {
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

// demonstration is the scripted replies for one training question: the
// searches that find the answer, then the answer; or, with guess, an
// immediate answer drawn from the pool of values of the right kind.
func demonstration(w *dataset.World, q dataset.WorldQuestion, guess bool, r *rand.Rand) []string {
	if guess {
		pool := w.AnswerPool(q.Relation)
		return []string{"<answer> " + pool[r.IntN(len(pool))] + " </answer>"}
	}
	var replies []string
	for _, name := range q.Queries {
		replies = append(replies, "<search> "+name+" </search>")
	}
	return append(replies, "<answer> "+q.Answer+" </answer>")
}

// worldTexts is what the tokenizer is trained on: passages, questions and
// the agent's tags as the demonstrations write them.
func worldTexts(ws []*demoWorld) []string {
	var out []string
	for _, w := range ws {
		for _, p := range w.world.Passages {
			out = append(out, p.Title+"\n"+p.Text)
		}
		for _, q := range w.world.Questions {
			out = append(out, "Q: "+q.Question+"\n<search> "+strings.Join(q.Queries, " </search>\n<search> ")+
				" </search>\n<information>\n</information>\n<answer> "+q.Answer+" </answer>")
		}
	}
	return out
}
