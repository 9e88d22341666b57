package recipe

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

// The cluster tests run against the same miniature fleet as rl's protocol
// tests (rl/protocols_test.go): a Tinker trainer server and SGLang-compatible
// servers, all engine/serve on loopback, sharing a checkpoint directory.

// protoFleet is one Tinker trainer server and the SGLang fleet.
type protoFleet struct {
	modelDir, ckptDir string
	trainerURL        string
	fleet             []*serve.Server
	fleetURLs         []string
	eos               int
	vocab             int
}

// startProtoFleet starts the trainer server and n fleet servers that
// decode at most maxBatch sequences together (0: the default), so that a
// small maxBatch keeps requests queued and running when weights change.
func startProtoFleet(t *testing.T, n, maxBatch int) *protoFleet {
	t.Helper()
	cfg, err := engine.Preset("tiny", 16)
	if err != nil {
		t.Fatal(err)
	}
	f := &protoFleet{modelDir: filepath.Join(t.TempDir(), "tiny"), ckptDir: t.TempDir()}
	mcfg, err := engine.InitModelDir(context.Background(), f.modelDir, engine.InitOptions{Config: cfg, Seed: 7, DType: engine.F32})
	if err != nil {
		t.Fatal(err)
	}
	f.vocab, f.eos = mcfg.VocabSize, mcfg.EOSTokenID[0]
	start := func(maxBatch int) (*serve.Server, string) {
		w, tok, err := engine.OpenModelDir(f.modelDir)
		if err != nil {
			t.Fatal(err)
		}
		s, err := serve.New(serve.Options{ModelName: "tiny", ModelDir: f.modelDir, Weights: w, Tokenizer: tok,
			CheckpointDir: f.ckptDir, MaxBatch: maxBatch, LongPoll: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
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
	_, f.trainerURL = start(0)
	for range n {
		s, u := start(maxBatch)
		f.fleet = append(f.fleet, s)
		f.fleetURLs = append(f.fleetURLs, u)
	}
	return f
}

func (f *protoFleet) newTrainer(t *testing.T) *trainer.Tinker {
	t.Helper()
	tr, err := trainer.NewTinker(context.Background(), trainer.TinkerOptions{BaseModel: "tiny",
		TinkerConfig: llm.TinkerConfig{BaseURL: f.trainerURL, Heartbeat: -1, Logger: testLogger(t)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	return tr
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
