package main

import (
	"fmt"
	"slices"

	"github.com/spf13/pflag"

	"github.com/asearcher/asearcher/engine/embedded"
	"github.com/asearcher/asearcher/llm"
)

// modelBackends is the registry of model backends this program offers:
// llm's HTTP and Tinker backends plus the embedded engine. It is the one
// place that links the engine into the commands that run the agent.
func modelBackends() *llm.Backends {
	b := llm.NewBackends()
	if err := embedded.Register(b); err != nil {
		panic(err) // a second "embedded" registration: a programming error
	}
	return b
}

// modelFlagHelp is the --model help every command shares.
const modelFlagHelp = "model: an OpenAI-compatible base URL (http://host:port/v1), openai:URL, vllm:URL or sglang:http://host:port (comma-separated for a pool), tinker:URL?model=BASE, or embedded:DIR to run a model directory in process"

// backendFlagVars are where the shared model and tool flags land; a nil
// field leaves its flag out.
type backendFlagVars struct {
	model, modelName, tokenizer *string
	search, access              *string
	allowPrivateFetch           *bool
	toolCache, toolCacheMode    *string
}

// addBackendFlags binds the model, tokenizer and tool flags that ask,
// eval and synth share, with one spelling and one help text. Defaults
// are the values the pointers hold.
func addBackendFlags(fs *pflag.FlagSet, v backendFlagVars) {
	if v.model != nil {
		fs.StringVar(v.model, "model", *v.model, modelFlagHelp)
	}
	if v.modelName != nil {
		fs.StringVar(v.modelName, "model-name", *v.modelName, "model name for OpenAI-compatible servers and Tinker (default: ask the server)")
	}
	if v.tokenizer != nil {
		fs.StringVar(v.tokenizer, "tokenizer", *v.tokenizer, "tokenizer.json or a model directory: run in token mode (exact token ids, trainable trajectories); embedded:DIR uses DIR's own")
	}
	if v.search != nil {
		fs.StringVar(v.search, "search", *v.search, "search: a retrieval server base URL (http://host:port), addrdir:DIR, or serper (needs SERPER_API_KEY)")
	}
	if v.access != nil {
		fs.StringVar(v.access, "access", *v.access, "page reader: auto (the retrieval server's /access, else jina with JINA_API_KEY, else fetch), local, fetch, jina, none, or a retrieval server URL")
	}
	if v.allowPrivateFetch != nil {
		fs.BoolVar(v.allowPrivateFetch, "allow-private-fetch", *v.allowPrivateFetch, "let direct page fetch reach loopback and private addresses")
	}
	if v.toolCache != nil {
		fs.StringVar(v.toolCache, "tool-cache", *v.toolCache, "directory caching search results and pages")
	}
	if v.toolCacheMode != nil {
		fs.StringVar(v.toolCacheMode, "tool-cache-mode", *v.toolCacheMode, "tool cache mode: live, record or replay (answer only from the cache)")
	}
}

// applyConfigFile is the one order of settings for commands with
// --config: the command's defaults, then the file (load decodes it over
// the same variables the flags are bound to, rejecting unknown keys), then
// every flag given on the command line except skip, which wins.
func applyConfigFile(fs *pflag.FlagSet, load func() error, skip ...string) error {
	changed := map[string]string{}
	fs.Visit(func(f *pflag.Flag) { changed[f.Name] = f.Value.String() })
	if err := load(); err != nil {
		return err
	}
	for name, v := range changed {
		if slices.Contains(skip, name) {
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return fmt.Errorf("--%s: %w", name, err)
		}
	}
	return nil
}
