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
	"sync"
	"sync/atomic"
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
	// Verify says when the checksum pass runs: VerifySync (the default)
	// before Open returns, VerifyBackground after it, while the index is
	// in use (Integrity reports the outcome), VerifyOff never. File sizes
	// and the BM25 layout are checked at open in every mode.
	Verify VerifyMode
	// Logger receives warnings (an index without checksums) and the
	// outcome of a background pass.
	Logger *slog.Logger
}

// VerifyMode is when Open checks an index's checksums.
type VerifyMode string

// Verify modes; the zero value is VerifySync.
const (
	VerifySync       VerifyMode = "sync"
	VerifyBackground VerifyMode = "background"
	VerifyOff        VerifyMode = "off"
)

// ParseVerifyMode reads a --verify flag value.
func ParseVerifyMode(s string) (VerifyMode, error) {
	switch m := VerifyMode(s); m {
	case "", VerifySync:
		return VerifySync, nil
	case VerifyBackground, VerifyOff:
		return m, nil
	}
	return "", fmt.Errorf("--verify %q: want sync, background or off", s)
}

// integrity is the state of an index's checksum pass.
type integrity struct {
	state   atomic.Pointer[IntegrityState]
	stop    chan struct{}
	stopped sync.WaitGroup
}

// IntegrityState reports an index's checksum pass.
type IntegrityState struct {
	// Status is "verified", "verifying" (a background pass is running),
	// "unverified" (VerifyOff, or an index without checksums) or
	// "damaged".
	Status string
	// Err says which file is damaged (Status "damaged").
	Err error
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
	check    integrity
}

// Integrity reports the checksum pass. Servers answer 503 once it says
// "damaged": the pass found a file that differs from the build.
func (ix *Index) Integrity() IntegrityState {
	if s := ix.check.state.Load(); s != nil {
		return *s
	}
	return IntegrityState{Status: "unverified"}
}

func (ix *Index) setIntegrity(status string, err error) {
	ix.check.state.Store(&IntegrityState{Status: status, Err: err})
}

// Open maps an index directory built by Build. It checks every file's size
// against the manifest and streams every file it will use through its
// checksum (before returning, or in the background, per opts.Verify); a
// damaged index is refused with the file named. Queries then page the
// mapped files in as they touch them.
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
	logger := orDiscard(opts.Logger)
	mode, err := ParseVerifyMode(string(opts.Verify))
	if err != nil {
		return nil, err
	}
	var include func(string) bool
	if ix.Manifest.Files == nil {
		logger.Warn("index has no checksums (built by an older version): a damaged copy is caught only by size and layout checks; rebuild it to add them", "dir", dir)
	} else {
		useDense := ix.Manifest.Dense != nil && !opts.NoDense
		include = func(name string) bool {
			switch top, _, _ := strings.Cut(name, "/"); top {
			case denseDir:
				return useDense
			case pagesDir:
				return ix.Manifest.Pages
			}
			return true
		}
		if err := verifyFiles(dir, ix.Manifest.Files, include, mode == VerifySync, nil); err != nil {
			return nil, err
		}
		if mode == VerifySync {
			ix.setIntegrity("verified", nil)
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
	if mode == VerifyBackground && include != nil {
		ix.setIntegrity("verifying", nil)
		ix.check.stop = make(chan struct{})
		ix.check.stopped.Add(1)
		go func() {
			defer ix.check.stopped.Done()
			start := time.Now()
			err := verifyFiles(dir, ix.Manifest.Files, include, true, ix.check.stop)
			switch {
			case errors.Is(err, errVerifyStopped):
			case err != nil:
				ix.setIntegrity("damaged", err)
				logger.Error("index damaged: refusing queries", "dir", dir, "err", err)
			default:
				ix.setIntegrity("verified", nil)
				logger.Info("index checksums verified", "dir", dir, "took", time.Since(start).Round(time.Millisecond))
			}
		}()
	}
	return ix, nil
}

// Close stops a background checksum pass and releases the mapped files.
func (ix *Index) Close() error {
	if ix.check.stop != nil {
		close(ix.check.stop)
		ix.check.stopped.Wait()
		ix.check.stop = nil
	}
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
