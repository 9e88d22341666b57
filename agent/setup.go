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
	// Search is a retrieval server base URL (http://host:port), "serper"
	// (SERPER_API_KEY), or "" for none.
	Search string
	// Access picks the page reader: "auto" (the retrieval server's /access
	// with a local search, else Jina when JINA_API_KEY is set, else direct
	// fetch), "local", "fetch", "jina" or "none".
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
	searcher, browser, err := c.tools(log)
	if err != nil {
		return nil, nil, err
	}
	if c.ToolCache != "" {
		mode, err := tools.ParseCacheMode(c.ToolCacheMode)
		if err != nil {
			return nil, nil, fmt.Errorf("--tool-cache-mode: %w", err)
		}
		cache, err := tools.OpenCache(c.ToolCache, tools.CacheOptions{Mode: mode, Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("--tool-cache: %w", err)
		}
		if searcher != nil {
			searcher = cache.Searcher(searcher, "")
		}
		if browser != nil {
			browser = cache.Browser(browser, "")
		}
	}
	env.Search, env.Browse = searcher, browser
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

func (c EnvConfig) tools(log *slog.Logger) (tools.Searcher, tools.Browser, error) {
	var searcher tools.Searcher
	var local *tools.Local
	switch s := strings.TrimSpace(c.Search); {
	case s == "" || s == "none":
	case s == "serper":
		key := tools.SerperKeyFromEnv()
		if key == "" {
			return nil, nil, errors.New("--search serper needs SERPER_API_KEY in the environment")
		}
		sp, err := tools.NewSerper(tools.SerperConfig{APIKey: key})
		if err != nil {
			return nil, nil, fmt.Errorf("--search: %w", err)
		}
		searcher = sp
	default:
		l, err := tools.NewLocal(tools.LocalConfig{BaseURL: s})
		if err != nil {
			return nil, nil, fmt.Errorf("--search: %w (or use serper)", err)
		}
		searcher, local = l, l
	}
	access := strings.TrimSpace(c.Access)
	if access == "" || access == "auto" {
		switch {
		case local != nil:
			access = "local"
		case tools.JinaKeyFromEnv() != "":
			access = "jina"
		case searcher != nil:
			access = "fetch"
		default:
			access = "none"
		}
	}
	var browser tools.Browser
	switch access {
	case "none":
	case "local":
		if local == nil {
			return nil, nil, errors.New("--access local needs --search to be a retrieval server URL")
		}
		browser = local
	case "jina":
		j, err := tools.NewJina(tools.JinaConfig{APIKey: tools.JinaKeyFromEnv()})
		if err != nil {
			return nil, nil, fmt.Errorf("--access jina: %w", err)
		}
		browser = j
	case "fetch":
		browser = tools.NewFetcher(tools.FetchConfig{Policy: tools.AddrPolicy{AllowPrivate: c.AllowPrivateFetch}, Logger: log})
	default:
		return nil, nil, fmt.Errorf("--access %q: want auto, local, fetch, jina or none", c.Access)
	}
	return searcher, browser, nil
}
