package serve

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/llm"
)

var loadRuns atomic.Int64

// genLoad runs clients concurrent greedy requests of maxNew tokens through
// sample and returns generated tokens per second.
// Request ids are fresh per call, so no run reuses another's KV prefix.
func genLoad(b testing.TB, clients, maxNew int, sample func(ctx context.Context, req *llm.Request) (*llm.Response, error)) float64 {
	run := loadRuns.Add(1)
	var tokens atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prompt := make([]int, 32)
			for i := range prompt {
				prompt[i] = (c*31 + i*7) % 250
			}
			r, err := sample(context.Background(), &llm.Request{ID: fmt.Sprintf("bench-%d-%d", run, c), InputIDs: prompt, Params: llm.Params{MaxNewTokens: maxNew}})
			if err != nil {
				b.Error(err)
				return
			}
			tokens.Add(int64(len(r.OutputIDs)))
		}()
	}
	wg.Wait()
	return float64(tokens.Load()) / time.Since(start).Seconds()
}

func benchGenerate(b *testing.B, overHTTP bool) {
	ts := newTestServer(b, testModel(b, 1, nil), func(o *Options) { o.MaxBatch = 64 })
	sample := ts.Sampler().Sample
	if overHTTP {
		c, err := llm.NewSGLang(llm.SGLangConfig{BaseURL: ts.url})
		if err != nil {
			b.Fatal(err)
		}
		sample = c.Sample
	}
	ts.Sampler().SetWeights(ts.opts.Weights, 0) // pack weights before timing
	b.ResetTimer()
	var rate float64
	for range b.N {
		rate = genLoad(b, 64, 32, sample)
	}
	b.ReportMetric(rate, "tokens/s")
}

// go test -bench Generate ./engine/serve: 64 concurrent clients, the tiny
// model (where per-request HTTP cost weighs most).
func BenchmarkGenerateInProcess(b *testing.B) { benchGenerate(b, false) }
func BenchmarkGenerateHTTP(b *testing.B)      { benchGenerate(b, true) }

// TestGenerateHTTPOverhead measures /generate against the in-process
// sampler side by side: 64 concurrent clients, greedy, alternating modes,
// median of runs. ASEARCHER_SERVE_BENCH=1 runs it (MODEL=tiny|small picks
// the model [small], RUNS the runs [5]).
//
//	ASEARCHER_SERVE_BENCH=1 go test -run GenerateHTTPOverhead -v ./engine/serve
func TestGenerateHTTPOverhead(t *testing.T) {
	if os.Getenv("ASEARCHER_SERVE_BENCH") == "" {
		t.Skip("set ASEARCHER_SERVE_BENCH=1 to measure")
	}
	preset := os.Getenv("MODEL")
	if preset == "" {
		preset = "small"
	}
	runs := 5
	if n, err := strconv.Atoi(os.Getenv("RUNS")); err == nil && n > 0 {
		runs = n
	}
	dir := testModel(t, 1, func(c *engine.Config) {
		p, err := engine.Preset(preset, c.VocabSize)
		if err != nil {
			t.Fatal(err)
		}
		*c = *p
	})
	ts := newTestServer(t, dir, func(o *Options) { o.MaxBatch = 64 })
	c, err := llm.NewSGLang(llm.SGLangConfig{BaseURL: ts.url})
	if err != nil {
		t.Fatal(err)
	}
	const clients, maxNew = 64, 64
	genLoad(t, clients, 8, c.Sample) // warm up: pack weights, open connections
	var inproc, overHTTP, ratios []float64
	for range runs {
		a := genLoad(t, clients, maxNew, ts.Sampler().Sample)
		h := genLoad(t, clients, maxNew, c.Sample)
		inproc, overHTTP, ratios = append(inproc, a), append(overHTTP, h), append(ratios, h/a)
	}
	med := func(v []float64) float64 {
		s := slices.Clone(v)
		slices.Sort(s)
		return s[len(s)/2]
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("model %s, %d clients × %d tokens, %d runs (load %s)\n", preset, clients, maxNew, runs, string(load[:min(len(load), 14)]))
	fmt.Printf("%-12s %12s\n", "mode", "tokens/s")
	fmt.Printf("%-12s %12.0f\n", "in-process", med(inproc))
	fmt.Printf("%-12s %12.0f\n", "HTTP", med(overHTTP))
	fmt.Printf("HTTP / in-process (median of per-run ratios): %.3f (overhead %.1f%%)\n", med(ratios), 100*(1-med(ratios)))
}
