package synth

import (
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/engine/serve"
	"github.com/asearcher/asearcher/internal/testindex"
	"github.com/asearcher/asearcher/internal/testmodel"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tokenizer"
)

func tinyModel(t *testing.T) string {
	t.Helper()
	return testmodel.TinyDir(t, 3)
}

// TestEmbeddedEngine runs the pipeline against the embedded engine (a
// randomly initialised tiny model behind the chat template): in process,
// and served over HTTP as `asearcher serve model` does, through both the
// OpenAI-compatible and the SGLang client. Its replies are noise: the run
// must still complete, with every seed ended as unparseable and each bad
// reply recorded.
func TestEmbeddedEngine(t *testing.T) {
	dir := tinyModel(t)
	s, err := engine.NewSamplerForDir(dir, engine.SamplerOptions{}, tokenizer.ChatOptions{DisableThinking: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w, tok, err := engine.OpenModelDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := serve.New(serve.Options{ModelDir: dir, Weights: w, Tokenizer: tok, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	for name, gen := range map[string]llm.Sampler{
		"in-process": s,
		"openai":     newPool(t, hs.URL+"/v1"),
		"sglang":     newPool(t, "sglang:"+hs.URL),
	} {
		t.Run(name, func(t *testing.T) { runNoise(t, gen) })
	}
}

func runNoise(t *testing.T, gen llm.Sampler) {
	ix := testindex.Open(t)
	src, err := NewCorpusSource(ix, nil, 48)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "qa.jsonl")
	stats, err := runOnce(t, Config{
		Source: src, Generator: gen, GeneratorName: "tiny", Seeds: 2, Concurrency: 2, MaxTurns: 2, SolverAttempts: 2,
		MaxParseRetries: 1, MaxPageChars: 300, Params: &llm.Params{Temperature: 1, MaxNewTokens: 24},
		Progress: ProgressOff, Logger: slog.New(slog.DiscardHandler),
	}, out)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Seeds != 2 || stats.Accepted != 0 || stats.ParseFailures != 4 || stats.Ends["base_unparseable"] != 2 {
		t.Fatalf("stats %+v", stats)
	}
	o, err := OpenOutput(out)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	for _, r := range o.Results() {
		for _, pf := range r.ParseFailures {
			if pf.Step != "base_qa" || pf.Error == "" {
				t.Errorf("parse failure %+v", pf)
			}
		}
	}
}
