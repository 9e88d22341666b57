package retrieval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unsafe"

	"github.com/asearcher/asearcher/corpus"
)

// Files of a BM25 index directory.
const (
	postingsFile = "postings.dat"
	blocksFile   = "blocks.dat"
	termInfoFile = "terms.info"
	termStrFile  = "terms.dat"
	termOffFile  = "terms.off"
	termKeysFile = "terms.kix"
	docLenFile   = "doclen.dat"
	bm25MetaFile = "meta.json"
	bm25Version  = 1
)

type bm25Meta struct {
	Version   int            `json:"version"`
	Docs      uint64         `json:"docs"`
	Terms     uint64         `json:"terms"`
	Postings  uint64         `json:"postings"`
	TotalLen  uint64         `json:"total_len"`
	AvgDL     float64        `json:"avgdl"`
	K1        float64        `json:"k1"`
	B         float64        `json:"b"`
	Analyzer  AnalyzerConfig `json:"analyzer"`
	BlockSize int            `json:"block_size"`
	Created   time.Time      `json:"created"`
}

// BM25Options tune an opened BM25 index.
type BM25Options struct {
	// K1 and B override the values the index was built with. Scores are
	// exact either way; pruning is tightest with the build values.
	K1, B *float64
}

// BM25 is an opened, memory-mapped BM25 index. It is safe for concurrent
// use: queries share the read-only mapped files and draw per-query state
// from a pool.
type BM25 struct {
	meta     bm25Meta
	an       analyzer
	k1, b    float64
	params   bm25Params
	exact    bool // stored block bounds match k1, b
	maps     []*corpus.Mapped
	keys     *corpus.KeyIndex
	termStr  []byte
	termOff  []uint64
	info     []termMeta
	blocks   []blockMeta
	postings []byte
	doclen   []uint32
	pool     sync.Pool
}

// OpenBM25 maps a BM25 index directory (an index's bm25/ folder).
func OpenBM25(dir string, opts BM25Options) (_ *BM25, err error) {
	ix := &BM25{}
	defer func() {
		if err != nil {
			ix.Close()
		}
	}()
	data, err := os.ReadFile(filepath.Join(dir, bm25MetaFile))
	if err != nil {
		return nil, fmt.Errorf("open bm25 index: %w", err)
	}
	if err := json.Unmarshal(data, &ix.meta); err != nil {
		return nil, fmt.Errorf("open bm25 index: %s: %w", bm25MetaFile, err)
	}
	if ix.meta.Version != bm25Version || ix.meta.BlockSize != blockSize {
		return nil, fmt.Errorf("open bm25 index: format version %d (block %d), want %d (block %d); rebuild the index",
			ix.meta.Version, ix.meta.BlockSize, bm25Version, blockSize)
	}
	if ix.an, err = newAnalyzer(ix.meta.Analyzer); err != nil {
		return nil, fmt.Errorf("open bm25 index: %w", err)
	}
	mapped := func(name string) ([]byte, error) {
		m, err := corpus.MapFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("open bm25 index: %w", err)
		}
		ix.maps = append(ix.maps, m)
		return m.Data, nil
	}
	var raw [6][]byte
	for i, name := range []string{termStrFile, termOffFile, termInfoFile, blocksFile, postingsFile, docLenFile} {
		if raw[i], err = mapped(name); err != nil {
			return nil, err
		}
	}
	ix.termStr = raw[0]
	ix.termOff = corpus.U64s(raw[1])
	ix.info = viewSlice[termMeta](raw[2])
	ix.blocks = viewSlice[blockMeta](raw[3])
	ix.postings = raw[4]
	ix.doclen = corpus.U32s(raw[5])
	m := ix.meta
	if uint64(len(ix.info)) != m.Terms || uint64(len(ix.termOff)) != m.Terms+1 || uint64(len(ix.doclen)) != m.Docs ||
		len(ix.postings) < postingsPad || (m.Terms > 0 && ix.termOff[m.Terms] != uint64(len(ix.termStr))) {
		return nil, fmt.Errorf("open bm25 index %s: file sizes do not match meta.json (truncated copy?); rebuild the index", dir)
	}
	if err := ix.checkLayout(raw[2], raw[3]); err != nil {
		return nil, fmt.Errorf("open bm25 index %s: %w (truncated or damaged copy?); rebuild the index", dir, err)
	}
	if ix.keys, err = corpus.OpenKeyIndex(filepath.Join(dir, termKeysFile)); err != nil {
		return nil, fmt.Errorf("open bm25 index: %w", err)
	}
	ix.k1, ix.b = m.K1, m.B
	if opts.K1 != nil {
		ix.k1 = *opts.K1
	}
	if opts.B != nil {
		ix.b = *opts.B
	}
	if ix.k1 < 0 || ix.b < 0 || ix.b > 1 {
		return nil, fmt.Errorf("bm25: k1=%g b=%g: want k1 ≥ 0 and 0 ≤ b ≤ 1", ix.k1, ix.b)
	}
	ix.params = newBM25Params(ix.k1, ix.b, m.AvgDL)
	ix.exact = ix.k1 == m.K1 && ix.b == m.B
	return ix, nil
}

// checkLayout checks, in one pass over the terms (not the postings), that
// the files agree with each other: term strings in order, each term's
// blocks right after the previous term's, blocks.dat holding exactly
// those blocks and postings.dat ending exactly after the last one. It
// catches a truncated or shortened file, which a size check against
// meta.json alone lets through for blocks.dat and postings.dat.
func (ix *BM25) checkLayout(infoRaw, blocksRaw []byte) error {
	if len(infoRaw)%int(unsafe.Sizeof(termMeta{})) != 0 {
		return fmt.Errorf("%s: %d bytes is not a whole number of term records", termInfoFile, len(infoRaw))
	}
	if len(blocksRaw)%int(unsafe.Sizeof(blockMeta{})) != 0 {
		return fmt.Errorf("%s: %d bytes is not a whole number of block records", blocksFile, len(blocksRaw))
	}
	if len(ix.termOff) > 0 && ix.termOff[0] != 0 {
		return fmt.Errorf("%s: first offset %d, want 0", termOffFile, ix.termOff[0])
	}
	var next uint64 // the first block of the next term
	var postings uint64
	lastTerm, lastN := -1, 0
	for i, tm := range ix.info {
		if ix.termOff[i+1] < ix.termOff[i] {
			return fmt.Errorf("%s: offsets decrease at term %d", termOffFile, i)
		}
		if uint64(tm.DF) > ix.meta.Docs {
			return fmt.Errorf("%s: term %d in %d documents of %d", termInfoFile, i, tm.DF, ix.meta.Docs)
		}
		nb := (uint64(tm.DF) + blockSize - 1) / blockSize
		if uint64(tm.FirstBlock) != next {
			return fmt.Errorf("%s: term %d starts at block %d, want %d", termInfoFile, i, tm.FirstBlock, next)
		}
		next += nb
		postings += uint64(tm.DF)
		if nb > 0 {
			lastTerm, lastN = i, int(tm.DF)-blockSize*int(nb-1)
		}
	}
	if next != uint64(len(ix.blocks)) {
		return fmt.Errorf("%s: %d blocks, the terms need %d", blocksFile, len(ix.blocks), next)
	}
	if postings != ix.meta.Postings {
		return fmt.Errorf("%s: %d postings, meta.json says %d", termInfoFile, postings, ix.meta.Postings)
	}
	want := uint64(postingsPad)
	if lastTerm >= 0 {
		last := ix.blocks[len(ix.blocks)-1]
		if last.Offset+2 > uint64(len(ix.postings)) {
			return fmt.Errorf("%s: %d bytes, the last block starts at %d", postingsFile, len(ix.postings), last.Offset)
		}
		want = last.Offset + uint64(blockLen(ix.postings[last.Offset:], lastN)) + postingsPad
	}
	if want != uint64(len(ix.postings)) {
		return fmt.Errorf("%s: %d bytes, the blocks need %d", postingsFile, len(ix.postings), want)
	}
	return nil
}

// viewSlice views mapped bytes as a slice of fixed-size records.
func viewSlice[T any](b []byte) []T {
	var zero T
	size := int(unsafe.Sizeof(zero))
	if len(b) < size {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&b[0])), len(b)/size)
}

// Close unmaps the index. Queries must have finished.
func (ix *BM25) Close() error {
	var errs []error
	for _, m := range ix.maps {
		errs = append(errs, m.Close())
	}
	ix.maps = nil
	errs = append(errs, ix.keys.Close())
	return errors.Join(errs...)
}

// Docs is the number of indexed passages.
func (ix *BM25) Docs() int { return int(ix.meta.Docs) }

// Params returns the k1 and b in use.
func (ix *BM25) Params() (k1, b float64) { return ix.k1, ix.b }

// Analyzer returns the analysis the index was built with.
func (ix *BM25) Analyzer() AnalyzerConfig { return ix.meta.Analyzer }

// lookupTerm finds a term's id.
func (ix *BM25) lookupTerm(term []byte) (uint32, bool) {
	var buf [4]uint32
	for _, id := range ix.keys.Candidates(corpus.HashKeyBytes(term), buf[:0]) {
		if uint64(id) < ix.meta.Terms && bytes.Equal(ix.termStr[ix.termOff[id]:ix.termOff[id+1]], term) {
			return id, true
		}
	}
	return 0, false
}

// TermStats reports a term's document frequency after analysis (0 when
// absent); a query string analysing to several terms reports the first.
func (ix *BM25) TermStats(word string) (term string, df int) {
	var t terms
	ix.an.analyze(word, &t)
	if t.len() == 0 {
		return "", 0
	}
	id, ok := ix.lookupTerm(t.at(0))
	if !ok {
		return string(t.at(0)), 0
	}
	return string(t.at(0)), int(ix.info[id].DF)
}
