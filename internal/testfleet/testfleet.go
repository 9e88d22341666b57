// Package testfleet starts a miniature training cluster on loopback for
// tests: one Tinker-compatible trainer server and an SGLang-compatible
// fleet, all engine/serve (`asearcher serve model` in process) on a tiny
// randomly initialised model. The servers share a checkpoint directory, as
// a fleet shares a filesystem, so the fleet loads the trainer's tinker://
// sampler paths from disk. rl's protocol tests and recipe's cluster tests
// both run against it; only tests import it, so rl and recipe's library
// code still link no engine through it.
package testfleet

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/engine/serve"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/trainer"
)

// Fleet is one Tinker trainer server and the SGLang fleet.
type Fleet struct {
	// ModelDir is the tiny model every server starts from; CkptDir the
	// shared checkpoint directory.
	ModelDir, CkptDir string
	TrainerURL        string
	// Servers and URLs are the fleet, in the same order.
	Servers []*serve.Server
	URLs    []string
	// EOS and Vocab are the model's end-of-sequence id and vocabulary size.
	EOS, Vocab int
}

// Start starts the trainer server and n fleet servers that decode at most
// maxBatch sequences together (0: the default), so that a small maxBatch
// keeps requests queued and running when weights change. Everything is
// closed when the test ends.
func Start(t testing.TB, n, maxBatch int) *Fleet {
	t.Helper()
	cfg, err := engine.Preset("tiny", 16)
	if err != nil {
		t.Fatal(err)
	}
	f := &Fleet{ModelDir: filepath.Join(t.TempDir(), "tiny"), CkptDir: t.TempDir()}
	mcfg, err := engine.InitModelDir(context.Background(), f.ModelDir, engine.InitOptions{Config: cfg, Seed: 7, DType: engine.F32})
	if err != nil {
		t.Fatal(err)
	}
	f.Vocab, f.EOS = mcfg.VocabSize, mcfg.EOSTokenID[0]
	start := func(maxBatch int) (*serve.Server, string) {
		w, tok, err := engine.OpenModelDir(f.ModelDir)
		if err != nil {
			t.Fatal(err)
		}
		s, err := serve.New(serve.Options{ModelName: "tiny", ModelDir: f.ModelDir, Weights: w, Tokenizer: tok,
			CheckpointDir: f.CkptDir, MaxBatch: maxBatch, LongPoll: 2 * time.Second, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(s.Handler())
		t.Cleanup(func() {
			hs.Close()
			s.Close()
		})
		return s, hs.URL
	}
	_, f.TrainerURL = start(0)
	for range n {
		s, u := start(maxBatch)
		f.Servers = append(f.Servers, s)
		f.URLs = append(f.URLs, u)
	}
	return f
}

// NewTrainer opens a Tinker client on the trainer server, closed when the
// test ends.
func (f *Fleet) NewTrainer(t testing.TB) *trainer.Tinker {
	t.Helper()
	tr, err := trainer.NewTinker(context.Background(), trainer.TinkerOptions{BaseModel: "tiny",
		TinkerConfig: llm.TinkerConfig{BaseURL: f.TrainerURL, Heartbeat: -1, Logger: quiet()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	return tr
}

// NewPool opens an SGLang client pool over the fleet with fast retries
// and no health probes, closed when the test ends.
func (f *Fleet) NewPool(t testing.TB) *llm.Pool {
	t.Helper()
	var samplers []llm.Sampler
	for _, u := range f.URLs {
		s, err := llm.NewSGLang(llm.SGLangConfig{BaseURL: u})
		if err != nil {
			t.Fatal(err)
		}
		samplers = append(samplers, s)
	}
	pool, err := llm.NewPool(samplers, llm.PoolConfig{Logger: quiet(), MaxAttempts: 4, BaseBackoff: time.Millisecond,
		MaxBackoff: 10 * time.Millisecond, Cooldown: 20 * time.Millisecond, HealthInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	return pool
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
