package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/rl"
)

// Dialect is the LoRA admin API a fleet speaks.
type Dialect string

const (
	// SGLang: POST /load_lora_adapter {lora_name, lora_path, pinned},
	// POST /unload_lora_adapter {lora_name}; /generate names the adapter
	// in lora_path. The server needs --enable-lora (and --max-lora-rank,
	// --lora-target-modules covering the adapter).
	SGLang Dialect = "sglang"
	// VLLM: POST /v1/load_lora_adapter {lora_name, lora_path},
	// POST /v1/unload_lora_adapter {lora_name}; requests name the adapter
	// in model. The server needs --enable-lora, --max-lora-rank and
	// VLLM_ALLOW_RUNTIME_LORA_UPDATING=True.
	VLLM Dialect = "vllm"
)

func (d Dialect) route(op string) string {
	if d == VLLM {
		return "/v1/" + op + "_lora_adapter"
	}
	return "/" + op + "_lora_adapter"
}

// LoRA publishes each version as a LoRA adapter hot-loaded on every server
// of a fleet. Samplers wrapped by Wrap pin every request to the adapter
// current when it is sent and stamp its tokens with that adapter's
// version, whatever the server reports, so a trajectory's versions are
// the adapters that really produced its tokens.
type LoRA struct {
	// Servers are the fleet's roots (http://host:port; a trailing /v1 is
	// dropped for the admin routes).
	Servers []string
	Dialect Dialect
	// Dir is where adapter directories are written; every server must
	// read it under the same path (a shared filesystem, or this machine).
	Dir string
	// Prefix names the adapters: Prefix-vN [policy].
	Prefix string
	// Fetch writes the adapter behind a trainer path into a new directory
	// (Source.Adapter).
	Fetch  func(ctx context.Context, path, dest string) error
	Client *http.Client
	// Timeout bounds each admin call [5 min].
	Timeout time.Duration
	Log     *slog.Logger

	mu       sync.Mutex
	current  string // adapter new requests use; "" = the served model
	version  int    // its version
	inflight map[string]int
	retired  map[string]bool
	unloads  sync.WaitGroup
}

// Start sets the version the fleet serves before the first Publish (the
// served model itself, no adapter): 0 on a fresh run.
func (p *LoRA) Start(version int) {
	p.mu.Lock()
	p.version = version
	p.mu.Unlock()
}

func (p *LoRA) prefix() string {
	if p.Prefix == "" {
		return "policy"
	}
	return p.Prefix
}

// AdapterName is the fleet's name of version v.
func (p *LoRA) AdapterName(v int) string { return fmt.Sprintf("%s-v%d", p.prefix(), v) }

// Current is the adapter new requests use ("" before the first publish)
// and its version.
func (p *LoRA) Current() (string, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current, p.version
}

// Publish implements rl.Publisher: fetch the adapter, load it on every
// server, then switch new requests to it. Nothing is paused or drained;
// the previous adapter is unloaded when its last request ends.
func (p *LoRA) Publish(ctx context.Context, path string, version int, _ rl.Drainer) error {
	if len(p.Servers) == 0 {
		return errors.New("publish: no servers in the fleet")
	}
	if p.Dir == "" {
		return errors.New("publish: no adapter directory (cluster.publish.dir)")
	}
	name := p.AdapterName(version)
	dir, err := filepath.Abs(filepath.Join(p.Dir, name))
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if cur, _ := p.Current(); cur == name {
		return nil // already serving it (a retried publish)
	}
	// A leftover of a failed or interrupted publish of this version.
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if err := p.Fetch(ctx, path, dir); err != nil {
		return fmt.Errorf("publish v%d: %w", version, err)
	}
	if err := p.loadAll(ctx, name, dir); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("publish v%d: %w", version, err)
	}
	p.mu.Lock()
	old := p.current
	p.current, p.version = name, version
	var unloadNow bool
	if old != "" {
		if p.retired == nil {
			p.retired = map[string]bool{}
		}
		p.retired[old] = true
		unloadNow = p.inflight[old] == 0
	}
	p.mu.Unlock()
	p.logger().Info("publish: adapter loaded", "adapter", name, "dir", dir, "servers", len(p.Servers))
	if unloadNow {
		p.unloadLater(old)
	}
	if old == "" {
		p.sweepLeftovers(name)
	}
	return nil
}

// sweepLeftovers unloads and deletes the adapters a previous run of this
// publisher left in Dir (a crash or a kill skips their unloading; a
// resumed run starts with its checkpoint's version).
func (p *LoRA) sweepLeftovers(keep string) {
	entries, err := os.ReadDir(p.Dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() || n == keep || !strings.HasPrefix(n, p.prefix()+"-v") {
			continue
		}
		if _, err := strconv.Atoi(strings.TrimPrefix(n, p.prefix()+"-v")); err != nil {
			continue
		}
		p.unloadLater(n)
	}
}

// loadAll loads name on every server; if any fails, the servers that
// loaded it unload it again, so the fleet stays uniform.
func (p *LoRA) loadAll(ctx context.Context, name, dir string) error {
	body := map[string]any{"lora_name": name, "lora_path": dir}
	if p.Dialect == SGLang {
		body["pinned"] = false
	}
	errs := make([]error, len(p.Servers))
	var wg sync.WaitGroup
	for i, s := range p.Servers {
		wg.Go(func() {
			errs[i] = p.post(ctx, s, p.Dialect.route("load"), body)
			if errs[i] != nil && strings.Contains(strings.ToLower(errs[i].Error()), "already") {
				// Loaded before a crash or by a retried call: reload it so
				// the server holds exactly this directory's weights.
				p.post(ctx, s, p.Dialect.route("unload"), map[string]any{"lora_name": name})
				errs[i] = p.post(ctx, s, p.Dialect.route("load"), body)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for i, s := range p.Servers {
			if errs[i] == nil {
				uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.timeout())
				p.post(uctx, s, p.Dialect.route("unload"), map[string]any{"lora_name": name})
				cancel()
			}
		}
		return err
	}
	return nil
}

// unloadLater unloads a retired adapter from every server and deletes its
// directory, in the background (Close waits for it).
func (p *LoRA) unloadLater(name string) {
	p.mu.Lock()
	delete(p.retired, name)
	delete(p.inflight, name)
	p.mu.Unlock()
	p.unloads.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), p.timeout())
		defer cancel()
		var wg sync.WaitGroup
		for _, s := range p.Servers {
			wg.Go(func() {
				if err := p.post(ctx, s, p.Dialect.route("unload"), map[string]any{"lora_name": name}); err != nil {
					p.logger().Warn("publish: unload adapter", "adapter", name, "server", s, "err", err)
				}
			})
		}
		wg.Wait()
		if err := os.RemoveAll(filepath.Join(p.Dir, name)); err != nil {
			p.logger().Warn("publish: remove adapter directory", "adapter", name, "err", err)
		}
	})
}

// Close waits for background unloads.
func (p *LoRA) Close() { p.unloads.Wait() }

func (p *LoRA) acquire() (string, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current != "" {
		if p.inflight == nil {
			p.inflight = map[string]int{}
		}
		p.inflight[p.current]++
	}
	return p.current, p.version
}

func (p *LoRA) release(name string) {
	if name == "" {
		return
	}
	p.mu.Lock()
	p.inflight[name]--
	last := p.inflight[name] == 0 && p.retired[name]
	p.mu.Unlock()
	if last {
		p.unloadLater(name)
	}
}

// Wrap returns s with every request pinned to the current adapter.
func (p *LoRA) Wrap(s llm.Sampler) llm.Sampler { return &pinned{inner: s, p: p} }

type pinned struct {
	inner llm.Sampler
	p     *LoRA
}

// Sample implements llm.Sampler.
func (s *pinned) Sample(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	name, version := s.p.acquire()
	defer s.p.release(name)
	r := *req
	r.Adapter = name
	resp, err := s.inner.Sample(ctx, &r)
	if resp != nil {
		// The adapter named in the request produced every token; a
		// server's own weight_version says nothing about adapters.
		resp.Versions = make([]int, len(resp.OutputIDs))
		for i := range resp.Versions {
			resp.Versions[i] = version
		}
	}
	return resp, err
}

// Abort forwards to the fleet.
func (s *pinned) Abort(ctx context.Context, requestID string) error {
	if a, ok := s.inner.(llm.Aborter); ok {
		return a.Abort(ctx, requestID)
	}
	return errors.New("sampler cannot abort requests")
}

// Unwrap lets llm.ContextLength see the servers.
func (s *pinned) Unwrap() llm.Sampler { return s.inner }

func (p *LoRA) timeout() time.Duration {
	if p.Timeout > 0 {
		return p.Timeout
	}
	return 5 * time.Minute
}

func (p *LoRA) logger() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.Default()
}

func (p *LoRA) post(ctx context.Context, server, route string, body any) error {
	return postJSON(ctx, p.Client, p.timeout(), strings.TrimSuffix(strings.TrimRight(server, "/"), "/v1")+route, body)
}

// postJSON posts body as a server admin command (see rl.PostServerCommand).
func postJSON(ctx context.Context, client *http.Client, timeout time.Duration, url string, body any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return rl.PostServerCommand(ctx, client, timeout, url, raw)
}
