package retrievalbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asearcher/asearcher/corpus"
	"github.com/asearcher/asearcher/retrieval"
)

// Options configure Run.
type Options struct {
	// Corpora are merged into one corpus (any format corpus reads);
	// alternatively Synthetic passages of Zipf text are generated.
	Corpora   []string
	Synthetic int
	// QueryFiles hold QA questions ("question" fields); QuerySets names
	// synthetic sets ("zipf", "mid"). Each set is measured separately.
	QueryFiles []string
	QuerySets  []string
	// NumQueries caps each query set (default 2000).
	NumQueries int
	// Engines to run: asearcher, asearcher-http, sqlite-fts5, bleve-bm25.
	Engines     []string
	Concurrency []int
	// Duration of each QPS measurement (default 5 s); Runs repeats the
	// measurements and reports medians (default 3).
	Duration time.Duration
	Runs     int
	K        int
	K1, B    float64
	// Analyzer of the asearcher engine; default none/none, the same
	// work as FTS5's unicode61 and the bleve analyzer used here.
	Analyzer retrieval.AnalyzerConfig
	// WorkDir keeps the indexes; empty uses a temporary directory that is
	// removed afterwards.
	WorkDir string
	Logger  *slog.Logger
}

// EngineResult is one engine's measurements on one query set.
type EngineResult struct {
	Engine     string          `json:"engine"`
	BuildSec   float64         `json:"build_seconds"`
	IndexBytes int64           `json:"index_bytes"`
	P50ms      float64         `json:"p50_ms"`
	P99ms      float64         `json:"p99_ms"`
	QPS        map[int]float64 `json:"qps"`
	AvgHits    float64         `json:"avg_hits"`
	// Overlap is the mean top-k overlap with the asearcher engine on the
	// first 200 queries (ranking agreement).
	Overlap float64 `json:"overlap_with_asearcher"`
}

// SetResult is the measurements on one query set.
type SetResult struct {
	Set     string         `json:"set"`
	Queries int            `json:"queries"`
	Engines []EngineResult `json:"engines"`
}

// Report is the outcome of Run.
type Report struct {
	Corpus      string      `json:"corpus"`
	Passages    int         `json:"passages"`
	K           int         `json:"k"`
	K1          float64     `json:"k1"`
	B           float64     `json:"b"`
	Runs        int         `json:"runs"`
	Duration    string      `json:"duration_per_measurement"`
	Concurrency []int       `json:"concurrency"`
	Sets        []SetResult `json:"sets"`
}

func (o *Options) defaults() error {
	if len(o.Corpora) == 0 && o.Synthetic <= 0 {
		return errors.New("bench retrieval: give --corpus FILE or --synthetic N")
	}
	if len(o.QueryFiles) == 0 && len(o.QuerySets) == 0 {
		if o.Synthetic > 0 {
			o.QuerySets = []string{"zipf", "mid"}
		} else {
			return errors.New("bench retrieval: give --queries FILE (QA questions) or --query-set zipf|mid")
		}
	}
	if o.NumQueries <= 0 {
		o.NumQueries = 2000
	}
	if len(o.Engines) == 0 {
		o.Engines = []string{"asearcher", "asearcher-http", "sqlite-fts5", "bleve-bm25"}
	}
	if len(o.Concurrency) == 0 {
		o.Concurrency = []int{1, 8, 64}
	}
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	if o.Runs <= 0 {
		o.Runs = 3
	}
	if o.K <= 0 {
		o.K = 10
	}
	if o.K1 == 0 && o.B == 0 {
		o.K1, o.B = 1.2, 0.75 // FTS5's fixed values, so all engines rank alike
	}
	if o.Analyzer == (retrieval.AnalyzerConfig{}) {
		o.Analyzer = retrieval.AnalyzerConfig{Stemmer: "none", Stopwords: "none"}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

// Run builds every engine's index of the same corpus, runs the same
// queries on each and reports build time, size, latency and throughput.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	work := opts.WorkDir
	if work == "" {
		tmp, err := os.MkdirTemp("", "asearcher-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		work = tmp
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	corpusPath := filepath.Join(work, "corpus.jsonl")
	rep := &Report{K: opts.K, K1: opts.K1, B: opts.B, Runs: opts.Runs, Duration: opts.Duration.String(), Concurrency: opts.Concurrency}
	if opts.Synthetic > 0 {
		rep.Corpus = fmt.Sprintf("synthetic Zipf, %d passages", opts.Synthetic)
		opts.Logger.Info("writing synthetic corpus", "passages", opts.Synthetic)
		if err := WriteSyntheticCorpus(corpusPath, opts.Synthetic, 1); err != nil {
			return nil, err
		}
	} else {
		rep.Corpus = strings.Join(opts.Corpora, " + ")
		if err := mergeCorpora(opts.Corpora, corpusPath); err != nil {
			return nil, err
		}
	}
	docs, err := loadTexts(corpusPath)
	if err != nil {
		return nil, err
	}
	rep.Passages = len(docs)

	sets := map[string][]string{}
	var setNames []string
	for _, s := range opts.QuerySets {
		qs, err := SyntheticQueries(s, opts.NumQueries, 7)
		if err != nil {
			return nil, err
		}
		sets[s] = qs
		setNames = append(setNames, s)
	}
	if len(opts.QueryFiles) > 0 {
		var qs []string
		for _, f := range opts.QueryFiles {
			q, err := LoadQuestions(f, 0)
			if err != nil {
				return nil, err
			}
			qs = append(qs, q...)
		}
		if len(qs) > opts.NumQueries {
			qs = qs[:opts.NumQueries]
		}
		name := "questions"
		sets[name] = qs
		setNames = append(setNames, name)
	}

	var engines []engine
	var base *ours
	defer func() {
		for i := len(engines) - 1; i >= 0; i-- {
			engines[i].close()
		}
	}()
	builds := map[string]EngineResult{}
	for _, name := range opts.Engines {
		var e engine
		switch name {
		case "asearcher":
			base = &ours{k1: opts.K1, b: opts.B, an: opts.Analyzer}
			e = base
		case "asearcher-http":
			if base == nil {
				return nil, errors.New("bench retrieval: asearcher-http needs the asearcher engine listed before it")
			}
			e = &oursHTTP{in: base}
		case "sqlite-fts5":
			e = &fts5{}
		case "bleve-bm25":
			e = &bleveEngine{k1: opts.K1, b: opts.B}
		default:
			return nil, fmt.Errorf("bench retrieval: unknown engine %q (want asearcher, asearcher-http, sqlite-fts5, bleve-bm25)", name)
		}
		dir := filepath.Join(work, name)
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		opts.Logger.Info("building", "engine", name, "passages", len(docs))
		start := time.Now()
		indexDir := dir
		if name == "asearcher" {
			indexDir = filepath.Join(dir, "index")
		}
		if err := e.build(ctx, docs, corpusPath, indexDir); err != nil {
			return nil, fmt.Errorf("build %s: %w", name, err)
		}
		r := EngineResult{Engine: name, QPS: map[int]float64{}}
		if name != "asearcher-http" {
			r.BuildSec = time.Since(start).Seconds()
			r.IndexBytes = retrieval.DirSize(dir)
		}
		builds[name] = r
		engines = append(engines, e)
		opts.Logger.Info("built", "engine", name, "seconds", fmt.Sprintf("%.2f", r.BuildSec), "mb", fmt.Sprintf("%.1f", float64(r.IndexBytes)/(1<<20)))
	}

	for _, set := range setNames {
		qs := sets[set]
		sr := SetResult{Set: set, Queries: len(qs)}
		var baseTop [][]int
		if base != nil {
			for _, q := range qs[:min(200, len(qs))] {
				ids, err := base.search(ctx, q, opts.K)
				if err != nil {
					return nil, err
				}
				baseTop = append(baseTop, ids)
			}
		}
		for _, e := range engines {
			r := builds[e.name()]
			r.QPS = map[int]float64{}
			// Warm up: page in the index and the query paths.
			hits := 0
			for i, q := range qs[:min(30, len(qs))] {
				ids, err := e.search(ctx, q, opts.K)
				if err != nil {
					return nil, fmt.Errorf("%s: query %d: %w", e.name(), i, err)
				}
				hits += len(ids)
			}
			if baseTop != nil && e != engine(base) {
				over := 0.0
				for i, want := range baseTop {
					ids, err := e.search(ctx, qs[i], opts.K)
					if err != nil {
						return nil, err
					}
					over += overlap(want, ids, opts.K)
				}
				r.Overlap = over / float64(len(baseTop))
			} else if baseTop != nil {
				r.Overlap = 1
			}
			var p50s, p99s, avgHits []float64
			qps := map[int][]float64{}
			for run := 0; run < opts.Runs; run++ {
				for _, c := range opts.Concurrency {
					m, err := measure(ctx, e, qs, c, opts.Duration, opts.K)
					if err != nil {
						return nil, err
					}
					qps[c] = append(qps[c], m.qps)
					if c == opts.Concurrency[0] {
						p50s = append(p50s, m.p50)
						p99s = append(p99s, m.p99)
						avgHits = append(avgHits, m.avgHits)
					}
					opts.Logger.Info("measured", "set", set, "engine", e.name(), "run", run+1, "concurrency", c, "qps", fmt.Sprintf("%.1f", m.qps))
				}
			}
			r.P50ms, r.P99ms, r.AvgHits = median(p50s), median(p99s), median(avgHits)
			for c, v := range qps {
				r.QPS[c] = median(v)
			}
			sr.Engines = append(sr.Engines, r)
		}
		rep.Sets = append(rep.Sets, sr)
	}
	return rep, nil
}

func overlap(a, b []int, k int) float64 {
	if len(a) == 0 && len(b) == 0 {
		return 1
	}
	n := 0
	for _, x := range b {
		if slices.Contains(a, x) {
			n++
		}
	}
	return float64(n) / float64(max(len(a), len(b), 1))
}

type measurement struct {
	qps, p50, p99, avgHits float64
}

// counter is implemented by engines whose in-process path can skip
// building a result slice.
type counter interface {
	searchCount(ctx context.Context, q string, k int) (int, error)
}

// measure runs c workers over the queries (round robin) for d and returns
// throughput and latency percentiles in milliseconds.
func measure(ctx context.Context, e engine, qs []string, c int, d time.Duration, k int) (measurement, error) {
	var next atomic.Int64
	var mu sync.Mutex
	var lats []float64
	var hits, done int64
	var firstErr error
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	cnt, isCounter := e.(counter)
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]float64, 0, 1024)
			var h, n int64
			// Every query runs at least once, however short d is: on a loaded
			// machine a 100 ms window can fit a single query, and the hit
			// average of one query says nothing about the engine.
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(qs) && !time.Now().Before(deadline) {
					break
				}
				q := qs[i%len(qs)]
				t0 := time.Now()
				var got int
				var err error
				if isCounter {
					got, err = cnt.searchCount(ctx, q, k)
				} else {
					var ids []int
					ids, err = e.search(ctx, q, k)
					got = len(ids)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("%s: %w", e.name(), err)
					}
					mu.Unlock()
					return
				}
				local = append(local, float64(time.Since(t0))/1e6)
				h += int64(got)
				n++
			}
			mu.Lock()
			lats = append(lats, local...)
			hits += h
			done += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return measurement{}, firstErr
	}
	elapsed := time.Since(start).Seconds()
	sort.Float64s(lats)
	m := measurement{qps: float64(done) / elapsed}
	if len(lats) > 0 {
		m.p50 = lats[len(lats)/2]
		m.p99 = lats[min(len(lats)-1, len(lats)*99/100)]
		m.avgHits = float64(hits) / float64(done)
	}
	return m, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// mergeCorpora writes the passages of several corpus files as one JSONL
// corpus of {"id","title","text"} rows, ids 0, 1, ...
func mergeCorpora(paths []string, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	enc.SetEscapeHTML(false)
	id := 0
	for _, path := range paths {
		r, err := corpus.OpenReader(path, corpus.ReaderOptions{})
		if err != nil {
			return err
		}
		for {
			p, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				r.Close()
				return err
			}
			if err := enc.Encode(map[string]string{"id": fmt.Sprint(id), "title": p.Title, "text": p.Text()}); err != nil {
				r.Close()
				return err
			}
			id++
		}
		r.Close()
	}
	return nil
}

// loadTexts reads the merged corpus back as the text every engine indexes:
// the title line and the passage, as asearcher indexes "contents".
func loadTexts(path string) ([]benchDoc, error) {
	r, err := corpus.OpenReader(path, corpus.ReaderOptions{})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var docs []benchDoc
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, benchDoc{text: p.Contents})
	}
}

// WriteTable prints the report as aligned tables with ratios.
func WriteTable(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "corpus: %s (%d passages); top-%d; BM25 k1=%g b=%g; %d runs × %s per point, medians\n",
		rep.Corpus, rep.Passages, rep.K, rep.K1, rep.B, rep.Runs, rep.Duration)
	for _, s := range rep.Sets {
		fmt.Fprintf(w, "\nquery set %q (%d queries)\n", s.Set, s.Queries)
		fmt.Fprintf(w, "%-15s %9s %10s %9s %9s", "engine", "build s", "index MB", "p50 ms", "p99 ms")
		for _, c := range rep.Concurrency {
			fmt.Fprintf(w, " %10s", fmt.Sprintf("QPS@%d", c))
		}
		fmt.Fprintf(w, " %8s %8s\n", "hits", "overlap")
		var ours, http EngineResult
		for _, e := range s.Engines {
			build, size := "-", "-"
			if e.Engine != "asearcher-http" {
				build, size = fmt.Sprintf("%.2f", e.BuildSec), fmt.Sprintf("%.1f", float64(e.IndexBytes)/(1<<20))
			}
			fmt.Fprintf(w, "%-15s %9s %10s %9.3f %9.3f", e.Engine, build, size, e.P50ms, e.P99ms)
			for _, c := range rep.Concurrency {
				fmt.Fprintf(w, " %10.1f", e.QPS[c])
			}
			fmt.Fprintf(w, " %8.2f %8.3f\n", e.AvgHits, e.Overlap)
			switch e.Engine {
			case "asearcher":
				ours = e
			case "asearcher-http":
				http = e
			}
		}
		if ours.Engine == "" {
			continue
		}
		for _, e := range s.Engines {
			if e.Engine == "asearcher" || e.Engine == "asearcher-http" {
				continue
			}
			fmt.Fprintf(w, "asearcher / %-12s QPS", e.Engine)
			for _, c := range rep.Concurrency {
				fmt.Fprintf(w, "  @%d ×%.1f", c, ratio(ours.QPS[c], e.QPS[c]))
			}
			fmt.Fprintln(w)
		}
		if http.Engine != "" {
			// Time per query over HTTP relative to in process: with the same
			// concurrency, per-query time is the inverse of throughput.
			fmt.Fprintf(w, "HTTP overhead (in-process QPS / http QPS − 1)")
			for _, c := range rep.Concurrency {
				fmt.Fprintf(w, "  @%d %.0f%%", c, 100*(ratio(ours.QPS[c], http.QPS[c])-1))
			}
			fmt.Fprintln(w)
		}
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
