package synth

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/internal/testindex"
	"github.com/asearcher/asearcher/llm"
)

func BenchmarkParseReply(b *testing.B) {
	raw := "<think>The question should hide the band.</think>\n" +
		`{"fact": "Enter Sandman is a song by Metallica.", "bridge": "Metallica", "question": "` + q2 + `", "answer": "James Hetfield"}`
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		var r injectReply
		if err := parseReply(raw, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRelated is the derived-links lookup: one BM25 query with the
// page text and a mention check of the hits.
func BenchmarkRelated(b *testing.B) {
	ix := testindex.Open(b)
	src, _ := NewCorpusSource(ix, nil, 48)
	seeds, _ := src.Seeds(context.Background(), 16)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := src.Related(context.Background(), seeds[i%len(seeds)], 10); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkCommit appends one seed (2 records + a journal line, both
// synced) to the output.
func BenchmarkCommit(b *testing.B) {
	o, err := OpenOutput(filepath.Join(b.TempDir(), "qa.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	r := rec("s", 1, 0)
	r.Statements = []string{"James Hetfield co-founded Metallica.", "Enter Sandman is a song by Metallica."}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		id := fmt.Sprint(i)
		if err := o.Commit(SeedResult{SeedID: id, Accepted: 2, records: []Record{r, r}}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// inProcess answers like the stateless fake server without HTTP, so
// BenchmarkSeed measures the pipeline's own cost.
type inProcess struct{}

func (inProcess) Sample(_ context.Context, req *llm.Request) (*llm.Response, error) {
	msgs := make([]fakellm.Message, len(req.Messages))
	for i, m := range req.Messages {
		msgs[i] = fakellm.Message{Role: m.Role, Content: m.Content}
	}
	return &llm.Response{Text: stateless(fakellm.Call{Messages: msgs}).Text, Finish: llm.FinishStop}, nil
}

// BenchmarkSeed runs whole seeds (base QA, a fuzz, exit: 21 model calls
// with 8 solver attempts) against an instant in-process model and against
// the fake server over loopback HTTP.
func BenchmarkSeed(b *testing.B) {
	srv := fakellm.New(fakellm.Options{Handler: stateless})
	defer srv.Close()
	for _, bc := range []struct {
		name string
		gen  func() llm.Sampler
	}{
		{"inprocess", func() llm.Sampler { return inProcess{} }},
		{"http", func() llm.Sampler { return newPool(b, srv.OpenAIURL()) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := statelessConfig(b, srv.OpenAIURL(), 1)
			cfg.Generator, cfg.SolverAttempts, cfg.Logger = bc.gen(), 8, slog.New(slog.DiscardHandler)
			s, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			seeds, _ := cfg.Source.Seeds(context.Background(), 64)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				res, err := s.runSeed(context.Background(), seeds[i%len(seeds)])
				if err != nil || res.Accepted != 2 {
					b.Fatalf("%v %+v", err, res)
				}
				i++
			}
		})
	}
}
