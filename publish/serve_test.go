package publish

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/engine/serve"
	"github.com/asearcher/asearcher/llm"
)

// servedAdapters lists the adapters a serve model server has loaded.
func servedAdapters(t *testing.T, url string) []string {
	t.Helper()
	resp, err := http.Get(url + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var models struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&models); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range models.Data {
		if m.ID != "slow" {
			ids = append(ids, m.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// The bound against our real server (`serve model --max-loaded-loras 2`):
// a long request pinned to policy-v1 would keep v1 loaded, and loading v3
// beside v1 and v2 is refused by the server; with MaxAdapters 2 the
// publisher aborts the request (/abort_request), llm.Resumer continues it
// on policy-v2, v1 is unloaded and v3 loads. The model decodes slowly
// (~1 ms per token) and greedily.
func TestLoRABoundAgainstServeModel(t *testing.T) {
	cfg, err := engine.Preset("tiny", 272)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HiddenSize, cfg.IntermediateSize, cfg.NumHiddenLayers = 256, 768, 4
	cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.HeadDim = 4, 2, 64
	cfg.MaxPositionEmbeddings = 4096
	modelDir := filepath.Join(t.TempDir(), "slow")
	if _, err := engine.InitModelDir(context.Background(), modelDir, engine.InitOptions{Config: cfg, Seed: 3, DType: engine.F32}); err != nil {
		t.Fatal(err)
	}
	// InitModelDir makes <|im_end|> the EOS; this prompt's greedy
	// continuation reaches it within a few tokens, so the only stop token
	// here is 0, which it does not reach, and the server gets no
	// tokenizer (whose ChatML tokens would stop it too).
	cfgPath := filepath.Join(modelDir, "config.json")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	fields["eos_token_id"] = 0
	if raw, err = json.Marshal(fields); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(modelDir, "generation_config.json"))
	w, _, err := engine.OpenModelDir(modelDir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := serve.New(serve.Options{ModelName: "slow", ModelDir: modelDir, Weights: w, MaxLoadedLoRAs: 2,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer func() {
		hs.Close()
		srv.Close()
	}()
	sg, err := llm.NewSGLang(llm.SGLangConfig{BaseURL: hs.URL})
	if err != nil {
		t.Fatal(err)
	}
	p := &LoRA{Servers: []string{hs.URL}, Dialect: SGLang, Dir: t.TempDir(), Fetch: Source{}.Adapter, MaxAdapters: 2}
	defer p.Close()
	rs := &llm.Resumer{Sampler: p.Wrap(sg)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	publish := func(v int) error { return p.Publish(ctx, trainerAdapter(t, cfg, uint64(v)), v, nil) }

	if err := publish(1); err != nil {
		t.Fatal(err)
	}
	long := make(chan result, 1)
	go func() {
		resp, err := rs.Sample(ctx, &llm.Request{ID: "long", InputIDs: []int{5, 17, 200}, Params: llm.Params{MaxNewTokens: 3500}})
		long <- result{resp, err}
	}()
	waitFor(t, "the long request to decode", func() bool {
		select {
		case r := <-long:
			t.Fatalf("the long request ended before any publish: %+v %v", r.resp, r.err)
		default:
		}
		return srv.Sampler().Stats().Generated >= 2
	})
	if err := publish(2); err != nil {
		t.Fatal(err)
	}
	if err := publish(3); err != nil {
		t.Fatalf("publishing a third adapter with v1 pinned, server limit 2: %v", err)
	}
	if got := servedAdapters(t, hs.URL); !slices.Equal(got, []string{"policy-v2", "policy-v3"}) {
		t.Errorf("server holds %v after v3, want policy-v2 (the resumed request) and policy-v3", got)
	}
	// The continuation runs on v2; let it decode, then end it.
	n := srv.Sampler().Stats().Generated
	waitFor(t, "the continuation to decode", func() bool {
		select {
		case r := <-long:
			t.Fatalf("the long request ended instead of continuing: %d tokens, finish %s, versions %v, err %v", len(r.resp.OutputIDs), r.resp.Finish, r.resp.Versions, r.err)
		default:
		}
		return srv.Sampler().Stats().Generated >= n+2
	})
	if err := rs.Abort(ctx, "long"); err != nil {
		t.Fatal(err)
	}
	res := <-long
	if res.err != nil {
		t.Fatal(res.err)
	}
	vs := res.resp.Versions
	if len(vs) < 2 || vs[0] != 1 || vs[len(vs)-1] != 2 || !slices.IsSorted(vs) || len(vs) >= 3500 {
		t.Errorf("the long request's token versions (%d tokens, finish %s): want v1 then v2, cut short; got %v", len(vs), res.resp.Finish, vs)
	}
}
