package retrieval

import (
	"context"
	"fmt"
	"math"
	"slices"
)

// Hit is one search result: a passage ordinal in the index's store and its
// score (higher is better).
type Hit struct {
	Doc   uint32
	Score float32
}

// Retriever is what BM25, dense and hybrid search have in common, so
// callers can swap them.
type Retriever interface {
	// Search appends the k best hits for query to dst, best first, and
	// returns the extended slice. With a dst of enough capacity it does not
	// allocate.
	Search(ctx context.Context, query string, k int, dst []Hit) ([]Hit, error)
}

// MaxK is the most hits one query may ask for.
const MaxK = 10000

// maxQueryTerms bounds the distinct terms of one query; longer queries keep
// their first maxQueryTerms terms.
const maxQueryTerms = 1024

const endDoc = math.MaxUint32

// boundSlack inflates score bounds so float rounding in sums can never prune
// a document whose exact score would enter the top k.
const boundSlack = 1 + 1e-5

// cursor iterates one query term's postings.
type cursor struct {
	ix        *BM25
	blocks    []blockMeta
	df        uint32
	weight    float32 // idf · query term frequency
	bound     float32 // upper bound of this term's score
	bi        int     // block of the current document
	decoded   int     // block held in docs (-1: none)
	sbi       int     // shallow block pointer for block-max bounds
	pos, n    int
	tfsLoaded bool
	doc       uint32
	// err is the first decoding error; the cursor is then exhausted and
	// the query fails with it.
	err  error
	docs [blockSize]uint32
	tfs  [blockSize]uint32
}

func (c *cursor) init(ix *BM25, tm termMeta, weight float32) {
	c.ix = ix
	nb := (int(tm.DF) + blockSize - 1) / blockSize
	c.blocks = ix.blocks[tm.FirstBlock : int(tm.FirstBlock)+nb]
	c.df = tm.DF
	c.weight = weight
	if ix.exact {
		c.bound = weight * tm.MaxTF * boundSlack
	} else {
		c.bound = weight * ix.params.tfPart(tm.TopTF, minLenOf(c.blocks)) * boundSlack
	}
	c.bi, c.sbi, c.decoded = 0, 0, -1
	c.load(0)
}

func minLenOf(blocks []blockMeta) uint32 {
	m := ^uint32(0)
	for _, b := range blocks {
		m = min(m, b.MinLen)
	}
	return m
}

// load decodes block bi and positions the cursor on its first document.
func (c *cursor) load(bi int) {
	c.bi = bi
	if bi >= len(c.blocks) {
		c.doc = endDoc
		return
	}
	if c.decoded != bi {
		c.n = blockSize
		if bi == len(c.blocks)-1 {
			c.n = int(c.df) - blockSize*bi
		}
		prev := int64(-1)
		if bi > 0 {
			prev = int64(c.blocks[bi-1].LastDoc)
		}
		b := &c.blocks[bi]
		var err error
		if b.Offset >= uint64(len(c.ix.postings)) || int64(b.LastDoc) <= prev || b.LastDoc >= uint32(len(c.ix.doclen)) {
			err = fmt.Errorf("%w: offset %d of %d, last document %d after %d of %d", errCorruptBlock, b.Offset, len(c.ix.postings), b.LastDoc, prev, len(c.ix.doclen))
		} else {
			err = decodeDocs(c.docs[:c.n], c.ix.postings[b.Offset:], prev, b.LastDoc)
		}
		if err != nil {
			c.fail(err)
			return
		}
		c.decoded = bi
		c.tfsLoaded = false
	}
	c.pos = 0
	c.doc = c.docs[0]
}

// fail records a decoding error and exhausts the cursor.
func (c *cursor) fail(err error) {
	if c.err == nil {
		c.err = fmt.Errorf("bm25 index: block %d of a term with %d postings: %w; the index is damaged, rebuild it", c.bi, c.df, err)
	}
	c.bi = len(c.blocks)
	c.n, c.pos = 0, 0
	c.doc = endDoc
}

func (c *cursor) next() {
	c.pos++
	if c.pos < c.n {
		c.doc = c.docs[c.pos]
		return
	}
	c.load(c.bi + 1)
}

// nextGEQ moves to the first document ≥ target.
func (c *cursor) nextGEQ(target uint32) {
	if c.doc >= target {
		return
	}
	if c.blocks[c.bi].LastDoc < target {
		bi := c.bi + 1
		for bi < len(c.blocks) && c.blocks[bi].LastDoc < target {
			bi++
		}
		c.load(bi)
		if c.doc == endDoc {
			return
		}
	}
	for c.docs[c.pos] < target {
		c.pos++
	}
	c.doc = c.docs[c.pos]
}

func (c *cursor) score() float32 {
	if !c.tfsLoaded {
		if err := decodeTFs(c.tfs[:c.n], c.ix.postings[c.blocks[c.bi].Offset:]); err != nil {
			// The documents decoded, so the failure is the tf half; the
			// caller still holds this document, scored 0.
			c.fail(err)
			return 0
		}
		c.tfsLoaded = true
	}
	return c.weight * c.ix.params.tfPart(c.tfs[c.pos], c.ix.doclen[c.doc])
}

func (c *cursor) blockBound(bi int) float32 {
	b := &c.blocks[bi]
	if c.ix.exact {
		return c.weight * b.MaxTF * boundSlack
	}
	return c.weight * c.ix.params.tfPart(b.TopTF, b.MinLen) * boundSlack
}

// blockMaxAt bounds this term's score for document target, without
// decoding: the bound of the block that would hold target.
func (c *cursor) blockMaxAt(target uint32) float32 {
	if c.sbi < c.bi {
		c.sbi = c.bi
	}
	for c.sbi < len(c.blocks) && c.blocks[c.sbi].LastDoc < target {
		c.sbi++
	}
	if c.sbi >= len(c.blocks) {
		return 0
	}
	return c.blockBound(c.sbi)
}

// topK keeps the k best hits in a min-heap (worst at the root). Documents
// arrive in increasing order, so on equal scores the earlier one wins.
type topK struct {
	h []Hit
	k int
}

func (t *topK) reset(k int) { t.h, t.k = t.h[:0], k }

func (t *topK) full() bool { return len(t.h) == t.k }

func (t *topK) threshold() float32 { return t.h[0].Score }

func worse(a, b Hit) bool { return a.Score < b.Score || (a.Score == b.Score && a.Doc > b.Doc) }

func (t *topK) push(h Hit) {
	if len(t.h) < t.k {
		t.h = append(t.h, h)
		for i := len(t.h) - 1; i > 0; {
			p := (i - 1) / 2
			if !worse(t.h[i], t.h[p]) {
				break
			}
			t.h[i], t.h[p] = t.h[p], t.h[i]
			i = p
		}
		return
	}
	if !worse(t.h[0], h) {
		return
	}
	t.h[0] = h
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < len(t.h) && worse(t.h[l], t.h[m]) {
			m = l
		}
		if r := l + 1; r < len(t.h) && worse(t.h[r], t.h[m]) {
			m = r
		}
		if m == i {
			break
		}
		t.h[i], t.h[m] = t.h[m], t.h[i]
		i = m
	}
}

// appendSorted appends the hits best first.
func (t *topK) appendSorted(dst []Hit) []Hit {
	start := len(dst)
	dst = append(dst, t.h...)
	slices.SortFunc(dst[start:], func(a, b Hit) int {
		switch {
		case worse(b, a):
			return -1
		case worse(a, b):
			return 1
		}
		return 0
	})
	return dst
}

// bm25Query is the pooled per-query state.
type bm25Query struct {
	toks  terms
	ids   []uint32
	qtf   []uint32
	curs  []cursor
	order []*cursor
	ub    []float32
	top   topK
}

// Search implements Retriever with document-at-a-time MaxScore and
// block-max bounds: terms whose summed bounds cannot lift a document into
// the top k are only probed for documents found through the others, and
// blocks whose bounds fall short are skipped without decoding.
func (ix *BM25) Search(ctx context.Context, query string, k int, dst []Hit) ([]Hit, error) {
	if k <= 0 {
		return dst, nil
	}
	if k > MaxK {
		return dst, fmt.Errorf("bm25: k=%d exceeds %d", k, MaxK)
	}
	q, _ := ix.pool.Get().(*bm25Query)
	if q == nil {
		q = &bm25Query{}
	}
	defer ix.pool.Put(q)
	q.toks.reset()
	ix.an.analyze(query, &q.toks)
	q.ids, q.qtf = q.ids[:0], q.qtf[:0]
	for i := 0; i < q.toks.len() && len(q.ids) < maxQueryTerms; i++ {
		id, ok := ix.lookupTerm(q.toks.at(i))
		if !ok {
			continue
		}
		if j := slices.Index(q.ids, id); j >= 0 {
			q.qtf[j]++
			continue
		}
		q.ids = append(q.ids, id)
		q.qtf = append(q.qtf, 1)
	}
	n := len(q.ids)
	if n == 0 {
		return dst, nil
	}
	if cap(q.curs) < n {
		q.curs = make([]cursor, n)
		q.order = make([]*cursor, n)
		q.ub = make([]float32, n)
	}
	q.curs, q.order, q.ub = q.curs[:n], q.order[:n], q.ub[:n]
	for i, id := range q.ids {
		tm := ix.info[id]
		w := float32(idf(ix.meta.Docs, uint64(tm.DF))) * float32(q.qtf[i])
		q.curs[i].init(ix, tm, w)
		q.order[i] = &q.curs[i]
	}
	slices.SortFunc(q.order, func(a, b *cursor) int {
		switch {
		case a.bound < b.bound:
			return -1
		case a.bound > b.bound:
			return 1
		}
		return 0
	})
	sum := float32(0)
	for i, c := range q.order {
		sum += c.bound
		q.ub[i] = sum
	}
	q.top.reset(k)
	err := maxScore(ctx, q.order, q.ub, &q.top)
	for i := range q.curs {
		if q.curs[i].err != nil {
			err = q.curs[i].err
			q.curs[i].err = nil // the cursor goes back to the pool
		}
	}
	if err != nil {
		return dst, err
	}
	return q.top.appendSorted(dst), nil
}

// maxScore runs the query over cursors sorted by ascending bound, with ub
// their prefix sums.
func maxScore(ctx context.Context, order []*cursor, ub []float32, top *topK) error {
	n := len(order)
	fe := 0 // order[:fe] are non-essential: together they cannot reach the threshold
	theta := float32(0)
	below := func(i int) float32 {
		if i <= 0 {
			return 0
		}
		return ub[i-1]
	}
	for iter := 0; ; iter++ {
		if iter&4095 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		cur := uint32(endDoc)
		for _, c := range order[fe:] {
			cur = min(cur, c.doc)
		}
		if cur == endDoc {
			return nil
		}
		full := top.full()
		if full && fe == n-1 {
			// One essential term: skip its whole block when even its
			// best document there cannot beat the threshold.
			c := order[fe]
			if c.blockBound(c.bi)+below(fe) <= theta {
				c.load(c.bi + 1)
				continue
			}
		}
		score := float32(0)
		for _, c := range order[fe:] {
			if c.doc == cur {
				score += c.score()
				c.next()
			}
		}
		pruned := false
		for i := fe - 1; i >= 0; i-- {
			if full && score+ub[i] <= theta {
				pruned = true
				break
			}
			c := order[i]
			if full && score+c.blockMaxAt(cur)+below(i) <= theta {
				pruned = true
				break
			}
			c.nextGEQ(cur)
			if c.doc == cur {
				score += c.score()
			}
		}
		if pruned || (full && score <= theta) {
			continue
		}
		top.push(Hit{Doc: cur, Score: score})
		if top.full() {
			theta = top.threshold()
			for fe < n && ub[fe] <= theta {
				fe++
			}
			if fe == n {
				return nil
			}
		}
	}
}
