package corpus

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"unsafe"
)

// A key index maps string keys (passage ids, urls, terms) to uint32 values
// through 64-bit key hashes, on disk and memory-mapped:
//
//	header | bucket directory | sorted hashes | values
//
// The top bits of a hash pick a bucket; the directory gives the bucket's
// range in the sorted arrays, which holds one or two entries on average, so a
// lookup touches three cache lines whatever the size. Several values may
// share a key (the passages of one page share its url). A hash match is a
// candidate: callers confirm it against the stored key.

const (
	keyIndexMagic   = "ASKI"
	keyIndexVersion = 1
	keyIndexHeader  = 24
	// memEntries is how many entries a writer keeps in memory before it
	// spills to partition files, which bounds build memory for huge corpora.
	memEntries = 1 << 20
	partBits   = 6
)

// HashKey is the 64-bit hash used by key indexes: FNV-1a with a final
// avalanche so the top bits are well mixed.
func HashKey(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix64(h)
}

// HashKeyBytes is HashKey for a byte slice, without allocating.
func HashKeyBytes(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return mix64(h)
}

func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

type keyEntry struct {
	hash  uint64
	value uint32
}

func compareEntries(a, b keyEntry) int {
	if a.hash != b.hash {
		if a.hash < b.hash {
			return -1
		}
		return 1
	}
	return int(int64(a.value) - int64(b.value))
}

// KeyIndexWriter collects (key, value) pairs and writes a key index file.
type KeyIndexWriter struct {
	tmpDir string
	// memLimit is memEntries except in tests, which spill early.
	memLimit int
	mem      []keyEntry
	parts    []*os.File
	bufs     []*bufio.Writer
	n        uint64
}

// NewKeyIndexWriter starts an index; spill files go to tmpDir.
func NewKeyIndexWriter(tmpDir string) *KeyIndexWriter {
	return &KeyIndexWriter{tmpDir: tmpDir, memLimit: memEntries}
}

// Add records key → value.
func (w *KeyIndexWriter) Add(key string, value uint32) error {
	return w.AddHash(HashKey(key), value)
}

// AddHash records a pre-hashed key (see HashKey) → value.
func (w *KeyIndexWriter) AddHash(h uint64, value uint32) error {
	w.n++
	if w.parts == nil {
		w.mem = append(w.mem, keyEntry{h, value})
		if len(w.mem) < w.memLimit {
			return nil
		}
		if err := w.openParts(); err != nil {
			return err
		}
		for _, e := range w.mem {
			if err := w.spill(e); err != nil {
				return err
			}
		}
		w.mem = nil
		return nil
	}
	return w.spill(keyEntry{h, value})
}

func (w *KeyIndexWriter) openParts() error {
	w.parts = make([]*os.File, 1<<partBits)
	w.bufs = make([]*bufio.Writer, 1<<partBits)
	for i := range w.parts {
		f, err := os.CreateTemp(w.tmpDir, "keys-*.part")
		if err != nil {
			w.removeParts()
			return fmt.Errorf("key index spill: %w", err)
		}
		w.parts[i] = f
		w.bufs[i] = bufio.NewWriterSize(f, 64<<10)
	}
	return nil
}

func (w *KeyIndexWriter) spill(e keyEntry) error {
	var rec [12]byte
	binary.LittleEndian.PutUint64(rec[:8], e.hash)
	binary.LittleEndian.PutUint32(rec[8:], e.value)
	_, err := w.bufs[e.hash>>(64-partBits)].Write(rec[:])
	return err
}

func (w *KeyIndexWriter) removeParts() {
	for _, f := range w.parts {
		if f != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}
	w.parts, w.bufs = nil, nil
}

// Abort drops spill files.
func (w *KeyIndexWriter) Abort() { w.removeParts(); w.mem = nil }

// Len is the number of entries added.
func (w *KeyIndexWriter) Len() uint64 { return w.n }

// Finish writes the index to path atomically (not fsynced: see SyncFS).
func (w *KeyIndexWriter) Finish(path string) (err error) {
	defer w.removeParts()
	if w.n > 1<<32-1 {
		return fmt.Errorf("key index: %d entries exceed the 2^32 limit", w.n)
	}
	n := w.n
	dirBits := 0
	if n > 2 {
		dirBits = bits.Len64(n-1) - 1
	}
	nb := uint64(1) << dirBits
	dirOff := int64(keyIndexHeader)
	hashOff := align8(dirOff + int64(nb+1)*4)
	valOff := hashOff + int64(n)*8

	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("key index: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	var hdr [keyIndexHeader]byte
	copy(hdr[:4], keyIndexMagic)
	binary.LittleEndian.PutUint32(hdr[4:], keyIndexVersion)
	binary.LittleEndian.PutUint64(hdr[8:], n)
	binary.LittleEndian.PutUint32(hdr[16:], uint32(dirBits))
	if _, err := f.WriteAt(hdr[:], 0); err != nil {
		return err
	}
	dirW := bufio.NewWriterSize(io.NewOffsetWriter(f, dirOff), 64<<10)
	hashW := bufio.NewWriterSize(io.NewOffsetWriter(f, hashOff), 64<<10)
	valW := bufio.NewWriterSize(io.NewOffsetWriter(f, valOff), 64<<10)
	var idx, nextBucket uint64
	var buf [8]byte
	emit := func(e keyEntry) error {
		b := uint64(0)
		if dirBits > 0 {
			b = e.hash >> (64 - dirBits)
		}
		for ; nextBucket <= b; nextBucket++ {
			binary.LittleEndian.PutUint32(buf[:4], uint32(idx))
			if _, err := dirW.Write(buf[:4]); err != nil {
				return err
			}
		}
		binary.LittleEndian.PutUint64(buf[:], e.hash)
		if _, err := hashW.Write(buf[:]); err != nil {
			return err
		}
		binary.LittleEndian.PutUint32(buf[:4], e.value)
		if _, err := valW.Write(buf[:4]); err != nil {
			return err
		}
		idx++
		return nil
	}
	if w.parts == nil {
		slices.SortFunc(w.mem, compareEntries)
		for _, e := range w.mem {
			if err := emit(e); err != nil {
				return err
			}
		}
		w.mem = nil
	} else {
		for i, pf := range w.parts {
			entries, err := readPart(w.bufs[i], pf)
			if err != nil {
				return err
			}
			slices.SortFunc(entries, compareEntries)
			for _, e := range entries {
				if err := emit(e); err != nil {
					return err
				}
			}
		}
	}
	for ; nextBucket <= nb; nextBucket++ {
		binary.LittleEndian.PutUint32(buf[:4], uint32(idx))
		if _, err := dirW.Write(buf[:4]); err != nil {
			return err
		}
	}
	for _, bw := range []*bufio.Writer{dirW, hashW, valW} {
		if err := bw.Flush(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readPart(bw *bufio.Writer, f *os.File) ([]keyEntry, error) {
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(f.Name())
	if err != nil {
		return nil, err
	}
	entries := make([]keyEntry, 0, len(data)/12)
	for i := 0; i+12 <= len(data); i += 12 {
		entries = append(entries, keyEntry{binary.LittleEndian.Uint64(data[i:]), binary.LittleEndian.Uint32(data[i+8:])})
	}
	return entries, nil
}

func align8(x int64) int64 { return (x + 7) &^ 7 }

// KeyIndex is an opened key index file.
type KeyIndex struct {
	m       *Mapped
	dirBits uint
	dir     []uint32
	hashes  []uint64
	values  []uint32
}

// OpenKeyIndex maps a key index file.
func OpenKeyIndex(path string) (*KeyIndex, error) {
	m, err := MapFile(path)
	if err != nil {
		return nil, err
	}
	k, err := parseKeyIndex(m.Data)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	k.m = m
	return k, nil
}

func parseKeyIndex(data []byte) (*KeyIndex, error) {
	if len(data) < keyIndexHeader || string(data[:4]) != keyIndexMagic {
		return nil, errors.New("not a key index (bad magic)")
	}
	if v := binary.LittleEndian.Uint32(data[4:]); v != keyIndexVersion {
		return nil, fmt.Errorf("key index version %d, want %d", v, keyIndexVersion)
	}
	n := binary.LittleEndian.Uint64(data[8:])
	dirBits := uint(binary.LittleEndian.Uint32(data[16:]))
	if dirBits > 32 {
		return nil, errors.New("corrupt key index header")
	}
	nb := uint64(1) << dirBits
	hashOff := uint64(align8(keyIndexHeader + int64(nb+1)*4))
	if n > uint64(len(data))/12 || hashOff > uint64(len(data)) {
		return nil, fmt.Errorf("key index is %d bytes, too short for %d entries (truncated?)", len(data), n)
	}
	valOff := hashOff + n*8
	if valOff+n*4 != uint64(len(data)) {
		return nil, fmt.Errorf("key index is %d bytes, want %d (truncated?)", len(data), valOff+n*4)
	}
	k := &KeyIndex{
		dirBits: dirBits,
		dir:     U32s(data[keyIndexHeader : keyIndexHeader+(nb+1)*4]),
		hashes:  U64s(data[hashOff:valOff]),
		values:  U32s(data[valOff:]),
	}
	// Candidates trusts the directory's bucket bounds; check them once.
	if k.dir[0] != 0 || uint64(k.dir[nb]) != n {
		return nil, fmt.Errorf("key index directory spans %d..%d, want 0..%d (damaged?)", k.dir[0], k.dir[nb], n)
	}
	for i := uint64(1); i <= nb; i++ {
		if k.dir[i] < k.dir[i-1] {
			return nil, fmt.Errorf("key index directory decreases at bucket %d (damaged?)", i)
		}
	}
	return k, nil
}

// Candidates appends to dst the values whose key hash equals h.
func (k *KeyIndex) Candidates(h uint64, dst []uint32) []uint32 {
	b := uint64(0)
	if k.dirBits > 0 {
		b = h >> (64 - k.dirBits)
	}
	lo, hi := k.dir[b], k.dir[b+1]
	for i := lo; i < hi; i++ {
		if k.hashes[i] == h {
			dst = append(dst, k.values[i])
		} else if k.hashes[i] > h {
			break
		}
	}
	return dst
}

// Len is the number of entries.
func (k *KeyIndex) Len() int { return len(k.hashes) }

// Close unmaps the file.
func (k *KeyIndex) Close() error {
	if k == nil {
		return nil
	}
	return k.m.Close()
}

// U32s views little-endian bytes as []uint32 without copying. Index files are
// written little-endian and aligned, and the supported platforms are
// little-endian, so the view is exact.
func U32s(b []byte) []uint32 {
	if len(b) < 4 {
		return nil
	}
	return unsafe.Slice((*uint32)(unsafe.Pointer(&b[0])), len(b)/4)
}

// U64s views little-endian bytes as []uint64 without copying.
func U64s(b []byte) []uint64 {
	if len(b) < 8 {
		return nil
	}
	return unsafe.Slice((*uint64)(unsafe.Pointer(&b[0])), len(b)/8)
}

// F32s views little-endian bytes as []float32 without copying.
func F32s(b []byte) []float32 {
	if len(b) < 4 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

// littleEndianHost guards the unsafe views above.
func littleEndianHost() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}
