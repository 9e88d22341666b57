package retrievalbench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestRunSmall runs the whole comparison on a small synthetic corpus: every
// engine builds, answers every query with k hits, and ranks like asearcher.
func TestRunSmall(t *testing.T) {
	rep, err := Run(context.Background(), Options{
		Synthetic: 1200, QuerySets: []string{"mid", "zipf"}, NumQueries: 60,
		Concurrency: []int{1, 4}, Duration: 100 * time.Millisecond, Runs: 1,
		WorkDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Passages != 1200 || len(rep.Sets) != 2 {
		t.Fatalf("report %+v", rep)
	}
	for _, s := range rep.Sets {
		if len(s.Engines) != 4 {
			t.Fatalf("set %s: %d engines", s.Set, len(s.Engines))
		}
		for _, e := range s.Engines {
			if e.QPS[1] <= 0 || e.QPS[4] <= 0 {
				t.Errorf("%s/%s: no throughput %v", s.Set, e.Engine, e.QPS)
			}
			if e.AvgHits <= 0 || e.AvgHits > 10 {
				t.Errorf("%s/%s: %.2f hits per query", s.Set, e.Engine, e.AvgHits)
			}
			// Same k1, b and tokens: the top 10 should mostly agree (idf
			// formulas differ slightly between engines).
			if e.Overlap < 0.8 {
				t.Errorf("%s/%s: top-10 overlap with asearcher %.2f", s.Set, e.Engine, e.Overlap)
			}
		}
	}
	var out bytes.Buffer
	WriteTable(&out, rep)
	for _, want := range []string{"asearcher / sqlite-fts5", "asearcher / bleve-bm25", "HTTP overhead", "QPS@4"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
