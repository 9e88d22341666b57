package corpus

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/asearcher/asearcher/internal/atomicfile"
)

// A store directory holds a corpus in the form the server reads:
//
//	rows.jsonl  every normalised row, one per line (itself a valid corpus)
//	rows.off    n+1 little-endian uint64 offsets of the rows in rows.jsonl
//	ids.kix     key index id → ordinal
//	urls.kix    key index url → ordinals
//	store.json  StoreMeta
//
// Ordinals are dense, 0-based and follow the corpus order; they are the
// document numbers of the search indexes.
const (
	rowsFile      = "rows.jsonl"
	offsetsFile   = "rows.off"
	idsFile       = "ids.kix"
	urlsFile      = "urls.kix"
	storeMetaFile = "store.json"
	storeVersion  = 1
)

// MaxPassages is the most passages one store holds (ordinals are uint32).
const MaxPassages = 1<<32 - 2

// StoreMeta describes a store.
type StoreMeta struct {
	Version int       `json:"version"`
	Count   int64     `json:"count"`
	Source  string    `json:"source,omitempty"`
	Skipped int64     `json:"skipped,omitempty"`
	Bytes   int64     `json:"bytes"`
	Created time.Time `json:"created"`
}

// StoreWriter appends passages to a new store. Files are renamed into
// place atomically but not fsynced; call SyncFS when durability matters.
type StoreWriter struct {
	dir      string
	rows     *os.File
	rowsBuf  *bufio.Writer
	offs     *os.File
	offsBuf  *bufio.Writer
	ids      *KeyIndexWriter
	urls     *KeyIndexWriter
	offset   uint64
	count    uint64
	finished bool
}

// CreateStore starts a store in dir (created if needed; existing store files
// are replaced when Finish succeeds).
func CreateStore(dir string) (*StoreWriter, error) {
	if !littleEndianHost() {
		return nil, errors.New("corpus store: big-endian hosts are not supported")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create store: %w", err)
	}
	w := &StoreWriter{dir: dir, ids: NewKeyIndexWriter(dir), urls: NewKeyIndexWriter(dir)}
	var err error
	if w.rows, err = os.Create(filepath.Join(dir, rowsFile+".tmp")); err != nil {
		return nil, fmt.Errorf("create store: %w", err)
	}
	if w.offs, err = os.Create(filepath.Join(dir, offsetsFile+".tmp")); err != nil {
		w.rows.Close()
		os.Remove(w.rows.Name())
		return nil, fmt.Errorf("create store: %w", err)
	}
	w.rowsBuf = bufio.NewWriterSize(w.rows, 1<<20)
	w.offsBuf = bufio.NewWriterSize(w.offs, 64<<10)
	if err := w.writeOffset(); err != nil {
		w.Abort()
		return nil, err
	}
	return w, nil
}

func (w *StoreWriter) writeOffset() error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], w.offset)
	_, err := w.offsBuf.Write(b[:])
	return err
}

// Add appends a passage and returns its ordinal.
func (w *StoreWriter) Add(p *Passage) (uint32, error) {
	if w.count >= MaxPassages {
		return 0, fmt.Errorf("corpus store: more than %d passages", uint64(MaxPassages))
	}
	ord := uint32(w.count)
	row := p.Row
	if bytes.IndexByte(row, '\n') >= 0 {
		return 0, fmt.Errorf("passage %q: row contains a raw newline", p.ID)
	}
	if _, err := w.rowsBuf.Write(row); err != nil {
		return 0, fmt.Errorf("write store: %w", err)
	}
	if err := w.rowsBuf.WriteByte('\n'); err != nil {
		return 0, fmt.Errorf("write store: %w", err)
	}
	w.offset += uint64(len(row)) + 1
	if err := w.writeOffset(); err != nil {
		return 0, fmt.Errorf("write store: %w", err)
	}
	if err := w.ids.Add(p.ID, ord); err != nil {
		return 0, err
	}
	if p.URL != "" {
		if err := w.urls.Add(p.URL, ord); err != nil {
			return 0, err
		}
	}
	w.count++
	return ord, nil
}

// Len is the number of passages added so far.
func (w *StoreWriter) Len() int { return int(w.count) }

// Finish writes the lookup tables and metadata.
func (w *StoreWriter) Finish(meta StoreMeta) error {
	if w.finished {
		return errors.New("corpus store: Finish called twice")
	}
	w.finished = true
	ok := false
	defer func() {
		if !ok {
			w.cleanup()
		}
	}()
	for _, step := range []struct {
		buf *bufio.Writer
		f   *os.File
	}{{w.rowsBuf, w.rows}, {w.offsBuf, w.offs}} {
		if err := step.buf.Flush(); err != nil {
			return fmt.Errorf("write store: %w", err)
		}
		if err := step.f.Close(); err != nil {
			return fmt.Errorf("write store: %w", err)
		}
	}
	if err := w.ids.Finish(filepath.Join(w.dir, idsFile)); err != nil {
		return fmt.Errorf("write id table: %w", err)
	}
	if err := w.urls.Finish(filepath.Join(w.dir, urlsFile)); err != nil {
		return fmt.Errorf("write url table: %w", err)
	}
	for _, name := range []string{rowsFile, offsetsFile} {
		if err := os.Rename(filepath.Join(w.dir, name+".tmp"), filepath.Join(w.dir, name)); err != nil {
			return fmt.Errorf("write store: %w", err)
		}
	}
	meta.Version = storeVersion
	meta.Count = int64(w.count)
	meta.Bytes = int64(w.offset)
	if meta.Created.IsZero() {
		meta.Created = time.Now().UTC()
	}
	if err := writeJSON(filepath.Join(w.dir, storeMetaFile), meta, false); err != nil {
		return err
	}
	ok = true
	return nil
}

// Abort removes the files written so far.
func (w *StoreWriter) Abort() {
	if !w.finished {
		w.finished = true
		w.cleanup()
	}
}

func (w *StoreWriter) cleanup() {
	w.rows.Close()
	w.offs.Close()
	os.Remove(w.rows.Name())
	os.Remove(w.offs.Name())
	w.ids.Abort()
	w.urls.Abort()
}

// WriteJSONFile writes v as indented JSON to path atomically and durably.
func WriteJSONFile(path string, v any) error { return writeJSON(path, v, true) }

// WriteJSONFileUnsynced is WriteJSONFile without the fsync, for files of a
// larger build that is flushed once at its end (see SyncFS).
func WriteJSONFileUnsynced(path string, v any) error { return writeJSON(path, v, false) }

func writeJSON(path string, v any, sync bool) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(path, append(data, '\n'), sync)
}

func writeFile(path string, data []byte, sync bool) error {
	if sync {
		return atomicfile.WriteFile(path, data)
	}
	return atomicfile.WriteFileDeferSync(path, data)
}

// Store is an opened store: rows are read from the mapped file on demand.
type Store struct {
	meta    StoreMeta
	rows    *Mapped
	offsMap *Mapped
	offsets []uint64
	ids     *KeyIndex
	urls    *KeyIndex
}

// OpenStore maps a store directory. Opening reads no rows.
func OpenStore(dir string) (_ *Store, err error) {
	if !littleEndianHost() {
		return nil, errors.New("corpus store: big-endian hosts are not supported")
	}
	s := &Store{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	data, err := os.ReadFile(filepath.Join(dir, storeMetaFile))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := json.Unmarshal(data, &s.meta); err != nil {
		return nil, fmt.Errorf("open store: %s: %w", storeMetaFile, err)
	}
	if s.meta.Version != storeVersion {
		return nil, fmt.Errorf("open store: version %d, want %d; rebuild the index", s.meta.Version, storeVersion)
	}
	if s.rows, err = MapFile(filepath.Join(dir, rowsFile)); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s.rows.adviseRandom()
	if s.offsMap, err = MapFile(filepath.Join(dir, offsetsFile)); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s.offsets = U64s(s.offsMap.Data)
	if int64(len(s.offsets)) != s.meta.Count+1 || s.offsets[len(s.offsets)-1] != uint64(len(s.rows.Data)) {
		return nil, fmt.Errorf("open store %s: offsets do not match rows (truncated copy?); rebuild the index", dir)
	}
	// Every row is at least its newline, so offsets strictly increase; one
	// pass (8 bytes a passage) makes Row safe for every ordinal below Len.
	if s.offsets[0] != 0 {
		return nil, fmt.Errorf("open store %s: %s starts at %d, want 0 (damaged copy?); rebuild the index", dir, offsetsFile, s.offsets[0])
	}
	for i := 1; i < len(s.offsets); i++ {
		if s.offsets[i] <= s.offsets[i-1] {
			return nil, fmt.Errorf("open store %s: %s: row %d ends at %d, before it starts at %d (damaged copy?); rebuild the index", dir, offsetsFile, i-1, s.offsets[i], s.offsets[i-1])
		}
	}
	if s.ids, err = OpenKeyIndex(filepath.Join(dir, idsFile)); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if s.urls, err = OpenKeyIndex(filepath.Join(dir, urlsFile)); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return s, nil
}

// Meta describes the store.
func (s *Store) Meta() StoreMeta { return s.meta }

// Len is the number of passages.
func (s *Store) Len() int { return int(s.meta.Count) }

// Row returns passage ord's JSON row. The slice aliases the mapped file: do
// not modify it, and do not use it after Close.
func (s *Store) Row(ord uint32) []byte {
	start, end := s.offsets[ord], s.offsets[ord+1]
	return s.rows.Data[start : end-1]
}

// Passage decodes passage ord.
func (s *Store) Passage(ord uint32) (Passage, error) {
	if int64(ord) >= s.meta.Count {
		return Passage{}, fmt.Errorf("passage %d out of range (store has %d)", ord, s.meta.Count)
	}
	row := s.Row(ord)
	p, err := ParseRow(row, int64(ord), RowOptions{})
	if err != nil {
		return Passage{}, fmt.Errorf("passage %d: corrupt store row: %w", ord, err)
	}
	p.Row = row
	return p, nil
}

// rowKeys reads the id and url of a stored row.
func rowKeys(row []byte) (id, url string, err error) {
	var r struct {
		ID  json.RawMessage `json:"id"`
		URL string          `json:"url"`
	}
	if err := json.Unmarshal(row, &r); err != nil {
		return "", "", err
	}
	id = string(bytes.TrimSpace(r.ID))
	if len(id) > 0 && id[0] == '"' {
		if err := json.Unmarshal(r.ID, &id); err != nil {
			return "", "", err
		}
	}
	return id, r.URL, nil
}

// LookupID finds the passage with this id.
func (s *Store) LookupID(id string) (uint32, bool) {
	var buf [4]uint32
	for _, ord := range s.ids.Candidates(HashKey(id), buf[:0]) {
		if int64(ord) >= s.meta.Count {
			continue // a damaged key index; never a valid passage
		}
		if rid, _, err := rowKeys(s.Row(ord)); err == nil && rid == id {
			return ord, true
		}
	}
	return 0, false
}

// LookupURL appends to dst the passages whose url is exactly u, in corpus
// order.
func (s *Store) LookupURL(u string, dst []uint32) []uint32 {
	start := len(dst)
	dst = s.urls.Candidates(HashKey(u), dst)
	kept := dst[:start]
	for _, ord := range dst[start:] {
		if int64(ord) >= s.meta.Count {
			continue // a damaged key index; never a valid passage
		}
		if _, ru, err := rowKeys(s.Row(ord)); err == nil && ru == u {
			kept = append(kept, ord)
		}
	}
	return kept
}

// Close unmaps the store's files.
func (s *Store) Close() error {
	// Both Close methods accept nil receivers, so a half-opened store closes.
	return errors.Join(s.rows.Close(), s.offsMap.Close(), s.ids.Close(), s.urls.Close())
}
