// Package testindex gives tests one BM25 index of the shipped
// HotpotQA-HippoRAG corpus and a retrieval server over it, so that test
// files do not each rebuild the same index.
//
// The index is built once per test process into a directory made with
// os.MkdirTemp. A helper cannot remove it when the process exits (that needs
// a TestMain in every importing package), so it is left in the OS temp
// directory: about 2 MB per test binary run. Callers must treat it as read
// only; a test that damages or rebuilds an index must build its own.
//
// retrieval/server's own internal tests cannot use this package (it imports
// retrieval/server: an import cycle); they serve their own small corpus.
package testindex

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/asearcher/asearcher/retrieval"
	"github.com/asearcher/asearcher/retrieval/server"
)

// Corpus is the shipped corpus's path relative to the repository root.
const Corpus = "dataset/data/hotpotqa-hipporag-100/corpus.json"

var (
	buildOnce sync.Once
	indexDir  string
	buildErr  error
)

// CorpusPath is the absolute path of the shipped corpus, found from this
// source file's location so it works from any package's test directory.
func CorpusPath(tb testing.TB) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("testindex: cannot locate its own source file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", filepath.FromSlash(Corpus))
}

// Dir returns the directory of the shipped corpus's index, building it on
// the first call in this process. A build error fails every caller.
func Dir(tb testing.TB) string {
	tb.Helper()
	corpus := CorpusPath(tb)
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "asearcher-testindex-")
		if err != nil {
			buildErr = err
			return
		}
		indexDir = filepath.Join(dir, "index")
		_, buildErr = retrieval.Build(context.Background(), retrieval.BuildOptions{
			Corpus: corpus, Out: indexDir, Progress: retrieval.ProgressOff, NoSync: true,
		})
	})
	if buildErr != nil {
		tb.Fatalf("testindex: building the shipped corpus's index: %v", buildErr)
	}
	return indexDir
}

// Open opens the shared index for the calling test and closes it when the
// test ends.
func Open(tb testing.TB) *retrieval.Index {
	tb.Helper()
	ix, err := retrieval.Open(Dir(tb), retrieval.OpenOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ix.Close() })
	return ix
}

// Serve starts a /retrieve and /access server over the shared index on
// loopback and returns its base URL; the server stops when the test ends.
func Serve(tb testing.TB) string {
	tb.Helper()
	return ServeIndex(tb, Open(tb))
}

// ServeIndex serves an index the caller already holds (for tests that also
// query it in process) and stops the server when the test ends.
func ServeIndex(tb testing.TB, ix *retrieval.Index) string {
	tb.Helper()
	srv, err := server.New(ix, server.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	tb.Cleanup(ts.Close)
	return ts.URL
}
