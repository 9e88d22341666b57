package synth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/internal/testindex"
)

// stateless is a fake model for many seeds at once: every base question is
// valid and unsolved (accepted as version 0), the first action is a fuzz
// (accepted as version 1) and the next is exit.
func stateless(c fakellm.Call) fakellm.Reply {
	text := c.Prompt
	if len(c.Messages) > 0 {
		text = c.Messages[len(c.Messages)-1].Content
	}
	step := "judge"
	if m := taskRE.FindStringSubmatch(text); m != nil {
		step = m[1]
	}
	switch step {
	case "base question":
		title := between(text, "Page title: ", "\n")
		return fakellm.Reply{Text: jsonLine(map[string]string{
			"question": "Which code word is hidden in the page about " + title + "?", "answer": "omega", "statement": "The code word is omega.",
		})}
	case "choose an action":
		if strings.Contains(text, "Think twice.") {
			return fakellm.Reply{Text: `{"action": "exit", "entity": "", "reason": "hard"}`}
		}
		return fakellm.Reply{Text: `{"action": "fuzz", "entity": ""}`}
	case "fuzz a detail":
		q := between(text, "Current question: ", "\n")
		return fakellm.Reply{Text: jsonLine(map[string]string{"question": q + " Think twice.", "answer": "omega", "obscured": "nothing"})}
	case "check coverage":
		return fakellm.Reply{Text: `{"covered": false}`}
	case "check quality":
		return fakellm.Reply{Text: `{"well_formed": true, "single": true, "answerable": true, "answer_correct": true}`}
	case "answer from memory":
		return fakellm.Reply{Text: "<answer> alpha </answer>"}
	case "check an alternative answer":
		return fakellm.Reply{Text: `{"also_correct": false}`}
	}
	if strings.Contains(text, "researches it with tools") { // the search agent (tool solver)
		return fakellm.Reply{Text: "<think>I know it.</think>\n<answer> omega </answer>"}
	}
	return fakellm.Reply{Text: "Rationale: no.\nVerdict: INCORRECT"}
}

func statelessConfig(t testing.TB, modelURL string, seeds int) Config {
	ix := testindex.Open(t)
	src, err := NewCorpusSource(ix, nil, 7)
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		Source: src, Generator: newPool(t, modelURL), Seeds: seeds, Concurrency: 2, MaxTurns: 4,
		SolverAttempts: 2, MaxSolveRate: 0.5, MaxParseRetries: 1, Progress: ProgressOff,
		Logger: slog.New(slog.DiscardHandler),
	}
}

func runOnce(t testing.TB, cfg Config, out string) (Stats, error) {
	t.Helper()
	o, err := OpenOutput(out)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s.Run(context.Background(), o)
}

func readRecordsFile(t testing.TB, path string) []Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := ReadRecords(f)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestKillChild is the process TestResumeAfterKill kills; it does nothing
// in a normal test run.
func TestKillChild(t *testing.T) {
	if os.Getenv("SYNTH_KILL_CHILD") == "" {
		t.Skip("helper process")
	}
	cfg := statelessConfig(t, os.Getenv("SYNTH_MODEL"), 6)
	cfg.Concurrency = 1
	_, err := runOnce(t, cfg, os.Getenv("SYNTH_OUT"))
	t.Log(err)
}

// TestResumeAfterKill: a run killed with SIGKILL mid-way and then resumed
// writes every seed's records exactly once, and the resumed run only does
// the seeds the killed one had not finished.
func TestResumeAfterKill(t *testing.T) {
	srv := fakellm.New(fakellm.Options{Handler: func(c fakellm.Call) fakellm.Reply {
		r := stateless(c)
		r.Delay = 5 * time.Millisecond
		return r
	}})
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "qa.jsonl")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.v")
	cmd.Env = append(os.Environ(), "SYNTH_KILL_CHILD=1", "SYNTH_MODEL="+srv.OpenAIURL(), "SYNTH_OUT="+out)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(JournalPath(out))
		if bytes.Count(b, []byte("\n")) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child finished no seed in time:\n%s", logs.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	journal, _ := os.ReadFile(JournalPath(out))
	doneBefore := bytes.Count(journal, []byte("\n"))
	if doneBefore >= 6 {
		t.Skipf("the child finished all seeds before the kill")
	}
	// A kill in the middle of a write leaves half a line; make sure there
	// is one, in both files.
	appendTo(t, out, `{"id":"torn#v0","question":"half a rec`)
	appendTo(t, JournalPath(out), `{"seed_id":"torn","accep`)

	calls := len(srv.Calls())
	stats, err := runOnce(t, statelessConfig(t, srv.OpenAIURL(), 6), out)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Seeds != 6 {
		t.Fatalf("stats cover %d seeds, want 6", stats.Seeds)
	}
	recs := readRecordsFile(t, out)
	perSeed := map[string]int{}
	ids := map[string]bool{}
	for _, r := range recs {
		perSeed[r.SeedID]++
		if ids[r.ID] {
			t.Errorf("record %s written twice", r.ID)
		}
		ids[r.ID] = true
	}
	if len(perSeed) != 6 {
		t.Errorf("records of %d seeds, want 6: %v", len(perSeed), perSeed)
	}
	for seed, n := range perSeed {
		if n != 2 {
			t.Errorf("seed %s has %d records, want 2", seed, n)
		}
	}
	// The resumed run did only the unfinished seeds: each takes 1 base +
	// 2 quality + 4 solver + 4 judge... calls; finished seeds cost nothing.
	perSeedCalls := calls / max(doneBefore, 1)
	if resumed := len(srv.Calls()) - calls; resumed > (6-doneBefore+1)*perSeedCalls {
		t.Errorf("resumed run made %d calls for %d unfinished seeds (%d per seed)", resumed, 6-doneBefore, perSeedCalls)
	}
	// A second resume does nothing.
	before := len(srv.Calls())
	if _, err := runOnce(t, statelessConfig(t, srv.OpenAIURL(), 6), out); err != nil {
		t.Fatal(err)
	}
	if len(srv.Calls()) != before || len(readRecordsFile(t, out)) != len(recs) {
		t.Error("a finished run did work again")
	}
}

func appendTo(t *testing.T, path, s string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(s)
	f.Close()
}

// TestDeadServer: with the model server gone, every seed fails, nothing is
// committed, the error says to rerun, and a rerun against a live server
// completes the same output.
func TestDeadServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String() + "/v1?model=m"
	l.Close()
	out := filepath.Join(t.TempDir(), "qa.jsonl")
	start := time.Now()
	_, err = runOnce(t, statelessConfig(t, dead, 3), out)
	if err == nil || !strings.Contains(err.Error(), "3 of 3 seeds failed") || !strings.Contains(err.Error(), "rerun") {
		t.Fatalf("error %v", err)
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("a dead server took %v", time.Since(start))
	}
	if b, _ := os.ReadFile(out); len(b) != 0 {
		t.Errorf("output after failures: %q", b)
	}
	srv := fakellm.New(fakellm.Options{Handler: stateless})
	defer srv.Close()
	stats, err := runOnce(t, statelessConfig(t, srv.OpenAIURL(), 3), out)
	if err != nil || stats.Seeds != 3 || stats.Accepted != 6 {
		t.Fatalf("rerun: %v %+v", err, stats)
	}
}

// TestGarbageModel: a model that never writes valid JSON, or writes JSON
// of the wrong shape, ends every seed as unparseable with each reply
// recorded; nothing is written and nothing crashes.
func TestGarbageModel(t *testing.T) {
	replies := []string{
		"", "I am not sure.", "{", `{"question": 5, "answer": "x", "statement": "y"}`,
		`{"question": "q?", "answer": "a", "statement": "s", "extra": 1}`, `{"question": "", "answer": "a", "statement": "s"}`,
		"<think>{\"question\": \"q\"}</think> nothing after", strings.Repeat("{[", 5000), "\x00\xff\xfe",
	}
	for i, bad := range replies {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			srv := fakellm.New(fakellm.Options{Handler: func(fakellm.Call) fakellm.Reply { return fakellm.Reply{Text: bad} }})
			defer srv.Close()
			out := filepath.Join(t.TempDir(), "qa.jsonl")
			stats, err := runOnce(t, statelessConfig(t, srv.OpenAIURL(), 2), out)
			if err != nil {
				t.Fatal(err)
			}
			if stats.Accepted != 0 || stats.Ends["base_unparseable"] != 2 || stats.ParseFailures != 4 || stats.Rejected[ReasonUnparseable] != 2 {
				t.Fatalf("stats %+v", stats)
			}
			o, err := OpenOutput(out)
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			for _, r := range o.Results() {
				if r.ParseFailures[0].Step != "base_qa" || r.ParseFailures[0].Error == "" {
					t.Errorf("parse failure record %+v", r.ParseFailures)
				}
			}
		})
	}
}

// TestCancel: cancelling the context stops the run with an error and
// commits no half-done seed.
func TestCancel(t *testing.T) {
	srv := fakellm.New(fakellm.Options{Handler: func(c fakellm.Call) fakellm.Reply {
		r := stateless(c)
		r.Delay = 50 * time.Millisecond
		return r
	}})
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "qa.jsonl")
	o, err := OpenOutput(out)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	s, err := New(statelessConfig(t, srv.OpenAIURL(), 4))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Millisecond)
	defer cancel()
	_, err = s.Run(ctx, o)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v", err)
	}
	if n := len(o.Results()); n != 0 {
		t.Errorf("%d seeds committed after cancel", n)
	}
}

// TestToolSolver: with a tool solver, every validated version is also
// answered by the search agent over the index, and its rate is recorded
// (and filtered on).
func TestToolSolver(t *testing.T) {
	srv := fakellm.New(fakellm.Options{Handler: stateless})
	defer srv.Close()
	cfg := statelessConfig(t, srv.OpenAIURL(), 1)
	wf, err := agent.NewRegistry().New(agent.AgentASearcher, agent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ix := testindex.Open(t)
	cfg.ToolSolver, cfg.ToolAttempts = wf, 2
	cfg.ToolEnv = &agent.Env{Sampler: cfg.Generator, Search: IndexTools{Index: ix}, Browse: IndexTools{Index: ix}, Limits: agent.Limits{MaxTurns: 4}.WithDefaults()}
	out := filepath.Join(t.TempDir(), "qa.jsonl")
	if _, err := runOnce(t, cfg, out); err != nil {
		t.Fatal(err)
	}
	recs := readRecordsFile(t, out)
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	for _, r := range recs {
		if r.ToolSolveRate == nil || *r.ToolSolveRate != 1 {
			t.Fatalf("tool solve rate %v", r.ToolSolveRate)
		}
	}
	if kept := Filter(recs, FilterOptions{MaxSolveRate: 1, MaxToolSolveRate: new(float64)}); len(kept) != 0 {
		t.Fatalf("filter kept %d versions the agent solved", len(kept))
	}
	agentCalls := 0
	for _, c := range srv.Calls() {
		if strings.Contains(c.Prompt, "researches it with tools") {
			agentCalls++
		}
	}
	if agentCalls != 4 {
		t.Errorf("%d agent calls, want 2 versions × 2 attempts", agentCalls)
	}
}

// mapSource is an in-memory source: one seed and a link table.
type mapSource struct {
	pages map[string]Page
	links map[string][]string
	seed  string
}

func (m mapSource) Seeds(context.Context, int) ([]Page, error) { return []Page{m.pages[m.seed]}, nil }

func (m mapSource) Related(_ context.Context, p Page, k int) ([]Page, error) {
	var out []Page
	for _, t := range m.links[p.Title] {
		out = append(out, m.pages[t])
	}
	return out, nil
}

// TestMultiHop: after an injection, the injected page's own links are
// offered, so a chain reaches pages the seed does not link to.
func TestMultiHop(t *testing.T) {
	srv := fakellm.New(fakellm.Options{Handler: func(c fakellm.Call) fakellm.Reply {
		text := c.Messages[len(c.Messages)-1].Content
		switch {
		case strings.HasPrefix(text, "## Task: choose an action"):
			for _, e := range []string{"Cee", "Bee"} {
				if strings.Contains(text, "\n- "+e+"\n") || strings.HasSuffix(between(text, "(use the exact name):\n", "\n\n"), "- "+e) {
					return fakellm.Reply{Text: `{"action": "inject", "entity": "` + e + `"}`}
				}
			}
			return fakellm.Reply{Text: `{"action": "exit"}`}
		case strings.HasPrefix(text, "## Task: inject a fact"):
			title := between(text, "Linked page: ", "\n")
			q := between(text, "Current question: ", "\n")
			return fakellm.Reply{Text: jsonLine(map[string]string{"fact": title + " is linked.", "bridge": "x", "question": q + " Via " + title + ".", "answer": "omega"})}
		}
		return stateless(c)
	}})
	defer srv.Close()
	src := mapSource{seed: "Ay", pages: map[string]Page{
		"Ay": {ID: "1", Title: "Ay", Text: "Ay is a page."}, "Bee": {ID: "2", Title: "Bee"}, "Cee": {ID: "3", Title: "Cee"},
	}, links: map[string][]string{"Ay": {"Bee"}, "Bee": {"Cee", "Ay"}}}
	cfg := statelessConfig(t, srv.OpenAIURL(), 1)
	cfg.Source, cfg.MaxTurns = src, 5
	out := filepath.Join(t.TempDir(), "qa.jsonl")
	if _, err := runOnce(t, cfg, out); err != nil {
		t.Fatal(err)
	}
	recs := readRecordsFile(t, out)
	last := recs[len(recs)-1]
	if len(recs) != 3 || last.Injections != 2 || len(last.Evidence) != 3 || last.Evidence[2].Title != "Cee" || last.Evidence[1].Title != "Bee" {
		t.Fatalf("%d records; last %+v", len(recs), last)
	}
}
