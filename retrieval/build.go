package retrieval

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/asearcher/asearcher/corpus"
	"golang.org/x/sync/errgroup"
)

// BuildOptions configure Build. The zero value of every field but Corpus and
// Out is a working default.
type BuildOptions struct {
	// Corpus is the passage file: JSONL or JSONL.zst ({"id","contents"} or
	// {"id","title","text"}), or a JSON array / title→sentences object.
	Corpus string
	// Out is the index directory. An existing index there is replaced only
	// when the new one is complete.
	Out    string
	Format corpus.Format
	// SkipBad skips malformed rows instead of failing on the first one.
	SkipBad bool
	// URLTemplate gives rows without a url one ({title} is replaced);
	// "" means corpus.DefaultURLTemplate and "none" leaves them without.
	URLTemplate string
	// Analyzer is the text analysis; zero means DefaultAnalyzer().
	Analyzer AnalyzerConfig
	// K1 and B are the BM25 parameters; both zero means Pyserini's 0.9, 0.4.
	K1, B float64
	// MemoryMB bounds the in-memory postings before they spill to disk
	// (default 512). Peak use is roughly this plus 8 bytes per passage.
	MemoryMB int
	// Workers parse and tokenise in parallel (default GOMAXPROCS).
	Workers int
	// Pages is an optional corpus of whole pages (e.g. ASearcher's
	// wiki_webpages.jsonl) that /access serves by url before passages.
	Pages string
	// Dense, when set, also embeds every passage for dense retrieval.
	Dense    *DenseBuildOptions
	Progress ProgressMode
	Logger   *slog.Logger
	// NoSync skips the final flush to disk: for throwaway indexes (tests),
	// where a torn index after a power cut does not matter.
	NoSync bool

	// spillBytes overrides MemoryMB in tests, to force many runs.
	spillBytes int64
}

// BuildStats summarise a build.
type BuildStats struct {
	Passages   int64         `json:"passages"`
	Skipped    int64         `json:"skipped"`
	Terms      int64         `json:"terms"`
	Postings   int64         `json:"postings"`
	Runs       int           `json:"runs"`
	IndexBytes int64         `json:"index_bytes"`
	Duration   time.Duration `json:"duration_ns"`
	Pages      int64         `json:"pages,omitempty"`
}

func (o *BuildOptions) withDefaults() error {
	if o.Corpus == "" || o.Out == "" {
		return errors.New("build index: need a corpus file and an output directory")
	}
	if o.Analyzer == (AnalyzerConfig{}) {
		o.Analyzer = DefaultAnalyzer()
	}
	if o.K1 == 0 && o.B == 0 {
		o.K1, o.B = 0.9, 0.4
	}
	if o.K1 < 0 || o.B < 0 || o.B > 1 {
		return fmt.Errorf("build index: k1=%g b=%g: want k1 ≥ 0 and 0 ≤ b ≤ 1", o.K1, o.B)
	}
	if o.MemoryMB <= 0 {
		o.MemoryMB = 512
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	switch o.URLTemplate {
	case "":
		o.URLTemplate = corpus.DefaultURLTemplate
	case "none":
		o.URLTemplate = ""
	}
	o.Logger = orDiscard(o.Logger)
	return nil
}

// Build indexes a corpus into opts.Out: a passage store, a BM25 index and,
// with opts.Dense, a dense index. The build goes to a temporary directory
// beside Out that replaces Out only when complete.
func Build(ctx context.Context, opts BuildOptions) (*BuildStats, error) {
	if err := opts.withDefaults(); err != nil {
		return nil, err
	}
	if _, err := newAnalyzer(opts.Analyzer); err != nil {
		return nil, fmt.Errorf("build index: %w", err)
	}
	start := time.Now()
	out := filepath.Clean(opts.Out)
	if err := checkReplaceable(out); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, fmt.Errorf("build index: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), filepath.Base(out)+".building-")
	if err != nil {
		return nil, fmt.Errorf("build index: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	stats, err := buildPassages(ctx, &opts, filepath.Join(tmp, storeDir), filepath.Join(tmp, bm25Dir))
	if err != nil {
		return nil, err
	}
	if opts.Pages != "" {
		n, err := buildPagesStore(ctx, &opts, filepath.Join(tmp, pagesDir))
		if err != nil {
			return nil, err
		}
		stats.Pages = n
	}
	// The files are fresh in the page cache: checksumming them now costs
	// about one memory-speed read.
	sums, err := sumDir(tmp, "")
	if err != nil {
		return nil, err
	}
	man := Manifest{
		Version:  manifestVersion,
		Created:  time.Now().UTC(),
		Corpus:   opts.Corpus,
		Passages: stats.Passages,
		Skipped:  stats.Skipped,
		Pages:    opts.Pages != "",
		Files:    sums,
	}
	if err := corpus.WriteJSONFileUnsynced(filepath.Join(tmp, manifestFile), man); err != nil {
		return nil, err
	}
	if !opts.NoSync {
		if err := corpus.SyncFS(tmp); err != nil {
			return nil, fmt.Errorf("build index: flush to disk: %w", err)
		}
	}
	stats.IndexBytes = DirSize(tmp)
	if err := replaceDir(tmp, out); err != nil {
		return nil, err
	}
	ok = true
	if opts.Dense != nil {
		// The dense stage runs in place after the rest is installed: it is
		// slow and talks to a server, and if it fails AddDense resumes it.
		if _, err := AddDense(ctx, out, *opts.Dense, opts.Progress, opts.Logger); err != nil {
			return nil, err
		}
		stats.IndexBytes = DirSize(out)
	}
	stats.Duration = time.Since(start)
	opts.Logger.Info("index built", "dir", out, "passages", stats.Passages, "skipped", stats.Skipped,
		"terms", stats.Terms, "postings", stats.Postings, "runs", stats.Runs,
		"size_mb", fmt.Sprintf("%.1f", float64(stats.IndexBytes)/(1<<20)), "took", stats.Duration.Round(time.Millisecond))
	return stats, nil
}

// checkReplaceable refuses to replace a non-empty directory that is not an
// index, so a typo in --out cannot delete someone's data.
func checkReplaceable(out string) error {
	entries, err := os.ReadDir(out)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("build index: %w", err)
	}
	if len(entries) == 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(out, manifestFile)); err != nil {
		return fmt.Errorf("build index: %s exists and is not an index; choose another --out or remove it", out)
	}
	return nil
}

func replaceDir(tmp, out string) error {
	old := ""
	if _, err := os.Stat(out); err == nil {
		old = tmp + ".old"
		if err := os.Rename(out, old); err != nil {
			return fmt.Errorf("build index: move old index aside: %w", err)
		}
	}
	if err := os.Rename(tmp, out); err != nil {
		if old != "" {
			os.Rename(old, out)
		}
		return fmt.Errorf("build index: %w", err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}

// DirSize is the total size of the files under dir (an index, for reports).
func DirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

const (
	batchRecords = 256
	batchBytes   = 1 << 20
)

// batch carries records from the reader through a worker (parse, analyse)
// to the collector, which consumes batches in file order.
type batch struct {
	seq   int
	recs  []corpus.Record
	arena []byte

	passages []corpus.Passage
	errs     []error
	docEnd   []int // docEnd[i]: end of record i's unique terms
	lens     []uint32
	uniq     terms
	tfs      []uint32
	hashes   []uint64
}

func (b *batch) reset(seq int) {
	b.seq = seq
	b.recs, b.arena = b.recs[:0], b.arena[:0]
	clear(b.passages)
	b.passages, b.errs = b.passages[:0], b.errs[:0]
	b.docEnd, b.lens = b.docEnd[:0], b.lens[:0]
	b.uniq.reset()
	b.tfs, b.hashes = b.tfs[:0], b.hashes[:0]
}

func (b *batch) add(rec corpus.Record) {
	// Records alias the reader's buffer; keep offsets into our own arena
	// and fix up Data once the arena stops growing.
	start := len(b.arena)
	b.arena = append(b.arena, rec.Data...)
	rec.Data = b.arena[start:len(b.arena):len(b.arena)]
	b.recs = append(b.recs, rec)
}

func (b *batch) fixData() {
	off := 0
	for i := range b.recs {
		n := len(b.recs[i].Data)
		b.recs[i].Data = b.arena[off : off+n : off+n]
		off += n
	}
}

// docScratch is a worker's reusable state for counting a document's terms.
type docScratch struct {
	toks  terms
	slots []int32
	first []int // index in toks of each unique term
	count []uint32
	hash  []uint64
}

func (b *batch) process(an analyzer, rowOpts corpus.RowOptions, s *docScratch) {
	for _, rec := range b.recs {
		p, err := corpus.ParseRow(rec.Data, rec.Index, rowOpts)
		b.passages = append(b.passages, p)
		b.errs = append(b.errs, err)
		if err != nil {
			b.docEnd = append(b.docEnd, b.uniq.len())
			b.lens = append(b.lens, 0)
			continue
		}
		s.toks.reset()
		an.analyze(p.Contents, &s.toks)
		n := s.toks.len()
		size := 16
		for size < 2*n {
			size *= 2
		}
		if cap(s.slots) < size {
			s.slots = make([]int32, size)
		}
		s.slots = s.slots[:size]
		for i := range s.slots {
			s.slots[i] = -1
		}
		s.first, s.count, s.hash = s.first[:0], s.count[:0], s.hash[:0]
		mask := uint64(size - 1)
		for i := 0; i < n; i++ {
			tok := s.toks.at(i)
			h := corpus.HashKeyBytes(tok)
			for j := h & mask; ; j = (j + 1) & mask {
				u := s.slots[j]
				if u < 0 {
					s.slots[j] = int32(len(s.first))
					s.first = append(s.first, i)
					s.count = append(s.count, 1)
					s.hash = append(s.hash, h)
					break
				}
				if s.hash[u] == h && string(s.toks.at(s.first[u])) == string(tok) {
					s.count[u]++
					break
				}
			}
		}
		for u, i := range s.first {
			b.uniq.buf = append(b.uniq.buf, s.toks.at(i)...)
			b.uniq.ends = append(b.uniq.ends, len(b.uniq.buf))
			b.tfs = append(b.tfs, s.count[u])
			b.hashes = append(b.hashes, s.hash[u])
		}
		b.docEnd = append(b.docEnd, b.uniq.len())
		b.lens = append(b.lens, uint32(n))
	}
}

// buildPassages streams the corpus once: rows go to the store, postings to
// the accumulator (spilling sorted runs to disk when over budget), and a
// final merge writes the BM25 index.
func buildPassages(ctx context.Context, opts *BuildOptions, storePath, bm25Path string) (*BuildStats, error) {
	rd, err := corpus.OpenReader(opts.Corpus, corpus.ReaderOptions{
		Format: opts.Format, SkipBad: opts.SkipBad,
		Row: corpus.RowOptions{URLTemplate: opts.URLTemplate}, Logger: opts.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("build index: %w", err)
	}
	defer rd.Close()
	var total int64
	if st, err := os.Stat(opts.Corpus); err == nil {
		total = st.Size()
	}
	if err := os.MkdirAll(bm25Path, 0o755); err != nil {
		return nil, err
	}
	sw, err := corpus.CreateStore(storePath)
	if err != nil {
		return nil, err
	}
	storeDone := false
	defer func() {
		if !storeDone {
			sw.Abort()
		}
	}()
	an, _ := newAnalyzer(opts.Analyzer)
	budget := int64(opts.MemoryMB) << 20
	if opts.spillBytes > 0 {
		budget = opts.spillBytes
	}
	acc := newAccumulator(bm25Path, budget)
	defer acc.cleanup()
	rowOpts := corpus.RowOptions{URLTemplate: opts.URLTemplate}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	free := make(chan *batch, 2*opts.Workers+2)
	for range cap(free) {
		free <- new(batch)
	}
	work := make(chan *batch, opts.Workers)
	done := make(chan *batch, cap(free))
	g.Go(func() error {
		defer close(work)
		for seq := 0; ; seq++ {
			var b *batch
			select {
			case b = <-free:
			case <-gctx.Done():
				return gctx.Err()
			}
			b.reset(seq)
			var readErr error
			for len(b.recs) < batchRecords && len(b.arena) < batchBytes {
				rec, err := rd.NextRecord()
				if err != nil {
					readErr = err
					break
				}
				b.add(rec)
			}
			b.fixData()
			if len(b.recs) > 0 {
				select {
				case work <- b:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			if errors.Is(readErr, io.EOF) {
				return nil
			}
			if readErr != nil {
				return readErr
			}
		}
	})
	var workers sync.WaitGroup
	for range opts.Workers {
		workers.Add(1)
		g.Go(func() error {
			defer workers.Done()
			var s docScratch
			for b := range work {
				b.process(an, rowOpts, &s)
				select {
				case done <- b:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			return nil
		})
	}
	go func() { workers.Wait(); close(done) }()

	prog := newProgress(opts.Progress, opts.Logger, "indexing "+filepath.Base(opts.Corpus), total, "bytes")
	var doclens []uint32
	var totalLen uint64
	collect := func() error {
		pending := map[int]*batch{}
		next := 0
		for b := range done {
			pending[b.seq] = b
			for {
				b, ok := pending[next]
				if !ok {
					break
				}
				delete(pending, next)
				next++
				start := 0
				for i := range b.recs {
					end := b.docEnd[i]
					if err := b.errs[i]; err != nil {
						if err := rd.Bad(b.recs[i], err); err != nil {
							return fmt.Errorf("%w (fix the row or pass --skip-bad)", err)
						}
						start = end
						continue
					}
					doc, err := sw.Add(&b.passages[i])
					if err != nil {
						return err
					}
					for t := start; t < end; t++ {
						if err := acc.add(doc, b.uniq.at(t), b.hashes[t], b.tfs[t]); err != nil {
							return err
						}
					}
					doclens = append(doclens, b.lens[i])
					totalLen += uint64(b.lens[i])
					start = end
				}
				prog.Set(rd.BytesRead(), fmt.Sprintf("(%d passages)", len(doclens)))
				free <- b
			}
		}
		return gctx.Err()
	}
	if err := collect(); err != nil {
		cancel()
		g.Wait()
		return nil, err
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("build index: %w", err)
	}
	prog.Set(total, "")
	prog.Finish()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(doclens) == 0 {
		return nil, fmt.Errorf("build index: %s has no passages", opts.Corpus)
	}
	if err := sw.Finish(corpus.StoreMeta{Source: opts.Corpus, Skipped: rd.Skipped()}); err != nil {
		return nil, err
	}
	storeDone = true
	if rd.Skipped() > 0 {
		opts.Logger.Warn("skipped malformed corpus rows", "count", rd.Skipped())
	}
	stats := &BuildStats{Passages: int64(len(doclens)), Skipped: rd.Skipped()}
	if err := acc.finish(ctx, bm25Path, doclens, totalLen, opts, stats); err != nil {
		return nil, err
	}
	return stats, nil
}

// buildPagesStore stores a page corpus for /access (no search index).
func buildPagesStore(ctx context.Context, opts *BuildOptions, dir string) (int64, error) {
	rd, err := corpus.OpenReader(opts.Pages, corpus.ReaderOptions{
		Format: corpus.FormatAuto, SkipBad: opts.SkipBad,
		Row: corpus.RowOptions{URLTemplate: opts.URLTemplate}, Logger: opts.Logger,
	})
	if err != nil {
		return 0, fmt.Errorf("build pages: %w", err)
	}
	defer rd.Close()
	sw, err := corpus.CreateStore(dir)
	if err != nil {
		return 0, err
	}
	var total int64
	if st, err := os.Stat(opts.Pages); err == nil {
		total = st.Size()
	}
	prog := newProgress(opts.Progress, opts.Logger, "storing pages "+filepath.Base(opts.Pages), total, "bytes")
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				sw.Abort()
				return 0, err
			}
			prog.Set(rd.BytesRead(), "")
		}
		p, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			sw.Abort()
			if !strings.Contains(err.Error(), "--skip-bad") {
				err = fmt.Errorf("%w (fix the row or pass --skip-bad)", err)
			}
			return 0, err
		}
		if _, err := sw.Add(&p); err != nil {
			sw.Abort()
			return 0, err
		}
	}
	prog.Set(total, "")
	prog.Finish()
	if err := sw.Finish(corpus.StoreMeta{Source: opts.Pages, Skipped: rd.Skipped()}); err != nil {
		return 0, err
	}
	return int64(sw.Len()), nil
}
