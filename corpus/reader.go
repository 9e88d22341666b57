package corpus

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
)

// Format names a corpus file layout.
type Format string

const (
	// FormatAuto picks by extension (.jsonl / .json, optionally .zst) and
	// falls back to sniffing the first bytes.
	FormatAuto Format = "auto"
	// FormatJSONL is one JSON object per line: {"id","contents"} or
	// {"id","title","text"} with an optional "url" and any other columns.
	FormatJSONL Format = "jsonl"
	// FormatJSON is one JSON document: an array of row objects, or an
	// object mapping title to a list of sentences (HotpotQA / HippoRAG).
	FormatJSON Format = "json"
)

// MaxRecordBytes bounds one record so a file without newlines cannot
// exhaust memory.
const MaxRecordBytes = 64 << 20

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// ReaderOptions configure a Reader.
type ReaderOptions struct {
	Format Format
	// SkipBad skips malformed records (counted by Skipped) instead of
	// failing on the first one.
	SkipBad bool
	Row     RowOptions
	// Logger receives one line per skipped record, up to 10; nil is quiet.
	Logger *slog.Logger
}

// Record is one undecoded row of a corpus file.
type Record struct {
	Data []byte
	// Index is the 0-based position among the file's records (blank lines
	// are not records); rows without an id get it as their id.
	Index int64
	// Line is the 1-based line of a JSONL record, or 0 inside a JSON document.
	Line int64
	// Offset is the byte offset of a record inside a JSON document.
	Offset int64
}

// Reader streams the passages of one corpus file.
type Reader struct {
	name    string
	opts    ReaderOptions
	closers []io.Closer
	counted *countingReader

	// JSONL state
	br   *bufio.Reader
	line int64
	long []byte

	// JSON document state
	dec      *json.Decoder
	inObject bool
	started  bool

	index   int64
	skipped int64
}

// OpenReader opens a corpus file. Reading is streaming: memory does not grow
// with the size of the file.
func OpenReader(path string, opts ReaderOptions) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open corpus: %w", err)
	}
	r, err := newReader(f, path, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closers = append(r.closers, f)
	return r, nil
}

// NewReader reads a corpus from r; name is used in error messages and, with
// FormatAuto, to pick the layout by extension.
func NewReader(r io.Reader, name string, opts ReaderOptions) (*Reader, error) {
	return newReader(r, name, opts)
}

func newReader(src io.Reader, name string, opts ReaderOptions) (*Reader, error) {
	rd := &Reader{name: name, opts: opts, counted: &countingReader{r: src}}
	br := bufio.NewReaderSize(rd.counted, 1<<20)
	var in io.Reader = br
	if head, _ := br.Peek(4); bytes.Equal(head, zstdMagic) {
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: zstd: %w", name, err)
		}
		rd.closers = append(rd.closers, closerFunc(func() error { zr.Close(); return nil }))
		in = zr
	}
	rd.br = bufio.NewReaderSize(in, 1<<20)
	format := opts.Format
	if format == "" || format == FormatAuto {
		format = detectFormat(name, rd.br)
	}
	switch format {
	case FormatJSONL:
	case FormatJSON:
		rd.dec = json.NewDecoder(rd.br)
	default:
		return nil, fmt.Errorf("%s: unknown corpus format %q (want auto, jsonl or json)", name, format)
	}
	return rd, nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

func detectFormat(name string, br *bufio.Reader) Format {
	base := strings.TrimSuffix(strings.ToLower(filepath.Base(name)), ".zst")
	switch {
	case strings.HasSuffix(base, ".jsonl"), strings.HasSuffix(base, ".ndjson"):
		return FormatJSONL
	case strings.HasSuffix(base, ".json"):
		return FormatJSON
	}
	// Unknown extension: a first line that is a whole JSON value means JSONL.
	head, _ := br.Peek(1 << 16)
	head = bytes.TrimLeft(head, " \t\r\n")
	if len(head) > 0 && head[0] == '[' {
		return FormatJSON
	}
	if i := bytes.IndexByte(head, '\n'); i >= 0 && json.Valid(head[:i]) {
		return FormatJSONL
	}
	return FormatJSON
}

// Close releases the file.
func (r *Reader) Close() error {
	var first error
	for i := len(r.closers) - 1; i >= 0; i-- {
		if err := r.closers[i].Close(); err != nil && first == nil {
			first = err
		}
	}
	r.closers = nil
	return first
}

// Name is the file name used in messages.
func (r *Reader) Name() string { return r.name }

// BytesRead is how many bytes of the (possibly compressed) file have been
// consumed; it is safe to call from another goroutine (progress bars).
func (r *Reader) BytesRead() int64 { return r.counted.n.Load() }

// Skipped counts records dropped by SkipBad.
func (r *Reader) Skipped() int64 { return r.skipped }

// Next returns the next passage, or io.EOF at the end of the file.
func (r *Reader) Next() (Passage, error) {
	for {
		rec, err := r.NextRecord()
		if err != nil {
			return Passage{}, err
		}
		p, err := ParseRow(rec.Data, rec.Index, r.opts.Row)
		if err != nil {
			if err := r.Bad(rec, err); err != nil {
				return Passage{}, err
			}
			continue
		}
		return p, nil
	}
}

// Bad handles a record that failed to parse: with SkipBad it is counted and
// nil is returned, otherwise the error names the file and line. Callers that
// parse records themselves (in parallel) report failures here, in order.
func (r *Reader) Bad(rec Record, err error) error {
	where := r.Where(rec)
	if !r.opts.SkipBad {
		return fmt.Errorf("%s: %w", where, err)
	}
	r.skipped++
	if r.opts.Logger != nil && r.skipped <= 10 {
		r.opts.Logger.Warn("skipping malformed corpus record", "where", where, "err", err)
	}
	return nil
}

// Where names a record's position for messages: file:line for JSONL.
func (r *Reader) Where(rec Record) string {
	if rec.Line > 0 {
		return fmt.Sprintf("%s:%d", r.name, rec.Line)
	}
	return fmt.Sprintf("%s: record %d (byte %d)", r.name, rec.Index, rec.Offset)
}

// NextRecord returns the next raw record, or io.EOF. Data is valid until the
// following call.
func (r *Reader) NextRecord() (Record, error) {
	if r.dec != nil {
		return r.nextDocumentRecord()
	}
	for {
		line, err := r.readLine()
		if err != nil {
			return Record{}, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		rec := Record{Data: line, Index: r.index, Line: r.line}
		r.index++
		return rec, nil
	}
}

func (r *Reader) readLine() ([]byte, error) {
	r.long = r.long[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		switch {
		case err == nil:
			r.line++
			if len(r.long) > 0 {
				r.long = append(r.long, chunk...)
				return r.long, nil
			}
			return chunk, nil
		case errors.Is(err, bufio.ErrBufferFull):
			if len(r.long)+len(chunk) > MaxRecordBytes {
				r.line++
				return nil, fmt.Errorf("%s:%d: line longer than %d MiB; is this a JSONL file?", r.name, r.line, MaxRecordBytes>>20)
			}
			r.long = append(r.long, chunk...)
		case errors.Is(err, io.EOF):
			if len(chunk) == 0 && len(r.long) == 0 {
				return nil, io.EOF
			}
			r.line++
			r.long = append(r.long, chunk...)
			return r.long, nil
		default:
			return nil, fmt.Errorf("%s:%d: read: %w", r.name, r.line+1, err)
		}
	}
}

func (r *Reader) nextDocumentRecord() (Record, error) {
	if !r.started {
		tok, err := r.dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return Record{}, io.EOF
			}
			return Record{}, fmt.Errorf("%s: not a JSON document: %w", r.name, err)
		}
		switch tok {
		case json.Delim('['):
		case json.Delim('{'):
			r.inObject = true
		default:
			return Record{}, fmt.Errorf("%s: want a JSON array of rows or an object of title → sentences, found %v", r.name, tok)
		}
		r.started = true
	}
	if !r.dec.More() {
		if _, err := r.dec.Token(); err != nil { // the closing delimiter
			return Record{}, fmt.Errorf("%s: byte %d: %w", r.name, r.dec.InputOffset(), err)
		}
		return Record{}, io.EOF
	}
	offset := r.dec.InputOffset()
	rec := Record{Index: r.index, Offset: offset}
	r.index++
	if r.inObject {
		tok, err := r.dec.Token()
		if err != nil {
			return Record{}, fmt.Errorf("%s: byte %d: %w", r.name, offset, err)
		}
		title, _ := tok.(string)
		var value json.RawMessage
		if err := r.dec.Decode(&value); err != nil {
			return Record{}, fmt.Errorf("%s: record %q (byte %d): %w", r.name, title, offset, err)
		}
		rec.Data = titleSentencesRow(title, value)
		return rec, nil
	}
	var value json.RawMessage
	if err := r.dec.Decode(&value); err != nil {
		return Record{}, fmt.Errorf("%s: record %d (byte %d): %w", r.name, rec.Index, offset, err)
	}
	rec.Data = value
	return rec, nil
}

// titleSentencesRow turns a HotpotQA-style "title": [sentences] entry into a
// {"title","text"} row. Sentences carry their own leading spaces, so they are
// joined with nothing between them, as HotpotQA does.
func titleSentencesRow(title string, value json.RawMessage) []byte {
	var text string
	var sentences []string
	if err := json.Unmarshal(value, &sentences); err == nil {
		text = strings.Join(sentences, "")
	} else if err := json.Unmarshal(value, &text); err != nil {
		// Leave the row without text so ParseRow reports it as malformed.
		row := AppendJSONString([]byte(`{"title":`), title)
		return append(row, '}')
	}
	row := AppendJSONString([]byte(`{"title":`), title)
	row = append(row, `,"text":`...)
	row = AppendJSONString(row, text)
	return append(row, '}')
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
