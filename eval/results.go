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

	"github.com/asearcher/asearcher/agent"
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
// torn last line, and opens the file for appending. Records repeated for
// the same key (impossible unless the file was edited) keep the first.
func openResults(path string) (*resultsFile, []Record, error) {
	done, validLen, err := readResults(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	if err == nil {
		st, err := os.Stat(path)
		if err != nil {
			return nil, nil, err
		}
		if st.Size() != validLen {
			if err := os.Truncate(path, validLen); err != nil {
				return nil, nil, fmt.Errorf("cut the torn last line of %s: %w", path, err)
			}
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("open results: %w", err)
	}
	return &resultsFile{f: f}, done, nil
}

// readResults parses path and returns its records and the length of the
// prefix made of whole, valid lines. A last line without its newline is
// torn; an invalid line elsewhere is an error (the file was edited).
func readResults(path string) ([]Record, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	return parseResults(f)
}

func parseResults(r io.Reader) ([]Record, int64, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var (
		out  []Record
		off  int64
		seen = map[key]bool{}
		line int
	)
	for {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 && b[len(b)-1] == '\n' {
			line++
			var rec Record
			if jerr := json.Unmarshal(b, &rec); jerr != nil {
				// A complete but unreadable line can only come from
				// outside editing; only the last line may be torn.
				if _, peek := br.Peek(1); peek == io.EOF {
					return out, off, nil
				}
				return nil, 0, fmt.Errorf("results line %d: %w (fix or remove the line)", line, jerr)
			}
			off += int64(len(b))
			if !seen[rec.key()] {
				seen[rec.key()] = true
				out = append(out, rec)
			}
		}
		if err == io.EOF {
			return out, off, nil
		}
		if err != nil {
			return nil, 0, err
		}
	}
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
	return nil
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

// repairTrajectories rewrites a trajectory file keeping only whole records
// whose (dataset, id, sample) has a result, once each. A kill can leave a
// torn last record, or a trajectory written just before its result; the
// sample then runs again and would be stored twice.
func repairTrajectories(path string, done map[key]bool) (kept int, err error) {
	clean, n, err := trajectoriesClean(path, done)
	if err != nil || clean {
		return n, err
	}
	r, err := agent.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("open trajectories: %w", err)
	}
	// Same extension, so the writer compresses the same way.
	tmp := filepath.Join(filepath.Dir(path), "tmp-"+filepath.Base(path))
	w, err := agent.Create(tmp)
	if err != nil {
		r.Close()
		return 0, err
	}
	seen := map[key]bool{}
	for {
		t, err := r.Next()
		if err == io.EOF || errors.Is(err, agent.ErrTornRecord) {
			break
		}
		if err != nil {
			// A corrupt tail from a kill mid-write: keep what precedes it.
			break
		}
		k := trajectoryKey(t)
		if !done[k] || seen[k] {
			continue
		}
		seen[k] = true
		if err := w.Write(t); err != nil {
			r.Close()
			w.Close()
			return 0, err
		}
		kept++
	}
	r.Close()
	if err := w.Sync(); err != nil {
		w.Close()
		return 0, err
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("replace trajectories: %w", err)
	}
	return kept, nil
}

// trajectoriesClean says whether a trajectory file needs no repair: every
// record whole and readable, each with a result, none twice. Most resumes
// find it so, and skip rewriting (recompressing) the file.
func trajectoriesClean(path string, done map[key]bool) (bool, int, error) {
	r, err := agent.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return true, 0, nil
	}
	if err != nil {
		return false, 0, fmt.Errorf("open trajectories: %w", err)
	}
	defer r.Close()
	seen := map[key]bool{}
	for {
		t, err := r.Next()
		if err == io.EOF {
			return true, len(seen), nil
		}
		if err != nil {
			return false, 0, nil
		}
		k := trajectoryKey(t)
		if !done[k] || seen[k] {
			return false, 0, nil
		}
		seen[k] = true
	}
}

// trajectoryKey reads back the key eval stores in a trajectory's Extra.
func trajectoryKey(t *agent.Trajectory) key {
	ds, _ := t.Extra["dataset"].(string)
	return key{Dataset: ds, ID: t.TaskID, Sample: t.Sample}
}
