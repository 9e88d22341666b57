package retrieval

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestPackBitsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for w := uint8(0); w <= 32; w++ {
		for _, n := range []int{1, 7, 64, 127, 128} {
			vals := make([]uint32, n)
			for i := range vals {
				if w > 0 {
					vals[i] = uint32(rng.Uint64() & (1<<w - 1))
				}
			}
			buf := packBits(nil, vals, w)
			if len(buf) != packedLen(n, w) {
				t.Fatalf("w=%d n=%d: %d bytes, want %d", w, n, len(buf), packedLen(n, w))
			}
			buf = append(buf, make([]byte, postingsPad)...)
			got := make([]uint32, n)
			unpackBits(got, buf, w)
			if !slices.Equal(got, vals) {
				t.Fatalf("w=%d n=%d: round trip differs", w, n)
			}
		}
	}
}

func TestBlockRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		prev   int64
		n      int
		maxGap int
	}{{-1, 128, 1}, {-1, 1, 1}, {99, 50, 1000}, {5, 128, 1 << 20}} {
		docs := make([]uint32, tc.n)
		tfs := make([]uint32, tc.n)
		d := tc.prev
		for i := range docs {
			d += 1 + int64(rng.IntN(tc.maxGap))
			docs[i] = uint32(d)
			tfs[i] = 1 + uint32(rng.IntN(300))
		}
		buf := encodeBlock(nil, docs, tfs, tc.prev, make([]uint32, blockSize))
		buf = append(buf, make([]byte, postingsPad)...)
		gotDocs := make([]uint32, tc.n)
		gotTFs := make([]uint32, tc.n)
		decodeDocs(gotDocs, buf, tc.prev)
		decodeTFs(gotTFs, buf)
		if !slices.Equal(gotDocs, docs) || !slices.Equal(gotTFs, tfs) {
			t.Fatalf("%+v: block round trip differs", tc)
		}
	}
}

func BenchmarkDecodeBlock(b *testing.B) {
	docs := make([]uint32, blockSize)
	tfs := make([]uint32, blockSize)
	for i := range docs {
		docs[i] = uint32(i * 37)
		tfs[i] = uint32(1 + i%5)
	}
	buf := append(encodeBlock(nil, docs, tfs, -1, make([]uint32, blockSize)), make([]byte, postingsPad)...)
	b.ReportAllocs()
	for b.Loop() {
		decodeDocs(docs, buf, -1)
		decodeTFs(tfs, buf)
	}
}
