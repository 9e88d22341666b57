package agent

import (
	"fmt"
	"slices"
	"strings"
)

// Options adjust a registered agent when it is built.
type Options struct {
	// Prompt replaces the agent's prompt (search agents only), by name in
	// Prompts.
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
)

// NewRegistry returns a registry with the built-in agents.
func NewRegistry() *Registry {
	r := &Registry{builders: map[string]Builder{}}
	search := func(base func() SearchConfig) Builder {
		return func(o Options) (Workflow, error) {
			cfg := base()
			if o.Prompt != "" {
				cfg.Prompt = o.Prompt
			}
			cfg.Prompts = o.Prompts
			return NewSearchAgent(cfg)
		}
	}
	r.Register(AgentASearcher, search(ASearcherConfig))
	r.Register(AgentSearchOnly, search(SearchOnlyConfig))
	r.Register(AgentSearchR1, search(SearchR1Config))
	r.Register(AgentTiny, search(TinyConfig))
	r.Register(AgentReasoning, func(o Options) (Workflow, error) {
		if o.Prompt != "" {
			return nil, fmt.Errorf("agent %s uses its own asearcher-reasoning/* prompts; register replacements under those names instead of --prompt", AgentReasoning)
		}
		cfg := ReasoningAgentConfig()
		cfg.Prompts = o.Prompts
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
