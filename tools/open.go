package tools

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Config is the tool settings every command shares (ask, eval, synth,
// train's cluster runs): which search engine and page reader to open, and
// an optional answer cache.
type Config struct {
	// Search is a SearcherFromSpec value (a retrieval server URL,
	// addrdir:DIR, serper), or "" / "none" for no search tool.
	Search string `yaml:"search"`
	// Access is a BrowserFromSpec value (fetch, jina, none, a retrieval
	// server URL, addrdir:DIR) or one of:
	//   auto   ("" too) the search server's /access when Search is a
	//          retrieval server, else Jina when $JINA_API_KEY is set, else
	//          direct fetch when there is a search tool, else none
	//   local  the search server's /access (Search must be a retrieval server)
	Access string `yaml:"access"`
	// AllowPrivateFetch lets direct fetch reach loopback and private
	// addresses.
	AllowPrivateFetch bool `yaml:"allow_private_fetch"`
	// Cache is a directory caching tool answers ("" for none) in CacheMode:
	// live, record or replay.
	Cache     string `yaml:"tool_cache"`
	CacheMode string `yaml:"tool_cache_mode"`
}

// Tools are the opened search and page tools; either may be nil (not
// configured).
type Tools struct {
	Search Searcher
	Browse Browser
}

// SearchIsServer says whether a search setting names a retrieval server
// (whose /access can read pages), as opposed to serper or nothing.
func SearchIsServer(search string) bool {
	search = strings.TrimSpace(search)
	return search != "" && search != "none" && search != "serper"
}

// ResolveAccess applies the auto and local rules of Config.Access and
// returns a BrowserFromSpec value.
func (c Config) ResolveAccess() (string, error) {
	search, access := strings.TrimSpace(c.Search), strings.TrimSpace(c.Access)
	server := SearchIsServer(search)
	switch access {
	case "", "auto":
		switch {
		case server:
			return search, nil
		case JinaKeyFromEnv() != "":
			return "jina", nil
		case search != "" && search != "none":
			return "fetch", nil
		}
		return "none", nil
	case "local":
		if !server {
			return "", errors.New("access local needs search to be a retrieval server (http://host:port or addrdir:DIR)")
		}
		return search, nil
	}
	return access, nil
}

// Open builds the tools of c. The logger (nil: slog.Default) gets the
// cache's and fetcher's warnings.
func Open(c Config, log *slog.Logger) (Tools, error) {
	if log == nil {
		log = slog.Default()
	}
	opts := SpecOptions{AllowPrivateFetch: c.AllowPrivateFetch, Logger: log}
	if c.Cache != "" {
		mode, err := ParseCacheMode(c.CacheMode)
		if err != nil {
			return Tools{}, fmt.Errorf("tool cache mode: %w", err)
		}
		if opts.Cache, err = OpenCache(c.Cache, CacheOptions{Mode: mode, Logger: log}); err != nil {
			return Tools{}, fmt.Errorf("tool cache: %w", err)
		}
	}
	var t Tools
	if search := strings.TrimSpace(c.Search); search != "" && search != "none" {
		s, err := SearcherFromSpec(search, opts)
		if err != nil {
			return Tools{}, err
		}
		t.Search = s
	}
	access, err := c.ResolveAccess()
	if err != nil {
		return Tools{}, err
	}
	if t.Browse, err = BrowserFromSpec(access, opts); err != nil {
		return Tools{}, err
	}
	return t, nil
}
