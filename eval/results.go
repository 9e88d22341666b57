package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/reward"
)

// Record is one (question, sample) result: one line of results.jsonl.
type Record struct {
	Dataset string `json:"dataset"`
	ID      string `json:"id"`
	Index   int    `json:"index"`
	Sample  int    `json:"sample"`
	Seed    int64  `json:"seed"`
	// Question and Golds are empty for datasets whose plain text must not
	// be written to disk (xBench-DeepSearch).
	Question   string   `json:"question,omitempty"`
	Golds      []string `json:"golds,omitempty"`
	Prediction string   `json:"prediction"`
	Answered   bool     `json:"answered"`
	End        string   `json:"end"`
	// Error is the agent run's error (model server failure); such a record
	// scores 0 and is counted in the error columns.
	Error  string            `json:"error,omitempty"`
	Scores reward.Scores     `json:"scores"`
	Judge  *reward.Judgement `json:"judge,omitempty"`
	// Reward is the workflow's own reward, when it implements
	// agent.Rewarder (a custom task's score).
	Reward *float64    `json:"reward,omitempty"`
	Stats  agent.Stats `json:"stats"`
	WallNS int64       `json:"wall_ns"`
	// Attempts counts the agent runs made for this sample (retries after
	// model errors included).
	Attempts int `json:"attempts"`
	// Meta are the dataset record's other fields, carried through.
	Meta map[string]any `json:"meta,omitempty"`
}

// key identifies a record within a run.
type key struct {
	Dataset, ID string
	Sample      int
}

func (r *Record) key() key { return key{r.Dataset, r.ID, r.Sample} }

// resultsFile appends records to results.jsonl. Each record is one write
// of a whole line on a file opened O_APPEND, so a kill leaves at most one
// torn last line, which openResults cuts off before appending again.
type resultsFile struct {
	mu  sync.Mutex
	f   *os.File
	buf bytes.Buffer
}

// openResults reads the records already in path (if any), truncates a
// torn last line, and opens the file for appending. A damaged line before
// the last is refused, unless repair is set: then the file is backed up,
// the line dropped (its sample runs again) and the repair described in
// the returned notes. Records repeated for the same key (impossible
// unless the file was edited) keep the first.
func openResults(path string, repair bool) (*resultsFile, []Record, []string, error) {
	f, err := os.Open(path)
	var scan resultsScan
	if err == nil {
		scan, err = scanResults(f)
		f.Close()
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil, err
	}
	var notes []string
	if len(scan.damaged) > 0 {
		if !repair {
			d := scan.damaged[0]
			return nil, nil, nil, fmt.Errorf("%s line %d (byte offset %d) is damaged (%v)%s; nothing was changed. Rerun with --repair to keep a backup, drop the damaged lines and run their samples again", path, d.line, d.offset, d.err, moreDamage(len(scan.damaged)-1))
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, nil, err
		}
		var kept bytes.Buffer
		skip := map[int64]bool{}
		for _, d := range scan.damaged {
			skip[d.offset] = true
			notes = append(notes, fmt.Sprintf("dropped %s line %d (byte offset %d): %v; its sample runs again", path, d.line, d.offset, d.err))
		}
		for off := int64(0); off < scan.good; {
			nl := bytes.IndexByte(data[off:], '\n')
			if !skip[off] {
				kept.Write(data[off : off+int64(nl)+1])
			}
			off += int64(nl) + 1
		}
		backup, err := replaceWithBackup(path, kept.Bytes())
		if err != nil {
			return nil, nil, nil, err
		}
		notes = append(notes, fmt.Sprintf("kept the damaged %s as %s", path, backup))
		scan.good = int64(kept.Len())
	} else if scan.size != scan.good {
		if err := os.Truncate(path, scan.good); err != nil {
			return nil, nil, nil, fmt.Errorf("cut the torn last line of %s: %w", path, err)
		}
	}
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open results: %w", err)
	}
	return &resultsFile{f: w}, scan.recs, notes, nil
}

func moreDamage(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" and %d more damaged lines", n)
}

// replaceWithBackup keeps the current file at path as path.bak-<time> and
// puts data in its place atomically; it returns the backup's name. The
// backup is a hard link where possible, so a large file is not copied.
func replaceWithBackup(path string, data []byte) (string, error) {
	backup := path + ".bak-" + time.Now().UTC().Format("20060102T150405.000Z")
	if err := os.Link(path, backup); err != nil {
		old, rerr := os.ReadFile(path)
		if rerr != nil {
			return "", fmt.Errorf("back up %s: %w", path, rerr)
		}
		if werr := atomicfile.WriteFile(backup, old); werr != nil {
			return "", fmt.Errorf("back up %s: %w", path, werr)
		}
	}
	if err := atomicfile.WriteFile(path, data); err != nil {
		return "", err
	}
	return backup, nil
}

// readResults parses path and returns its records and the length of the
// prefix made of whole, valid lines; a damaged line before the last is an
// error naming it.
func readResults(path string) ([]Record, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	recs, n, err := parseResults(f)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	return recs, n, nil
}

// parseResults returns the records and the length of the whole, valid
// prefix. A last line without its newline, or that does not parse, is
// torn (a kill mid-write); an invalid line elsewhere is an error.
func parseResults(r io.Reader) ([]Record, int64, error) {
	scan, err := scanResults(r)
	if err != nil {
		return nil, 0, err
	}
	if len(scan.damaged) > 0 {
		d := scan.damaged[0]
		return nil, 0, fmt.Errorf("results line %d (byte offset %d) is damaged: %w (rerun eval with --repair)", d.line, d.offset, d.err)
	}
	return scan.recs, scan.good, nil
}

type damagedLine struct {
	line   int
	offset int64
	err    error
}

// resultsScan is what scanResults found: the records, the length of the
// prefix up to a torn last line, the damaged lines inside that prefix and
// the file's size.
type resultsScan struct {
	recs       []Record
	good, size int64
	damaged    []damagedLine
}

func scanResults(r io.Reader) (resultsScan, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var (
		s    resultsScan
		seen = map[key]bool{}
		line int
	)
	for {
		b, err := br.ReadBytes('\n')
		s.size += int64(len(b))
		if len(b) > 0 && b[len(b)-1] == '\n' {
			line++
			var rec Record
			if jerr := json.Unmarshal(b, &rec); jerr != nil {
				// A complete but unreadable last line is treated as torn
				// (its sample runs again); elsewhere it is damage.
				if _, peek := br.Peek(1); peek == io.EOF {
					s.size += drain(br)
					return s, nil
				}
				s.damaged = append(s.damaged, damagedLine{line: line, offset: s.good, err: jerr})
				s.good += int64(len(b))
				continue
			}
			s.good += int64(len(b))
			if !seen[rec.key()] {
				seen[rec.key()] = true
				s.recs = append(s.recs, rec)
			}
		}
		if err == io.EOF {
			return s, nil
		}
		if err != nil {
			return s, err
		}
	}
}

func drain(br *bufio.Reader) int64 {
	n, _ := io.Copy(io.Discard, br)
	return n
}

func (w *resultsFile) write(rec *Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Reset()
	enc := json.NewEncoder(&w.buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rec); err != nil {
		return fmt.Errorf("encode result %s/%s#%d: %w", rec.Dataset, rec.ID, rec.Sample, err)
	}
	if _, err := w.f.Write(w.buf.Bytes()); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	// A result is the record that a sample is done: once written it must
	// survive a power loss, or the report would count a sample the file
	// no longer holds.
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("sync results: %w", err)
	}
	return nil
}

// drop rewrites results.jsonl without the records of lost (keeping a
// backup; the other lines are kept byte for byte) and reopens it for
// appending; it returns the records kept.
func (w *resultsFile) drop(path string, recs []Record, lost map[key]bool) ([]Record, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	for rest := data; len(rest) > 0; {
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			break
		}
		line := rest[:nl+1]
		rest = rest[nl+1:]
		var rec Record
		if json.Unmarshal(line, &rec) == nil && lost[rec.key()] {
			continue
		}
		buf.Write(line)
	}
	if err := w.f.Close(); err != nil {
		return nil, err
	}
	if _, err := replaceWithBackup(path, buf.Bytes()); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open results: %w", err)
	}
	w.f = f
	var kept []Record
	for i := range recs {
		if !lost[recs[i].key()] {
			kept = append(kept, recs[i])
		}
	}
	return kept, nil
}

func (w *resultsFile) close() error {
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		return err
	}
	return w.f.Close()
}

// ReadResults returns the records of a run directory's results.jsonl,
// ignoring a torn last line.
func ReadResults(path string) ([]Record, error) {
	recs, _, err := readResults(path)
	return recs, err
}

// trajScan is what scanTrajectories found in a trajectory file.
type trajScan struct {
	seen    map[key]bool // whole records with a result, first of each key
	extra   int          // whole records without a result, or repeated
	damaged []*agent.CorruptError
	torn    bool  // the last record is cut short
	good    int64 // where the torn tail starts
}

// clean says the file needs no change.
func (s *trajScan) clean() bool { return s.extra == 0 && len(s.damaged) == 0 && !s.torn }

func scanTrajectories(path string, done map[key]bool) (*trajScan, error) {
	s := &trajScan{seen: map[key]bool{}}
	r, err := agent.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open trajectories: %w", err)
	}
	defer r.Close()
	for {
		t, err := r.Next()
		var ce *agent.CorruptError
		switch {
		case err == nil:
			k := trajectoryKey(t)
			if !done[k] || s.seen[k] {
				s.extra++
				continue
			}
			s.seen[k] = true
			continue
		case errors.Is(err, io.EOF):
		case errors.As(err, &ce):
			s.damaged = append(s.damaged, ce)
			continue
		case errors.Is(err, agent.ErrTornRecord):
			s.torn, s.good = true, r.Offset()
		default:
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return s, nil
	}
}

// repairTrajectories prepares the trajectory file for a resumed run. What
// a kill leaves is repaired: a torn last record is cut off, and records
// whose sample has no result (written just before the result) or that
// repeat a sample are dropped, since those samples run again. A damaged
// record elsewhere is refused unless repair is set; then the file is
// backed up, rewritten with every intact record, and the samples whose
// trajectories were lost are returned so that they run again.
//
// stored says which samples store a trajectory at all (not those of
// datasets whose text must not be written).
func repairTrajectories(path string, done map[key]bool, stored func(key) bool, repair bool) (lost map[key]bool, notes []string, err error) {
	s, err := scanTrajectories(path, done)
	if err != nil || s.clean() {
		return nil, nil, err
	}
	if len(s.damaged) > 0 && !repair {
		d := s.damaged[0]
		more := ""
		if len(s.damaged) > 1 {
			more = fmt.Sprintf(" (and %d more damaged records)", len(s.damaged)-1)
		}
		return nil, nil, fmt.Errorf("%s: %v%s; nothing was changed. Rerun with --repair to keep a backup, drop the damaged records and run their samples again", path, d, more)
	}
	if len(s.damaged) == 0 && s.extra == 0 {
		// Only a torn tail: cut it.
		if err := os.Truncate(path, s.good); err != nil {
			return nil, nil, fmt.Errorf("cut the torn last record of %s: %w", path, err)
		}
		// Trajectories are synced before their results, so a record torn
		// by a kill has no result and its sample runs again. A torn record
		// whose result exists (the file was damaged later) loses its
		// sample's trajectory: that sample runs again too.
		notes = []string{fmt.Sprintf("cut the torn last record of %s at byte offset %d", path, s.good)}
		for k := range done {
			if !s.seen[k] && stored(k) {
				if lost == nil {
					lost = map[key]bool{}
				}
				lost[k] = true
			}
		}
		if len(lost) > 0 {
			notes = append(notes, fmt.Sprintf("%d samples whose trajectory was cut run again", len(lost)))
		}
		return lost, notes, nil
	}
	kept, err := rewriteTrajectories(path, done, len(s.damaged) > 0)
	if err != nil {
		return nil, nil, err
	}
	if len(s.damaged) == 0 {
		return nil, nil, nil
	}
	lost = map[key]bool{}
	for k := range done {
		if !kept[k] {
			lost[k] = true
		}
	}
	for _, d := range s.damaged {
		notes = append(notes, fmt.Sprintf("dropped the damaged trajectory record at byte offset %d of %s", d.Offset, path))
	}
	notes = append(notes, fmt.Sprintf("kept %d intact trajectories; %d samples without one run again", len(kept), len(lost)))
	return lost, notes, nil
}

// rewriteTrajectories rewrites path with its whole records that have a
// result, once each, and returns their keys. With backup the old file is
// kept as path.bak-<time>.
func rewriteTrajectories(path string, done map[key]bool, backup bool) (map[key]bool, error) {
	r, err := agent.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open trajectories: %w", err)
	}
	defer r.Close()
	// Same extension, so the writer compresses the same way; Create
	// renames it into place only once it is complete.
	tmp := filepath.Join(filepath.Dir(path), "tmp-"+filepath.Base(path))
	w, err := agent.Create(tmp)
	if err != nil {
		return nil, err
	}
	kept := map[key]bool{}
	for {
		t, err := r.Next()
		var ce *agent.CorruptError
		if errors.As(err, &ce) {
			continue
		}
		if err != nil {
			break // the end, or a torn last record
		}
		k := trajectoryKey(t)
		if !done[k] || kept[k] {
			continue
		}
		kept[k] = true
		if err := w.Write(t); err != nil {
			w.Close()
			os.Remove(tmp)
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if backup {
		name := path + ".bak-" + time.Now().UTC().Format("20060102T150405.000Z")
		// A hard link keeps the old file in place until the rename below
		// replaces it, so a kill in between loses nothing.
		if err := os.Link(path, name); err != nil {
			if err := os.Rename(path, name); err != nil {
				return nil, fmt.Errorf("back up %s: %w", path, err)
			}
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("replace trajectories: %w", err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	return kept, nil
}

// trajectoryKey reads back the key eval stores in a trajectory's Extra.
func trajectoryKey(t *agent.Trajectory) key {
	ds, _ := t.Extra["dataset"].(string)
	return key{Dataset: ds, ID: t.TaskID, Sample: t.Sample}
}
