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

// Reader reads trajectories written by Writer, compressed or not (it
// looks at the first bytes).
type Reader struct {
	br   *bufio.Reader
	dec  *zstd.Decoder
	file *os.File
	line int
}

// NewReader reads from r.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read trajectories: %w", err)
	}
	tr := &Reader{br: br}
	if bytes.Equal(head, zstdMagic) {
		dec, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxRecordBytes))
		if err != nil {
			return nil, fmt.Errorf("read trajectories: %w", err)
		}
		tr.dec = dec
		tr.br = bufio.NewReaderSize(dec, 1<<16)
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

// Next returns the next trajectory, io.EOF at the end, or an error that
// wraps ErrTornRecord when the last record is incomplete.
func (r *Reader) Next() (*Trajectory, error) {
	var line []byte
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
		return nil, fmt.Errorf("record %d: %w (%v)", r.line+1, ErrTornRecord, err)
	}
	r.line++
	if len(bytes.TrimSpace(line)) == 0 {
		return r.Next()
	}
	var t Trajectory
	if err := json.Unmarshal(line, &t); err != nil {
		return nil, fmt.Errorf("record %d: not a trajectory: %w", r.line, err)
	}
	if t.Schema > TrajectorySchema {
		return nil, fmt.Errorf("record %d: schema %d is newer than this program's %d; upgrade asearcher", r.line, t.Schema, TrajectorySchema)
	}
	return &t, nil
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
