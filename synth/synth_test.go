package synth

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asearcher/asearcher/dataset"
	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/internal/testindex"
	"github.com/asearcher/asearcher/llm"
)

// script is a fake model that answers each synthesis step from tables: the
// step is read from the prompt's "## Task:" heading.
type script struct {
	mu       sync.Mutex
	actions  []string            // action replies, in order
	inject   []string            // inject replies, in order
	fuzz     []string            // fuzz replies, in order
	solve    map[string][]string // question → solver replies, in order
	unique   map[string]bool     // question → also_correct
	base     string
	calls    map[string]int
	offered  []string // entity lists shown with each action call
	fallback func(step string, c fakellm.Call) string
}

var taskRE = regexp.MustCompile(`(?m)^## Task: (.+)$`)

func (s *script) handle(c fakellm.Call) fakellm.Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls == nil {
		s.calls = map[string]int{}
	}
	text := ""
	if len(c.Messages) > 0 {
		text = c.Messages[len(c.Messages)-1].Content
	}
	step := "judge"
	if m := taskRE.FindStringSubmatch(text); m != nil {
		step = m[1]
	}
	n := s.calls[step]
	s.calls[step]++
	next := func(list []string) string {
		if n < len(list) {
			return list[n]
		}
		return "out of script"
	}
	if s.fallback != nil {
		return fakellm.Reply{Text: s.fallback(step, c)}
	}
	switch step {
	case "base question":
		return fakellm.Reply{Text: s.base}
	case "choose an action":
		_, ents, _ := strings.Cut(text, "(use the exact name):\n")
		ents, _, _ = strings.Cut(ents, "\n\n")
		s.offered = append(s.offered, ents)
		return fakellm.Reply{Text: next(s.actions)}
	case "inject a fact":
		return fakellm.Reply{Text: next(s.inject)}
	case "fuzz a detail":
		return fakellm.Reply{Text: next(s.fuzz)}
	case "check coverage":
		return fakellm.Reply{Text: `{"covered": false}`}
	case "check quality":
		return fakellm.Reply{Text: `<think>looks fine</think>{"well_formed": true, "single": true, "answerable": true, "answer_correct": true, "reason": "ok"}`}
	case "answer from memory":
		q := strings.TrimSpace(text[strings.LastIndex(text, "Question: ")+len("Question: "):])
		s.calls["solve:"+q]++
		list := s.solve[q]
		i := s.calls["solve:"+q] - 1
		if i < len(list) {
			return fakellm.Reply{Text: "<answer> " + list[i] + " </answer>"}
		}
		return fakellm.Reply{Text: "no idea"}
	case "check an alternative answer":
		q := between(text, "Question: ", "\n")
		return fakellm.Reply{Text: fmt.Sprintf(`{"also_correct": %v, "reason": "scripted"}`, s.unique[q])}
	default: // the reward judge's prompt: everything the EM check let through is wrong
		return fakellm.Reply{Text: "Rationale: a different entity.\nVerdict: INCORRECT"}
	}
}

func between(s, from, to string) string {
	_, rest, _ := strings.Cut(s, from)
	out, _, _ := strings.Cut(rest, to)
	return out
}

func jsonLine(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func newPool(t testing.TB, spec string) *llm.Pool {
	t.Helper()
	p, err := llm.NewClient(spec, llm.ClientOptions{Pool: llm.PoolConfig{
		MaxAttempts: 2, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, HealthInterval: -1,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

const (
	q0 = "Who co-founded Metallica in October 1981 after answering a classified advertisement by drummer Lars Ulrich?"
	q1 = "Who co-founded a San Rafael heavy metal band in October 1981 after answering a classified advertisement placed by its drummer?"
	q2 = "Who co-founded the band behind the song Enter Sandman in October 1981 after answering an advertisement placed by its drummer?"
	q3 = "Who co-founded the band behind the song Enter Sandman in the early 1980s after answering an advertisement placed by its drummer?"
)

// TestEndToEnd drives one seed of the shipped HotpotQA corpus through base
// QA, a rejected answer-changing injection, a rejected non-unique
// injection, an accepted injection, an accepted fuzz and exit, against a
// scripted model on the OpenAI protocol. The base question is valid but
// too easy and is not written.
func TestEndToEnd(t *testing.T) {
	ix := testindex.Open(t)
	src, err := NewCorpusSource(ix, nil, 48) // seed 48 draws "James Hetfield" first
	if err != nil {
		t.Fatal(err)
	}
	sc := &script{
		base: jsonLine(map[string]string{"question": q0, "answer": "James Hetfield",
			"statement": "James Hetfield co-founded Metallica in October 1981 after answering a classified advertisement by drummer Lars Ulrich."}),
		actions: []string{
			"Let me think. I will inject Lars Ulrich.", // garbage, retried
			`{"action": "inject", "entity": "Lars Ulrich", "reason": "bridge"}`,
			`{"action": "inject", "entity": "Metallica", "reason": "bridge"}`,
			`{"action": "inject", "entity": "Enter Sandman", "reason": "bridge"}`,
			`{"action": "fuzz", "entity": "", "reason": "date"}`,
			`{"action": "exit", "entity": "", "reason": "hard"}`,
		},
		inject: []string{
			jsonLine(map[string]string{"fact": "Lars Ulrich is a Danish drummer.", "bridge": "Lars Ulrich", "question": "Which Danish drummer co-founded Metallica?", "answer": "Lars Ulrich"}),
			jsonLine(map[string]string{"fact": "Metallica is an American heavy metal band based in San Rafael, California.", "bridge": "Metallica", "question": q1, "answer": "James Hetfield"}),
			jsonLine(map[string]string{"fact": "Enter Sandman is a song by Metallica.", "bridge": "Metallica", "question": q2, "answer": "James Hetfield"}),
		},
		fuzz: []string{jsonLine(map[string]string{"question": q3, "answer": "James Hetfield", "obscured": "October 1981"})},
		solve: map[string][]string{
			q0: {"James Hetfield", "James Hetfield", "james hetfield", "James Hetfield"},
			q1: {"James Hetfield", "Dave Mustaine", "James Hetfield", "Dave Mustaine"},
			q2: {"Lars Ulrich", "Kirk Hammett", "Lars Ulrich", "Kirk Hammett"},
			q3: {"James Hetfield", "Kirk Hammett", "Kirk Hammett", "Kirk Hammett"},
		},
		unique: map[string]bool{q1: true},
	}
	srv := fakellm.New(fakellm.Options{Handler: sc.handle})
	defer srv.Close()

	out := filepath.Join(t.TempDir(), "qa.jsonl")
	o, err := OpenOutput(out)
	if err != nil {
		t.Fatal(err)
	}
	syn, err := New(Config{
		Source: src, Generator: newPool(t, srv.OpenAIURL()), GeneratorName: "fake-model",
		Seeds: 1, Concurrency: 1, MaxTurns: 8, SolverAttempts: 4, MaxSolveRate: 0.5, MaxParseRetries: 2, Progress: ProgressOff,
		Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) },
	})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := syn.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	o.Close()

	wantRejected := map[string]int{ReasonTooEasy: 1, ReasonAnswerChanged: 1, ReasonNotUnique: 1}
	if fmt.Sprint(stats.Rejected) != fmt.Sprint(wantRejected) {
		t.Errorf("rejected %v, want %v", stats.Rejected, wantRejected)
	}
	if stats.Accepted != 2 || stats.Ends["exit"] != 1 || stats.ParseFailures != 1 {
		t.Errorf("stats %+v", stats)
	}
	if fmt.Sprint(stats.Passed) != "map[base:1 fuzz:1 inject:1]" || fmt.Sprint(stats.Tried) != "map[base:1 exit:1 fuzz:1 inject:3]" {
		t.Errorf("tried %v passed %v", stats.Tried, stats.Passed)
	}
	if fmt.Sprint(stats.Difficulty) != "map[0/4:1 1/4:1 4/4:1]" {
		t.Errorf("difficulty histogram %v", stats.Difficulty)
	}
	if !strings.Contains(sc.offered[0], "Lars Ulrich") || strings.Contains(sc.offered[2], "Lars Ulrich") {
		t.Errorf("entities offered: %q", sc.offered)
	}

	f, _ := os.Open(out)
	recs, err := ReadRecords(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	inj, fz := recs[0], recs[1]
	if inj.Question != q2 || inj.Answer != "James Hetfield" || inj.SolverCorrect != 0 || inj.Injections != 1 || inj.Fuzzes != 0 || inj.Version != 3 {
		t.Errorf("injected version: %+v", inj)
	}
	if len(inj.Evidence) != 2 || inj.Evidence[1].Title != "Enter Sandman" || inj.Evidence[0].Title != "James Hetfield" || inj.Evidence[0].URL == "" {
		t.Errorf("evidence %+v", inj.Evidence)
	}
	if fz.Question != q3 || fz.SolveRate != 0.25 || fz.Injections != 1 || fz.Fuzzes != 1 || len(fz.Actions) != 2 || fz.Actions[1].Detail != "October 1981" {
		t.Errorf("fuzzed version: %+v", fz)
	}
	if fz.Models.Generator != "fake-model" || fz.ID != inj.SeedID+"#v4" {
		t.Errorf("models %+v id %q", fz.Models, fz.ID)
	}

	// The output is a QA set for eval and train.
	set, err := dataset.Load(out, dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Items) != 2 || set.Items[0].Question != q2 || set.Items[0].Answers[0] != "James Hetfield" {
		t.Fatalf("dataset view: %+v", set.Items)
	}

	// The journal and the stats report agree.
	var st Stats
	b, err := os.ReadFile(StatsPath(out))
	if err != nil || json.Unmarshal(b, &st) != nil || st.Accepted != 2 {
		t.Fatalf("stats file: %v %s", err, b)
	}
	var text strings.Builder
	st.WriteText(&text)
	for _, want := range []string{"accepted 2", "answer_changed 1", "not_unique 1", "too_easy 1", "0/4:1"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, text.String())
		}
	}
}
