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
