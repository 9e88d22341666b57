package retrieval

import (
	"bufio"
	"bytes"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/asearcher/asearcher/corpus"
	"github.com/asearcher/asearcher/internal/atomicfile"
)

// accumulator gathers postings in memory, in document order, and spills
// them as term-sorted runs when they exceed the memory budget.
type accumulator struct {
	dir     string
	budget  int64
	dict    map[uint64]int32
	collide map[string]int32 // terms whose 64-bit hash another term took
	terms   []runTerm
	mem     int64
	runs    []string
}

type runTerm struct {
	term    string
	lastDoc int64
	df      uint32
	data    []byte // uvarint (doc gap, tf) pairs; gap = doc - lastDoc - 1
}

// runTermOverhead approximates the bytes a new term costs beyond its
// postings (map entry, slice header, string header).
const runTermOverhead = 96

func newAccumulator(dir string, budget int64) *accumulator {
	return &accumulator{dir: dir, budget: budget, dict: map[uint64]int32{}}
}

func (a *accumulator) add(doc uint32, term []byte, h uint64, tf uint32) error {
	id, ok := a.dict[h]
	if ok && a.terms[id].term != string(term) {
		id, ok = a.collide[string(term)]
		if !ok {
			if a.collide == nil {
				a.collide = map[string]int32{}
			}
			id = a.newTerm(term)
			a.collide[a.terms[id].term] = id
		}
	} else if !ok {
		id = a.newTerm(term)
		a.dict[h] = id
	}
	t := &a.terms[id]
	before := cap(t.data)
	t.data = binary.AppendUvarint(t.data, uint64(int64(doc)-t.lastDoc-1))
	t.data = binary.AppendUvarint(t.data, uint64(tf))
	t.lastDoc = int64(doc)
	t.df++
	a.mem += int64(cap(t.data) - before)
	if a.mem > a.budget {
		return a.spill()
	}
	return nil
}

func (a *accumulator) newTerm(term []byte) int32 {
	a.terms = append(a.terms, runTerm{term: string(term), lastDoc: -1})
	a.mem += int64(len(term)) + runTermOverhead
	return int32(len(a.terms) - 1)
}

func (a *accumulator) sortedTerms() []int32 {
	order := make([]int32, len(a.terms))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(x, y int32) int {
		if a.terms[x].term < a.terms[y].term {
			return -1
		}
		if a.terms[x].term > a.terms[y].term {
			return 1
		}
		return 0
	})
	return order
}

// spill writes the in-memory postings as a run file and starts afresh.
func (a *accumulator) spill() error {
	f, err := os.CreateTemp(a.dir, "run-*.tmp")
	if err != nil {
		return fmt.Errorf("spill postings: %w", err)
	}
	a.runs = append(a.runs, f.Name())
	w := bufio.NewWriterSize(f, 1<<20)
	var hdr []byte
	for _, id := range a.sortedTerms() {
		t := &a.terms[id]
		hdr = binary.AppendUvarint(hdr[:0], uint64(len(t.term)))
		hdr = append(hdr, t.term...)
		hdr = binary.AppendUvarint(hdr, uint64(t.df))
		hdr = binary.AppendUvarint(hdr, uint64(len(t.data)))
		if _, err := w.Write(hdr); err != nil {
			f.Close()
			return fmt.Errorf("spill postings: %w", err)
		}
		if _, err := w.Write(t.data); err != nil {
			f.Close()
			return fmt.Errorf("spill postings: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("spill postings: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("spill postings: %w", err)
	}
	a.dict = map[uint64]int32{}
	a.collide = nil
	a.terms = nil
	a.mem = 0
	return nil
}

func (a *accumulator) cleanup() {
	for _, r := range a.runs {
		os.Remove(r)
	}
	a.runs = nil
}

// runIter walks one run's terms in sorted order.
type runIter interface {
	next() (bool, error)
	term() []byte
	postings() []byte
}

type memRun struct {
	a     *accumulator
	order []int32
	i     int
}

func (m *memRun) next() (bool, error) { m.i++; return m.i < len(m.order), nil }
func (m *memRun) term() []byte        { return []byte(m.a.terms[m.order[m.i]].term) }
func (m *memRun) postings() []byte    { return m.a.terms[m.order[m.i]].data }

type fileRun struct {
	f    *os.File
	r    *bufio.Reader
	t    []byte
	data []byte
}

func (fr *fileRun) next() (bool, error) {
	n, err := binary.ReadUvarint(fr.r)
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read run: %w", err)
	}
	fr.t = slices.Grow(fr.t[:0], int(n))[:n]
	if _, err := io.ReadFull(fr.r, fr.t); err != nil {
		return false, fmt.Errorf("read run: %w", err)
	}
	if _, err := binary.ReadUvarint(fr.r); err != nil { // df, implied by the data
		return false, fmt.Errorf("read run: %w", err)
	}
	n, err = binary.ReadUvarint(fr.r)
	if err != nil {
		return false, fmt.Errorf("read run: %w", err)
	}
	fr.data = slices.Grow(fr.data[:0], int(n))[:n]
	if _, err := io.ReadFull(fr.r, fr.data); err != nil {
		return false, fmt.Errorf("read run: %w", err)
	}
	return true, nil
}
func (fr *fileRun) term() []byte     { return fr.t }
func (fr *fileRun) postings() []byte { return fr.data }

// runHeap orders runs by current term, then by run number so postings of
// one term are concatenated in document order.
type runHeap struct {
	its []runIter
	idx []int
}

func (h *runHeap) Len() int { return len(h.its) }
func (h *runHeap) Less(i, j int) bool {
	if c := bytes.Compare(h.its[i].term(), h.its[j].term()); c != 0 {
		return c < 0
	}
	return h.idx[i] < h.idx[j]
}
func (h *runHeap) Swap(i, j int) {
	h.its[i], h.its[j] = h.its[j], h.its[i]
	h.idx[i], h.idx[j] = h.idx[j], h.idx[i]
}
func (h *runHeap) Push(x any) { panic("unused") }
func (h *runHeap) Pop() any {
	n := len(h.its) - 1
	h.its, h.idx = h.its[:n], h.idx[:n]
	return nil
}

// finish merges the runs (and what is still in memory) into the final
// index files.
func (a *accumulator) finish(ctx context.Context, dir string, doclens []uint32, totalLen uint64, opts *BuildOptions, stats *BuildStats) error {
	var its []runIter
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, name := range a.runs {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		files = append(files, f)
		its = append(its, &fileRun{f: f, r: bufio.NewReaderSize(f, 1<<20)})
	}
	if len(a.terms) > 0 {
		its = append(its, &memRun{a: a, order: a.sortedTerms(), i: -1})
	}
	stats.Runs = len(its)
	h := &runHeap{}
	for i, it := range its {
		ok, err := it.next()
		if err != nil {
			return err
		}
		if ok {
			h.its = append(h.its, it)
			h.idx = append(h.idx, i)
		}
	}
	heap.Init(h)

	n := uint64(len(doclens))
	avgdl := float64(totalLen) / float64(n)
	pw, err := newPostingsWriter(dir, doclens, newBM25Params(opts.K1, opts.B, avgdl), n)
	if err != nil {
		return err
	}
	defer pw.abort()
	prog := newProgress(opts.Progress, opts.Logger, "merging postings", -1, "terms")
	var cur []byte
	termsDone := int64(0)
	for h.Len() > 0 {
		it := h.its[0]
		if cur == nil || !bytes.Equal(cur, it.term()) {
			if cur != nil {
				if err := pw.endTerm(); err != nil {
					return err
				}
				termsDone++
				if termsDone%4096 == 0 {
					if err := ctx.Err(); err != nil {
						return err
					}
					prog.Set(termsDone, "")
				}
			}
			cur = append(cur[:0], it.term()...)
			if err := pw.beginTerm(cur); err != nil {
				return err
			}
		}
		if err := pw.addEncoded(it.postings()); err != nil {
			return err
		}
		ok, err := it.next()
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
		}
	}
	if cur != nil {
		if err := pw.endTerm(); err != nil {
			return err
		}
	}
	prog.Finish()
	meta := bm25Meta{
		Version:   bm25Version,
		Docs:      n,
		TotalLen:  totalLen,
		AvgDL:     avgdl,
		K1:        opts.K1,
		B:         opts.B,
		Analyzer:  opts.Analyzer,
		BlockSize: blockSize,
		Created:   time.Now().UTC(),
	}
	if err := pw.finish(&meta); err != nil {
		return err
	}
	stats.Terms = int64(meta.Terms)
	stats.Postings = int64(meta.Postings)
	a.cleanup()
	return nil
}

// postingsWriter writes the BM25 index files term by term.
type postingsWriter struct {
	dir     string
	files   []*os.File
	post    *bufio.Writer
	blocks  *bufio.Writer
	info    *bufio.Writer
	strs    *bufio.Writer
	offs    *bufio.Writer
	keys    *corpus.KeyIndexWriter
	doclens []uint32
	params  bm25Params
	n       uint64

	postOff, strOff   uint64
	nBlocks, nTerms   uint32
	nPostings         uint64
	docs, tfs         [blockSize]uint32
	inBlock           int
	prevLast, lastDoc int64
	termBlocks        []blockMeta
	tm                termMeta
	scratch           []uint32
	enc               []byte
}

func newPostingsWriter(dir string, doclens []uint32, params bm25Params, n uint64) (*postingsWriter, error) {
	pw := &postingsWriter{dir: dir, doclens: doclens, params: params, n: n,
		keys: corpus.NewKeyIndexWriter(dir), scratch: make([]uint32, blockSize)}
	for _, dst := range []struct {
		name string
		w    **bufio.Writer
	}{{postingsFile, &pw.post}, {blocksFile, &pw.blocks}, {termInfoFile, &pw.info}, {termStrFile, &pw.strs}, {termOffFile, &pw.offs}} {
		f, err := os.Create(filepath.Join(dir, dst.name+".tmp"))
		if err != nil {
			pw.abort()
			return nil, fmt.Errorf("write index: %w", err)
		}
		pw.files = append(pw.files, f)
		*dst.w = bufio.NewWriterSize(f, 1<<20)
	}
	if err := pw.putU64(pw.offs, 0); err != nil {
		pw.abort()
		return nil, err
	}
	return pw, nil
}

func (pw *postingsWriter) putU64(w *bufio.Writer, v uint64) error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	_, err := w.Write(b[:])
	return err
}

func (pw *postingsWriter) beginTerm(term []byte) error {
	pw.tm = termMeta{FirstBlock: pw.nBlocks}
	pw.termBlocks = pw.termBlocks[:0]
	pw.inBlock = 0
	pw.prevLast, pw.lastDoc = -1, -1
	if _, err := pw.strs.Write(term); err != nil {
		return err
	}
	pw.strOff += uint64(len(term))
	if err := pw.putU64(pw.offs, pw.strOff); err != nil {
		return err
	}
	return pw.keys.AddHash(corpus.HashKeyBytes(term), pw.nTerms)
}

// addEncoded appends a run's uvarint postings of the current term.
func (pw *postingsWriter) addEncoded(data []byte) error {
	last := int64(-1)
	for len(data) > 0 {
		gap, n := binary.Uvarint(data)
		if n <= 0 {
			return errors.New("corrupt postings run")
		}
		data = data[n:]
		tf, n := binary.Uvarint(data)
		if n <= 0 {
			return errors.New("corrupt postings run")
		}
		data = data[n:]
		doc := last + 1 + int64(gap)
		last = doc
		if doc <= pw.lastDoc || doc >= int64(pw.n) {
			return fmt.Errorf("corrupt postings run: doc %d after %d", doc, pw.lastDoc)
		}
		pw.lastDoc = doc
		pw.docs[pw.inBlock] = uint32(doc)
		pw.tfs[pw.inBlock] = uint32(tf)
		pw.inBlock++
		if pw.inBlock == blockSize {
			if err := pw.flushBlock(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (pw *postingsWriter) flushBlock() error {
	if pw.inBlock == 0 {
		return nil
	}
	docs, tfs := pw.docs[:pw.inBlock], pw.tfs[:pw.inBlock]
	bm := blockMeta{Offset: pw.postOff, LastDoc: docs[len(docs)-1], MinLen: ^uint32(0)}
	for i, d := range docs {
		dl := pw.doclens[d]
		if s := pw.params.tfPart(tfs[i], dl); s > bm.MaxTF {
			bm.MaxTF = s
		}
		bm.TopTF = max(bm.TopTF, tfs[i])
		bm.MinLen = min(bm.MinLen, dl)
	}
	pw.enc = encodeBlock(pw.enc[:0], docs, tfs, pw.prevLast, pw.scratch)
	if _, err := pw.post.Write(pw.enc); err != nil {
		return err
	}
	pw.postOff += uint64(len(pw.enc))
	pw.prevLast = int64(bm.LastDoc)
	pw.tm.DF += uint32(len(docs))
	pw.tm.MaxTF = max(pw.tm.MaxTF, bm.MaxTF)
	pw.tm.TopTF = max(pw.tm.TopTF, bm.TopTF)
	pw.termBlocks = append(pw.termBlocks, bm)
	pw.nBlocks++
	pw.inBlock = 0
	return nil
}

func (pw *postingsWriter) endTerm() error {
	if err := pw.flushBlock(); err != nil {
		return err
	}
	var b [24]byte
	for _, bm := range pw.termBlocks {
		binary.LittleEndian.PutUint64(b[0:], bm.Offset)
		binary.LittleEndian.PutUint32(b[8:], bm.LastDoc)
		binary.LittleEndian.PutUint32(b[12:], math.Float32bits(bm.MaxTF))
		binary.LittleEndian.PutUint32(b[16:], bm.TopTF)
		binary.LittleEndian.PutUint32(b[20:], bm.MinLen)
		if _, err := pw.blocks.Write(b[:]); err != nil {
			return err
		}
	}
	binary.LittleEndian.PutUint32(b[0:], pw.tm.DF)
	binary.LittleEndian.PutUint32(b[4:], pw.tm.FirstBlock)
	binary.LittleEndian.PutUint32(b[8:], math.Float32bits(pw.tm.MaxTF))
	binary.LittleEndian.PutUint32(b[12:], pw.tm.TopTF)
	if _, err := pw.info.Write(b[:16]); err != nil {
		return err
	}
	pw.nPostings += uint64(pw.tm.DF)
	pw.nTerms++
	return nil
}

func (pw *postingsWriter) finish(meta *bm25Meta) error {
	if _, err := pw.post.Write(make([]byte, postingsPad)); err != nil {
		return err
	}
	for i, w := range []*bufio.Writer{pw.post, pw.blocks, pw.info, pw.strs, pw.offs} {
		if err := w.Flush(); err != nil {
			return fmt.Errorf("write index: %w", err)
		}
		if err := pw.files[i].Close(); err != nil {
			return fmt.Errorf("write index: %w", err)
		}
	}
	for _, name := range []string{postingsFile, blocksFile, termInfoFile, termStrFile, termOffFile} {
		if err := os.Rename(filepath.Join(pw.dir, name+".tmp"), filepath.Join(pw.dir, name)); err != nil {
			return fmt.Errorf("write index: %w", err)
		}
	}
	pw.files = nil
	if err := pw.keys.Finish(filepath.Join(pw.dir, termKeysFile)); err != nil {
		return fmt.Errorf("write term table: %w", err)
	}
	lens := make([]byte, 4*len(pw.doclens))
	for i, l := range pw.doclens {
		binary.LittleEndian.PutUint32(lens[4*i:], l)
	}
	if err := atomicfile.WriteFileDeferSync(filepath.Join(pw.dir, docLenFile), lens); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	meta.Terms = uint64(pw.nTerms)
	meta.Postings = pw.nPostings
	return corpus.WriteJSONFileUnsynced(filepath.Join(pw.dir, bm25MetaFile), meta)
}

func (pw *postingsWriter) abort() {
	for _, f := range pw.files {
		f.Close()
		os.Remove(f.Name())
	}
	pw.files = nil
	pw.keys.Abort()
}
