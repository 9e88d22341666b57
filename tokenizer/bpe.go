package tokenizer

import (
	"container/heap"
	"hash/maphash"
	"math"
	"strings"
	"sync/atomic"
)

// merge is one entry of the merge table: the rank (position in the merges
// list, lower merges first) and the id of the merged token.
type merge struct {
	rank int32
	id   int32
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// bpeModel is the BPE model of a tokenizer.json: vocabulary, merges and the
// lookup tables the encoder needs.
type bpeModel struct {
	vocab   map[string]int // byte-level token string -> id, as in the file
	merges  []mergeRule    // in rank order, for Save
	ranks   rankTable
	byteIDs [256]int32 // id of each single byte's token, -1 when absent

	// sharedTargets is set when two merges produce the same token. HF's
	// queue then accepts a queued merge whose pair has changed into another
	// pair with the same result, so only the queue reproduces its output.
	sharedTargets bool

	unkID   int32 // replaces bytes that have no token; -1: drop them, as HF does without unk_token
	fuseUnk bool  // consecutive unknown bytes become one unk

	cache wordCache

	// whole maps the raw bytes of each vocab token to its id. When a piece
	// is itself a token, BPE usually ends at that token; whether it does is
	// checked once per token and remembered in wholeState, so the shortcut
	// gives exactly the ids that merging would.
	whole      map[string]int32
	wholeState []atomic.Uint32 // per id: 0 unknown, 1 BPE gives the token, 2 it does not
}

type mergeRule struct{ left, right string }

const (
	wholeUnknown uint32 = iota
	wholeYes
	wholeNo
)

// encodePiece appends the ids of one pre-tokenised piece (raw bytes).
// Short pieces go through the word cache: text repeats its words, and a hit
// costs one hash of the piece.
func (m *bpeModel) encodePiece(dst []int, piece string, sc *bpeScratch) []int {
	if len(piece) > maxCachedPiece || len(piece) == 1 {
		return m.encodeUncached(dst, piece, sc)
	}
	slot := m.cache.slot(piece)
	if e := slot.Load(); e != nil && e.key == piece {
		for _, id := range e.ids {
			dst = append(dst, int(id))
		}
		return dst
	}
	start := len(dst)
	dst = m.encodeUncached(dst, piece, sc)
	e := &cacheEntry{key: strings.Clone(piece), ids: make([]int32, len(dst)-start)}
	for i, id := range dst[start:] {
		e.ids[i] = int32(id)
	}
	slot.Store(e)
	return dst
}

const (
	maxCachedPiece = 48
	minWordCache   = 1 << 10 // entries; powers of two
	maxWordCache   = 1 << 16
)

// wordCache is a direct-mapped cache from piece to ids shared by all
// goroutines. Entries are immutable and swapped in whole through atomic
// pointers, so lookups take no lock; a collision just replaces the entry.
type wordCache struct {
	seed    maphash.Seed
	entries []atomic.Pointer[cacheEntry]
}

type cacheEntry struct {
	key string
	ids []int32
}

// newWordCache sizes the cache by the vocabulary: a small vocabulary comes
// with small test corpora, and 64k slots cost 512 kB up front.
func newWordCache(vocabSize int) wordCache {
	size := minWordCache
	for size < vocabSize && size < maxWordCache {
		size <<= 1
	}
	return wordCache{seed: maphash.MakeSeed(), entries: make([]atomic.Pointer[cacheEntry], size)}
}

func (c *wordCache) slot(piece string) *atomic.Pointer[cacheEntry] {
	return &c.entries[maphash.String(c.seed, piece)&uint64(len(c.entries)-1)]
}

func (m *bpeModel) encodeUncached(dst []int, piece string, scratch *bpeScratch) []int {
	if len(piece) == 1 {
		if id := m.byteIDs[piece[0]]; id >= 0 {
			return append(dst, int(id))
		}
		if m.unkID >= 0 {
			return append(dst, int(m.unkID))
		}
		return dst
	}
	if id, ok := m.whole[piece]; ok {
		switch m.wholeState[id].Load() {
		case wholeYes:
			return append(dst, int(id))
		case wholeUnknown:
			start := len(dst)
			dst = m.merge(dst, piece, scratch)
			state := wholeNo
			if len(dst)-start == 1 && dst[start] == int(id) {
				state = wholeYes
			}
			m.wholeState[id].Store(state)
			return dst
		}
	}
	return m.merge(dst, piece, scratch)
}

// bpeScratch is reusable memory for one encoding call.
type bpeScratch struct {
	ids     []int32
	ranks   []int32
	targets []int32
	syms    []symbol
	queue   mergeQueue
}

// heapThreshold is the piece length above which merging uses a priority
// queue (O(n log n)) instead of rescanning the pair list (O(n²), faster for
// the short pieces that make up almost all text).
const heapThreshold = 96

func (m *bpeModel) merge(dst []int, piece string, sc *bpeScratch) []int {
	ids := sc.ids[:0]
	lastUnk := false
	for i := 0; i < len(piece); i++ {
		id := m.byteIDs[piece[i]]
		switch {
		case id >= 0:
			ids = append(ids, id)
			lastUnk = false
		case m.unkID >= 0 && !(m.fuseUnk && lastUnk):
			ids = append(ids, m.unkID)
			lastUnk = true
		}
	}
	sc.ids = ids
	if len(ids) > heapThreshold || m.sharedTargets {
		return m.mergeHeap(dst, ids, sc)
	}
	return m.mergeScan(dst, ids, sc)
}

const noRank = math.MaxInt32

func (m *bpeModel) rankOf(a, b int32) merge { return m.ranks.get(pairKey(a, b)) }

// rankTable is an open-addressing hash table from token pair to merge. It
// is the innermost lookup of encoding, and a flat table of 16-byte entries
// probes about twice as fast as a Go map.
type rankTable struct {
	entries []rankEntry
	mask    uint64
}

type rankEntry struct {
	key uint64
	merge
}

// emptyPair cannot be a real key: token ids are below 2^24.
const emptyPair = ^uint64(0)

func newRankTable(n int) rankTable {
	size := 16
	for size < 3*n {
		size <<= 1
	}
	t := rankTable{entries: make([]rankEntry, size), mask: uint64(size - 1)}
	for i := range t.entries {
		t.entries[i].key = emptyPair
	}
	return t
}

func hashPair(k uint64) uint64 { return (k * 0x9E3779B97F4A7C15) >> 29 }

// put inserts or overwrites: a pair listed twice keeps its last rank, as in HF.
func (t *rankTable) put(k uint64, m merge) {
	for i := hashPair(k) & t.mask; ; i = (i + 1) & t.mask {
		e := &t.entries[i]
		if e.key == k || e.key == emptyPair {
			e.key, e.merge = k, m
			return
		}
	}
}

func (t *rankTable) get(k uint64) merge {
	if t.entries == nil {
		return merge{rank: noRank, id: -1}
	}
	for i := hashPair(k) & t.mask; ; i = (i + 1) & t.mask {
		e := &t.entries[i]
		if e.key == k {
			return e.merge
		}
		if e.key == emptyPair {
			return merge{rank: noRank, id: -1}
		}
	}
}

// mergeScan repeatedly merges the lowest-ranked adjacent pair, leftmost
// first, which is the order HF's priority queue produces.
func (m *bpeModel) mergeScan(dst []int, ids []int32, sc *bpeScratch) []int {
	n := len(ids)
	if n == 0 {
		return dst
	}
	ranks, targets := sc.ranks[:0], sc.targets[:0]
	for i := 0; i+1 < n; i++ {
		mg := m.rankOf(ids[i], ids[i+1])
		ranks = append(ranks, mg.rank)
		targets = append(targets, mg.id)
	}
	for n > 1 {
		best, bestRank := -1, int32(noRank)
		for i := 0; i < n-1; i++ {
			if ranks[i] < bestRank {
				best, bestRank = i, ranks[i]
			}
		}
		if best < 0 {
			break
		}
		ids[best] = targets[best]
		copy(ids[best+1:], ids[best+2:n])
		copy(ranks[best:], ranks[best+1:n-1])
		copy(targets[best:], targets[best+1:n-1])
		n--
		if best > 0 {
			mg := m.rankOf(ids[best-1], ids[best])
			ranks[best-1], targets[best-1] = mg.rank, mg.id
		}
		if best < n-1 {
			mg := m.rankOf(ids[best], ids[best+1])
			ranks[best], targets[best] = mg.rank, mg.id
		}
	}
	sc.ranks, sc.targets = ranks, targets
	for _, id := range ids[:n] {
		dst = append(dst, int(id))
	}
	return dst
}

// symbol is one node of the linked list that mergeHeap edits.
type symbol struct {
	id         int32
	prev, next int32
	gone       bool
}

type queued struct {
	rank, pos, id int32
}

type mergeQueue []queued

func (q mergeQueue) Len() int { return len(q) }
func (q mergeQueue) Less(i, j int) bool {
	if q[i].rank != q[j].rank {
		return q[i].rank < q[j].rank
	}
	return q[i].pos < q[j].pos
}
func (q mergeQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *mergeQueue) Push(x any)   { *q = append(*q, x.(queued)) }
func (q *mergeQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// mergeHeap is HF's algorithm: a queue of candidate merges ordered by
// (rank, position); stale entries are skipped when popped.
func (m *bpeModel) mergeHeap(dst []int, ids []int32, sc *bpeScratch) []int {
	n := len(ids)
	syms := sc.syms[:0]
	for i, id := range ids {
		syms = append(syms, symbol{id: id, prev: int32(i - 1), next: int32(i + 1)})
	}
	syms[n-1].next = -1
	q := sc.queue[:0]
	for i := 0; i+1 < n; i++ {
		if mg := m.rankOf(ids[i], ids[i+1]); mg.rank != noRank {
			q = append(q, queued{rank: mg.rank, pos: int32(i), id: mg.id})
		}
	}
	heap.Init(&q)
	for q.Len() > 0 {
		top := heap.Pop(&q).(queued)
		cur := &syms[top.pos]
		if cur.gone || cur.next < 0 {
			continue
		}
		right := &syms[cur.next]
		if mg := m.rankOf(cur.id, right.id); mg.id != top.id {
			continue // the pair changed since this entry was queued (HF compares results only)
		}
		cur.id = top.id
		right.gone = true
		cur.next = right.next
		if cur.next >= 0 {
			syms[cur.next].prev = top.pos
		}
		if cur.prev >= 0 {
			if mg := m.rankOf(syms[cur.prev].id, cur.id); mg.rank != noRank {
				heap.Push(&q, queued{rank: mg.rank, pos: cur.prev, id: mg.id})
			}
		}
		if cur.next >= 0 {
			if mg := m.rankOf(cur.id, syms[cur.next].id); mg.rank != noRank {
				heap.Push(&q, queued{rank: mg.rank, pos: top.pos, id: mg.id})
			}
		}
	}
	sc.syms, sc.queue = syms, q
	for i := int32(0); i >= 0; i = syms[i].next {
		dst = append(dst, int(syms[i].id))
	}
	return dst
}
