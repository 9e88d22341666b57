package tools

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// SpecOptions configure the backends SearcherFromSpec and BrowserFromSpec
// build.
type SpecOptions struct {
	// AllowPrivateFetch lets the direct fetcher reach private addresses
	// (--allow-private-fetch).
	AllowPrivateFetch bool
	// SerperKey and JinaKey default to $SERPER_API_KEY and $JINA_API_KEY.
	SerperKey, JinaKey string
	// Cache, when set, wraps the backend; in replay mode no backend is
	// built at all (no key needed, nothing reached).
	Cache  *Cache
	Logger *slog.Logger
}

// SearcherFromSpec builds a Searcher from a --search value:
//
//	serper                     Serper web search ($SERPER_API_KEY)
//	http://host:port           a retrieval server's /retrieve (also local:http://…)
//	addrdir:DIR                a retrieval server found in DIR/Host*_IP*.txt
//	                           (the upstream RAG_SERVER_ADDR_DIR convention)
func SearcherFromSpec(spec string, o SpecOptions) (Searcher, error) {
	kind, base, namespace, err := parseSpec(spec, "search")
	if err != nil {
		return nil, err
	}
	if o.replaying() {
		return o.Cache.Searcher(nil, namespace), nil
	}
	var s Searcher
	switch kind {
	case "serper":
		key := o.SerperKey
		if key == "" {
			key = SerperKeyFromEnv()
		}
		s, err = NewSerper(SerperConfig{APIKey: key})
	case "local":
		s, err = NewLocal(LocalConfig{BaseURL: base})
	}
	if err != nil {
		return nil, err
	}
	if o.Cache != nil {
		return o.Cache.Searcher(s, namespace), nil
	}
	return s, nil
}

// BrowserFromSpec builds a Browser from an --access value:
//
//	fetch                      direct HTTP fetch with readability (SSRF-guarded)
//	jina                       the Jina Reader ($JINA_API_KEY)
//	http://host:port           a retrieval server's /access (also local:http://…)
//	addrdir:DIR                as for SearcherFromSpec
//	none                       no browser: returns nil (search-only agents)
func BrowserFromSpec(spec string, o SpecOptions) (Browser, error) {
	if strings.TrimSpace(spec) == "none" {
		return nil, nil
	}
	kind, base, namespace, err := parseSpec(spec, "access")
	if err != nil {
		return nil, err
	}
	if o.replaying() {
		return o.Cache.Browser(nil, namespace), nil
	}
	var b Browser
	switch kind {
	case "fetch":
		b = NewFetcher(FetchConfig{Policy: AddrPolicy{AllowPrivate: o.AllowPrivateFetch}, Logger: o.Logger})
	case "jina":
		key := o.JinaKey
		if key == "" {
			key = JinaKeyFromEnv()
		}
		if key == "" && o.Logger != nil {
			o.Logger.Warn("JINA_API_KEY is not set; the Jina Reader allows far fewer requests without a key")
		}
		b, err = NewJina(JinaConfig{APIKey: key})
	case "local":
		b, err = NewLocal(LocalConfig{BaseURL: base})
	}
	if err != nil {
		return nil, err
	}
	if o.Cache != nil {
		return o.Cache.Browser(b, namespace), nil
	}
	return b, nil
}

func (o SpecOptions) replaying() bool { return o.Cache != nil && o.Cache.Mode() == CacheReplay }

// parseSpec returns the backend kind, a local server's URL, and the cache
// namespace of the backend.
func parseSpec(spec, flag string) (kind, base, namespace string, err error) {
	kind, base, err = splitSpec(strings.TrimSpace(spec), flag)
	namespace = kind
	if kind == "local" {
		namespace = "local:" + base
	}
	return kind, base, namespace, err
}

// splitSpec returns the backend kind and, for a local server, its URL.
func splitSpec(spec, flag string) (kind, base string, err error) {
	switch {
	case spec == "serper" && flag == "search":
		return "serper", "", nil
	case (spec == "fetch" || spec == "jina") && flag == "access":
		return spec, "", nil
	case strings.HasPrefix(spec, "addrdir:"):
		addr, err := ReadAddrDir(strings.TrimPrefix(spec, "addrdir:"))
		if err != nil {
			return "", "", err
		}
		return "local", "http://" + addr, nil
	case strings.HasPrefix(spec, "local:"):
		spec = strings.TrimPrefix(spec, "local:")
		fallthrough
	case strings.HasPrefix(spec, "http://"), strings.HasPrefix(spec, "https://"):
		return "local", strings.TrimRight(spec, "/"), nil
	}
	if flag == "search" {
		return "", "", fmt.Errorf("search %q: want serper, a retrieval server URL (http://host:port) or addrdir:DIR", spec)
	}
	return "", "", fmt.Errorf("access %q: want fetch, jina, none, a retrieval server URL (http://host:port) or addrdir:DIR", spec)
}

// ReadAddrDir finds a retrieval server address written by upstream's
// --save-address-to: files named Host<ip>_IP<port>.txt holding "ip:port".
// The first file in name order is used.
func ReadAddrDir(dir string) (string, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "Host*_IP*.txt"))
	if err != nil {
		return "", err
	}
	if len(matches) == 0 {
		return "", fmt.Errorf("no Host*_IP*.txt address file in %s; start the retrieval server with --save-address-to %s", dir, dir)
	}
	sort.Strings(matches)
	data, err := os.ReadFile(matches[0])
	if err != nil {
		return "", err
	}
	addr := strings.TrimSpace(string(data))
	if addr == "" || strings.ContainsAny(addr, " /\n") || !strings.Contains(addr, ":") {
		return "", errors.New("address file " + matches[0] + " does not hold ip:port")
	}
	return addr, nil
}
