package llm_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/engine/serve"
	"github.com/asearcher/asearcher/internal/testmodel"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/wire/tinker"
)

// tinkerServer is `asearcher serve model` over a tiny random model.
func tinkerServer(t *testing.T) (string, *engine.Weights) {
	t.Helper()
	dir, w, tok := testmodel.Tiny(t, 1)
	s, err := serve.New(serve.Options{ModelName: "tiny", ModelDir: dir, Weights: w, Tokenizer: tok, LongPoll: 100 * time.Millisecond,
		CheckpointDir: t.TempDir(),
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		hs.Close()
		s.Close()
	})
	return hs.URL, w
}

// The Tinker sampling backend: token ids in and out, logprobs, stop
// tokens, Decode for text; a model path the server does not hold is an
// error that says so.
func TestTinkerSampler(t *testing.T) {
	url, _ := tinkerServer(t)
	cfg := llm.TinkerConfig{BaseURL: url + "/api/v1", Heartbeat: -1}
	sm, err := llm.NewTinkerSampler(llm.TinkerSamplerConfig{TinkerConfig: cfg, BaseModel: "tiny",
		Decode: func(ids []int) string { return strings.Repeat("x", len(ids)) }})
	if err != nil {
		t.Fatal(err)
	}
	defer sm.Close()
	ctx := context.Background()
	seed := int64(3)
	r, err := sm.Sample(ctx, &llm.Request{InputIDs: []int{1, 2, 3}, Params: llm.Params{MaxNewTokens: 6, Temperature: 1, Seed: &seed}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.OutputIDs) == 0 || len(r.Logprobs) != len(r.OutputIDs) || r.Text != strings.Repeat("x", len(r.OutputIDs)) || r.PromptTokens != 3 {
		t.Fatalf("%+v", r)
	}
	// Stopping at the first sampled token.
	first := r.OutputIDs[0]
	r2, err := sm.Sample(ctx, &llm.Request{InputIDs: []int{1, 2, 3}, Params: llm.Params{MaxNewTokens: 6, Temperature: 1, Seed: &seed, StopTokenIDs: []int{first}}})
	if err != nil {
		t.Fatal(err)
	}
	if r2.Finish != llm.FinishStop || len(r2.OutputIDs) != 1 || r2.OutputIDs[0] != first {
		t.Fatalf("stop token %d: %+v", first, r2)
	}
	if _, err := sm.Sample(ctx, &llm.Request{Prompt: "text", Params: llm.Params{MaxNewTokens: 2}}); err == nil || !strings.Contains(err.Error(), "token ids") {
		t.Fatalf("text prompt: %v", err)
	}
	if n := sm.ContextLength(ctx); n != 2048 {
		t.Errorf("context length %d, want the tiny model's 2048", n)
	}
	long := make([]int, 2100)
	for i := range long {
		long[i] = 1 + i%200
	}
	if _, err := sm.Sample(ctx, &llm.Request{InputIDs: long, Params: llm.Params{MaxNewTokens: 2}}); !errors.Is(err, llm.ErrContextLength) {
		t.Errorf("a prompt over the window: %v, want ErrContextLength", err)
	}
	if err := sm.SetModelPath(ctx, "tinker://model-9/sampler_weights/none"); err == nil || !strings.Contains(err.Error(), "no sampler weights") {
		t.Fatalf("unknown model path: %v", err)
	}
}

// Futures: an unknown one is ErrTinkerFutureGone; one that failed is a
// TinkerRequestError with its category.
func TestTinkerClientFutures(t *testing.T) {
	url, _ := tinkerServer(t)
	ctx := context.Background()
	c, err := llm.NewTinkerClient(ctx, llm.TinkerConfig{BaseURL: url, Heartbeat: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Wait(ctx, tinker.Future{RequestID: "nope"}, &struct{}{}); !errors.Is(err, llm.ErrTinkerFutureGone) {
		t.Fatalf("unknown future: %v", err)
	}
	f, err := c.Submit(ctx, "/api/v1/create_model", map[string]any{"session_id": c.SessionID(), "model_seq_id": c.NextModelSeqID(), "base_model": "tiny"})
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		ModelID string `json:"model_id"`
	}
	if err := c.Wait(ctx, f, &m); err != nil || m.ModelID == "" {
		t.Fatalf("create_model: %v %+v", err, m)
	}
	// Saving twice under one name: the second request fails while it runs.
	for i := range 2 {
		f, err := c.Submit(ctx, "/api/v1/save_weights", map[string]any{"model_id": m.ModelID, "path": "x"})
		if err != nil {
			t.Fatal(err)
		}
		err = c.Wait(ctx, f, &struct{}{})
		var re *llm.TinkerRequestError
		if i == 0 && err != nil || i == 1 && (!errors.As(err, &re) || re.Category != "user" || !strings.Contains(re.Message, "exists")) {
			t.Fatalf("save %d: %v", i, err)
		}
	}
	// load_weights of a path that is not a checkpoint fails with a user error.
	if _, err := c.Submit(ctx, "/api/v1/load_weights", map[string]any{"model_id": m.ModelID, "path": "tinker://x/weights/y", "optimizer": false}); err == nil {
		t.Fatal("load_weights of a missing checkpoint succeeded")
	}
}
