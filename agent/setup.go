package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tokenizer"
	"github.com/asearcher/asearcher/tools"
)

// EnvConfig is how commands describe an Env: the --model, --tokenizer,
// --search and --access flags of ask, eval, synth and train.
type EnvConfig struct {
	// Model is a model server spec (llm.ParseSpec): an OpenAI-compatible
	// base URL ending in /v1, or sglang:http://host:port; comma-separated
	// for a pool.
	Model string
	// ModelName is the "model" field for OpenAI-compatible servers (empty:
	// ask the server).
	ModelName string
	// APIKey for the model servers (empty: llm.APIKeyFromEnv).
	APIKey string
	// Tokenizer is a tokenizer.json (or a directory with one). With it the
	// agent runs in token mode: exact token ids, trainable trajectories.
	Tokenizer string
	// Search is a tools.SearcherFromSpec value: a retrieval server base URL
	// (http://host:port), addrdir:DIR, "serper" (SERPER_API_KEY), or ""
	// for none.
	Search string
	// Access is a tools.BrowserFromSpec value (fetch, jina, none, a
	// retrieval server URL, addrdir:DIR) or: "auto" (the search server's
	// /access with a local search, else Jina when JINA_API_KEY is set, else
	// direct fetch) or "local" (the search server's /access).
	Access string
	// AllowPrivateFetch lets direct fetch reach private addresses.
	AllowPrivateFetch bool
	// ToolCache is a directory caching tool answers ("" for none), in
	// ToolCacheMode: live, record or replay.
	ToolCache     string
	ToolCacheMode string
	Sampling      llm.Params
	Limits        Limits
	Log           *slog.Logger
}

// Build makes the Env. Close the returned closer (the model pool) when
// done.
func (c EnvConfig) Build() (*Env, func() error, error) {
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	env := &Env{Sampling: c.Sampling, Limits: c.Limits, Log: log}
	if c.Tokenizer != "" {
		tok, err := tokenizer.Load(c.Tokenizer)
		if err != nil {
			return nil, nil, fmt.Errorf("--tokenizer: %w", err)
		}
		env.Tokenizer = tok
		env.Template = TokenizerTemplate{Tok: tok}
		env.StopTokenIDs = DefaultStopTokenIDs(tok)
	}
	opts := tools.SpecOptions{AllowPrivateFetch: c.AllowPrivateFetch, Logger: log}
	if c.ToolCache != "" {
		mode, err := tools.ParseCacheMode(c.ToolCacheMode)
		if err != nil {
			return nil, nil, fmt.Errorf("--tool-cache-mode: %w", err)
		}
		if opts.Cache, err = tools.OpenCache(c.ToolCache, tools.CacheOptions{Mode: mode, Logger: log}); err != nil {
			return nil, nil, fmt.Errorf("--tool-cache: %w", err)
		}
	}
	if err := c.tools(env, opts); err != nil {
		return nil, nil, err
	}
	apiKey := c.APIKey
	if apiKey == "" {
		apiKey = llm.APIKeyFromEnv()
	}
	pool, err := llm.NewClient(c.Model, llm.ClientOptions{APIKey: apiKey, Model: c.ModelName})
	if err != nil {
		return nil, nil, fmt.Errorf("--model: %w", err)
	}
	env.Sampler = pool
	return env, pool.Close, nil
}

// tools builds the search and page tools from the --search and --access
// specs (tools.SearcherFromSpec / BrowserFromSpec), adding the access
// choices auto and local.
func (c EnvConfig) tools(env *Env, opts tools.SpecOptions) error {
	search := strings.TrimSpace(c.Search)
	local := search != "" && search != "none" && search != "serper"
	if search != "" && search != "none" {
		s, err := tools.SearcherFromSpec(search, opts)
		if err != nil {
			return err
		}
		env.Search = s
	}
	access := strings.TrimSpace(c.Access)
	switch access {
	case "", "auto":
		switch {
		case local:
			access = search
		case tools.JinaKeyFromEnv() != "":
			access = "jina"
		case env.Search != nil:
			access = "fetch"
		default:
			access = "none"
		}
	case "local":
		if !local {
			return errors.New("--access local needs --search to be a retrieval server (http://host:port or addrdir:DIR)")
		}
		access = search
	}
	b, err := tools.BrowserFromSpec(access, opts)
	if err != nil {
		return err
	}
	env.Browse = b
	return nil
}
