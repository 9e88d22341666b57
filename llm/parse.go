package llm

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// Endpoint is one parsed server of a --model spec.
type Endpoint struct {
	// Kind is "sglang" or "openai".
	Kind    string
	BaseURL string
	Dialect Dialect // OpenAI only
	Model   string  // from ?model=, may be empty
}

// ParseSpec parses a --model value: one or more comma-separated servers,
// each
//
//	http://host:port/v1            OpenAI-compatible (vLLM, SGLang, hosted); extensions auto-detected
//	openai:https://host/v1         OpenAI-compatible, standard fields only (hosted APIs)
//	vllm:http://host:port/v1       OpenAI-compatible, always with vLLM/SGLang extensions
//	sglang:http://host:port        SGLang native /generate
//
// A "?model=NAME" query names the model for OpenAI-compatible servers.
func ParseSpec(spec string) ([]Endpoint, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, fmt.Errorf("empty model URL: give e.g. http://127.0.0.1:8000/v1 or sglang:http://127.0.0.1:30000")
	}
	var out []Endpoint
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		ep, err := parseOne(item)
		if err != nil {
			return nil, err
		}
		out = append(out, ep)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("model URL %q lists no server", spec)
	}
	return out, nil
}

func parseOne(item string) (Endpoint, error) {
	ep := Endpoint{Kind: "openai", Dialect: DialectAuto}
	rest := item
	if prefix, after, ok := strings.Cut(item, ":"); ok {
		switch strings.ToLower(prefix) {
		case "sglang":
			ep.Kind, rest = "sglang", after
		case "openai":
			ep.Dialect, rest = DialectStandard, after
		case "vllm":
			ep.Dialect, rest = DialectExtended, after
		case "http", "https":
		default:
			return ep, fmt.Errorf("model URL %q: unknown prefix %q; use sglang:, openai:, vllm: or a plain http(s) URL", redactURL(item), prefix)
		}
	}
	u, err := url.Parse(rest)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ep, fmt.Errorf("model URL %q: want http(s)://host:port[/v1]", redactURL(item))
	}
	q := u.Query()
	ep.Model = q.Get("model")
	q.Del("model")
	u.RawQuery = q.Encode()
	u.Fragment = ""
	u.Path = strings.TrimRight(u.Path, "/")
	if ep.Kind == "sglang" {
		if strings.HasSuffix(u.Path, "/v1") {
			return ep, fmt.Errorf("model URL %q: sglang: takes the server root (no /v1); for its OpenAI API drop the sglang: prefix", redactURL(item))
		}
	} else if !strings.HasSuffix(u.Path, "/v1") {
		return ep, fmt.Errorf("model URL %q: an OpenAI-compatible base URL ends in /v1 (e.g. %s://%s/v1); for SGLang's native API write sglang:%s://%s", redactURL(item), u.Scheme, u.Host, u.Scheme, u.Host)
	}
	ep.BaseURL = u.String()
	return ep, nil
}

// ClientOptions configure the clients NewClient builds.
type ClientOptions struct {
	// APIKey is sent as a bearer token to every server; see APIKeyFromEnv.
	APIKey string
	// Model is the default model name for OpenAI-compatible servers
	// without ?model=.
	Model      string
	HTTPClient *http.Client
	Pool       PoolConfig
}

// APIKeyFromEnv reads the key for model servers: OPENAI_API_KEY, else
// SGLANG_API_KEY, else empty.
func APIKeyFromEnv() string {
	if k := os.Getenv("OPENAI_API_KEY"); k != "" {
		return k
	}
	return os.Getenv("SGLANG_API_KEY")
}

// NewClient parses spec (see ParseSpec) and returns a Pool over its
// servers; a single server is a pool of one, so retries, timeouts, health
// checks and metrics are the same everywhere. Close the pool when done.
func NewClient(spec string, opts ClientOptions) (*Pool, error) {
	eps, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	client := opts.HTTPClient
	if client == nil {
		client = defaultHTTPClient()
	}
	samplers := make([]Sampler, 0, len(eps))
	for _, ep := range eps {
		s, err := ep.open(client, opts.APIKey, opts.Model)
		if err != nil {
			return nil, err
		}
		samplers = append(samplers, s)
	}
	return NewPool(samplers, opts.Pool)
}
