package synth

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/asearcher/asearcher/internal/atomicfile"
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
// records are complete; OpenOutput drops the rest.
type Output struct {
	Path        string
	JournalPath string

	mu      sync.Mutex
	qa      *os.File
	journal *os.File
	done    map[string]bool
	results []SeedResult
}

// JournalPath is where the journal of path lives.
func JournalPath(path string) string { return path + ".seeds.jsonl" }

// StatsPath is where a run's stats report is written.
func StatsPath(path string) string { return path + ".stats.json" }

// OpenOutput opens (or creates) the QA file at path for a new or resumed
// run.
func OpenOutput(path string) (*Output, error) {
	o := &Output{Path: path, JournalPath: JournalPath(path), done: map[string]bool{}}
	results, journalGood, err := readJournal(o.JournalPath)
	if err != nil {
		return nil, err
	}
	for _, r := range results {
		o.done[r.SeedID] = true
	}
	o.results = results
	if err := o.dropUnfinished(); err != nil {
		return nil, err
	}
	if o.journal, err = openAppend(o.JournalPath, journalGood); err != nil {
		return nil, err
	}
	if o.qa, err = openAppend(path, -1); err != nil {
		o.journal.Close()
		return nil, err
	}
	return o, nil
}

// readJournal returns the finished seeds and the length of the journal's
// complete lines; a torn last line (a kill mid-write) is ignored.
func readJournal(path string) ([]SeedResult, int64, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("synth journal: %w", err)
	}
	return parseJournal(path, data)
}

// parseJournal decodes journal lines; good is the length of the complete
// ones.
func parseJournal(path string, data []byte) ([]SeedResult, int64, error) {
	var out []SeedResult
	var good int64
	for line := 1; len(data) > 0; line++ {
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 {
			break // torn tail
		}
		var r SeedResult
		if err := json.Unmarshal(data[:nl], &r); err != nil || r.SeedID == "" {
			return nil, 0, fmt.Errorf("synth journal %s line %d is damaged; delete it and the QA file to start over", path, line)
		}
		out = append(out, r)
		good += int64(nl + 1)
		data = data[nl+1:]
	}
	return out, good, nil
}

// dropUnfinished rewrites the QA file without records of seeds the journal
// does not list, and without a torn last line.
func (o *Output) dropUnfinished() error {
	data, err := os.ReadFile(o.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("synth output: %w", err)
	}
	var kept bytes.Buffer
	dropped := false
	for rest := data; len(rest) > 0; {
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			dropped = true
			break
		}
		line := rest[:nl+1]
		rest = rest[nl+1:]
		var head struct {
			SeedID string `json:"seed_id"`
		}
		if json.Unmarshal(line, &head) != nil || !o.done[head.SeedID] {
			dropped = true
			continue
		}
		kept.Write(line)
	}
	if !dropped {
		return nil
	}
	if err := atomicfile.WriteFile(o.Path, kept.Bytes()); err != nil {
		return fmt.Errorf("synth output: drop unfinished seeds: %w", err)
	}
	return nil
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
	return errors.Join(o.qa.Close(), o.journal.Close())
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
