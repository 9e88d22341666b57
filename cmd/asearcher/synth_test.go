package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/retrieval"
)

// synthModel answers every synthesis step so that each seed yields its
// base question (unsolved) and then exits.
func synthModel(c fakellm.Call) fakellm.Reply {
	text := c.Messages[len(c.Messages)-1].Content
	switch {
	case strings.HasPrefix(text, "## Task: base question"):
		return fakellm.Reply{Text: `{"question": "Which code word does this page hide?", "answer": "omega", "statement": "The code word is omega."}`}
	case strings.HasPrefix(text, "## Task: choose an action"):
		return fakellm.Reply{Text: `{"action": "exit"}`}
	case strings.HasPrefix(text, "## Task: check quality"):
		return fakellm.Reply{Text: `{"well_formed": true, "single": true, "answerable": true, "answer_correct": true}`}
	case strings.HasPrefix(text, "## Task: answer from memory"):
		return fakellm.Reply{Text: "<answer> alpha </answer>"}
	case strings.HasPrefix(text, "## Task: check an alternative answer"):
		return fakellm.Reply{Text: `{"also_correct": false}`}
	}
	return fakellm.Reply{Text: "Rationale: different.\nVerdict: INCORRECT"}
}

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestSynthCommand(t *testing.T) {
	dir := t.TempDir()
	index := filepath.Join(dir, "index")
	if _, err := retrieval.Build(context.Background(), retrieval.BuildOptions{
		Corpus: "../../dataset/data/hotpotqa-hipporag-100/corpus.json", Out: index, Progress: retrieval.ProgressOff, NoSync: true,
	}); err != nil {
		t.Fatal(err)
	}
	srv := fakellm.New(fakellm.Options{Handler: synthModel})
	defer srv.Close()
	out := filepath.Join(dir, "qa.jsonl")
	args := []string{"synth", "--index", index, "--model", srv.OpenAIURL(), "--n", "3", "--out", out,
		"--attempts", "2", "--max-turns", "2", "--no-progress", "--log-level", "warn"}
	stdout, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if !strings.Contains(stdout, "accepted 3") || !strings.Contains(stdout, "0/2:3") {
		t.Fatalf("report:\n%s", stdout)
	}
	// Rerunning resumes: nothing left to do, nothing written twice.
	calls := len(srv.Calls())
	if _, err := runCLI(t, args...); err != nil {
		t.Fatal(err)
	}
	if len(srv.Calls()) != calls {
		t.Error("a finished run called the model again")
	}
	hard := filepath.Join(dir, "hard.jsonl")
	stdout, err = runCLI(t, "synth", "filter", out, "--out", hard, "--per-seed", "1")
	if err != nil || !strings.Contains(stdout, "kept 3 of 3") {
		t.Fatalf("filter: %v %s", err, stdout)
	}
	if b, _ := os.ReadFile(hard); bytes.Count(b, []byte("\n")) != 3 {
		t.Fatalf("filtered file:\n%s", b)
	}

	for _, bad := range [][]string{
		{"synth", "--model", srv.OpenAIURL(), "--out", out},
		{"synth", "--index", index, "--search", "http://127.0.0.1:1", "--model", srv.OpenAIURL(), "--out", out},
		{"synth", "--search", "http://127.0.0.1:1", "--model", srv.OpenAIURL(), "--out", out},
		{"synth", "--index", filepath.Join(dir, "nope"), "--model", srv.OpenAIURL(), "--out", out},
	} {
		if _, err := runCLI(t, bad...); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
