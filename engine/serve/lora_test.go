package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/llm"
)

// writeTestAdapter saves a random rank-r adapter (B nonzero, so it changes
// the output) for the server's model and returns its directory.
func writeTestAdapter(t *testing.T, ts *testServer, r int, seed uint64) (string, *engine.Adapter) {
	t.Helper()
	ad, err := engine.NewAdapter(ts.opts.Weights.Config, engine.LoRAConfig{Rank: r, Alpha: 16})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range ad.Flat {
		ad.Flat[i] = float32(rng.NormFloat64() * 0.5)
	}
	dir := filepath.Join(t.TempDir(), fmt.Sprintf("adapter-%d", seed))
	if err := ad.SaveAdapter(dir, ts.dir); err != nil {
		t.Fatal(err)
	}
	return dir, ad
}

// greedyWith is what the served model generates greedily through ad (nil:
// the base), from a sampler over the merged weights.
func greedyWith(t *testing.T, ts *testServer, ad *engine.Adapter, prompt []int, n int) []int {
	t.Helper()
	w := ts.opts.Weights
	if ad != nil {
		var err error
		if w, err = ad.MergeInto(w); err != nil {
			t.Fatal(err)
		}
	}
	sm := engine.NewSampler(w, 0, ts.samplerOptions())
	defer sm.Close()
	resp, err := sm.Sample(context.Background(), &llm.Request{InputIDs: prompt, Params: llm.Params{MaxNewTokens: n}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.OutputIDs
}

func generateIDs(t *testing.T, ts *testServer, body map[string]any) []int {
	t.Helper()
	st, out := post(t, ts.url+"/generate", body)
	if st != 200 {
		t.Fatalf("/generate %v: %d %s", body["lora_path"], st, out)
	}
	var r struct {
		OutputIDs []int `json:"output_ids"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	return r.OutputIDs
}

// SGLang's and vLLM's LoRA endpoints: load, list, choose per request
// (batches mixing adapters), unload, the cap, and the stock servers'
// errors.
func TestServeLoRAEndpoints(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), func(o *Options) { o.MaxLoadedLoRAs = 2 })
	dir1, ad1 := writeTestAdapter(t, ts, 4, 1)
	dir2, ad2 := writeTestAdapter(t, ts, 2, 2)
	prompt := []int{1, 2, 3, 4, 5}
	const n = 12
	sp := map[string]any{"max_new_tokens": n, "temperature": 0, "ignore_eos": true}

	// SGLang: load, then the same name again fails in its reply shape.
	st, body := post(t, ts.url+"/load_lora_adapter", map[string]any{"lora_name": "a1", "lora_path": dir1})
	if st != 200 || !strings.Contains(string(body), `"success":true`) || !strings.Contains(string(body), `"a1":`) {
		t.Fatalf("load_lora_adapter: %d %s", st, body)
	}
	st, body = post(t, ts.url+"/load_lora_adapter", map[string]any{"lora_name": "a1", "lora_path": dir1})
	if st != 400 || !strings.Contains(string(body), `"success":false`) || !strings.Contains(string(body), "already loaded") {
		t.Fatalf("second load: %d %s", st, body)
	}
	// vLLM: load, plain-text success, duplicate refused.
	st, body = post(t, ts.url+"/v1/load_lora_adapter", map[string]any{"lora_name": "a2", "lora_path": dir2})
	if st != 200 || string(body) != "Success: LoRA adapter 'a2' added successfully." {
		t.Fatalf("/v1/load_lora_adapter: %d %s", st, body)
	}
	st, body = post(t, ts.url+"/v1/load_lora_adapter", map[string]any{"lora_name": "a2", "lora_path": dir2})
	if st != 400 || !strings.Contains(string(body), "The lora adapter 'a2' has already been loaded.") {
		t.Fatalf("duplicate vLLM load: %d %s", st, body)
	}
	// The cap (2 here) refuses a third.
	if st, body = post(t, ts.url+"/v1/load_lora_adapter", map[string]any{"lora_name": "a3", "lora_path": dir2}); st != 400 || !strings.Contains(string(body), "max-loaded-loras") {
		t.Fatalf("load past the cap: %d %s", st, body)
	}
	// A directory that is no adapter: 404 as vLLM's "No adapter found".
	if st, body = post(t, ts.url+"/v1/load_lora_adapter", map[string]any{"lora_name": "a4", "lora_path": t.TempDir()}); st != 404 || !strings.Contains(string(body), "No adapter found") {
		t.Fatalf("load of an empty directory: %d %s", st, body)
	}

	// /v1/models lists the base and both adapters.
	st, body = get(t, ts.url+"/v1/models")
	var models struct {
		Data []struct {
			ID     string  `json:"id"`
			Parent *string `json:"parent"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &models); st != 200 || err != nil || len(models.Data) != 3 || models.Data[1].ID != "a1" ||
		models.Data[2].ID != "a2" || models.Data[2].Parent == nil || *models.Data[2].Parent != "tiny" {
		t.Fatalf("/v1/models: %d %s", st, body)
	}

	want0, want1, want2 := greedyWith(t, ts, nil, prompt, n), greedyWith(t, ts, ad1, prompt, n), greedyWith(t, ts, ad2, prompt, n)
	if slices.Equal(want0, want1) || slices.Equal(want1, want2) {
		t.Fatal("the adapters do not change the greedy output; the test proves nothing")
	}
	// SGLang: lora_path picks the adapter; one batch mixes a1, none and a2.
	if got := generateIDs(t, ts, map[string]any{"input_ids": prompt, "sampling_params": sp, "lora_path": "a1"}); !slices.Equal(got, want1) {
		t.Fatalf("lora_path a1: %v, want %v", got, want1)
	}
	st, body = post(t, ts.url+"/generate", map[string]any{"input_ids": [][]int{prompt, prompt, prompt}, "sampling_params": sp,
		"lora_path": []any{"a1", nil, "a2"}})
	var batch []struct {
		OutputIDs []int `json:"output_ids"`
	}
	if err := json.Unmarshal(body, &batch); st != 200 || err != nil || len(batch) != 3 {
		t.Fatalf("mixed batch: %d %s", st, body)
	}
	for i, want := range [][]int{want1, want0, want2} {
		if !slices.Equal(batch[i].OutputIDs, want) {
			t.Errorf("mixed batch prompt %d: %v, want %v", i, batch[i].OutputIDs, want)
		}
	}
	st, body = post(t, ts.url+"/generate", map[string]any{"input_ids": prompt, "sampling_params": sp, "lora_path": "nope"})
	if st != 400 || !strings.Contains(string(body), "The following requested LoRA adapters are not loaded: nope") {
		t.Fatalf("unknown lora_path: %d %s", st, body)
	}
	// vLLM: model names the adapter, on completions and chat alike; the
	// reply carries that name.
	st, body = post(t, ts.url+"/v1/completions", map[string]any{"model": "a2", "prompt": prompt, "max_tokens": n, "temperature": 0,
		"ignore_eos": true, "return_token_ids": true})
	var comp struct {
		Model   string `json:"model"`
		Choices []struct {
			TokenIDs []int `json:"token_ids"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(body, &comp); st != 200 || err != nil || comp.Model != "a2" || !slices.Equal(comp.Choices[0].TokenIDs, want2) {
		t.Fatalf("completions with model a2: %d %s, want tokens %v", st, body, want2)
	}
	st, body = post(t, ts.url+"/v1/completions", map[string]any{"model": "zzz", "prompt": prompt, "max_tokens": 2})
	if st != 404 || !strings.Contains(string(body), "The model `zzz` does not exist") {
		t.Fatalf("unknown model: %d %s", st, body)
	}

	// Unload: vLLM's wording for a name that is not there; SGLang's shape.
	if st, body = post(t, ts.url+"/v1/unload_lora_adapter", map[string]any{"lora_name": "a2"}); st != 200 || !strings.Contains(string(body), "removed successfully") {
		t.Fatalf("unload a2: %d %s", st, body)
	}
	if st, body = post(t, ts.url+"/v1/unload_lora_adapter", map[string]any{"lora_name": "a2"}); st != 404 || !strings.Contains(string(body), "The lora adapter 'a2' cannot be found.") {
		t.Fatalf("unload a2 twice: %d %s", st, body)
	}
	if st, body = post(t, ts.url+"/unload_lora_adapter", map[string]any{"lora_name": "a1"}); st != 200 || !strings.Contains(string(body), `"success":true`) {
		t.Fatalf("SGLang unload a1: %d %s", st, body)
	}
	if st, body = post(t, ts.url+"/unload_lora_adapter", map[string]any{"lora_name": "a1"}); st != 400 || !strings.Contains(string(body), `"success":false`) {
		t.Fatalf("SGLang unload a1 twice: %d %s", st, body)
	}
	if st, body = post(t, ts.url+"/v1/completions", map[string]any{"model": "a1", "prompt": prompt, "max_tokens": 2}); st != 404 {
		t.Fatalf("completions with an unloaded adapter: %d %s", st, body)
	}
}

// A request keeps the adapter it named while that name is unloaded and
// loaded again with other weights (vLLM's load_inplace): its tokens are
// those of the adapter it started with, and the next request gets the new
// one.
func TestServeLoRAPinned(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), func(o *Options) { o.MaxBatch = 4 })
	dir1, ad1 := writeTestAdapter(t, ts, 4, 1)
	dir2, ad2 := writeTestAdapter(t, ts, 4, 2)
	if st, body := post(t, ts.url+"/load_lora_adapter", map[string]any{"lora_name": "pol", "lora_path": dir1}); st != 200 {
		t.Fatalf("load: %d %s", st, body)
	}
	prompt := []int{3, 1, 4}
	const n = 400
	want1, want2 := greedyWith(t, ts, ad1, prompt, n), greedyWith(t, ts, ad2, prompt, n)
	var got []int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		got = generateIDs(t, ts, map[string]any{"input_ids": prompt, "lora_path": "pol",
			"sampling_params": map[string]any{"max_new_tokens": n, "temperature": 0, "ignore_eos": true}})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for ts.Sampler().Stats().Generated < 5 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if st, body := post(t, ts.url+"/v1/load_lora_adapter", map[string]any{"lora_name": "pol", "lora_path": dir2, "load_inplace": true}); st != 200 {
		t.Fatalf("load_inplace: %d %s", st, body)
	}
	if ts.Sampler().Stats().Generated >= n {
		t.Log("the request finished before the swap; the pinning is not exercised")
	}
	after := generateIDs(t, ts, map[string]any{"input_ids": prompt, "lora_path": "pol",
		"sampling_params": map[string]any{"max_new_tokens": n, "temperature": 0, "ignore_eos": true}})
	wg.Wait()
	if !slices.Equal(got, want1) {
		t.Fatalf("the in-flight request changed adapter: first difference at %d", firstDiff(got, want1))
	}
	if !slices.Equal(after, want2) {
		t.Fatalf("the request after the swap did not get the new adapter: first difference at %d", firstDiff(after, want2))
	}
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func firstDiff(a, b []int) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
