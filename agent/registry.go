package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Options adjust a registered agent when it is built.
type Options struct {
	// Prompt replaces the agent's prompt, by name in Prompts, or as
	// "file:PATH": a template file in upstream's syntax ({question},
	// {validity}, {date}; {{ }} for braces). For the reasoning agent,
	// "file:DIR" replaces whichever of DIR/act.txt, read-page.txt,
	// read-search.txt and final-answer.txt exist.
	Prompt string
	// Prompts is the prompt registry (nil: the built-in prompts).
	Prompts *Prompts
}

// Builder makes a workflow.
type Builder func(Options) (Workflow, error)

// Registry maps agent names to builders. Commands take --agent NAME from
// a registry, so a program that registers its own workflow gets ask, eval,
// synth and train for it unchanged.
type Registry struct {
	builders map[string]Builder
}

// Built-in agent names.
const (
	AgentASearcher  = "asearcher"
	AgentSearchOnly = "asearcher-search-only"
	AgentSearchR1   = "search-r1"
	AgentTiny       = "tiny"
	AgentReasoning  = "asearcher-reasoning"
	AgentClosedBook = "closed-book"
)

// NewRegistry returns a registry with the built-in agents.
func NewRegistry() *Registry {
	r := &Registry{builders: map[string]Builder{}}
	search := func(base func() SearchConfig) Builder {
		return func(o Options) (Workflow, error) {
			cfg := base()
			cfg.Prompts = o.Prompts
			if path, ok := strings.CutPrefix(o.Prompt, PromptFilePrefix); ok {
				p, err := LoadPromptFile(path, o.Prompt, false, []string{"question", "validity", "date"})
				if err != nil {
					return nil, err
				}
				if cfg.Prompts, err = withPrompts(o.Prompts, p); err != nil {
					return nil, err
				}
			}
			if o.Prompt != "" {
				cfg.Prompt = o.Prompt
			}
			return NewSearchAgent(cfg)
		}
	}
	r.Register(AgentASearcher, search(ASearcherConfig))
	r.Register(AgentSearchOnly, search(SearchOnlyConfig))
	r.Register(AgentSearchR1, search(SearchR1Config))
	r.Register(AgentTiny, search(TinyConfig))
	r.Register(AgentClosedBook, search(ClosedBookConfig))
	r.Register(AgentReasoning, func(o Options) (Workflow, error) {
		cfg := ReasoningAgentConfig()
		cfg.Prompts = o.Prompts
		dir, ok := strings.CutPrefix(o.Prompt, PromptFilePrefix)
		if o.Prompt != "" && !ok {
			return nil, fmt.Errorf("agent %s uses its own asearcher-reasoning/* prompts; pass --prompt file:DIR with act.txt, read-page.txt, read-search.txt or final-answer.txt, or register replacements under those names", AgentReasoning)
		}
		if ok {
			var err error
			if cfg.Prompts, err = reasoningPromptFiles(dir, o.Prompts); err != nil {
				return nil, err
			}
		}
		return NewReasoningAgent(cfg)
	})
	return r
}

// Register adds or replaces an agent.
func (r *Registry) Register(name string, b Builder) { r.builders[name] = b }

// New builds the agent called name.
func (r *Registry) New(name string, o Options) (Workflow, error) {
	b, ok := r.builders[name]
	if !ok {
		return nil, fmt.Errorf("unknown agent %q; known agents: %s", name, strings.Join(r.Names(), ", "))
	}
	w, err := b(o)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", name, err)
	}
	return w, nil
}

// Names lists the registered agents.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.builders))
	for n := range r.builders {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// withPrompts returns a copy of base (nil: the built-ins) with ps added.
func withPrompts(base *Prompts, ps ...Prompt) (*Prompts, error) {
	out := NewPrompts()
	if base != nil {
		out = &Prompts{byName: maps.Clone(base.byName)}
	}
	for _, p := range ps {
		if err := out.Register(p); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// reasoningPromptFiles loads the reasoning agent's prompts found in dir.
func reasoningPromptFiles(dir string, base *Prompts) (*Prompts, error) {
	files := []struct {
		file, name string
		slots      []string
	}{
		{"act.txt", PromptReasonAct, []string{"question", "date", "history", "answer_action"}},
		{"read-page.txt", PromptReasonReadPage, []string{"question", "date", "history", "url", "part", "content"}},
		{"read-search.txt", PromptReasonReadFound, []string{"question", "date", "history", "query", "content"}},
		{"final-answer.txt", PromptReasonAnswer, []string{"question", "date", "history"}},
	}
	var ps []Prompt
	for _, f := range files {
		path := filepath.Join(dir, f.file)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		p, err := LoadPromptFile(path, f.name, true, f.slots)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("--prompt file:%s: no act.txt, read-page.txt, read-search.txt or final-answer.txt there", dir)
	}
	return withPrompts(base, ps...)
}
