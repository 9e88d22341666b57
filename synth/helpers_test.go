package synth

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/asearcher/asearcher/retrieval"
)

const hotpotCorpus = "../dataset/data/hotpotqa-hipporag-100/corpus.json"

var (
	indexOnce sync.Once
	indexDir  string
	indexErr  error
)

// hotpotIndex builds one BM25 index of the shipped HotpotQA corpus per test
// binary and opens it for the calling test.
func hotpotIndex(t testing.TB) *retrieval.Index {
	t.Helper()
	indexOnce.Do(func() {
		dir, err := os.MkdirTemp("", "synth-index-")
		if err != nil {
			indexErr = err
			return
		}
		indexDir = filepath.Join(dir, "index")
		_, indexErr = retrieval.Build(context.Background(), retrieval.BuildOptions{
			Corpus: hotpotCorpus, Out: indexDir, Progress: retrieval.ProgressOff, NoSync: true,
		})
	})
	if indexErr != nil {
		t.Fatal(indexErr)
	}
	ix, err := retrieval.Open(indexDir, retrieval.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix
}

func TestMain(m *testing.M) {
	code := m.Run()
	if indexDir != "" {
		os.RemoveAll(filepath.Dir(indexDir))
	}
	os.Exit(code)
}
