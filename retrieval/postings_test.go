package retrieval

import (
	"errors"
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
			if err := unpackBits(got, buf, w); err != nil {
				t.Fatal(err)
			}
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
		if err := decodeDocs(gotDocs, buf, tc.prev, docs[tc.n-1]); err != nil {
			t.Fatal(err)
		}
		if err := decodeTFs(gotTFs, buf); err != nil {
			t.Fatal(err)
		}
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
		decodeDocs(docs, buf, -1, uint32((blockSize-1)*37))
		decodeTFs(tfs, buf)
	}
}

// FuzzDecodeBlock feeds arbitrary bytes to the block decoder, as a damaged
// postings.dat would: it must return errCorruptBlock or documents inside
// (prevLast, lastDoc], never panic or read out of bounds.
func FuzzDecodeBlock(f *testing.F) {
	docs := []uint32{3, 9, 10, 400}
	good := encodeBlock(nil, docs, []uint32{1, 2, 3, 70000}, -1, make([]uint32, blockSize))
	f.Add(good, uint8(4), int64(-1), uint32(400))
	f.Add(good[:3], uint8(4), int64(-1), uint32(400))
	f.Add([]byte{33, 0, 1, 2, 3}, uint8(1), int64(5), uint32(9))
	f.Add([]byte{255, 255}, uint8(128), int64(-1), uint32(0))
	f.Add([]byte{}, uint8(1), int64(-1), uint32(0))
	f.Fuzz(func(t *testing.T, src []byte, n uint8, prev int64, last uint32) {
		n = n%blockSize + 1
		if prev < -1 || prev >= int64(last) {
			return // load() refuses such metadata before decoding
		}
		out := make([]uint32, n)
		err := decodeDocs(out, src, prev, last)
		if err != nil {
			if !errors.Is(err, errCorruptBlock) {
				t.Fatalf("untyped error %v", err)
			}
		} else {
			p := prev
			for _, d := range out {
				if int64(d) <= p || d > last {
					t.Fatalf("decoded %v outside (%d, %d]", out, prev, last)
				}
				p = int64(d)
			}
		}
		if err := decodeTFs(out, src); err != nil && !errors.Is(err, errCorruptBlock) {
			t.Fatalf("untyped error %v", err)
		}
	})
}

// TestDecodeCorruptBlock: the bytes that used to panic (postings.go:103,
// "truncated postings block") now give an error.
func TestDecodeCorruptBlock(t *testing.T) {
	docs := []uint32{3, 9, 10, 400}
	good := append(encodeBlock(nil, docs, []uint32{1, 2, 3, 7}, -1, make([]uint32, blockSize)), make([]byte, postingsPad)...)
	out := make([]uint32, len(docs))
	if err := decodeDocs(out, good, -1, 400); err != nil || !slices.Equal(out, docs) {
		t.Fatalf("good block: %v %v", out, err)
	}
	for name, tc := range map[string]struct {
		src  []byte
		last uint32
	}{
		"truncated":   {good[:4], 400},
		"empty":       {nil, 400},
		"wide":        {append([]byte{40}, good[1:]...), 400},
		"wrong last":  {good, 401},
		"header only": {good[:2], 400},
		"huge gap":    {append([]byte{32, 0}, bytesOf(0xff, 40)...), 400},
	} {
		if err := decodeDocs(out, tc.src, -1, tc.last); !errors.Is(err, errCorruptBlock) {
			t.Errorf("%s: decodeDocs err %v, want errCorruptBlock", name, err)
		}
	}
	if err := decodeTFs(out, good[:3]); !errors.Is(err, errCorruptBlock) {
		t.Errorf("truncated tfs: %v", err)
	}
}

func bytesOf(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}
