package agent

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tokenizer"
	"github.com/asearcher/asearcher/tools"
)

// EnvConfig describes an Env by its settings: the model, tokenizer, search
// and access settings that ask, eval, synth and train share.
type EnvConfig struct {
	// Model is a model spec opened by Backends (llm.Backends.Open): an
	// OpenAI-compatible base URL ending in /v1, sglang:http://host:port
	// (comma-separated for a pool), tinker:URL, or embedded:DIR where the
	// program registered the embedded engine.
	Model string
	// ModelName is the "model" field for OpenAI-compatible servers (empty:
	// ask the server).
	ModelName string
	// APIKey for the model servers (empty: llm.APIKeyFromEnv).
	APIKey string
	// Tokenizer is a tokenizer.json (or a directory with one). With it the
	// agent runs in token mode: exact token ids, trainable trajectories.
	// Empty takes the tokenizer the model spec implies (embedded:DIR: the
	// model directory's own).
	Tokenizer string
	// Search, Access, AllowPrivateFetch, ToolCache and ToolCacheMode are
	// the tools (tools.Config; Access auto and local are resolved there).
	Search            string
	Access            string
	AllowPrivateFetch bool
	ToolCache         string
	ToolCacheMode     string
	// Backends opens Model (nil: llm.NewBackends, the HTTP and Tinker
	// backends only).
	Backends *llm.Backends
	// Open tunes the model backend (in-flight cap, HTTP client, pool).
	Open     llm.OpenOptions
	Sampling llm.Params
	Limits   Limits
	Log      *slog.Logger
}

// ToolConfig is the tools part of c.
func (c EnvConfig) ToolConfig() tools.Config {
	return tools.Config{Search: c.Search, Access: c.Access, AllowPrivateFetch: c.AllowPrivateFetch, Cache: c.ToolCache, CacheMode: c.ToolCacheMode}
}

// Build makes the Env. Close the returned closer (the model backend) when
// done.
func (c EnvConfig) Build(ctx context.Context) (*Env, func() error, error) {
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	backends := c.Backends
	if backends == nil {
		backends = llm.NewBackends()
	}
	env := &Env{Sampling: c.Sampling, Limits: c.Limits, Log: log}
	tokPath := c.Tokenizer
	if tokPath == "" {
		tokPath = backends.Tokenizer(c.Model)
	}
	var tok *tokenizer.Tokenizer
	if tokPath != "" {
		var err error
		if tok, err = tokenizer.Load(tokPath); err != nil {
			return nil, nil, fmt.Errorf("tokenizer: %w", err)
		}
		env.Tokenizer = tok
		env.Template = TokenizerTemplate{Tok: tok}
		env.StopTokenIDs = DefaultStopTokenIDs(tok)
	}
	t, err := tools.Open(c.ToolConfig(), log)
	if err != nil {
		return nil, nil, err
	}
	env.Search, env.Browse = t.Search, t.Browse
	o := c.Open
	if c.APIKey != "" {
		o.APIKey = c.APIKey
	}
	if c.ModelName != "" {
		o.ModelName = c.ModelName
	}
	if o.Logger == nil {
		o.Logger = log
	}
	if o.Decode == nil && tok != nil {
		o.Decode = tok.Decode
	}
	s, closeModel, err := backends.Open(ctx, c.Model, o)
	if err != nil {
		return nil, nil, err
	}
	env.Sampler = s
	// A budget above the model's context would let the agent send a prompt
	// the model refuses. Servers are asked here, once (each session checks
	// again, from the backend's cache, for Envs built elsewhere).
	if n, budget := llm.ContextLength(ctx, s), env.Limits.WithDefaults().MaxContextTokens; n > 0 && n < budget {
		log.Info("context budget capped at the model's context length", "max_context_tokens", budget, "model_context", n)
		env.Limits.MaxContextTokens = n
	}
	return env, closeModel, nil
}

// CheckEnv checks, within timeout each, that the model answers (a server
// pool: one of its servers) and that a retrieval server answers a search,
// so that a dead server is one clear error before any work starts. A web
// search (serper) is not probed (nor anything when the tool cache replays): a query costs money, and its key is
// checked by the first call.
func CheckEnv(ctx context.Context, env *Env, c EnvConfig, timeout time.Duration) error {
	mctx, cancel := context.WithTimeout(ctx, timeout)
	err := llm.Ready(mctx, env.Sampler)
	cancel()
	if err != nil {
		return fmt.Errorf("model server %s does not answer: start it or fix the model setting (%v)", c.Model, err)
	}
	if env.Search == nil || !tools.SearchIsServer(c.Search) || c.ToolCacheMode == "replay" {
		return nil // replay answers from the cache alone
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := env.Search.Search(sctx, "test", 1); err != nil {
		return fmt.Errorf("retrieval server %s does not answer (%v): start it (asearcher serve search) or fix the search setting", strings.TrimSpace(c.Search), err)
	}
	return nil
}
