package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tools"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenTrajectory is a fixed trajectory covering every field of the
// schema.
func goldenTrajectory() *Trajectory {
	return &Trajectory{
		ID: "q7.0.a1b2c3", TaskID: "q7", Sample: 0, Agent: "asearcher", Prompt: PromptASearcher,
		Question: "Who wrote Dune?", Mode: ModeTokens, TokenLevel: true,
		Calls: []Call{
			{Purpose: PurposeAct, Turn: 0, Tool: -1, Input: Input{Base: -1, Added: []int{1, 2, 3}}, InputLen: 3, MaxTokens: 10,
				Stop: []string{"</search>"}, Output: []int{4, 5}, Text: "<search>x</search>", Logprobs: []float32{-0.5, -0.25},
				Versions: []int{2, 2}, Finish: llm.FinishStop, StopMatched: "</search>", Start: 1000, Latency: 2000},
			{Purpose: PurposeRead, Turn: 0, Tool: 0, Input: Input{Base: 0, Keep: 5, Added: []int{6}}, InputLen: 6, MaxTokens: 10,
				Stop: []string{"</think>"}, Output: []int{7, 8}, Text: "ok</think>", Logprobs: []float32{-1, -0.125},
				Versions: []int{2, 3}, Finish: llm.FinishStop, StopMatched: "</think>", Clipped: true, Start: 5000, Latency: 1000},
			{Purpose: PurposeAct, Turn: 1, Tool: -1, Input: Input{Base: 1, Keep: 5, Added: []int{9}}, InputLen: 6, MaxTokens: 10,
				Output: []int{10, 256}, Text: "<answer>y</answer>", Logprobs: []float32{-0.75, -0.0625}, Versions: []int{3, 3},
				Finish: llm.FinishStop, EOS: true, Start: 9000, Latency: 500},
		},
		Tools: []ToolCall{{Name: KindSearch, Arg: "x", Turn: 0, Call: 0, Observation: "<information>...</information>",
			Docs: []tools.SearchResult{{Title: "Dune", URL: "http://wiki/dune", Text: "Dune is a novel."}}, Start: 3500, Latency: 1200}},
		Answer: "y", Answered: true, End: EndAnswer,
		Started:  time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
		Duration: 10 * time.Millisecond,
		Extra:    map[string]any{"gold": []any{"Frank Herbert"}},
	}
}

// TestTrajectoryGolden pins the wire format (docs/trajectory.md).
func TestTrajectoryGolden(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(goldenTrajectory()); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "trajectory.golden.jsonl")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("wire format changed:\n%s\nwant\n%s", buf.Bytes(), want)
	}
	r, err := NewReader(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	seqs, err := got.Sequences()
	if err != nil {
		t.Fatal(err)
	}
	// Calls 0 and 1 merge (call 1 keeps all 5 tokens of call 0); call 2
	// keeps only 5 of call 1's 8 and starts a new sequence.
	if len(seqs) != 2 || !equalInts(seqs[0].Tokens, []int{1, 2, 3, 4, 5, 6, 7, 8}) || !equalInts(seqs[1].Tokens, []int{1, 2, 3, 4, 5, 9, 10, 256}) {
		t.Fatalf("sequences %+v", seqs)
	}
	if !bytes.Equal(seqs[0].LossMask, []uint8{0, 0, 0, 1, 1, 0, 1, 1}) || !equalInts(seqs[0].Versions, []int{-1, -1, -1, 2, 2, -1, 2, 3}) {
		t.Fatalf("mask %v versions %v", seqs[0].LossMask, seqs[0].Versions)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTrajectoryFileRoundTrip(t *testing.T) {
	// A real run's trajectory, so every field the agent fills is covered.
	fs := &fakeSampler{turns: []turn{{text: "<search>q</search>"}, {text: "n</think>"}, {text: "<answer>a</answer>", eos: true}}}
	env := newEnv(fs)
	env.Search = &fakeSearch{docs: testDocs}
	a, _ := NewSearchAgent(ASearcherConfig())
	run, err := a.Run(context.Background(), env, Task{ID: "q1", Question: "q"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"t.jsonl", "t.jsonl.zst"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			w, err := Create(path)
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if err := w.Write(run); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("file visible before Close: %v", err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := ReadFile(path)
			if err != nil || len(got) != 3 {
				t.Fatalf("read %d: %v", len(got), err)
			}
			a, _ := json.Marshal(run)
			b, _ := json.Marshal(got[2])
			var x, y map[string]any
			_ = json.Unmarshal(a, &x)
			_ = json.Unmarshal(b, &y)
			x["schema"] = float64(TrajectorySchema)
			a, _ = json.Marshal(x)
			b, _ = json.Marshal(y)
			if !bytes.Equal(a, b) {
				t.Fatalf("round trip differs:\n%s\n%s", a, b)
			}
			s1, _ := run.Sequences()
			s2, err := got[0].Sequences()
			if err != nil || len(s1) != len(s2) || !equalInts(s1[0].Tokens, s2[0].Tokens) {
				t.Fatalf("sequences differ after the round trip: %v", err)
			}
		})
	}
}

// TestTornRecord: a writer killed mid-record leaves a file whose complete
// records still read, and the torn tail is reported, for both formats.
func TestTornRecord(t *testing.T) {
	for _, name := range []string{"t.jsonl", "t.jsonl.zst"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			for i := range 3 {
				w, err := Append(path)
				if err != nil {
					t.Fatal(err)
				}
				tr := goldenTrajectory()
				tr.Sample = i
				if err := w.Write(tr); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			}
			data, _ := os.ReadFile(path)
			if err := os.WriteFile(path, data[:len(data)-20], 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ReadFile(path)
			if !errors.Is(err, ErrTornRecord) || len(got) != 2 || got[1].Sample != 1 {
				t.Fatalf("got %d records, err %v", len(got), err)
			}
		})
	}
}

func TestReaderRejectsGarbage(t *testing.T) {
	for name, in := range map[string]string{
		"not json":     "hello\n",
		"newer schema": `{"schema": 99, "id": "x"}` + "\n",
		"bad zstd":     string(zstdMagic) + "garbage",
	} {
		r, err := NewReader(bytes.NewReader([]byte(in)))
		if err == nil {
			_, err = r.Next()
		}
		if err == nil || errors.Is(err, io.EOF) {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

func FuzzReader(f *testing.F) {
	golden, _ := os.ReadFile(filepath.Join("testdata", "trajectory.golden.jsonl"))
	f.Add(golden)
	f.Add([]byte("{}\n{\"calls\":[{\"input\":{\"base\":5,\"keep\":3}}]}\n"))
	f.Add(append(append([]byte{}, zstdMagic...), 0, 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		defer r.Close()
		for range 100 {
			tr, err := r.Next()
			if err != nil {
				return
			}
			// A record read from an untrusted file must not crash the
			// consumers either.
			_, _ = tr.Sequences()
			_ = tr.Stats()
		}
	})
}

// TestSequencesExtendOlderSequence: a call whose prompt starts with an
// older sequence (not its base's) extends that one, as AReaL's prefix
// merge does.
func TestSequencesExtendOlderSequence(t *testing.T) {
	tr := &Trajectory{Mode: ModeTokens, TokenLevel: true, Calls: []Call{
		{Input: Input{Base: -1, Added: []int{1, 2}}, InputLen: 2, Output: []int{3}, Logprobs: []float32{-1}, Versions: []int{5}},
		{Input: Input{Base: 0, Keep: 1, Added: []int{9}}, InputLen: 2, Output: []int{4}, Logprobs: []float32{-2}, Versions: []int{5}},
		{Input: Input{Base: 1, Keep: 0, Added: []int{1, 2, 3, 5}}, InputLen: 4, Output: []int{6, 7}, Logprobs: []float32{-3, -4}, Versions: []int{6, 6}},
	}}
	seqs, err := tr.Sequences()
	if err != nil {
		t.Fatal(err)
	}
	if len(seqs) != 2 || !equalInts(seqs[0].Tokens, []int{1, 2, 3, 5, 6, 7}) || !equalInts(seqs[0].Calls, []int{0, 2}) || !equalInts(seqs[1].Tokens, []int{1, 9, 4}) {
		t.Fatalf("sequences %+v", seqs)
	}
	if !bytes.Equal(seqs[0].LossMask, []uint8{0, 0, 1, 0, 1, 1}) || !equalInts(seqs[0].Versions, []int{-1, -1, 5, -1, 6, 6}) ||
		seqs[0].Logprobs[4] != -3 || seqs[0].Logprobs[3] != 0 {
		t.Fatalf("seq 0 %+v", seqs[0])
	}
	// A null logprob (-Inf from the OpenAI client) is missing, token by token.
	tr.Calls[2].Logprobs = []float32{float32(math.Inf(-1)), -4}
	seqs, _ = tr.Sequences()
	if !seqs[0].MissingLogprobs || !reflect.DeepEqual(seqs[0].LogprobMissing, []bool{false, false, false, false, true, false}) ||
		seqs[0].Logprobs[4] != 0 || seqs[0].Logprobs[5] != -4 || seqs[1].LogprobMissing != nil {
		t.Fatalf("null logprob: %+v", seqs)
	}
	// Without logprobs and versions the sequence says so, token by token;
	// a restored stop token (not sampled) is not marked.
	tr.Calls[2].Logprobs, tr.Calls[2].Versions = nil, nil
	seqs, _ = tr.Sequences()
	if !seqs[0].MissingLogprobs || !seqs[0].MissingVersions || seqs[1].MissingLogprobs || seqs[0].Versions[4] != -1 {
		t.Fatalf("missing flags %+v", seqs)
	}
	if !reflect.DeepEqual(seqs[0].LogprobMissing, []bool{false, false, false, false, true, true}) {
		t.Fatalf("missing marks %v, want the last call's two tokens", seqs[0].LogprobMissing)
	}
	tr.Calls[2].Unsampled = 1
	seqs, _ = tr.Sequences()
	if !reflect.DeepEqual(seqs[0].LogprobMissing, []bool{false, false, false, false, true, false}) || seqs[0].LossMask[5] != 0 {
		t.Fatalf("with a restored stop token: marks %v, mask %v", seqs[0].LogprobMissing, seqs[0].LossMask)
	}
	tr.Calls[2].Unsampled = 0
	// Corrupt deltas are refused, not followed.
	tr.Calls[2].Input.Base = 7
	if _, err := tr.Sequences(); err == nil {
		t.Fatal("bad base accepted")
	}
}

// writeSamples appends n trajectories (Sample 0..n-1) and returns the byte
// offset where each record starts.
func writeSamples(t *testing.T, path string, n int) []int64 {
	t.Helper()
	var starts []int64
	for i := range n {
		st, err := os.Stat(path)
		if err != nil {
			starts = append(starts, 0)
		} else {
			starts = append(starts, st.Size())
		}
		w, err := Append(path)
		if err != nil {
			t.Fatal(err)
		}
		tr := goldenTrajectory()
		tr.Sample = i
		if err := w.Write(tr); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return starts
}

// TestDamagedRecordCostsOnlyItself: bytes flipped inside one record (one
// zstd frame, or one line) are reported with the record's offset, and every
// other record still reads — before, the reader stopped at the bad frame
// and eval rewrote the file with only the records before it.
func TestDamagedRecordCostsOnlyItself(t *testing.T) {
	for _, name := range []string{"t.jsonl", "t.jsonl.zst"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			const n, bad = 30, 11
			starts := writeSamples(t, path, n)
			data, _ := os.ReadFile(path)
			mid := (starts[bad] + starts[bad+1]) / 2
			data[mid] ^= 0x5a
			data[mid+1] ^= 0xa5
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var samples []int
			var corrupt []*CorruptError
			for {
				tr, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				var ce *CorruptError
				if errors.As(err, &ce) {
					corrupt = append(corrupt, ce)
					continue
				}
				if err != nil {
					t.Fatalf("after %d records: %v", len(samples), err)
				}
				samples = append(samples, tr.Sample)
			}
			if len(corrupt) != 1 || corrupt[0].Offset != starts[bad] {
				t.Fatalf("damage reports %v, want one at offset %d", corrupt, starts[bad])
			}
			if len(samples) != n-1 {
				t.Fatalf("read %d intact records, want %d", len(samples), n-1)
			}
			for _, s := range samples {
				if s == bad {
					t.Fatalf("the damaged record %d was returned", bad)
				}
			}
			if r.Offset() != int64(len(data)) {
				t.Errorf("Offset %d after the last record, want %d", r.Offset(), len(data))
			}
		})
	}
}

// TestTornOffset: Offset points at the start of a torn last record.
func TestTornOffset(t *testing.T) {
	for _, name := range []string{"t.jsonl", "t.jsonl.zst"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			starts := writeSamples(t, path, 4)
			data, _ := os.ReadFile(path)
			os.WriteFile(path, data[:len(data)-7], 0o644)
			r, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			for {
				_, err := r.Next()
				if err == nil {
					continue
				}
				if !errors.Is(err, ErrTornRecord) {
					t.Fatalf("err %v, want torn", err)
				}
				break
			}
			if r.Offset() != starts[3] {
				t.Errorf("Offset %d, want %d", r.Offset(), starts[3])
			}
		})
	}
}
