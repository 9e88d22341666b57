package synth

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func rec(seed string, v int, rate float64) Record {
	return Record{ID: seed + "#v" + string(rune('0'+v)), SeedID: seed, Version: v, Question: "q?", Answer: "a", SolveRate: rate}
}

func TestOutputCommitAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qa.jsonl")
	o, err := OpenOutput(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Commit(SeedResult{SeedID: "a", Accepted: 2, records: []Record{rec("a", 0, 0), rec("a", 1, 0)}}); err != nil {
		t.Fatal(err)
	}
	if err := o.Commit(SeedResult{SeedID: "b", End: "base_rejected"}); err != nil {
		t.Fatal(err)
	}
	// A second commit of a finished seed is ignored.
	if err := o.Commit(SeedResult{SeedID: "a", Accepted: 1, records: []Record{rec("a", 5, 0)}}); err != nil {
		t.Fatal(err)
	}
	o.Close()
	// Records of a seed the journal does not name (a kill between the two
	// writes) and a torn line are dropped on reopen.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":"c#v0","seed_id":"c","question":"q?","answer":"a"}` + "\n" + `{"id":"c#v1","seed_`)
	f.Close()
	o, err = OpenOutput(path)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if !o.Done("a") || !o.Done("b") || o.Done("c") || len(o.Results()) != 2 {
		t.Fatalf("done: a %v b %v c %v", o.Done("a"), o.Done("b"), o.Done("c"))
	}
	recs := readRecordsFile(t, path)
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ID)
	}
	if !slices.Equal(ids, []string{"a#v0", "a#v1"}) {
		t.Fatalf("records after reopen: %q", ids)
	}
}

func TestOutputDamagedJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qa.jsonl")
	os.WriteFile(JournalPath(path), []byte("{\"seed_id\":\"a\"}\nnot json\n{\"seed_id\":\"b\"}\n"), 0o644)
	_, err := OpenOutput(path)
	if err == nil || !strings.Contains(err.Error(), "line 2 (byte offset 16) is damaged") {
		t.Fatalf("error %v", err)
	}
}

func TestFilter(t *testing.T) {
	tool := 0.5
	withTool := rec("b", 2, 0)
	withTool.ToolSolveRate = &tool
	recs := []Record{rec("a", 0, 0.5), rec("a", 1, 0), rec("a", 2, 0.125), rec("a", 3, 0), rec("b", 1, 0.75), withTool}
	tests := []struct {
		name string
		o    FilterOptions
		want []string
	}{
		{"unsolved, all", FilterOptions{MaxSolveRate: 0}, []string{"a#v1", "a#v3", "b#v2"}},
		{"unsolved, one per seed, latest first", FilterOptions{MaxSolveRate: 0, PerSeed: 1}, []string{"a#v3", "b#v2"}},
		{"up to 1/8, two per seed", FilterOptions{MaxSolveRate: 0.125, PerSeed: 2}, []string{"a#v1", "a#v3", "b#v2"}},
		{"tool bound", FilterOptions{MaxSolveRate: 1, MaxToolSolveRate: new(float64)}, []string{"a#v0", "a#v1", "a#v2", "a#v3", "b#v1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, r := range Filter(recs, tt.o) {
				got = append(got, r.ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("kept %q, want %q", got, tt.want)
			}
		})
	}
}

func TestComputeStats(t *testing.T) {
	s := ComputeStats([]SeedResult{
		{SeedID: "a", Accepted: 2, End: "exit", Rejected: map[string]int{ReasonTooEasy: 1}, Solved: []string{"8/8", "0/8", "1/8"},
			Kept: []Kept{{Injections: 1}, {Injections: 2, Fuzzes: 1}}},
		{SeedID: "b", End: "base_rejected", Rejected: map[string]int{ReasonWrongAnswer: 1}},
	})
	if s.Seeds != 2 || s.SeedsWithAccepted != 1 || s.Accepted != 2 || s.MeanInjections != 1.5 || s.MeanFuzzes != 0.5 {
		t.Fatalf("%+v", s)
	}
	var b strings.Builder
	s.WriteText(&b)
	if !strings.Contains(b.String(), "0/8:1 1/8:1 8/8:1") || !strings.Contains(b.String(), "too_easy 1, wrong_answer 1") {
		t.Fatalf("report:\n%s", b.String())
	}
}

// FuzzJournalAndRecords: damaged journals and QA files give an error or
// the complete lines, never a panic.
func FuzzJournalAndRecords(f *testing.F) {
	f.Add([]byte("{\"seed_id\":\"a\",\"accepted\":1}\n{\"seed_id\":\"b\""))
	f.Add([]byte(`{"id":"a#v0","seed_id":"a","question":"q?","answer":"a"}` + "\n"))
	f.Add([]byte("\n\n{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, repair := range []bool{false, true} {
			path := filepath.Join(t.TempDir(), "qa.jsonl")
			os.WriteFile(JournalPath(path), data, 0o644)
			os.WriteFile(path, data, 0o644)
			o, err := OpenOutputWith(path, OutputOptions{Repair: repair})
			if err != nil {
				continue
			}
			o.Close()
			for _, p := range []string{path, JournalPath(path)} {
				b, _ := os.ReadFile(p)
				if len(b) > 0 && b[len(b)-1] != '\n' {
					t.Fatalf("%s left with a torn last line: %q", p, b)
				}
			}
		}
		_, _ = ReadRecords(strings.NewReader(string(data)))
	})
}

// writeThreeSeeds commits seeds a, b, c (two records each) and returns the
// QA file's path.
func writeThreeSeeds(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qa.jsonl")
	o, err := OpenOutput(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"a", "b", "c"} {
		if err := o.Commit(SeedResult{SeedID: s, Accepted: 2, records: []Record{rec(s, 0, 0), rec(s, 1, 0)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// flipInLine damages line n (1-based) of path and returns its byte offset.
func flipInLine(t *testing.T, path string, n int) int {
	t.Helper()
	data, _ := os.ReadFile(path)
	off := 0
	for range n - 1 {
		off += strings.IndexByte(string(data[off:]), '\n') + 1
	}
	data[off] = '#' // the opening brace: the line no longer parses
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return off
}

// TestOutputDamagedMiddleLineRefused: a damaged record in the middle of the
// QA file stops the resume with the file and offset, and changes nothing
// (before the fix it was dropped silently and the run reported success).
func TestOutputDamagedMiddleLineRefused(t *testing.T) {
	path := writeThreeSeeds(t)
	off := flipInLine(t, path, 3) // b's first record
	before, _ := os.ReadFile(path)
	jbefore, _ := os.ReadFile(JournalPath(path))
	_, err := OpenOutput(path)
	want := fmt.Sprintf("%s line 3 (byte offset %d) is damaged", path, off)
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--repair") {
		t.Fatalf("err = %v, want it to contain %q and offer --repair", err, want)
	}
	after, _ := os.ReadFile(path)
	jafter, _ := os.ReadFile(JournalPath(path))
	if string(after) != string(before) || string(jafter) != string(jbefore) {
		t.Error("a refused open changed the files")
	}
}

// TestOutputRepair: --repair keeps backups, drops the damaged record and
// its seed's other records and journal line (so the seed is redone), and
// keeps everything else.
func TestOutputRepair(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"qa middle line", func(t *testing.T, path string) { flipInLine(t, path, 3) }},
		{"journal middle line", func(t *testing.T, path string) { flipInLine(t, JournalPath(path), 2) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeThreeSeeds(t)
			tc.damage(t, path)
			orig, _ := os.ReadFile(path)
			o, err := OpenOutputWith(path, OutputOptions{Repair: true})
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			if !o.Done("a") || o.Done("b") || !o.Done("c") {
				t.Errorf("done a %v b %v c %v; want b redone", o.Done("a"), o.Done("b"), o.Done("c"))
			}
			report := strings.Join(o.Repaired, "\n")
			if !strings.Contains(report, `seed "b" will be redone`) || !strings.Contains(report, "backup") {
				t.Errorf("repair report:\n%s", report)
			}
			var ids []string
			for _, r := range readRecordsFile(t, path) {
				ids = append(ids, r.ID)
			}
			if !slices.Equal(ids, []string{"a#v0", "a#v1", "c#v0", "c#v1"}) {
				t.Errorf("records after repair: %q", ids)
			}
			backups, _ := filepath.Glob(path + ".bak-*")
			if len(backups) != 1 {
				t.Fatalf("backups %q, want one of the QA file", backups)
			}
			if b, _ := os.ReadFile(backups[0]); string(b) != string(orig) {
				t.Error("the backup is not the original QA file")
			}
		})
	}
}

// TestOutputLocked: two runs on one output — the second is refused until
// the first closes (before, both ran and interleaved their lines).
func TestOutputLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qa.jsonl")
	o, err := OpenOutput(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenOutput(path); err == nil || !strings.Contains(err.Error(), "another synth is running") {
		t.Fatalf("second open: %v", err)
	}
	o.Close()
	o, err = OpenOutput(path)
	if err != nil {
		t.Fatalf("after close: %v", err)
	}
	o.Close()
}

// TestOutputTornLastRecordOfFinishedSeed: a QA file whose last line was cut
// after its seed was journaled (damage, not a kill: records are synced
// before the journal) resumes by redoing that seed, so it is not left
// with a record missing.
func TestOutputTornLastRecordOfFinishedSeed(t *testing.T) {
	path := writeThreeSeeds(t)
	data, _ := os.ReadFile(path)
	os.WriteFile(path, data[:len(data)-20], 0o644)
	o, err := OpenOutput(path)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if !o.Done("a") || !o.Done("b") || o.Done("c") {
		t.Fatalf("done a %v b %v c %v; want c redone", o.Done("a"), o.Done("b"), o.Done("c"))
	}
	var ids []string
	for _, r := range readRecordsFile(t, path) {
		ids = append(ids, r.ID)
	}
	if !slices.Equal(ids, []string{"a#v0", "a#v1", "b#v0", "b#v1"}) {
		t.Errorf("records %q", ids)
	}
	if j, _ := os.ReadFile(JournalPath(path)); strings.Count(string(j), "\n") != 2 {
		t.Errorf("journal:\n%s", j)
	}
}
