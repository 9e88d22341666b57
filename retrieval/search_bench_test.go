package retrieval

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// BenchmarkBM25Search measures top-10 queries of 3–5 Zipf-distributed
// words on 100k synthetic passages (run with -cpu 1,2 to see scaling).
func BenchmarkBM25Search(b *testing.B) {
	docs := zipfCorpus(100_000, 50_000, 3)
	dir := filepath.Join(b.TempDir(), "ix")
	if _, err := Build(context.Background(), BuildOptions{Corpus: writeCorpus(b, docs), Out: dir, Analyzer: plainAnalyzer, Progress: ProgressOff, NoSync: true}); err != nil {
		b.Fatal(err)
	}
	ix, err := Open(dir, OpenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer ix.Close()
	rng := rand.New(rand.NewPCG(1, 1))
	z := rand.NewZipf(rng, 1.1, 1, 49_999)
	queries := make([]string, 1000)
	for i := range queries {
		var q []string
		for j := 0; j < 3+rng.IntN(3); j++ {
			q = append(q, fmt.Sprintf("w%d", z.Uint64()))
		}
		queries[i] = strings.Join(q, " ")
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]Hit, 0, 10)
		for pb.Next() {
			q := queries[next.Add(1)%int64(len(queries))]
			if _, err := ix.BM25.Search(context.Background(), q, 10, dst[:0]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
