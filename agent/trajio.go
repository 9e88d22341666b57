package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// TrajectorySchema is the version of the JSON record; readers reject
// records from a newer schema.
const TrajectorySchema = 1

// MaxRecordBytes bounds one serialised trajectory when reading, so a
// corrupt file cannot exhaust memory.
const MaxRecordBytes = 1 << 30

// ErrTornRecord says the last record of a file is incomplete (the writer
// was killed mid-write); every record before it was read.
var ErrTornRecord = errors.New("last trajectory record is incomplete")

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// Writer writes trajectories, one JSON object per line. Compressed output
// writes every line as its own zstd frame in a single write, so a process
// killed mid-run leaves at most a torn last record; concatenated frames are
// a valid .zst stream. Safe for concurrent use.
type Writer struct {
	mu       sync.Mutex
	w        io.Writer
	enc      *zstd.Encoder
	buf      bytes.Buffer
	frame    []byte
	file     *os.File
	tmp      string // Create: renamed to final on Close
	final    string
	closed   bool
	compress bool
}

// NewWriter writes to w; compressed selects .jsonl.zst framing.
func NewWriter(w io.Writer, compressed bool) (*Writer, error) {
	tw := &Writer{w: w, compress: compressed}
	if compressed {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("trajectory writer: %w", err)
		}
		tw.enc = enc
	}
	return tw, nil
}

// Create writes a new file at path (".zst" suffix: compressed). The file
// appears under its name only when Close succeeds (temp file + rename).
func Create(path string) (*Writer, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	w, err := NewWriter(f, strings.HasSuffix(path, ".zst"))
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	w.file, w.tmp, w.final = f, f.Name(), path
	return w, nil
}

// Append opens path for appending (creating it if needed): for runs that
// resume. Each record is one write, so records never interleave.
func Append(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s for appending: %w", path, err)
	}
	w, err := NewWriter(f, strings.HasSuffix(path, ".zst"))
	if err != nil {
		f.Close()
		return nil, err
	}
	w.file = f
	return w, nil
}

// Write appends one trajectory.
func (w *Writer) Write(t *Trajectory) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("trajectory writer is closed")
	}
	w.buf.Reset()
	rec := *t
	rec.Schema = TrajectorySchema
	enc := json.NewEncoder(&w.buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&rec); err != nil { // Encode ends the line
		return fmt.Errorf("encode trajectory %s: %w", t.ID, err)
	}
	out := w.buf.Bytes()
	if w.compress {
		w.frame = w.enc.EncodeAll(out, w.frame[:0])
		out = w.frame
	}
	if _, err := w.w.Write(out); err != nil {
		return fmt.Errorf("write trajectory %s: %w", t.ID, err)
	}
	return nil
}

// Sync flushes a file-backed writer to stable storage.
func (w *Writer) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.file == nil {
		return nil
	}
	return w.file.Sync()
}

// Close finishes the output; for Create it syncs and renames the file into
// place, for Append it syncs and closes it.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if w.enc != nil {
		w.enc.Close()
	}
	if w.file == nil {
		return nil
	}
	err := w.file.Sync()
	if cerr := w.file.Close(); err == nil {
		err = cerr
	}
	if w.tmp != "" {
		if err == nil {
			err = os.Rename(w.tmp, w.final)
		}
		if err != nil {
			os.Remove(w.tmp)
		}
	}
	if err != nil {
		return fmt.Errorf("close trajectory file: %w", err)
	}
	return nil
}

// CorruptError reports a damaged record that a Reader skipped: a zstd
// frame that does not decode or a line that is not a trajectory, followed
// by readable data. Next goes on with the record after it, so one bad
// frame costs only the records inside it.
type CorruptError struct {
	Offset int64 // byte offset in the file where the damaged record starts
	Record int   // 1-based number of the record (counting damaged ones)
	Err    error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("record %d at byte offset %d is damaged: %v", e.Record, e.Offset, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// Reader reads trajectories written by Writer, compressed or not (it
// looks at the first bytes). Compressed input that can be read at offsets
// (a file) is read frame by frame, so a damaged frame is reported as a
// CorruptError and skipped; other input is decoded as one stream.
type Reader struct {
	br     *bufio.Reader // line source: the file, or a stream decoder
	dec    *zstd.Decoder
	frames *frameReader // frame by frame (compressed files)
	file   *os.File
	line   int
	off    int64 // end of the last whole record (plain files)
}

// NewReader reads from r.
func NewReader(r io.Reader) (*Reader, error) {
	var start int64
	ra, seekable := r.(interface {
		io.ReaderAt
		io.Seeker
	})
	if seekable {
		pos, err := ra.Seek(0, io.SeekCurrent)
		if err != nil {
			seekable = false
		}
		start = pos
	}
	br := bufio.NewReaderSize(r, 1<<16)
	head, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read trajectories: %w", err)
	}
	tr := &Reader{br: br, off: start}
	if bytes.Equal(head, zstdMagic) {
		dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxRecordBytes))
		if err != nil {
			return nil, fmt.Errorf("read trajectories: %w", err)
		}
		tr.dec = dec
		if seekable {
			tr.frames = &frameReader{src: ra, off: start, dec: dec}
			tr.br = nil
		} else {
			if err := dec.Reset(br); err != nil {
				return nil, fmt.Errorf("read trajectories: %w", err)
			}
			tr.br = bufio.NewReaderSize(dec, 1<<16)
		}
	}
	return tr, nil
}

// Open reads the file at path.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open trajectories: %w", err)
	}
	r, err := NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.file = f
	return r, nil
}

// Offset is the byte offset just past the last whole record returned
// (compressed: past its frame): where a torn tail starts.
func (r *Reader) Offset() int64 {
	if r.frames != nil {
		return r.frames.good
	}
	return r.off
}

// Next returns the next trajectory; io.EOF at the end; an error that wraps
// ErrTornRecord when the last record is incomplete (a write cut short);
// or a *CorruptError for a damaged record, after which Next can be called
// again for the records that follow it.
func (r *Reader) Next() (*Trajectory, error) {
	if r.frames != nil {
		return r.nextFrame()
	}
	var line []byte
	start := r.off
	for {
		chunk, err := r.br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxRecordBytes {
			return nil, fmt.Errorf("trajectory record %d is larger than %d bytes", r.line+1, MaxRecordBytes)
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && len(bytes.TrimSpace(line)) == 0 {
			return nil, io.EOF
		}
		// A missing newline or a broken final frame: a torn write.
		return nil, fmt.Errorf("record %d at byte offset %d: %w (%v)", r.line+1, start, ErrTornRecord, err)
	}
	r.line++
	if r.dec == nil {
		r.off += int64(len(line))
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return r.Next()
	}
	t, err := decodeRecord(line, r.line)
	if err != nil && r.dec == nil && !errors.Is(err, errNewerSchema) {
		return nil, &CorruptError{Offset: start, Record: r.line, Err: err}
	}
	return t, err
}

var errNewerSchema = errors.New("newer schema")

func decodeRecord(line []byte, n int) (*Trajectory, error) {
	var t Trajectory
	if err := json.Unmarshal(line, &t); err != nil {
		return nil, fmt.Errorf("record %d: not a trajectory: %w", n, err)
	}
	if t.Schema > TrajectorySchema {
		return nil, fmt.Errorf("record %d: schema %d is newer than this program's %d; upgrade asearcher: %w", n, t.Schema, TrajectorySchema, errNewerSchema)
	}
	return &t, nil
}

// nextFrame returns the next record of a compressed file read frame by
// frame.
func (r *Reader) nextFrame() (*Trajectory, error) {
	fr := r.frames
	for {
		if line, ok := fr.popLine(); ok {
			r.line++
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			t, err := decodeRecord(line, r.line)
			if err != nil && !errors.Is(err, errNewerSchema) {
				return nil, &CorruptError{Offset: fr.frameStart, Record: r.line, Err: err}
			}
			return t, err
		}
		start, err := fr.next()
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			if len(fr.partial) > 0 {
				return nil, fmt.Errorf("record %d at byte offset %d: %w (no newline at the end)", r.line+1, fr.partialStart, ErrTornRecord)
			}
			return nil, io.EOF
		case errors.Is(err, ErrTornRecord):
			return nil, fmt.Errorf("record %d at byte offset %d: %w", r.line+1, start, err)
		default:
			r.line++
			return nil, &CorruptError{Offset: start, Record: r.line, Err: err}
		}
	}
}

// frameReader walks the zstd frames of a file by their headers. A frame
// that does not parse or decode is skipped by searching for the next frame
// magic after its start.
type frameReader struct {
	src        io.ReaderAt
	off        int64 // where the next frame starts
	good       int64 // end of the last frame whose records were all whole
	dec        *zstd.Decoder
	frame      []byte
	payload    []byte
	lines      []byte // decoded lines not yet returned
	partial    []byte // a decoded line continued in the next frame
	frameStart int64  // start of the frame the pending lines came from
	win        []byte // cached file bytes from winOff (see readAt)
	winBuf     []byte
	winOff     int64
	// partialStart is where the frame holding the start of partial begins.
	partialStart int64
}

// Block_Maximum_Size of RFC 8878.
const maxZstdBlock = 128 << 10

var errFrameTruncated = fmt.Errorf("%w (the file ends inside a zstd frame)", ErrTornRecord)

// popLine returns the next whole decoded line.
func (fr *frameReader) popLine() ([]byte, bool) {
	if len(fr.lines) == 0 {
		return nil, false
	}
	nl := bytes.IndexByte(fr.lines, '\n')
	if nl < 0 {
		if len(fr.partial) == 0 {
			fr.partialStart = fr.frameStart
		}
		fr.partial = append(fr.partial, fr.lines...)
		fr.lines = nil
		return nil, false
	}
	line := fr.lines[:nl+1]
	fr.lines = fr.lines[nl+1:]
	if len(fr.partial) > 0 {
		line = append(fr.partial, line...)
		fr.partial = nil
	}
	if len(fr.lines) == 0 && len(fr.partial) == 0 {
		fr.good = fr.off
	}
	return line, true
}

// next decodes the frame at fr.off into fr.lines and returns its start. On
// a damaged frame it moves fr.off to the next frame magic and returns the
// decoding error; on a frame cut short by the end of the file, or bytes
// with no frame after them, it returns an error wrapping ErrTornRecord.
func (fr *frameReader) next() (int64, error) {
	start := fr.off
	n, err := fr.frameLen(start)
	if errors.Is(err, io.EOF) && n == 0 {
		return start, io.EOF
	}
	if err == nil {
		if int64(cap(fr.frame)) < n {
			fr.frame = make([]byte, n)
		}
		fr.frame = fr.frame[:n]
		if _, err = fr.readAt(fr.frame, start); err == nil {
			fr.payload, err = fr.dec.DecodeAll(fr.frame, fr.payload[:0])
		}
		if err == nil {
			fr.off = start + n
			fr.frameStart = start
			fr.lines = fr.payload
			if len(fr.lines) == 0 && len(fr.partial) == 0 {
				fr.good = fr.off
			}
			return start, nil
		}
	}
	// Resynchronise at the next frame magic. None after a frame cut short
	// by the end of the file means a torn last write.
	next, found := fr.findMagic(start + 1)
	if !found {
		fr.off = next
		if errors.Is(err, ErrTornRecord) {
			return start, err
		}
		return start, fmt.Errorf("%w (%v, and nothing readable follows)", ErrTornRecord, err)
	}
	fr.off = next
	fr.partial = nil
	return start, fmt.Errorf("zstd frame: %w", err)
}

// frameLen parses the frame header and block headers at off and returns
// the frame's length in bytes. It returns (0, io.EOF) at the end of the
// file.
func (fr *frameReader) frameLen(off int64) (int64, error) {
	var hdr [18]byte
	n, err := fr.readAt(hdr[:], off)
	if n == 0 && errors.Is(err, io.EOF) {
		return 0, io.EOF
	}
	if n < 4 {
		return -1, errFrameTruncated
	}
	magic := uint32(hdr[0]) | uint32(hdr[1])<<8 | uint32(hdr[2])<<16 | uint32(hdr[3])<<24
	if magic&0xFFFFFFF0 == 0x184D2A50 { // skippable frame
		if n < 8 {
			return -1, errFrameTruncated
		}
		size := int64(uint32(hdr[4]) | uint32(hdr[5])<<8 | uint32(hdr[6])<<16 | uint32(hdr[7])<<24)
		return fr.checkEnd(off, 8+size)
	}
	if !bytes.Equal(hdr[:4], zstdMagic) {
		return -1, errors.New("no zstd frame magic")
	}
	if n < 5 {
		return -1, errFrameTruncated
	}
	fhd := hdr[4]
	if fhd&0x08 != 0 {
		return -1, errors.New("reserved bit set in the frame header")
	}
	single := fhd&0x20 != 0
	size := int64(5)
	if !single {
		size++ // window descriptor
	}
	size += []int64{0, 1, 2, 4}[fhd&3]
	fcsLen := []int64{0, 2, 4, 8}[fhd>>6]
	if fhd>>6 == 0 && single {
		fcsLen = 1
	}
	if size+fcsLen > int64(n) {
		return -1, errFrameTruncated
	}
	var fcs uint64
	for i := fcsLen - 1; i >= 0; i-- {
		fcs = fcs<<8 | uint64(hdr[size+i])
	}
	if fcsLen == 2 {
		fcs += 256
	}
	size += fcsLen
	var bh [3]byte
	blocks := uint64(0)
	for {
		if k, _ := fr.readAt(bh[:], off+size); k < 3 {
			return -1, errFrameTruncated
		}
		b := uint32(bh[0]) | uint32(bh[1])<<8 | uint32(bh[2])<<16
		last, typ, bsize := b&1 == 1, (b>>1)&3, int64(b>>3)
		size += 3
		switch typ {
		case 0, 2:
			if bsize > maxZstdBlock {
				return -1, fmt.Errorf("block of %d bytes exceeds the zstd maximum", bsize)
			}
			size += bsize
		case 1:
			size++
		case 3:
			return -1, errors.New("reserved zstd block type")
		}
		if size > MaxRecordBytes {
			return -1, fmt.Errorf("zstd frame larger than %d bytes", MaxRecordBytes)
		}
		blocks++
		if last {
			break
		}
	}
	// Each block regenerates at most Block_Maximum_Size bytes: a content
	// size beyond that is damage, and would make the decoder allocate it.
	if fcsLen > 0 && fcs > blocks*maxZstdBlock {
		return -1, fmt.Errorf("frame content size %d does not fit its %d blocks", fcs, blocks)
	}
	if fhd&0x04 != 0 {
		size += 4 // content checksum
	}
	return fr.checkEnd(off, size)
}

// readAt is ReadAt through a window of the file, so walking small frames
// costs one system call per window rather than several per record.
func (fr *frameReader) readAt(p []byte, off int64) (int, error) {
	end := fr.winOff + int64(len(fr.win))
	if off < fr.winOff || off+int64(len(p)) > end {
		size := max(len(p), 1<<20)
		if cap(fr.winBuf) < size {
			fr.winBuf = make([]byte, size)
		}
		n, err := fr.src.ReadAt(fr.winBuf[:size], off)
		fr.win, fr.winOff = fr.winBuf[:n], off
		if n < len(p) {
			copy(p, fr.win)
			if err == nil {
				err = io.EOF
			}
			return n, err
		}
	}
	return copy(p, fr.win[off-fr.winOff:]), nil
}

// checkEnd confirms the file holds size bytes from off.
func (fr *frameReader) checkEnd(off, size int64) (int64, error) {
	var b [1]byte
	if k, _ := fr.readAt(b[:], off+size-1); k != 1 {
		return -1, errFrameTruncated
	}
	return size, nil
}

// findMagic returns the offset of the next zstd frame magic at or after
// from, or the end of the file and false.
func (fr *frameReader) findMagic(from int64) (int64, bool) {
	buf := make([]byte, 64<<10)
	for {
		n, err := fr.readAt(buf, from)
		if i := bytes.Index(buf[:n], zstdMagic); i >= 0 {
			return from + int64(i), true
		}
		if err != nil || n < len(zstdMagic) {
			return from + int64(n), false
		}
		from += int64(n - len(zstdMagic) + 1)
	}
}

// Close releases the reader.
func (r *Reader) Close() error {
	if r.dec != nil {
		r.dec.Close()
	}
	if r.file != nil {
		return r.file.Close()
	}
	return nil
}

// ReadFile reads every trajectory of a file. A torn last record is
// dropped and reported with ErrTornRecord alongside the records read.
func ReadFile(path string) ([]*Trajectory, error) {
	r, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []*Trajectory
	for {
		t, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, t)
	}
}
