package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/export"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/peft"
	"github.com/asearcher/asearcher/rl"
)

// fleetServer is a recorded SGLang or vLLM server: it logs every admin
// call in order, keeps the set of loaded adapters as the real servers do
// (loading a name twice or unloading an unknown one is an error), checks
// that a request's adapter is loaded, and holds /generate calls whose
// prompt starts with token 99 until release is closed.
type fleetServer struct {
	*httptest.Server
	vllm     bool
	mu       sync.Mutex
	calls    []string
	loaded   map[string]string // name → path
	release  chan struct{}
	released sync.Once
	failLoad bool
	// maxLoaded, when set, refuses a load past it as the real servers'
	// --max-loaded-loras does; peak is the most adapters ever loaded.
	maxLoaded, peak int
	// Prompts [98, k] are held until releaseOne(k) or, on SGLang, an
	// /abort_request of their rid (answered as SGLang does: the partial
	// output, one token, with finish_reason abort).
	holds map[int]*heldCall
	rids  map[string]int
	// loadGate, when set, holds every load until it is closed (a slow
	// adapter load).
	loadGate chan struct{}
}

// heldCall is where a [98, k] prompt waits.
type heldCall struct {
	ch   chan struct{}
	once sync.Once
}

func (h *heldCall) open() { h.once.Do(func() { close(h.ch) }) }

// hold returns the held call of a [98, k] prompt.
func (f *fleetServer) hold(k int) *heldCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.holdLocked(k)
}

func (f *fleetServer) holdLocked(k int) *heldCall {
	if f.holds == nil {
		f.holds, f.rids = map[int]*heldCall{}, map[string]int{}
	}
	if f.holds[k] == nil {
		f.holds[k] = &heldCall{ch: make(chan struct{})}
	}
	return f.holds[k]
}

// releaseOne lets the held [98, k] request answer in full.
func (f *fleetServer) releaseOne(k int) { f.hold(k).open() }

// Release lets held /generate calls answer.
func (f *fleetServer) Release() {
	f.released.Do(func() { close(f.release) })
	f.mu.Lock()
	for _, h := range f.holds {
		h.open()
	}
	f.mu.Unlock()
}

func newFleetServer(t *testing.T, vllm bool) *fleetServer {
	f := &fleetServer{vllm: vllm, loaded: map[string]string{}, release: make(chan struct{})}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	// Held calls are released first, or Close would wait for them.
	t.Cleanup(func() { f.Release(); f.Close() })
	return f
}

func (f *fleetServer) log(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

func (f *fleetServer) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fleetServer) serve(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	raw, _ := io.ReadAll(r.Body)
	json.Unmarshal(raw, &body)
	prefix := ""
	if f.vllm {
		prefix = "/v1"
	}
	name, _ := body["lora_name"].(string)
	switch r.URL.Path {
	case prefix + "/load_lora_adapter":
		path, _ := body["lora_path"].(string)
		f.mu.Lock()
		gate := f.loadGate
		f.mu.Unlock()
		if gate != nil {
			<-gate
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, err := os.Stat(filepath.Join(path, peft.ConfigFile)); err != nil || f.failLoad {
			http.Error(w, fmt.Sprintf(`{"error":"cannot load %s"}`, path), http.StatusBadRequest)
			return
		}
		if _, dup := f.loaded[name]; dup {
			http.Error(w, fmt.Sprintf(`{"error":"The lora adapter '%s' has already been loaded."}`, name), http.StatusBadRequest)
			return
		}
		if f.maxLoaded > 0 && len(f.loaded) >= f.maxLoaded {
			http.Error(w, fmt.Sprintf(`{"error":"Failed to load LoRA adapter %s: %d adapters are loaded, the maximum"}`, name, len(f.loaded)), http.StatusBadRequest)
			return
		}
		f.loaded[name] = path
		f.peak = max(f.peak, len(f.loaded))
		f.calls = append(f.calls, "load "+name)
		if f.vllm {
			fmt.Fprintf(w, "Success: LoRA adapter '%s' added successfully.", name)
		} else {
			fmt.Fprintf(w, `{"success":true,"error_message":null,"loaded_adapters":{"%s":"%s"}}`, name, path)
		}
	case prefix + "/unload_lora_adapter":
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.loaded[name]; !ok {
			http.Error(w, `{"error":"not loaded"}`, http.StatusNotFound)
			return
		}
		delete(f.loaded, name)
		f.calls = append(f.calls, "unload "+name)
		w.Write([]byte(`{"success":true}`))
	case "/generate", "/v1/completions":
		adapter, _ := body["lora_path"].(string)
		ids, _ := body["input_ids"].([]any)
		if f.vllm {
			if m, _ := body["model"].(string); m != "base" {
				adapter = m
			}
			ids, _ = body["prompt"].([]any)
		}
		f.mu.Lock()
		_, ok := f.loaded[adapter]
		f.mu.Unlock()
		if adapter != "" && !ok {
			http.Error(w, `{"error":"adapter not loaded"}`, http.StatusBadRequest)
			return
		}
		f.log("generate " + adapter)
		if len(ids) > 0 && ids[0] == float64(99) {
			<-f.release
		}
		if len(ids) == 2 && ids[0] == float64(98) {
			k := int(ids[1].(float64))
			rid, _ := body["rid"].(string)
			f.mu.Lock()
			h := f.holdLocked(k)
			f.rids[rid] = k
			f.mu.Unlock()
			<-h.ch
			f.mu.Lock()
			aborted := f.rids[rid] < 0
			f.mu.Unlock()
			if aborted {
				w.Write([]byte(`{"text":"a","output_ids":[7],"meta_info":{"id":"x","finish_reason":{"type":"abort"},"prompt_tokens":2,"completion_tokens":1,"output_token_logprobs":[[-0.5,7,null]]}}`))
				return
			}
		}
		if f.vllm {
			w.Write([]byte(`{"id":"c","object":"text_completion","model":"m","choices":[{"index":0,"text":"ab","token_ids":[7,8],"logprobs":{"tokens":["token_id:7","token_id:8"],"token_logprobs":[-0.5,-0.25]},"finish_reason":"length"}]}`))
			return
		}
		// weight_version "5" is what the server's base weights say; the
		// adapter pinned by the request is what produced the tokens.
		w.Write([]byte(`{"text":"ab","output_ids":[7,8],"meta_info":{"id":"x","weight_version":"5","finish_reason":{"type":"length","length":2},"prompt_tokens":2,"completion_tokens":2,"output_token_logprobs":[[-0.5,7,null],[-0.25,8,null]]}}`))
	case "/abort_request":
		rid, _ := body["rid"].(string)
		f.mu.Lock()
		k, ok := f.rids[rid]
		if ok && k >= 0 {
			f.rids[rid] = -1
		}
		f.mu.Unlock()
		f.log("abort " + rid)
		if ok && k >= 0 {
			f.hold(k).open()
		}
		w.Write([]byte(`{}`))
	case "/pause_generation", "/continue_generation":
		f.log(strings.TrimPrefix(r.URL.Path, "/"))
		w.Write([]byte(`{}`))
	case "/update_weights_from_disk":
		f.log("update " + fmt.Sprint(body["model_path"]) + " v" + fmt.Sprint(body["weight_version"]))
		w.Write([]byte(`{"success":true,"message":"ok"}`))
	default:
		http.NotFound(w, r)
	}
}

// tinyDims is the shape of export's committed test model.
func testBase(t *testing.T) (string, *engine.Config) {
	t.Helper()
	base := filepath.Join("..", "export", "testdata", "hf")
	cfg, err := engine.LoadConfig(base)
	if err != nil {
		t.Fatal(err)
	}
	return base, cfg
}

// trainerAdapter writes a PEFT adapter (as a trainer would save it, with
// target_modules null) for the test base and returns its directory.
func trainerAdapter(t *testing.T, cfg *engine.Config, seed uint64) string {
	t.Helper()
	d := export.DimsOf(cfg)
	rng := rand.New(rand.NewPCG(seed, 1))
	a := &peft.Adapter{Config: peft.NewConfig("base", 2, 32), Modules: map[string]*peft.Module{}}
	for l := 0; l < d.Layers; l++ {
		for _, name := range []string{fmt.Sprintf("model.layers.%d.self_attn.q_proj", l), fmt.Sprintf("model.layers.%d.mlp.down_proj", l)} {
			out, in, _ := d.Shape(name)
			m := &peft.Module{Rank: 2, In: in, Out: out, A: make([]float32, 2*in), B: make([]float32, out*2)}
			for i := range m.A {
				m.A[i] = float32(rng.NormFloat64() * 0.1)
			}
			for i := range m.B {
				m.B[i] = float32(rng.NormFloat64() * 0.1)
			}
			a.Modules[name] = m
		}
	}
	dir := filepath.Join(t.TempDir(), fmt.Sprintf("trainer-s%d", seed))
	if err := a.Save(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

type result struct {
	resp *llm.Response
	err  error
}

func sampleAsync(s llm.Sampler, first int) chan result {
	ch := make(chan result, 1)
	go func() {
		resp, err := s.Sample(context.Background(), &llm.Request{InputIDs: []int{first, 2}, Params: llm.Params{MaxNewTokens: 2}})
		ch <- result{resp, err}
	}()
	return ch
}

func wantVersions(t *testing.T, what string, r result, v int) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("%s: %v", what, r.err)
	}
	if !slices.Equal(r.resp.Versions, []int{v, v}) {
		t.Errorf("%s: token versions %v, want [%d %d]", what, r.resp.Versions, v, v)
	}
}

// waitFor polls until cond holds (background unloads, blocked calls).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func countGenerate(f *fleetServer, adapter string) int {
	n := 0
	for _, c := range f.Calls() {
		if c == "generate "+adapter {
			n++
		}
	}
	return n
}

// Requests are pinned to the adapter current when they are sent and carry
// its version; a new version loads beside the old one without pausing,
// and the old one is unloaded (and its directory deleted) only when its
// last request has ended.
func TestLoRAPinsRequestsAndUnloadsWhenIdle(t *testing.T) {
	for _, vllm := range []bool{false, true} {
		t.Run(map[bool]string{false: "sglang", true: "vllm"}[vllm], func(t *testing.T) {
			_, cfg := testBase(t)
			a, b := newFleetServer(t, vllm), newFleetServer(t, vllm)
			dialect, root := SGLang, ""
			var sampler llm.Sampler
			var err error
			if vllm {
				dialect, root = VLLM, "/v1"
				sampler, err = llm.NewOpenAI(llm.OpenAIConfig{BaseURL: a.URL + "/v1", Model: "base", Dialect: llm.DialectExtended})
			} else {
				sampler, err = llm.NewSGLang(llm.SGLangConfig{BaseURL: a.URL})
			}
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			p := &LoRA{Servers: []string{a.URL + root, b.URL + root}, Dialect: dialect, Dir: dir, Fetch: Source{}.Adapter}
			defer p.Close()
			s := p.Wrap(sampler)
			ctx := context.Background()

			r0 := sampleAsync(s, 99) // held by the server, on the base model
			waitFor(t, "the base-model request", func() bool { return countGenerate(a, "") == 1 })
			if err := p.Publish(ctx, trainerAdapter(t, cfg, 1), 1, nil); err != nil {
				t.Fatal(err)
			}
			r1 := sampleAsync(s, 99) // held, on policy-v1
			waitFor(t, "the v1 request", func() bool { return countGenerate(a, "policy-v1") == 1 })
			if err := p.Publish(ctx, trainerAdapter(t, cfg, 2), 2, nil); err != nil {
				t.Fatal(err)
			}
			// v1 still has a request in flight: it stays loaded (any
			// unload the publish started has finished after Wait).
			p.unloads.Wait()
			for _, f := range []*fleetServer{a, b} {
				if got := f.Calls(); slices.Contains(got, "unload policy-v1") || !slices.Contains(got, "load policy-v2") {
					t.Fatalf("after publishing v2 with a v1 request in flight: %v", got)
				}
			}
			wantVersions(t, "a request sent after v2", <-sampleAsync(s, 1), 2)
			if countGenerate(a, "policy-v2") != 1 {
				t.Errorf("the request after v2 did not name policy-v2: %v", a.Calls())
			}
			a.Release()
			wantVersions(t, "the base-model request", <-r0, 0)
			wantVersions(t, "the v1 request finishing after v2 was published", <-r1, 1)
			p.Close()
			for _, f := range []*fleetServer{a, b} {
				got := f.Calls()
				want := []string{"load policy-v1", "load policy-v2", "unload policy-v1"}
				var admin []string
				for _, c := range got {
					if !strings.HasPrefix(c, "generate") {
						admin = append(admin, c)
					}
				}
				if !slices.Equal(admin, want) {
					t.Errorf("admin calls %v, want %v", admin, want)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "policy-v1")); !os.IsNotExist(err) {
				t.Errorf("the unloaded adapter's directory is still there: %v", err)
			}
			loaded, err := peft.Load(filepath.Join(dir, "policy-v2"))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(loaded.Config.TargetModules, []string{"q_proj", "down_proj"}) {
				t.Errorf("published adapter target_modules %v", loaded.Config.TargetModules)
			}
			if name, v := p.Current(); name != "policy-v2" || v != 2 {
				t.Errorf("Current() = %s, %d", name, v)
			}
		})
	}
}

// A version that one server refuses is unloaded from the others and not
// used: requests stay on the previous adapter.
func TestLoRALoadFailureKeepsFleetUniform(t *testing.T) {
	_, cfg := testBase(t)
	a, b := newFleetServer(t, false), newFleetServer(t, false)
	dir := t.TempDir()
	p := &LoRA{Servers: []string{a.URL, b.URL}, Dialect: SGLang, Dir: dir, Fetch: Source{}.Adapter}
	defer p.Close()
	ctx := context.Background()
	if err := p.Publish(ctx, trainerAdapter(t, cfg, 1), 1, nil); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	b.failLoad = true
	b.mu.Unlock()
	err := p.Publish(ctx, trainerAdapter(t, cfg, 2), 2, nil)
	if err == nil || !strings.Contains(err.Error(), "HTTP 400") {
		t.Fatalf("publish with a refusing server: %v", err)
	}
	if got := a.Calls(); !slices.Equal(got, []string{"load policy-v1", "load policy-v2", "unload policy-v2"}) {
		t.Errorf("healthy server's calls %v", got)
	}
	if name, v := p.Current(); name != "policy-v1" || v != 1 {
		t.Errorf("after a failed publish Current() = %s, %d", name, v)
	}
	if _, err := os.Stat(filepath.Join(dir, "policy-v2")); !os.IsNotExist(err) {
		t.Errorf("the failed version's directory was left: %v", err)
	}
	// A trainer path that is not an adapter is a clear error.
	if err := p.Publish(ctx, t.TempDir(), 3, nil); err == nil || !strings.Contains(err.Error(), "not a PEFT adapter") {
		t.Errorf("non-adapter path: %v", err)
	}
	// An adapter loaded before a crash is reloaded, not refused.
	fresh := &LoRA{Servers: []string{a.URL}, Dialect: SGLang, Dir: dir, Fetch: Source{}.Adapter}
	if err := fresh.Publish(ctx, trainerAdapter(t, cfg, 1), 1, nil); err != nil {
		t.Errorf("republishing a loaded version after a restart: %v", err)
	}
}

type noDrain struct{ calls int }

func (d *noDrain) Drain(context.Context, bool) error { d.calls++; return nil }

// sglang-full merges the trainer's adapter into the base model, loads the
// merged directory with pause / update_weights_from_disk / continue, and
// deletes the previous version's directory once the new one is served.
func TestFullMergesAndUpdatesFromDisk(t *testing.T) {
	base, cfg := testBase(t)
	a := newFleetServer(t, false)
	dir := t.TempDir()
	p := &Full{Inner: &rl.SGLangPublisher{Servers: []string{a.URL}}, Dir: dir, Fetch: Source{Base: base}.Merged}
	ctx := context.Background()
	d := &noDrain{}
	trainer := trainerAdapter(t, cfg, 1)
	if err := p.Publish(ctx, trainer, 1, d); err != nil {
		t.Fatal(err)
	}
	v1 := filepath.Join(dir, "v000001")
	merged, err := engine.LoadWeights(v1)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := engine.LoadWeights(base)
	ad, _ := peft.Load(trainer)
	if err := ad.Merge(want, export.DimsOf(want.Config)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(merged.Flat, want.Flat) {
		t.Error("the published model is not the base with the adapter merged")
	}
	if _, err := os.Stat(filepath.Join(v1, "tokenizer.json")); err != nil {
		t.Errorf("the merged directory has no tokenizer: %v", err)
	}
	if err := p.Publish(ctx, trainerAdapter(t, cfg, 2), 2, d); err != nil {
		t.Fatal(err)
	}
	wantCalls := []string{"pause_generation", "update " + v1 + " v1", "continue_generation",
		"pause_generation", "update " + filepath.Join(dir, "v000002") + " v2", "continue_generation"}
	if got := a.Calls(); !slices.Equal(got, wantCalls) {
		t.Errorf("calls %v\nwant %v", got, wantCalls)
	}
	if d.calls != 2 {
		t.Errorf("drained %d times, want once per publish", d.calls)
	}
	if _, err := os.Stat(v1); !os.IsNotExist(err) {
		t.Errorf("v1's directory was kept after v2 was served: %v", err)
	}
	// A model directory on a shared filesystem is loaded where it is.
	if err := p.Publish(ctx, base, 3, d); err != nil {
		t.Fatal(err)
	}
	if got := a.Calls(); got[len(got)-2] != "update "+base+" v3" {
		t.Errorf("shared model directory: %v", got)
	}
	if _, err := os.Stat(filepath.Join(base, "model.safetensors")); err != nil {
		t.Fatal("the publisher deleted a directory it did not write")
	}
	// No base: an adapter cannot be merged.
	p2 := &Full{Inner: &rl.SGLangPublisher{Servers: []string{a.URL}}, Dir: t.TempDir(), Fetch: Source{}.Merged}
	if err := p2.Publish(ctx, trainer, 1, d); err == nil || !strings.Contains(err.Error(), "base model") {
		t.Errorf("merge without a base: %v", err)
	}
}

// A resumed run sweeps what a killed one left: adapters still loaded on
// the fleet and their directories, merged model directories.
func TestLeftoversOfAKilledRunAreSwept(t *testing.T) {
	base, cfg := testBase(t)
	a := newFleetServer(t, false)
	dir := t.TempDir()
	killed := &LoRA{Servers: []string{a.URL}, Dialect: SGLang, Dir: dir, Fetch: Source{}.Adapter}
	ctx := context.Background()
	if err := killed.Publish(ctx, trainerAdapter(t, cfg, 1), 1, nil); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "unrelated"), 0o755)
	resumed := &LoRA{Servers: []string{a.URL}, Dialect: SGLang, Dir: dir, Fetch: Source{}.Adapter}
	if err := resumed.Publish(ctx, trainerAdapter(t, cfg, 3), 3, nil); err != nil {
		t.Fatal(err)
	}
	resumed.Close()
	// The leftover is unloaded before the new version loads, so it frees
	// its server slot first.
	if got := a.Calls(); !slices.Equal(got, []string{"load policy-v1", "unload policy-v1", "load policy-v3"}) {
		t.Errorf("calls %v", got)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if fmt.Sprint(names) != "[policy-v3 unrelated]" {
		t.Errorf("adapter dir after the sweep: %v", names)
	}

	fdir := t.TempDir()
	os.MkdirAll(filepath.Join(fdir, "v000001"), 0o755)
	os.MkdirAll(filepath.Join(fdir, "keep-me"), 0o755)
	full := &Full{Inner: &rl.SGLangPublisher{Servers: []string{a.URL}}, Dir: fdir, Fetch: Source{Base: base}.Merged}
	if err := full.Publish(ctx, trainerAdapter(t, cfg, 2), 2, &noDrain{}); err != nil {
		t.Fatal(err)
	}
	entries, _ = os.ReadDir(fdir)
	names = names[:0]
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if fmt.Sprint(names) != "[keep-me v000002]" {
		t.Errorf("model dir after the sweep: %v", names)
	}
}

// sampleHeld sends prompt [98, k] (held by the fleet server until
// releaseOne(k) or an abort) as request id.
func sampleHeld(s llm.Sampler, id string, k int) chan result {
	ch := make(chan result, 1)
	go func() {
		resp, err := s.Sample(context.Background(), &llm.Request{ID: id, InputIDs: []int{98, k}, Params: llm.Params{MaxNewTokens: 2}})
		ch <- result{resp, err}
	}()
	return ch
}

// adminCalls are a server's load and unload calls, in order.
func adminCalls(f *fleetServer) []string {
	var out []string
	for _, c := range f.Calls() {
		if strings.HasPrefix(c, "load ") || strings.HasPrefix(c, "unload ") {
			out = append(out, c)
		}
	}
	return out
}

// With MaxAdapters, a publish never takes a server past that many loaded
// adapters: when the oldest retired adapter is still pinned by a request,
// SGLang requests on it are aborted (llm.Resumer continues them on the
// current adapter, the first tokens keeping their version) and the
// adapter is unloaded before the next loads; vLLM, which cannot abort,
// waits for the request, at most Timeout. The servers refuse a load past
// 3 adapters, as --max-loaded-loras does: without the bound the fourth
// publish failed there.
func TestLoRABoundsLoadedAdapters(t *testing.T) {
	for _, vllm := range []bool{false, true} {
		t.Run(map[bool]string{false: "sglang", true: "vllm"}[vllm], func(t *testing.T) {
			_, cfg := testBase(t)
			a, b := newFleetServer(t, vllm), newFleetServer(t, vllm)
			a.maxLoaded, b.maxLoaded = 3, 3
			dialect, root := SGLang, ""
			var sampler llm.Sampler
			var err error
			if vllm {
				dialect, root = VLLM, "/v1"
				sampler, err = llm.NewOpenAI(llm.OpenAIConfig{BaseURL: a.URL + "/v1", Model: "base", Dialect: llm.DialectExtended})
			} else {
				sampler, err = llm.NewSGLang(llm.SGLangConfig{BaseURL: a.URL})
			}
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			p := &LoRA{Servers: []string{a.URL + root, b.URL + root}, Dialect: dialect, Dir: dir, Fetch: Source{}.Adapter, MaxAdapters: 3}
			defer p.Close()
			s := &llm.Resumer{Sampler: p.Wrap(sampler)}
			ctx := context.Background()
			publish := func(v int) error { return p.Publish(ctx, trainerAdapter(t, cfg, uint64(v)), v, nil) }

			if err := publish(1); err != nil {
				t.Fatal(err)
			}
			r1 := sampleHeld(s, "r1", 1)
			waitFor(t, "the v1 request", func() bool { return countGenerate(a, "policy-v1") == 1 })
			if err := publish(2); err != nil {
				t.Fatal(err)
			}
			r2 := sampleHeld(s, "r2", 2)
			waitFor(t, "the v2 request", func() bool { return countGenerate(a, "policy-v2") == 1 })
			if err := publish(3); err != nil {
				t.Fatal(err)
			}
			if got := p.Loaded(); !slices.Equal(got, []string{"policy-v1", "policy-v2", "policy-v3"}) {
				t.Fatalf("loaded %v after v3 with v1 and v2 pinned", got)
			}
			if vllm {
				// r1 cannot be aborted: the publish gives up after Timeout
				// and changes nothing.
				p.Timeout = 200 * time.Millisecond
				err := publish(4)
				if err == nil || !strings.Contains(err.Error(), "no room for adapter policy-v4") || !strings.Contains(err.Error(), "policy-v1 still has 1 requests in flight") {
					t.Fatalf("publish past the bound with v1 pinned: %v", err)
				}
				if name, v := p.Current(); name != "policy-v3" || v != 3 {
					t.Errorf("after a publish with no room Current() = %s, %d", name, v)
				}
				if _, err := os.Stat(filepath.Join(dir, "policy-v4")); !os.IsNotExist(err) {
					t.Errorf("the refused version's directory was left: %v", err)
				}
				p.Timeout = 0
				go func() {
					time.Sleep(50 * time.Millisecond)
					a.releaseOne(1)
				}()
			}
			if err := publish(4); err != nil {
				t.Fatal(err)
			}
			res := <-r1
			if res.err != nil {
				t.Fatal(res.err)
			}
			if vllm {
				wantVersions(t, "the v1 request, released", res, 1)
			} else if len(res.resp.Versions) < 2 || res.resp.Versions[0] != 1 || res.resp.Versions[1] != 3 {
				t.Errorf("the aborted v1 request: versions %v, want its first token from v1 and the rest from v3", res.resp.Versions)
			}
			// v3 had no request: unloaded as soon as v4 replaced it.
			if got := p.Loaded(); !slices.Equal(got, []string{"policy-v2", "policy-v4"}) {
				t.Errorf("loaded %v after v4, want v2 (pinned) and v4", got)
			}
			a.releaseOne(2)
			wantVersions(t, "the v2 request", <-r2, 2)
			waitFor(t, "v2 unloaded once idle", func() bool { return slices.Equal(p.Loaded(), []string{"policy-v4"}) })
			p.Close()
			for _, f := range []*fleetServer{a, b} {
				f.mu.Lock()
				peak := f.peak
				f.mu.Unlock()
				if peak > 3 {
					t.Errorf("a server held %d adapters at once, max 3", peak)
				}
				want := []string{"load policy-v1", "load policy-v2", "load policy-v3", "unload policy-v1", "load policy-v4"}
				if got := adminCalls(f); len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
					t.Errorf("admin calls %v, want them to start %v", got, want)
				}
			}
			if !vllm && !slices.Contains(a.Calls(), "abort r1") {
				t.Errorf("r1 was not aborted: %v", a.Calls())
			}
		})
	}
}

// A LoRA publisher lets requests through while it loads the next adapter
// (rl.ConcurrentPublisher): a request sent during a slow load runs on the
// previous adapter. Full updates weights in place and does not say so,
// so the controller closes its gate for it.
func TestLoRAServesWhileLoading(t *testing.T) {
	var pub rl.Publisher = &LoRA{}
	if c, ok := pub.(rl.ConcurrentPublisher); !ok || !c.PublishesWhileServing() {
		t.Fatal("LoRA does not publish while serving")
	}
	if _, ok := rl.Publisher(&Full{}).(rl.ConcurrentPublisher); ok {
		t.Fatal("Full claims to publish while serving: its in-place update needs the gate closed")
	}
	_, cfg := testBase(t)
	a := newFleetServer(t, false)
	sampler, err := llm.NewSGLang(llm.SGLangConfig{BaseURL: a.URL})
	if err != nil {
		t.Fatal(err)
	}
	p := &LoRA{Servers: []string{a.URL}, Dialect: SGLang, Dir: t.TempDir(), Fetch: Source{}.Adapter, MaxAdapters: 2}
	defer p.Close()
	s := p.Wrap(sampler)
	ctx := context.Background()
	if err := p.Publish(ctx, trainerAdapter(t, cfg, 1), 1, nil); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	a.mu.Lock()
	a.loadGate = gate
	a.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- p.Publish(ctx, trainerAdapter(t, cfg, 2), 2, nil) }()
	wantVersions(t, "a request during the v2 load", <-sampleAsync(s, 1), 1)
	select {
	case err := <-done:
		t.Fatalf("the publish ended before its load was let through: %v", err)
	default:
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wantVersions(t, "a request after v2", <-sampleAsync(s, 1), 2)
}
