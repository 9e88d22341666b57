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
	"slices"
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
//
// A retired adapter is unloaded as soon as no request pins it. With
// MaxAdapters set, a publish also keeps the adapters loaded on a server
// (the new one included) at or under it: when a request still pins the
// oldest retired adapter and the new one would not fit, that request is
// aborted (an SGLang fleet under llm.Resumer continues it on the current
// adapter, its tokens so far keeping their version) and the adapter is
// unloaded before the new one loads. Where requests cannot be aborted
// (vLLM), the publish waits for them, at most Timeout.
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
	// MaxAdapters caps the adapters this publisher has loaded on each
	// server at once, the one being loaded included; at least 2 (the
	// current adapter and the next). 0 sets no cap. Keep it at or under
	// the servers' own limit (SGLang and vLLM --max-loaded-loras / --max-loras,
	// serve model --max-loaded-loras), or a load past theirs fails the
	// publish. The cluster run sets rl.max_staleness + 2.
	MaxAdapters int
	// Fetch writes the adapter behind a trainer path into a new directory
	// (Source.Adapter).
	Fetch  func(ctx context.Context, path, dest string) error
	Client *http.Client
	// Timeout bounds each admin call, and a publish's wait for room under
	// MaxAdapters [5 min].
	Timeout time.Duration
	Log     *slog.Logger

	mu      sync.Mutex
	current string // adapter new requests use; "" = the served model
	version int    // its version
	// loaded are the adapters loaded on the fleet and not being unloaded,
	// oldest first; the current one is last.
	loaded   []string
	inflight map[string]int
	// requests are the IDs of the requests in flight on each adapter, so
	// the ones pinning an adapter that must go can be aborted.
	requests map[string]map[string]int
	retired  map[string]bool
	// unloading counts unloads in progress: their server slots are not
	// free until they finish.
	unloading int
	changed   chan struct{} // closed and replaced when a request ends or an unload finishes
	aborter   llm.Aborter   // the sampler Wrap wrapped, when it can abort
	unloads   sync.WaitGroup
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

// Loaded lists the adapters this publisher holds loaded, oldest first
// (unloads in progress excluded).
func (p *LoRA) Loaded() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.loaded)
}

// PublishesWhileServing implements rl.ConcurrentPublisher: every request
// names the adapter it runs on, so requests sent while a new adapter
// loads simply use the previous one, and the controller need not hold
// them.
func (p *LoRA) PublishesWhileServing() bool { return true }

// Publish implements rl.Publisher: fetch the adapter, make room for it
// under MaxAdapters, load it on every server, then switch new requests to
// it. Nothing is paused or drained; the previous adapter is unloaded when
// its last request ends.
func (p *LoRA) Publish(ctx context.Context, path string, version int, _ rl.Drainer) error {
	if len(p.Servers) == 0 {
		return errors.New("publish: no servers in the fleet")
	}
	if p.Dir == "" {
		return errors.New("publish: no adapter directory (cluster.publish.dir)")
	}
	if p.MaxAdapters == 1 || p.MaxAdapters < 0 {
		return fmt.Errorf("publish: at most %d adapters loaded: want 0 (no cap) or at least 2, the current adapter and the next", p.MaxAdapters)
	}
	name := p.AdapterName(version)
	dir, err := filepath.Abs(filepath.Join(p.Dir, name))
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	cur, _ := p.Current()
	if cur == name {
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
	if cur == "" {
		// Before the first load, so a killed run's adapters free the
		// servers' slots for this one.
		p.sweepLeftovers(name)
	}
	if err := p.makeRoom(ctx, version); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("publish v%d: %w", version, err)
	}
	if err := p.loadAll(ctx, name, dir); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("publish v%d: %w", version, err)
	}
	p.mu.Lock()
	old := p.current
	p.current, p.version = name, version
	p.loaded = append(p.loaded, name)
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
	return nil
}

// changedLocked is the channel closed at the next request end or unload.
// Callers hold mu.
func (p *LoRA) changedLocked() chan struct{} {
	if p.changed == nil {
		p.changed = make(chan struct{})
	}
	return p.changed
}

// broadcastLocked wakes makeRoom. Callers hold mu.
func (p *LoRA) broadcastLocked() {
	if p.changed != nil {
		close(p.changed)
		p.changed = nil
	}
}

// makeRoom waits until one more adapter fits under MaxAdapters: unloads
// in progress are waited for, and the requests pinning the oldest retired
// adapter are aborted (once each) so that it is released and unloaded.
// It gives up after Timeout, naming what still holds the slots.
func (p *LoRA) makeRoom(ctx context.Context, version int) error {
	if p.MaxAdapters <= 0 {
		return nil
	}
	deadline := time.NewTimer(p.timeout())
	defer deadline.Stop()
	aborted := map[string]bool{}
	for {
		p.mu.Lock()
		if len(p.loaded)+p.unloading+1 <= p.MaxAdapters {
			p.mu.Unlock()
			return nil
		}
		ch := p.changedLocked()
		var victim string
		var ids []string
		if len(p.loaded)+1 > p.MaxAdapters {
			for _, n := range p.loaded {
				if n != p.current {
					victim = n
					break
				}
			}
			if victim != "" && !aborted[victim] {
				aborted[victim] = true
				for id := range p.requests[victim] {
					ids = append(ids, id)
				}
			}
		}
		busy, unloading, held := p.inflight[victim], p.unloading, slices.Clone(p.loaded)
		p.mu.Unlock()
		if len(ids) > 0 {
			p.abort(ctx, victim, ids, version)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("no room for adapter %s after %s: %d loaded (%s), %d unloading, max %d; %s still has %d requests in flight (raise cluster.publish.max_adapters and the servers' --max-loaded-loras, or shorten generations)",
				p.AdapterName(version), p.timeout(), len(held), strings.Join(held, ", "), unloading, p.MaxAdapters, victim, busy)
		}
	}
}

// abort asks the fleet to abort the requests pinning adapter; a backend
// that cannot abort (vLLM's OpenAI API) leaves makeRoom waiting for them
// to end.
func (p *LoRA) abort(ctx context.Context, adapter string, ids []string, version int) {
	p.mu.Lock()
	a := p.aborter
	p.mu.Unlock()
	if a == nil {
		p.logger().Info("publish: waiting for the requests on the oldest adapter to end (this fleet cannot abort them)",
			"adapter", adapter, "requests", len(ids), "max_adapters", p.MaxAdapters, "next", p.AdapterName(version))
		return
	}
	p.logger().Info("publish: aborting the requests on the oldest adapter to make room",
		"adapter", adapter, "requests", len(ids), "max_adapters", p.MaxAdapters, "next", p.AdapterName(version))
	for _, id := range ids {
		if err := a.Abort(ctx, id); err != nil {
			p.logger().Debug("publish: abort", "request", id, "err", err)
		}
	}
}

// sweepLeftovers unloads and deletes the adapters a previous run of this
// publisher left in Dir (a crash or a kill skips their unloading; a
// resumed run starts with its checkpoint's version), and waits for it.
func (p *LoRA) sweepLeftovers(keep string) {
	entries, err := os.ReadDir(p.Dir)
	if err != nil {
		return
	}
	var wg sync.WaitGroup
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() || n == keep || !strings.HasPrefix(n, p.prefix()+"-v") {
			continue
		}
		if _, err := strconv.Atoi(strings.TrimPrefix(n, p.prefix()+"-v")); err != nil {
			continue
		}
		wg.Go(func() { p.unload(n) })
	}
	wg.Wait()
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
// directory, in the background (Close waits for it). Its slot counts as
// taken until the unload has finished.
func (p *LoRA) unloadLater(name string) {
	p.mu.Lock()
	delete(p.retired, name)
	delete(p.inflight, name)
	delete(p.requests, name)
	p.loaded = slices.DeleteFunc(p.loaded, func(n string) bool { return n == name })
	p.unloading++
	p.mu.Unlock()
	p.unloads.Go(func() {
		p.unload(name)
		p.mu.Lock()
		p.unloading--
		p.broadcastLocked()
		p.mu.Unlock()
	})
}

// unload unloads name from every server and deletes its directory.
func (p *LoRA) unload(name string) {
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
}

// Close waits for background unloads.
func (p *LoRA) Close() { p.unloads.Wait() }

// acquire pins a request (id may be empty: it cannot be aborted) to the
// current adapter.
func (p *LoRA) acquire(id string) (string, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current != "" {
		if p.inflight == nil {
			p.inflight, p.requests = map[string]int{}, map[string]map[string]int{}
		}
		p.inflight[p.current]++
		if id != "" {
			if p.requests[p.current] == nil {
				p.requests[p.current] = map[string]int{}
			}
			p.requests[p.current][id]++
		}
	}
	return p.current, p.version
}

func (p *LoRA) release(name, id string) {
	if name == "" {
		return
	}
	p.mu.Lock()
	p.inflight[name]--
	if ids := p.requests[name]; ids != nil && id != "" {
		if ids[id]--; ids[id] <= 0 {
			delete(ids, id)
		}
	}
	last := p.inflight[name] == 0 && p.retired[name]
	p.broadcastLocked()
	p.mu.Unlock()
	if last {
		p.unloadLater(name)
	}
}

// Wrap returns s with every request pinned to the current adapter. When s
// can abort requests, a publish short of room under MaxAdapters aborts
// the requests pinning the oldest adapter through it.
func (p *LoRA) Wrap(s llm.Sampler) llm.Sampler {
	if a, ok := s.(llm.Aborter); ok {
		p.mu.Lock()
		p.aborter = a
		p.mu.Unlock()
	}
	return &pinned{inner: s, p: p}
}

type pinned struct {
	inner llm.Sampler
	p     *LoRA
}

// Sample implements llm.Sampler.
func (s *pinned) Sample(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	name, version := s.p.acquire(req.ID)
	defer s.p.release(name, req.ID)
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
