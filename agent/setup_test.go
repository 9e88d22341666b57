package agent

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tools"
)

// TestEnvConfigReplay: with the tool cache in replay mode nothing is
// reached and a miss is a tool error the agent shows the model.
func TestEnvConfigReplay(t *testing.T) {
	env, closeEnv, err := EnvConfig{
		Model: "http://127.0.0.1:1/v1", Search: "serper", ToolCache: t.TempDir(), ToolCacheMode: "replay",
	}.Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer closeEnv()
	_, err = env.Search.Search(context.Background(), "q", 3)
	if !errors.Is(err, tools.ErrReplayMiss) {
		t.Fatalf("replay miss: %v", err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		cfg  EnvConfig
		want string
	}{
		{EnvConfig{Model: "http://127.0.0.1:1/v1", ToolCache: t.TempDir(), ToolCacheMode: "sometimes"}, "tool cache mode"},
		{EnvConfig{Model: "ftp://x"}, `unknown prefix "ftp"`},
		{EnvConfig{Model: ""}, "model is empty"},
		{EnvConfig{Model: "embedded:/some/dir"}, `unknown prefix "embedded"`},
		{EnvConfig{Model: "http://127.0.0.1:1/v1", Tokenizer: "/nonexistent"}, "tokenizer:"},
	} {
		_, _, err := tc.cfg.Build(ctx)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want %q", tc.cfg, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "--") {
			t.Errorf("library error names a CLI flag: %v", err)
		}
	}
}

// TestEnvConfigBackends: a registered backend opens its prefix, its
// implied tokenizer puts the agent in token mode, and its closer is
// returned.
func TestEnvConfigBackends(t *testing.T) {
	backends := llm.NewBackends()
	closed := false
	var gotArg string
	err := backends.Register("scripted", llm.Backend{
		Usage: "scripted:NAME",
		Open: func(_ context.Context, arg string, o llm.OpenOptions) (llm.Sampler, func() error, error) {
			gotArg = arg
			return &ScriptedSampler{}, func() error { closed = true; return nil }, nil
		},
		Tokenizer: func(string) string { return qwenTokenizerPath },
	})
	if err != nil {
		t.Fatal(err)
	}
	env, closeEnv, err := EnvConfig{Model: "scripted:abc", Backends: backends}.Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if gotArg != "abc" || env.Tokenizer == nil {
		t.Fatalf("arg %q, tokenizer %v", gotArg, env.Tokenizer)
	}
	if _, ok := env.Sampler.(*ScriptedSampler); !ok {
		t.Fatalf("sampler %T", env.Sampler)
	}
	if err := closeEnv(); err != nil || !closed {
		t.Fatalf("close: %v, closed %v", err, closed)
	}
}

// contextSampler is a scripted sampler that knows its context length.
type contextSampler struct {
	ScriptedSampler
	n int
}

func (c *contextSampler) ContextLength(context.Context) int { return c.n }

// TestEnvConfigCapsContextToModel: a model with a context shorter than the
// agent's budget (SmolLM2: 8,192 positions against the default 32,768)
// caps the budget, so an outgrown run ends as context_full rather than as
// a model error that stops an eval.
func TestEnvConfigCapsContextToModel(t *testing.T) {
	tests := []struct {
		name          string
		model, budget int
		want          int
	}{
		{"default budget above the model", 8192, 0, 8192},
		{"budget above the model", 8192, 20000, 8192},
		{"budget below the model", 8192, 4096, 4096},
		{"model without a known length", 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			backends := llm.NewBackends()
			err := backends.Register("ctx", llm.Backend{
				Usage: "ctx:",
				Open: func(context.Context, string, llm.OpenOptions) (llm.Sampler, func() error, error) {
					return &contextSampler{n: tc.model}, nil, nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			env, closeEnv, err := EnvConfig{Model: "ctx:x", Backends: backends, Limits: Limits{MaxContextTokens: tc.budget}}.Build(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer closeEnv()
			if got := env.Limits.MaxContextTokens; got != tc.want {
				t.Fatalf("max context tokens %d, want %d", got, tc.want)
			}
		})
	}
}
