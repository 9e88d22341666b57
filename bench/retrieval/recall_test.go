package retrievalbench

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/asearcher/asearcher/retrieval"
)

// TestHotpotRecallBM25 is the must-show recall measurement: BM25 over the
// 994 HotpotQA paragraphs, Recall@2/5/10 of the 100 questions' supporting
// paragraphs. The floors sit a little under the measured values
// (docs/benchmarks.md), so a ranking regression fails the test.
func TestHotpotRecallBM25(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hotpot")
	if _, err := retrieval.Build(context.Background(), retrieval.BuildOptions{
		Corpus: "../../dataset/data/hotpotqa-hipporag-100/corpus.json", Out: dir,
		Progress: retrieval.ProgressOff, NoSync: true,
	}); err != nil {
		t.Fatal(err)
	}
	ix, err := retrieval.Open(dir, retrieval.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	qs, err := LoadHotpotSupport("../../dataset/data/hotpotqa-hipporag-100/questions.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 100 {
		t.Fatalf("%d questions", len(qs))
	}
	rec, err := Recall(context.Background(), ix.BM25, ix.Store, qs, []int{2, 5, 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("BM25 Recall@2 %.3f  @5 %.3f  @10 %.3f", rec[2], rec[5], rec[10])
	for k, floor := range map[int]float64{2: 0.5, 5: 0.65, 10: 0.75} {
		if rec[k] < floor {
			t.Errorf("Recall@%d = %.3f, below %.2f", k, rec[k], floor)
		}
	}
	if !(rec[2] <= rec[5] && rec[5] <= rec[10]) {
		t.Errorf("recall not monotone in k: %v", rec)
	}
}
