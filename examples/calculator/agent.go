package calculator

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/tools"
)

// Name is the agent's registry name; PromptName its prompt's.
const (
	Name       = "calculator"
	PromptName = "calculator"
	// KindCalculate is the new action: <calculate> 2*(3+4) </calculate>.
	KindCalculate = "calculate"
)

// Prompt is the agent's prompt: the base-model style of the ASearcher
// prompt, with the calculator added to the actions.
var Prompt = agent.Prompt{
	Name:        PromptName,
	Description: "base model: think, then one of search, calculate, answer",
	Text: "A User asks a question and the Assistant answers it, looking facts up and doing arithmetic with tools.\n" +
		"The Assistant thinks inside <think> and </think>, then takes exactly one action:\n" +
		"- <search> query </search> searches; results come back between <information> and </information>.\n" +
		"- <calculate> expression </calculate> computes + - * / ^ and parentheses; the value comes back between <result> and </result>.\n" +
		"- <answer> answer </answer> gives the final answer.\n" +
		"The Assistant never does arithmetic in its head.\nUser: {question}\nAssistant:\n<think>\n",
}

// Agent searches, calculates and answers. It implements agent.Workflow
// and agent.Rewarder.
type Agent struct {
	prompt agent.Prompt
	parser *agent.Parser
	// TopK hits per search, each cut to DocChars characters.
	TopK, DocChars int
}

// New returns the agent.
func New() *Agent {
	return &Agent{
		prompt: Prompt,
		parser: agent.NewParser(
			agent.Tag{Kind: agent.KindSearch, Open: "<search>", Close: "</search>"},
			agent.Tag{Kind: KindCalculate, Open: "<calculate>", Close: "</calculate>"},
			agent.Tag{Kind: agent.KindAnswer, Open: "<answer>", Close: "</answer>"},
		),
		TopK: 3, DocChars: 1000,
	}
}

// Register adds the agent and its prompt to the registries a program
// passes to ask, eval, synth or train.
func Register(reg *agent.Registry, prompts *agent.Prompts) error {
	if prompts != nil {
		if err := prompts.Register(Prompt); err != nil {
			return err
		}
	}
	reg.Register(Name, func(o agent.Options) (agent.Workflow, error) {
		a := New()
		if o.Prompt != "" && o.Prompts != nil {
			p, err := o.Prompts.Get(o.Prompt)
			if err != nil {
				return nil, err
			}
			a.prompt = p
		}
		return a, nil
	})
	return nil
}

// Name implements agent.Workflow.
func (a *Agent) Name() string { return Name }

// Run implements agent.Workflow. The Session keeps the context as token
// ids and records every call and tool use; this loop only decides what to
// do with each action.
func (a *Agent) Run(ctx context.Context, env *agent.Env, task agent.Task) (*agent.Trajectory, error) {
	s := agent.NewSession(env, task, Name, a.prompt.Name)
	s.Append(a.prompt.Render(map[string]string{"question": strings.TrimSpace(task.Question)}))
	for turn := 0; turn < s.Limits().MaxTurns; turn++ {
		s.SetTurn(turn)
		rep, err := s.Generate(ctx, agent.Gen{Purpose: agent.PurposeAct, Stop: a.parser.CloseMarkers(), Tool: -1})
		if errors.Is(err, agent.ErrContextFull) {
			return s.Finish(agent.EndContext, nil), nil
		}
		if err != nil {
			// Finish turns a cancelled context into EndCanceled.
			return s.Finish(agent.EndModelError, err), err
		}
		act := a.parser.Parse(rep.Text).Action
		switch act.Kind {
		case agent.KindAnswer:
			s.SetAnswer(act.Arg)
			return s.Finish(agent.EndAnswer, nil), nil
		case agent.KindSearch:
			a.search(ctx, s, env, act.Arg)
		case KindCalculate:
			a.calculate(ctx, s, act.Arg)
		default:
			if rep.EOS {
				return s.Finish(agent.EndStopped, nil), nil
			}
		}
		if ctx.Err() != nil {
			return s.Finish(agent.EndCanceled, ctx.Err()), ctx.Err()
		}
	}
	return s.Finish(agent.EndMaxTurns, nil), nil
}

func (a *Agent) search(ctx context.Context, s *agent.Session, env *agent.Env, query string) {
	// RunTool enforces the tool timeout and records the call; a failure
	// becomes an observation the model reads, not an error of the run.
	docs, idx, err := agent.RunTool(ctx, s, agent.KindSearch, query, func(ctx context.Context) ([]tools.SearchResult, error) {
		if env.Search == nil {
			return nil, errors.New("no search engine is configured")
		}
		if query == "" {
			return nil, errors.New("the query is empty")
		}
		return env.Search.Search(ctx, query, a.TopK)
	})
	obs := agent.SearchObservation(agent.StyleASearcher, docs, a.DocChars, err) + "\n"
	rec := &s.Trajectory().Tools[idx]
	rec.Observation, rec.Docs = obs, docs
	s.Append(obs)
}

func (a *Agent) calculate(ctx context.Context, s *agent.Session, expr string) {
	v, idx, err := agent.RunTool(ctx, s, KindCalculate, expr, func(context.Context) (float64, error) {
		return Eval(expr)
	})
	obs := "\n<result>" + Format(v) + "</result>\n"
	if err != nil {
		obs = "\n<result>error: " + err.Error() + "</result>\n"
	}
	s.Trajectory().Tools[idx].Observation = obs
	s.Append(obs)
}

// Reward implements agent.Rewarder: 1 when the answer is a number within
// 0.1% of a numeric gold answer, else 0; trajectories without an answer
// get 0.
func (a *Agent) Reward(_ context.Context, task agent.Task, t *agent.Trajectory) (float64, error) {
	if !t.Answered {
		return 0, nil
	}
	got, err := strconv.ParseFloat(strings.ReplaceAll(strings.TrimSpace(t.Answer), ",", ""), 64)
	if err != nil {
		return 0, nil
	}
	for _, g := range task.Answers {
		want, err := strconv.ParseFloat(strings.ReplaceAll(strings.TrimSpace(g), ",", ""), 64)
		if err == nil && math.Abs(got-want) <= 1e-3*math.Max(1, math.Abs(want)) {
			return 1, nil
		}
	}
	return 0, nil
}
