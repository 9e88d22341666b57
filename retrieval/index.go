package retrieval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/asearcher/asearcher/corpus"
)

// An index directory:
//
//	index.json  Manifest
//	store/      the passages (corpus.Store)
//	bm25/       the BM25 index
//	dense/      optional dense vectors (+ IVF)
//	pages/      optional whole pages for /access (corpus.Store)
const (
	manifestFile    = "index.json"
	manifestVersion = 1
	storeDir        = "store"
	bm25Dir         = "bm25"
	denseDir        = "dense"
	pagesDir        = "pages"
)

// Manifest describes an index directory.
type Manifest struct {
	Version  int        `json:"version"`
	Created  time.Time  `json:"created"`
	Corpus   string     `json:"corpus"`
	Passages int64      `json:"passages"`
	Skipped  int64      `json:"skipped,omitempty"`
	Pages    bool       `json:"pages,omitempty"`
	Dense    *DenseMeta `json:"dense,omitempty"`
	// Files lists every file of the index (slash paths relative to it)
	// with its size and CRC-32C, for Open to verify. Indexes built before
	// checksums have none and open with a warning.
	Files map[string]FileSum `json:"files,omitempty"`
}

// OpenOptions tune Open.
type OpenOptions struct {
	BM25  BM25Options
	Dense DenseOptions
	// NoDense skips the dense index even when the directory has one.
	NoDense bool
	// NoVerify skips the checksum pass (file sizes are still checked):
	// for a huge index on slow disks whose integrity is known.
	NoVerify bool
	// Logger receives warnings (an index without checksums).
	Logger *slog.Logger
}

// Index is an opened index directory: the passage store, BM25, and the
// dense index and page store when present. It is safe for concurrent use.
type Index struct {
	Dir      string
	Manifest Manifest
	Store    *corpus.Store
	BM25     *BM25
	Dense    *Dense        // nil without a dense index
	Pages    *corpus.Store // nil without a page store
}

// Open maps an index directory built by Build. It checks every file's size
// against the manifest and, unless opts.NoVerify, streams every file it will
// use through its checksum; a damaged index is refused with the file named.
// Queries then page the mapped files in as they touch them.
func Open(dir string, opts OpenOptions) (_ *Index, err error) {
	ix := &Index{Dir: dir}
	defer func() {
		if err != nil {
			ix.Close()
		}
	}()
	data, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("open index: %s is not an index (no %s); build one with `asearcher index build`", dir, manifestFile)
		}
		return nil, fmt.Errorf("open index: %w", err)
	}
	if err := json.Unmarshal(data, &ix.Manifest); err != nil {
		return nil, fmt.Errorf("open index: %s: %w", manifestFile, err)
	}
	if ix.Manifest.Version != manifestVersion {
		return nil, fmt.Errorf("open index: version %d, want %d; rebuild the index", ix.Manifest.Version, manifestVersion)
	}
	if ix.Manifest.Files == nil {
		orDiscard(opts.Logger).Warn("index has no checksums (built by an older version): a damaged copy is caught only by size and layout checks; rebuild it to add them", "dir", dir)
	} else {
		useDense := ix.Manifest.Dense != nil && !opts.NoDense
		include := func(name string) bool {
			switch top, _, _ := strings.Cut(name, "/"); top {
			case denseDir:
				return useDense
			case pagesDir:
				return ix.Manifest.Pages
			}
			return true
		}
		if err := verifyFiles(dir, ix.Manifest.Files, include, !opts.NoVerify); err != nil {
			return nil, err
		}
	}
	if ix.Store, err = corpus.OpenStore(filepath.Join(dir, storeDir)); err != nil {
		return nil, err
	}
	if ix.BM25, err = OpenBM25(filepath.Join(dir, bm25Dir), opts.BM25); err != nil {
		return nil, err
	}
	if ix.BM25.Docs() != ix.Store.Len() {
		return nil, fmt.Errorf("open index: bm25 has %d passages, store %d; rebuild the index", ix.BM25.Docs(), ix.Store.Len())
	}
	if ix.Manifest.Dense != nil && !opts.NoDense {
		if ix.Dense, err = OpenDense(filepath.Join(dir, denseDir), opts.Dense); err != nil {
			return nil, err
		}
		if int(ix.Dense.meta.Count) != ix.Store.Len() {
			return nil, fmt.Errorf("open index: dense has %d passages, store %d; rebuild it with `asearcher index dense`", ix.Dense.meta.Count, ix.Store.Len())
		}
	}
	if ix.Manifest.Pages {
		if ix.Pages, err = corpus.OpenStore(filepath.Join(dir, pagesDir)); err != nil {
			return nil, err
		}
	}
	return ix, nil
}

// Close releases the mapped files.
func (ix *Index) Close() error {
	var errs []error
	if ix.Store != nil {
		errs = append(errs, ix.Store.Close())
	}
	if ix.BM25 != nil {
		errs = append(errs, ix.BM25.Close())
	}
	if ix.Dense != nil {
		errs = append(errs, ix.Dense.Close())
	}
	if ix.Pages != nil {
		errs = append(errs, ix.Pages.Close())
	}
	return errors.Join(errs...)
}

// Retriever returns the search method by name: "bm25", "dense" or
// "hybrid" (reciprocal rank fusion of both).
func (ix *Index) Retriever(method string) (Retriever, error) {
	switch method {
	case "bm25", "":
		return ix.BM25, nil
	case "dense", "hybrid":
		if ix.Dense == nil {
			return nil, fmt.Errorf("%s retrieval needs a dense index; add one with `asearcher index dense --index %s --dense-endpoint URL --dense-model NAME`", method, ix.Dir)
		}
		if method == "dense" {
			return ix.Dense, nil
		}
		return &Hybrid{Sparse: ix.BM25, Dense: ix.Dense}, nil
	}
	return nil, fmt.Errorf("unknown retrieval method %q (want bm25, dense or hybrid)", method)
}

// AddDense embeds the passages of the index in dir and records the dense
// index in its manifest. An interrupted run resumes where it stopped.
func AddDense(ctx context.Context, dir string, opts DenseBuildOptions, mode ProgressMode, logger *slog.Logger) (*DenseMeta, error) {
	data, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if err != nil {
		return nil, fmt.Errorf("add dense index: %s is not an index: %w", dir, err)
	}
	var man Manifest
	if err := json.Unmarshal(data, &man); err != nil {
		return nil, fmt.Errorf("add dense index: %w", err)
	}
	st, err := corpus.OpenStore(filepath.Join(dir, storeDir))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	meta, err := BuildDense(ctx, st, filepath.Join(dir, denseDir), opts, mode, logger)
	if err != nil {
		return nil, err
	}
	man.Dense = meta
	if man.Files != nil {
		sums, err := sumDir(dir, denseDir)
		if err != nil {
			return nil, err
		}
		for name := range man.Files {
			if strings.HasPrefix(name, denseDir+"/") {
				delete(man.Files, name)
			}
		}
		for name, s := range sums {
			man.Files[name] = s
		}
	}
	if err := corpus.WriteJSONFile(filepath.Join(dir, manifestFile), man); err != nil {
		return nil, err
	}
	return meta, nil
}
