package retrieval

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"unsafe"
)

// errCorruptBlock is wrapped by every decoding error: the bytes of a block
// disagree with its metadata (a damaged or truncated index).
var errCorruptBlock = errors.New("corrupt postings block")

// Postings are stored in blocks of blockSize documents. A block is
//
//	docBits u8 | tfBits u8 | doc gaps, bit-packed | tf-1, bit-packed
//
// where gap i is doc[i] - doc[i-1] - 1 (the first gap is taken from the last
// document of the previous block, or from -1). Every block has a metadata
// record (blockMeta) with its last document and score bounds, so a cursor
// can skip a block without decoding it and the query can skip blocks that
// cannot reach the top k (block-max pruning).
const blockSize = 128

// postingsPad is the zero padding after the last block: the unpacker reads
// 8 bytes at a time and may look past a block's end.
const postingsPad = 8

// blockMeta is the on-disk record of one block (24 bytes, little-endian).
type blockMeta struct {
	Offset  uint64  // byte offset of the block in postings.dat
	LastDoc uint32  // last document of the block
	MaxTF   float32 // max BM25 tf-part in the block with the build's k1, b
	TopTF   uint32  // largest tf in the block
	MinLen  uint32  // shortest document in the block
}

// termMeta is the on-disk record of one term (16 bytes).
type termMeta struct {
	DF         uint32  // documents containing the term
	FirstBlock uint32  // index of its first blockMeta
	MaxTF      float32 // max tf-part over all its postings (build k1, b)
	TopTF      uint32  // largest tf
}

// bm25Params are the document-side constants of BM25 in the form the inner
// loop uses: tfPart(tf, dl) = tf·(k1+1) / (tf + c0 + c1·dl).
type bm25Params struct {
	k1p1, c0, c1 float32
}

func newBM25Params(k1, b, avgdl float64) bm25Params {
	if avgdl <= 0 {
		avgdl = 1
	}
	return bm25Params{
		k1p1: float32(k1 + 1),
		c0:   float32(k1 * (1 - b)),
		c1:   float32(k1 * b / avgdl),
	}
}

func (p bm25Params) tfPart(tf, dl uint32) float32 {
	f := float32(tf)
	return f * p.k1p1 / (f + p.c0 + p.c1*float32(dl))
}

// idf is Lucene's BM25 idf, log(1 + (N - df + 0.5) / (df + 0.5)), which is
// never negative (Robertson's original can be for very common terms).
func idf(n, df uint64) float64 {
	return math.Log(1 + (float64(n)-float64(df)+0.5)/(float64(df)+0.5))
}

func bitWidth(max uint32) uint8 { return uint8(bits.Len32(max)) }

// packBits appends vals packed at width w bits each (little-endian bit order).
func packBits(dst []byte, vals []uint32, w uint8) []byte {
	if w == 0 {
		return dst
	}
	var acc uint64
	var n uint8
	for _, v := range vals {
		acc |= uint64(v) << n
		n += w
		for n >= 8 {
			dst = append(dst, byte(acc))
			acc >>= 8
			n -= 8
		}
	}
	if n > 0 {
		dst = append(dst, byte(acc))
	}
	return dst
}

func packedLen(n int, w uint8) int { return (n*int(w) + 7) / 8 }

// unpackBits fills dst with len(dst) values of width w from src, which must
// have 8 readable bytes past the packed data (see postingsPad).
func unpackBits(dst []uint32, src []byte, w uint8) error {
	if w == 0 {
		clear(dst)
		return nil
	}
	if w > 32 {
		return fmt.Errorf("%w: bit width %d", errCorruptBlock, w)
	}
	if need := packedLen(len(dst), w) + postingsPad - 1; len(src) < need {
		return fmt.Errorf("%w: %d bytes left, block needs %d", errCorruptBlock, len(src), need)
	}
	// Unaligned 8-byte loads (fine on the little-endian platforms we
	// support) without bounds checks: the length check above covers them.
	mask := uint64(1)<<w - 1
	base := unsafe.Pointer(unsafe.SliceData(src))
	pos := uint(0)
	for i := range dst {
		v := *(*uint64)(unsafe.Add(base, pos>>3))
		dst[i] = uint32((v >> (pos & 7)) & mask)
		pos += uint(w)
	}
	return nil
}

// encodeBlock appends one block of docs (ascending, after prevLast) and tfs.
func encodeBlock(dst []byte, docs, tfs []uint32, prevLast int64, scratch []uint32) []byte {
	gaps := scratch[:len(docs)]
	var maxGap, maxTF uint32
	prev := prevLast
	for i, d := range docs {
		g := uint32(int64(d) - prev - 1)
		gaps[i] = g
		maxGap |= g
		prev = int64(d)
		maxTF |= tfs[i] - 1
	}
	dw, tw := bitWidth(maxGap), bitWidth(maxTF)
	dst = append(dst, dw, tw)
	dst = packBits(dst, gaps, dw)
	for i, tf := range tfs {
		gaps[i] = tf - 1
	}
	return packBits(dst, gaps, tw)
}

// decodeDocs decodes the documents of the block at src into docs. The
// block must end on lastDoc, its metadata's last document: with gaps never
// negative that makes every decoded document lie in (prevLast, lastDoc], so
// corrupt bytes cannot yield a document outside the index.
func decodeDocs(docs []uint32, src []byte, prevLast int64, lastDoc uint32) error {
	if len(src) < 2 {
		return fmt.Errorf("%w: %d bytes left, want a block header", errCorruptBlock, len(src))
	}
	if err := unpackBits(docs, src[2:], src[0]); err != nil {
		return err
	}
	d := uint64(prevLast + 1)
	for i, g := range docs {
		d += uint64(g)
		docs[i] = uint32(d)
		d++
	}
	if len(docs) > 0 && d-1 != uint64(lastDoc) {
		return fmt.Errorf("%w: documents end at %d, metadata says %d", errCorruptBlock, d-1, lastDoc)
	}
	return nil
}

// decodeTFs decodes the term frequencies of the block at src into tfs.
func decodeTFs(tfs []uint32, src []byte) error {
	if len(src) < 2 {
		return fmt.Errorf("%w: %d bytes left, want a block header", errCorruptBlock, len(src))
	}
	off := 2 + packedLen(len(tfs), src[0])
	if off > len(src) {
		return fmt.Errorf("%w: %d bytes left, block needs %d", errCorruptBlock, len(src), off)
	}
	if err := unpackBits(tfs, src[off:], src[1]); err != nil {
		return err
	}
	for i := range tfs {
		tfs[i]++
	}
	return nil
}

// blockLen is the encoded size of a block of n postings whose header is
// at src (without the padding).
func blockLen(src []byte, n int) int {
	return 2 + packedLen(n, src[0]) + packedLen(n, src[1])
}
