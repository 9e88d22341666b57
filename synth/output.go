package synth

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/internal/runlock"
)

// Record is one accepted version of a synthesised question: a line of the
// output file. question, answer and id are what dataset.Load reads; the
// rest is provenance.
type Record struct {
	ID       string `json:"id"`
	Question string `json:"question"`
	Answer   string `json:"answer"`
	SeedID   string `json:"seed_id"`
	Seed     Page   `json:"seed"`
	// Version is the turn that produced this version (0: the base QA).
	Version    int        `json:"version"`
	Statements []string   `json:"statements"`
	Evidence   []Evidence `json:"evidence"`
	// Actions are the accepted edits that led from the base QA to this
	// version, in order.
	Actions    []Action `json:"actions"`
	Injections int      `json:"injections"`
	Fuzzes     int      `json:"fuzzes"`
	// SolveRate is the difficulty: the fraction of solver attempts
	// (without tools) judged correct. 0 is hardest.
	SolveRate      float64  `json:"solve_rate"`
	SolverCorrect  int      `json:"solver_correct"`
	SolverAttempts int      `json:"solver_attempts"`
	SolverAnswers  []string `json:"solver_answers"`
	// ToolSolveRate is the same with the search agent, when it was run.
	ToolSolveRate *float64  `json:"tool_solve_rate,omitempty"`
	Models        Models    `json:"models"`
	Created       time.Time `json:"created"`
}

// Evidence is the page a statement came from.
type Evidence struct {
	Statement string `json:"statement"`
	ID        string `json:"id,omitempty"`
	URL       string `json:"url,omitempty"`
	Title     string `json:"title"`
}

// Action is one accepted edit.
type Action struct {
	Turn   int    `json:"turn"`
	Action string `json:"action"`
	// Entity is the injected page's title; Detail is the bridge that was
	// removed (inject) or the detail made vaguer (fuzz).
	Entity   string `json:"entity,omitempty"`
	Detail   string `json:"detail,omitempty"`
	Question string `json:"question"`
}

// Models names the models that made and checked a record.
type Models struct {
	Generator string `json:"generator"`
	Solver    string `json:"solver"`
	Judge     string `json:"judge"`
}

// Kept is the journal's summary of one written record.
type Kept struct {
	Version    int     `json:"version"`
	Injections int     `json:"injections"`
	Fuzzes     int     `json:"fuzzes"`
	SolveRate  float64 `json:"solve_rate"`
}

// ParseFailure records a model reply that did not match its schema.
type ParseFailure struct {
	Step    string `json:"step"`
	Attempt int    `json:"attempt"`
	Error   string `json:"error"`
	Reply   string `json:"reply"`
}

// SeedResult is what one seed produced: a line of the journal. Records
// are written to the QA file, not the journal.
type SeedResult struct {
	SeedID   string `json:"seed_id"`
	Title    string `json:"title"`
	Accepted int    `json:"accepted"`
	// Rejected counts discarded candidates by reason (Reason* constants).
	Rejected map[string]int `json:"rejected,omitempty"`
	// Tried counts edits attempted by action; Passed those that passed
	// validation and became the current version.
	Tried  map[string]int `json:"tried,omitempty"`
	Passed map[string]int `json:"passed,omitempty"`
	// Solved lists "k/n" for every version that passed validation, hard
	// enough or not, for the difficulty histogram.
	Solved []string `json:"solved,omitempty"`
	// Kept summarises the records written, in order.
	Kept          []Kept         `json:"kept,omitempty"`
	Turns         int            `json:"turns"`
	End           string         `json:"end"`
	Calls         int            `json:"calls"`
	ParseFailures []ParseFailure `json:"parse_failures,omitempty"`
	Duration      time.Duration  `json:"duration_ns"`

	records []Record
}

// Output is the append-only QA file plus its journal of finished seeds
// (PATH.seeds.jsonl). A seed's records are appended and synced before its
// journal line, so after a kill the journal names exactly the seeds whose
// records are complete; OpenOutput drops the records after them (the seed
// that was being written) and a torn last line. Any other damage is
// refused unless OutputOptions.Repair is set. A lock (PATH.lock) keeps a
// second run off the same output.
type Output struct {
	Path        string
	JournalPath string
	// Repaired describes what OutputOptions.Repair dropped and where the
	// backups are; empty when nothing was damaged.
	Repaired []string

	mu      sync.Mutex
	qa      *os.File
	journal *os.File
	unlock  func()
	done    map[string]bool
	results []SeedResult
}

// OutputOptions tunes OpenOutputWith.
type OutputOptions struct {
	// Repair drops damaged lines instead of refusing to open: each file it
	// changes is first copied to FILE.bak-<time>, and the seeds whose
	// records were lost are redone.
	Repair bool
}

// JournalPath is where the journal of path lives.
func JournalPath(path string) string { return path + ".seeds.jsonl" }

// StatsPath is where a run's stats report is written.
func StatsPath(path string) string { return path + ".stats.json" }

// LockPath is the lock file that keeps two runs off one output.
func LockPath(path string) string { return path + ".lock" }

// OpenOutput opens (or creates) the QA file at path for a new or resumed
// run, refusing damaged files.
func OpenOutput(path string) (*Output, error) { return OpenOutputWith(path, OutputOptions{}) }

// OpenOutputWith is OpenOutput with options.
func OpenOutputWith(path string, opts OutputOptions) (*Output, error) {
	unlock, err := runlock.Acquire(LockPath(path), "synth")
	if err != nil {
		return nil, err
	}
	o := &Output{Path: path, JournalPath: JournalPath(path), done: map[string]bool{}, unlock: unlock}
	if err := o.open(opts); err != nil {
		unlock()
		return nil, err
	}
	return o, nil
}

func (o *Output) open(opts OutputOptions) error {
	jdata, err := readOptional(o.JournalPath)
	if err != nil {
		return fmt.Errorf("synth journal: %w", err)
	}
	qdata, err := readOptional(o.Path)
	if err != nil {
		return fmt.Errorf("synth output: %w", err)
	}
	journal := splitLines(jdata)
	qa := splitLines(qdata)

	// Journal: every line but a torn last one must be a seed result.
	var bad []qaLine
	var jGood int64 // length of the journal's whole, valid lines
	rawOf := map[string][]byte{}
	for i, l := range journal {
		var r SeedResult
		if json.Unmarshal(l.text, &r) != nil || r.SeedID == "" {
			if i == len(journal)-1 {
				break // torn last line: the kill came mid-write
			}
			if !opts.Repair {
				return damaged(o.JournalPath, l, "")
			}
			bad = append(bad, l)
			jGood += int64(len(l.raw))
			continue
		}
		jGood += int64(len(l.raw))
		if o.done[r.SeedID] {
			continue
		}
		rawOf[r.SeedID] = l.raw
		o.done[r.SeedID] = true
		o.results = append(o.results, r)
	}

	// QA file: records of finished seeds, then possibly the records of the
	// seed being written when the run was killed (not in the journal yet),
	// then possibly a torn line.
	var keep bytes.Buffer
	lastDone := -1
	heads := make([]string, len(qa))
	valid := make([]bool, len(qa))
	for i, l := range qa {
		var head struct {
			SeedID string `json:"seed_id"`
		}
		if json.Unmarshal(l.text, &head) == nil && head.SeedID != "" {
			heads[i], valid[i] = head.SeedID, true
			if o.done[head.SeedID] {
				lastDone = i
			}
		}
	}
	redo := map[string]bool{}
	var dropped []string
	for i, l := range qa {
		if i > lastDone {
			break // the unfinished tail: dropped, its seed is redone
		}
		if valid[i] && o.done[heads[i]] {
			continue
		}
		// A damaged line, or a record of a seed the journal does not
		// name, before records the journal does name.
		if !opts.Repair {
			if !valid[i] {
				return damaged(o.Path, l, "")
			}
			return damaged(o.Path, l, fmt.Sprintf("its seed %q is not in the journal %s", heads[i], o.JournalPath))
		}
		seed := heads[i]
		if !valid[i] {
			seed = seedIDIn(l.text)
		}
		if seed != "" {
			redo[seed] = true
		}
		dropped = append(dropped, fmt.Sprintf("%s line %d (byte offset %d)%s", o.Path, l.line, l.offset, seedNote(seed)))
	}
	// A damaged line after the last finished record normally belongs to
	// the seed that was being written (records are synced before the
	// journal line). If its seed is in the journal, the file was damaged
	// after the fact: that seed is redone rather than left short.
	for i := lastDone + 1; i < len(qa); i++ {
		if valid[i] {
			continue
		}
		if seed := seedIDIn(qa[i].raw); seed != "" && o.done[seed] && !redo[seed] {
			redo[seed] = true
			dropped = append(dropped, fmt.Sprintf("%s line %d (byte offset %d), cut short, of the finished seed %q", o.Path, qa[i].line, qa[i].offset, seed))
		}
	}
	for _, l := range bad {
		seed := seedIDIn(l.text)
		dropped = append(dropped, fmt.Sprintf("%s line %d (byte offset %d)%s", o.JournalPath, l.line, l.offset, seedNote(seed)))
		if seed != "" {
			redo[seed] = true
		}
	}
	// Seeds that lost a record are redone whole: drop their other records
	// and their journal line.
	if len(redo) > 0 {
		var results []SeedResult
		for _, r := range o.results {
			if redo[r.SeedID] {
				delete(o.done, r.SeedID)
				continue
			}
			results = append(results, r)
		}
		o.results = results
	}
	var qaEnd int64
	for i, l := range qa {
		if i > lastDone {
			break
		}
		if valid[i] && o.done[heads[i]] {
			keep.Write(l.raw)
		}
		qaEnd = l.offset + int64(len(l.raw))
	}
	var jkeep bytes.Buffer
	for _, r := range o.results {
		jkeep.Write(rawOf[r.SeedID])
	}
	if len(dropped) > 0 {
		stamp := time.Now().UTC().Format("20060102T150405Z")
		for _, f := range []struct {
			path string
			old  []byte
			new  []byte
		}{{o.JournalPath, jdata, jkeep.Bytes()}, {o.Path, qdata, keep.Bytes()}} {
			if bytes.Equal(f.old, f.new) {
				continue
			}
			backup := f.path + ".bak-" + stamp
			if err := atomicfile.WriteFile(backup, f.old); err != nil {
				return fmt.Errorf("synth --repair: back up %s: %w", f.path, err)
			}
			if err := atomicfile.WriteFile(f.path, f.new); err != nil {
				return fmt.Errorf("synth --repair: %w", err)
			}
			o.Repaired = append(o.Repaired, fmt.Sprintf("kept a backup of %s in %s", f.path, backup))
		}
		o.Repaired = append(o.Repaired, "dropped "+strings.Join(dropped, "; "))
		for _, s := range slices.Sorted(maps.Keys(redo)) {
			o.Repaired = append(o.Repaired, fmt.Sprintf("seed %q will be redone", s))
		}
		qaEnd, jGood = int64(keep.Len()), int64(jkeep.Len())
	}
	// Cut what a kill left after the last finished seed. Both cuts only
	// remove data whose seed is redone.
	var err2 error
	if o.journal, err2 = openAppend(o.JournalPath, jGood); err2 != nil {
		return err2
	}
	if o.qa, err2 = openAppend(o.Path, qaEnd); err2 != nil {
		o.journal.Close()
		return err2
	}
	return nil
}

// qaLine is one line of a JSONL file: its text without the newline, the
// raw bytes with it, its 1-based number and byte offset.
type qaLine struct {
	text, raw []byte
	line      int
	offset    int64
}

func splitLines(data []byte) []qaLine {
	var out []qaLine
	var off int64
	for n := 1; len(data) > 0; n++ {
		end := bytes.IndexByte(data, '\n')
		raw := data
		if end >= 0 {
			raw = data[:end+1]
		}
		out = append(out, qaLine{text: bytes.TrimRight(raw, "\n"), raw: raw, line: n, offset: off})
		off += int64(len(raw))
		data = data[len(raw):]
	}
	// A last line without its newline is torn even when its JSON parses:
	// mark it unparseable.
	if k := len(out) - 1; k >= 0 && !bytes.HasSuffix(out[k].raw, []byte("\n")) {
		out[k].text = nil
	}
	return out
}

func readOptional(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

func damaged(path string, l qaLine, why string) error {
	if why == "" {
		why = "it is not a valid record"
	}
	return fmt.Errorf("%s line %d (byte offset %d) is damaged: %s; nothing was changed. Rerun with --repair to keep a backup, drop the damaged lines and redo their seeds", path, l.line, l.offset, why)
}

var seedIDPattern = regexp.MustCompile(`"seed_id"\s*:\s*"((?:[^"\\]|\\.)*)"`)

// seedIDIn finds the seed of a damaged line, if its seed_id survived.
func seedIDIn(line []byte) string {
	m := seedIDPattern.FindSubmatch(line)
	if m == nil {
		return ""
	}
	var s string
	if json.Unmarshal(append(append([]byte{'"'}, m[1]...), '"'), &s) != nil {
		return ""
	}
	return s
}

func seedNote(seed string) string {
	if seed == "" {
		return " (its seed could not be read)"
	}
	return fmt.Sprintf(" (seed %q)", seed)
}

func openAppend(path string, truncate int64) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("synth output: %w", err)
	}
	if truncate >= 0 {
		if err := f.Truncate(truncate); err != nil {
			f.Close()
			return nil, fmt.Errorf("synth output: %w", err)
		}
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, fmt.Errorf("synth output: %w", err)
	}
	return f, nil
}

// Done reports whether a seed finished in this or an earlier run.
func (o *Output) Done(seedID string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.done[seedID]
}

// Commit appends a finished seed: its records, then its journal line.
func (o *Output) Commit(r SeedResult) error {
	var qa bytes.Buffer
	for i := range r.records {
		b, err := json.Marshal(&r.records[i])
		if err != nil {
			return fmt.Errorf("synth output: %w", err)
		}
		qa.Write(b)
		qa.WriteByte('\n')
	}
	line, err := json.Marshal(&r)
	if err != nil {
		return fmt.Errorf("synth journal: %w", err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done[r.SeedID] {
		return nil
	}
	if qa.Len() > 0 {
		if _, err := o.qa.Write(qa.Bytes()); err != nil {
			return fmt.Errorf("synth output %s: %w", o.Path, err)
		}
		if err := o.qa.Sync(); err != nil {
			return fmt.Errorf("synth output %s: %w", o.Path, err)
		}
	}
	if _, err := o.journal.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("synth journal %s: %w", o.JournalPath, err)
	}
	if err := o.journal.Sync(); err != nil {
		return fmt.Errorf("synth journal %s: %w", o.JournalPath, err)
	}
	o.done[r.SeedID] = true
	r.records = nil
	o.results = append(o.results, r)
	return nil
}

// Results returns every finished seed, earlier runs included.
func (o *Output) Results() []SeedResult {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.results)
}

// Close closes both files.
func (o *Output) Close() error {
	err := errors.Join(o.qa.Close(), o.journal.Close())
	o.unlock()
	return err
}

// ReadRecords reads a QA file written by synth. A torn last line is
// skipped; any other bad line is an error naming it.
func ReadRecords(r io.Reader) ([]Record, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var out []Record
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 && b[len(b)-1] == '\n' {
			if len(bytes.TrimSpace(b)) > 0 {
				var rec Record
				if jerr := json.Unmarshal(b, &rec); jerr != nil {
					return nil, fmt.Errorf("line %d: %w", line, jerr)
				}
				out = append(out, rec)
			}
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
