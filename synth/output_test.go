package synth

import (
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
	if err == nil || !strings.Contains(err.Error(), "line 2 is damaged") {
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
		res, good, err := parseJournal("j", data)
		if err == nil && (good > int64(len(data)) || good < 0 || (len(res) > 0 && good == 0)) {
			t.Fatalf("good prefix %d of %d bytes with %d results", good, len(data), len(res))
		}
		_, _ = ReadRecords(strings.NewReader(string(data)))
	})
}
