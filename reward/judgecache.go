package reward

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// JudgeCache holds verdicts by JudgeKey in memory and, when opened on a file,
// appends each new verdict to it as one JSON line. The file holds keys,
// verdicts and the judge's replies but not the questions, golds or
// predictions, so caching an encrypted benchmark writes none of its text.
//
// Each line is written with a single write on a file opened O_APPEND, so
// runs on one machine can share a file; a line torn by a kill is skipped
// when the file is read, and the next verdict starts on a fresh line.
type JudgeCache struct {
	mu   sync.Mutex
	mem  map[string]Judgement
	file *os.File
	path string
	// startLine makes the next append begin with a newline, after a torn
	// last line.
	startLine bool
}

// judgeCacheRecord is one line of the cache file.
type judgeCacheRecord struct {
	Key           string  `json:"key"`
	Model         string  `json:"model"`
	PromptVersion string  `json:"prompt_version"`
	Verdict       Verdict `json:"verdict"`
	Rationale     string  `json:"rationale,omitempty"`
	Raw           string  `json:"raw"`
	Attempts      int     `json:"attempts"`
	Time          string  `json:"time"`
}

// NewMemoryJudgeCache returns a cache that lives as long as the process.
func NewMemoryJudgeCache() *JudgeCache {
	return &JudgeCache{mem: map[string]Judgement{}}
}

// OpenJudgeCache loads the cache file at path, creating it if needed, and
// appends new verdicts to it. Malformed lines are skipped with a warning.
func OpenJudgeCache(path string) (*JudgeCache, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("judge cache: %w", err)
	}
	c := &JudgeCache{mem: map[string]Judgement{}, path: path}
	if err := c.load(f); err != nil {
		f.Close()
		return nil, err
	}
	f.Close()
	// Reopen for appending so that every write lands at the current end of
	// the file even when another process appended meanwhile.
	if c.file, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		return nil, fmt.Errorf("judge cache: %w", err)
	}
	return c, nil
}

func (c *JudgeCache) load(f *os.File) error {
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("judge cache: %w", err)
	}
	if n := len(data); n > 0 && data[n-1] != '\n' {
		// A kill mid-write leaves a partial last line. It is not cut off,
		// since another process may still be writing it; the next append
		// starts with a newline instead, and the partial line is skipped as
		// malformed below.
		c.startLine = true
		data = append(data, '\n')
	}
	bad := 0
	line := 0
	for len(data) > 0 {
		line++
		end := bytes.IndexByte(data, '\n')
		raw := data[:end]
		data = data[end+1:]
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		var r judgeCacheRecord
		if err := json.Unmarshal(raw, &r); err != nil || r.Key == "" || (r.Verdict != Correct && r.Verdict != Incorrect) {
			bad++
			if bad <= 3 {
				slog.Warn("judge cache: skipping a malformed line", "file", c.path, "line", line)
			}
			continue
		}
		c.mem[r.Key] = r.judgement()
	}
	if bad > 3 {
		slog.Warn("judge cache: skipped malformed lines", "file", c.path, "count", bad)
	}
	return nil
}

func (r judgeCacheRecord) judgement() Judgement {
	j := Judgement{
		Verdict: r.Verdict, Rationale: r.Rationale, Raw: r.Raw, Attempts: r.Attempts,
		Model: r.Model, PromptVersion: r.PromptVersion,
	}
	if r.Verdict == Correct {
		j.Score = 1
	}
	return j
}

// Get returns the cached judgement for key.
func (c *JudgeCache) Get(key string) (Judgement, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	j, ok := c.mem[key]
	return j, ok
}

// Put stores a judgement and appends it to the file, if any.
func (c *JudgeCache) Put(key string, j Judgement) error {
	rec := judgeCacheRecord{
		Key: key, Model: j.Model, PromptVersion: j.PromptVersion, Verdict: j.Verdict,
		Rationale: j.Rationale, Raw: j.Raw, Attempts: j.Attempts,
		Time: time.Now().UTC().Format(time.RFC3339),
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mem[key] = rec.judgement()
	if c.file == nil {
		return nil
	}
	if c.startLine {
		line = append([]byte{'\n'}, line...)
	}
	if _, err := c.file.Write(line); err != nil {
		return fmt.Errorf("append to %s: %w", c.path, err)
	}
	c.startLine = false
	return nil
}

// Len is the number of cached judgements.
func (c *JudgeCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.mem)
}

// Close flushes the cache file to disk and closes it.
func (c *JudgeCache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.file == nil {
		return nil
	}
	err := c.file.Sync()
	if cerr := c.file.Close(); err == nil {
		err = cerr
	}
	c.file = nil
	return err
}
