package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/internal/testindex"
	"github.com/asearcher/asearcher/reward"
)

// BenchmarkEval runs 1,000 questions (the shipped NQ sample) × k = 4 with
// a zero-latency scripted model (search once, then answer) and our
// retrieval server over the HotpotQA-HippoRAG corpus, everything on
// loopback in this process, trajectories and reports included. It reports
// (question, sample) pairs per second, the peak Go heap sampled during the
// run and the process's peak RSS (servers included).
//
//	go test ./eval -run '^$' -bench BenchmarkEval -benchtime 1x
func BenchmarkEval(b *testing.B) {
	search := testindex.Serve(b)
	model := zeroLatencyModel(b)
	for _, conc := range []int{32, 256} {
		b.Run(fmt.Sprintf("nq1000xk4/concurrency=%d", conc), func(b *testing.B) {
			for range b.N {
				cfg := DefaultConfig()
				cfg.Data = []string{"nq"}
				cfg.Out = filepath.Join(b.TempDir(), "run")
				cfg.K = 4
				cfg.Model = model
				cfg.Search = search
				cfg.Agent = agent.AgentSearchR1
				cfg.Concurrency = conc
				cfg.MaxAttempts = 1
				runtime.GC()
				var peak atomic.Uint64
				stop := make(chan struct{})
				go func() {
					var ms runtime.MemStats
					t := time.NewTicker(20 * time.Millisecond)
					defer t.Stop()
					for {
						select {
						case <-stop:
							return
						case <-t.C:
							runtime.ReadMemStats(&ms)
							if ms.HeapInuse > peak.Load() {
								peak.Store(ms.HeapInuse)
							}
						}
					}
				}()
				start := time.Now()
				rep, err := Run(context.Background(), cfg, Options{Progress: ProgressOff, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
				el := time.Since(start)
				close(stop)
				if err != nil {
					b.Fatal(err)
				}
				if rep.Overall.Samples != 4000 {
					b.Fatalf("%d samples", rep.Overall.Samples)
				}
				b.ReportMetric(4000/el.Seconds(), "samples/s")
				b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
				// Reopening the finished run: read 4,000 results, rewrite the
				// trajectory file, rebuild the reports.
				start = time.Now()
				if _, err := Run(context.Background(), cfg, Options{Progress: ProgressOff, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(time.Since(start).Milliseconds()), "reopen-ms")
				var ru syscall.Rusage
				if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
					b.ReportMetric(float64(ru.Maxrss)/1024, "maxrss-MiB")
				}
			}
		})
	}
}

// zeroLatencyModel is a minimal OpenAI-compatible completions server that
// answers at once and keeps nothing, so the benchmark measures eval (the
// fakellm server records every call, which would dominate the heap).
func zeroLatencyModel(b *testing.B) string {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"object":"list","data":[{"id":"bench","object":"model"}]}`)
	})
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Prompt string `json:"prompt"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		text := "<think>search</think>\n<search> who wrote it </search>"
		if strings.Count(req.Prompt, "<information>") >= 2 {
			text = "<think>done</think>\n<answer> unknown </answer>"
		}
		out, _ := json.Marshal(map[string]any{
			"id": "c", "object": "text_completion", "model": "bench",
			"choices": []map[string]any{{"index": 0, "text": text, "finish_reason": "stop"}},
			"usage":   map[string]int{"prompt_tokens": len(req.Prompt) / 4, "completion_tokens": len(text) / 4},
		})
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	})
	ts := httptest.NewServer(mux)
	b.Cleanup(ts.Close)
	return ts.URL + "/v1"
}

// BenchmarkBuildReport: summarising 4,000 records (1,000 questions × 4)
// with 1,000 bootstrap resamples per metric.
func BenchmarkBuildReport(b *testing.B) {
	recs := make([]Record, 0, 4000)
	for q := range 1000 {
		for s := range 4 {
			pred := "a"
			if (q+s)%3 == 0 {
				pred = "b"
			}
			recs = append(recs, Record{Dataset: "d", ID: fmt.Sprint(q), Sample: s, Prediction: pred, Scores: reward.Score(pred, []string{"a"})})
		}
	}
	b.ResetTimer()
	for range b.N {
		BuildReport(recs, 4, 1000)
	}
}

// BenchmarkResultsWrite: appending one result line (the per-sample write
// every agent does).
func BenchmarkResultsWrite(b *testing.B) {
	w, _, _, err := openResults(filepath.Join(b.TempDir(), ResultsFile), false)
	if err != nil {
		b.Fatal(err)
	}
	defer w.close()
	rec := &Record{Dataset: "nq", ID: "123", Question: strings.Repeat("q", 100), Golds: []string{"gold answer"}, Prediction: "prediction", Meta: map[string]any{"x": 1}}
	b.ResetTimer()
	for range b.N {
		if err := w.write(rec); err != nil {
			b.Fatal(err)
		}
	}
}
