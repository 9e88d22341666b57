package llm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// Backend opens samplers of one kind. A model spec "PREFIX:ARG" is opened
// by the backend registered under PREFIX (see Backends); a plain
// http(s):// URL by the ones registered under "http" and "https".
type Backend struct {
	// Usage is the spec form shown in help and errors, e.g. "embedded:DIR".
	Usage string
	// Server backends open one remote server per list item; a
	// comma-separated list of server specs (of any server backends) opens
	// as one Pool with retries, failover and sticky routing. Other
	// backends take the whole rest of the spec as ARG and are never pooled.
	Server bool
	// Open makes the sampler for ARG. close releases it (nil when there is
	// nothing to release).
	Open func(ctx context.Context, arg string, o OpenOptions) (s Sampler, close func() error, err error)
	// Tokenizer, when set, names the tokenizer that ARG implies (a model
	// directory holds its own); "" for none.
	Tokenizer func(arg string) string
}

// OpenOptions configure the samplers Backends.Open makes.
type OpenOptions struct {
	// APIKey is sent to HTTP model servers as a bearer token; empty reads
	// APIKeyFromEnv.
	APIKey string
	// ModelName is the model for servers whose spec names none (?model=):
	// the OpenAI "model" field, Tinker's base model.
	ModelName  string
	HTTPClient *http.Client
	// MaxInFlight caps concurrent requests per server, or the batch of an
	// in-process engine; 0 keeps each backend's default.
	MaxInFlight int
	// Pool tunes the pool over server backends (MaxInFlight wins over
	// Pool.MaxInFlight when set).
	Pool PoolConfig
	// Decode fills Response.Text for token-only backends (Tinker).
	Decode func(ids []int) string
	Logger *slog.Logger
}

// Backends is the registry of model backends, keyed by spec prefix. The
// zero value is empty; NewBackends has the HTTP and Tinker backends, and a
// program adds in-process ones (the embedded engine registers from package
// engine/embedded) so that llm never links an engine.
type Backends struct {
	byPrefix map[string]Backend
}

// NewBackends returns a registry with the backends package llm implements:
// OpenAI-compatible servers (a plain http(s) URL ending in /v1, openai:,
// vllm:), SGLang's native API (sglang:) and Tinker sampling (tinker:).
func NewBackends() *Backends {
	b := &Backends{}
	for _, s := range []struct{ prefix, usage string }{
		{"http", "http://host:port/v1 (OpenAI-compatible; vLLM/SGLang extensions auto-detected)"},
		{"https", "https://host/v1"},
		{"openai", "openai:https://host/v1 (standard OpenAI fields only)"},
		{"vllm", "vllm:http://host:port/v1 (always with vLLM/SGLang extensions)"},
		{"sglang", "sglang:http://host:port (SGLang native /generate)"},
	} {
		prefix := s.prefix
		b.mustRegister(prefix, Backend{Usage: s.usage, Server: true,
			Open: func(_ context.Context, arg string, o OpenOptions) (Sampler, func() error, error) {
				s, err := openServer(prefix+":"+arg, o)
				return s, nil, err
			}})
	}
	b.mustRegister("tinker", Backend{Usage: "tinker:http://host:port?model=BASE_MODEL (Tinker sampling; $TINKER_API_KEY; token mode)", Open: openTinker})
	return b
}

func (b *Backends) mustRegister(prefix string, be Backend) {
	if err := b.Register(prefix, be); err != nil {
		panic(err) // only for the built-in table above, which is fixed
	}
}

// Register adds a backend under prefix (without the colon). A prefix is
// registered once.
func (b *Backends) Register(prefix string, be Backend) error {
	prefix = strings.ToLower(prefix)
	switch {
	case prefix == "" || strings.ContainsAny(prefix, ":,/ "):
		return fmt.Errorf("backend prefix %q: want a plain word", prefix)
	case be.Open == nil:
		return fmt.Errorf("backend %q has no Open", prefix)
	}
	if _, dup := b.byPrefix[prefix]; dup {
		return fmt.Errorf("backend %q is registered twice", prefix)
	}
	if b.byPrefix == nil {
		b.byPrefix = map[string]Backend{}
	}
	b.byPrefix[prefix] = be
	return nil
}

// Prefixes lists the registered prefixes in order.
func (b *Backends) Prefixes() []string {
	out := make([]string, 0, len(b.byPrefix))
	for p := range b.byPrefix {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Usage is one line per backend, for help texts.
func (b *Backends) Usage() string {
	var sb strings.Builder
	for _, p := range b.Prefixes() {
		sb.WriteString("  ")
		sb.WriteString(b.byPrefix[p].Usage)
		sb.WriteByte('\n')
	}
	return sb.String()
}

// lookup resolves the backend of one spec item.
func (b *Backends) lookup(item string) (string, Backend, string, error) {
	prefix, arg, ok := strings.Cut(item, ":")
	if !ok {
		return "", Backend{}, "", fmt.Errorf("model %q: no backend prefix; use one of %s", redactURL(item), strings.Join(b.forms(), ", "))
	}
	be, ok := b.byPrefix[strings.ToLower(prefix)]
	if !ok {
		return "", Backend{}, "", fmt.Errorf("model %q: unknown prefix %q; use one of %s", redactURL(item), prefix, strings.Join(b.forms(), ", "))
	}
	return strings.ToLower(prefix), be, arg, nil
}

func (b *Backends) forms() []string {
	var out []string
	for _, p := range b.Prefixes() {
		switch p {
		case "http", "https":
			if p == "http" {
				out = append(out, "a plain http(s) URL")
			}
		default:
			out = append(out, p+":")
		}
	}
	return out
}

// Tokenizer returns the tokenizer the spec implies ("" for none): a model
// directory run in process carries its own.
func (b *Backends) Tokenizer(spec string) string {
	spec = strings.TrimSpace(spec)
	_, be, arg, err := b.lookup(spec)
	if err != nil || be.Tokenizer == nil || be.Server {
		return ""
	}
	return be.Tokenizer(arg)
}

// Open opens a model spec: a single in-process or session backend
// (embedded:DIR, tinker:URL), or one or more comma-separated servers,
// which form one Pool. Call close when done.
func (b *Backends) Open(ctx context.Context, spec string, o OpenOptions) (Sampler, func() error, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil, errors.New("model is empty: give e.g. http://127.0.0.1:8000/v1, sglang:http://127.0.0.1:30000 or embedded:DIR")
	}
	if o.APIKey == "" {
		o.APIKey = APIKeyFromEnv()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	prefix, be, arg, err := b.lookup(strings.TrimSpace(strings.SplitN(spec, ",", 2)[0]))
	if err != nil {
		return nil, nil, err
	}
	if !be.Server {
		s, closeFn, err := be.Open(ctx, arg, o)
		if err != nil {
			return nil, nil, fmt.Errorf("model %s: %w", prefix+":", err)
		}
		if closeFn == nil {
			closeFn = func() error { return nil }
		}
		return s, closeFn, nil
	}
	var samplers []Sampler
	for _, item := range strings.Split(spec, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		p, be, arg, err := b.lookup(item)
		if err != nil {
			return nil, nil, err
		}
		if !be.Server {
			return nil, nil, fmt.Errorf("model %q: %s: cannot be part of a server list; give it alone", redactURL(spec), p)
		}
		s, _, err := be.Open(ctx, arg, o)
		if err != nil {
			return nil, nil, err
		}
		samplers = append(samplers, s)
	}
	if len(samplers) == 0 {
		return nil, nil, fmt.Errorf("model %q lists no server", redactURL(spec))
	}
	pc := o.Pool
	if o.MaxInFlight > 0 {
		pc.MaxInFlight = o.MaxInFlight
	}
	if pc.Logger == nil {
		pc.Logger = o.Logger
	}
	pool, err := NewPool(samplers, pc)
	if err != nil {
		return nil, nil, err
	}
	return pool, pool.Close, nil
}

// openServer opens one HTTP server item (see ParseSpec).
func openServer(item string, o OpenOptions) (Sampler, error) {
	ep, err := parseOne(item)
	if err != nil {
		return nil, err
	}
	client := o.HTTPClient
	if client == nil {
		client = defaultHTTPClient()
	}
	return ep.open(client, o.APIKey, o.ModelName)
}

// open makes the client of one parsed endpoint.
func (ep Endpoint) open(client *http.Client, apiKey, model string) (Sampler, error) {
	if ep.Model != "" {
		model = ep.Model
	}
	if ep.Kind == "sglang" {
		return NewSGLang(SGLangConfig{BaseURL: ep.BaseURL, HTTPClient: client, APIKey: apiKey, Model: model})
	}
	return NewOpenAI(OpenAIConfig{BaseURL: ep.BaseURL, HTTPClient: client, APIKey: apiKey, Model: model, Dialect: ep.Dialect})
}

// openTinker opens tinker:URL[?model=BASE]: sampling through a Tinker
// server's asample. The key comes from $TINKER_API_KEY; with no URL,
// $TINKER_BASE_URL.
func openTinker(_ context.Context, arg string, o OpenOptions) (Sampler, func() error, error) {
	cfg := TinkerConfigFromEnv()
	if strings.TrimSpace(arg) != "" {
		cfg.BaseURL = arg
	}
	base := o.ModelName
	if u, err := url.Parse(cfg.BaseURL); err == nil && u.Query().Has("model") {
		base = u.Query().Get("model")
		u.RawQuery = ""
		cfg.BaseURL = u.String()
	}
	if base == "" {
		return nil, nil, errors.New("name the base model: tinker:http://host:port?model=BASE_MODEL (or the model name setting)")
	}
	cfg.HTTPClient, cfg.Logger = o.HTTPClient, o.Logger
	s, err := NewTinkerSampler(TinkerSamplerConfig{TinkerConfig: cfg, BaseModel: base, Decode: o.Decode})
	if err != nil {
		return nil, nil, err
	}
	return s, func() error { s.Close(); return nil }, nil
}

// Ready checks that s answers when it can be probed (a server pool: at
// least one server healthy); in-process samplers are always ready.
func Ready(ctx context.Context, s Sampler) error {
	hc, ok := s.(HealthChecker)
	if !ok {
		return nil
	}
	return hc.Health(ctx)
}
