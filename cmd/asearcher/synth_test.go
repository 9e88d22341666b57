package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/internal/testindex"
	"github.com/asearcher/asearcher/synth"
)

// synthModel answers every synthesis step so that each seed yields its
// base question (unsolved) and then exits.
func synthModel(c fakellm.Call) fakellm.Reply {
	text := c.Prompt
	if len(c.Messages) > 0 {
		text = c.Messages[len(c.Messages)-1].Content
	}
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
	index := testindex.Dir(t)
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

	// --config: a YAML synth block; flags on the command line win.
	cfgPath := filepath.Join(dir, "synth.yaml")
	out2 := filepath.Join(dir, "qa2.jsonl")
	os.WriteFile(cfgPath, []byte("synth:\n  index: "+index+"\n  model: "+srv.OpenAIURL()+"\n  out: "+out2+"\n  n: 1\n  attempts: 2\n  max_turns: 2\n"), 0o644)
	stdout, err = runCLI(t, "synth", "--config", cfgPath, "--n", "2", "--no-progress", "--log-level", "warn")
	if err != nil || !strings.Contains(stdout, "seeds 2 ") || !strings.Contains(stdout, "0/2:2") {
		t.Fatalf("--config run: %v\n%s", err, stdout)
	}
	if b, err := os.ReadFile(out2 + ".config.yaml"); err != nil || !strings.Contains(string(b), `"n": 2`) || !strings.Contains(string(b), "attempts: 2") {
		t.Fatalf("run config: %v\n%s", err, b)
	}
	os.WriteFile(cfgPath, []byte("synth:\n  seeds_count: 3\n"), 0o644)
	if _, err := runCLI(t, "synth", "--config", cfgPath); err == nil || !strings.Contains(err.Error(), "seeds_count") {
		t.Errorf("unknown config key: %v", err)
	}

	// --search: seeds are the best results of the queries in --seeds, pages
	// come from the server's /access.
	searchURL := testindex.Serve(t)
	seeds := filepath.Join(dir, "seeds.txt")
	os.WriteFile(seeds, []byte("# one query a line\nJames Hetfield Metallica\nNigella Lawson\n"), 0o644)
	out3 := filepath.Join(dir, "web.jsonl")
	stdout, err = runCLI(t, "synth", "--search", searchURL, "--seeds", seeds, "--model", srv.OpenAIURL(), "--out", out3,
		"--attempts", "2", "--max-turns", "2", "--no-progress", "--log-level", "warn")
	if err != nil || !strings.Contains(stdout, "accepted 2") {
		t.Fatalf("--search run: %v\n%s", err, stdout)
	}
	if b, _ := os.ReadFile(out3); !strings.Contains(string(b), `"title":"James Hetfield"`) {
		t.Fatalf("--search output:\n%s", b)
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

// TestSynthConfigDocs decodes the documented synth YAML block strictly and
// checks that its values are the flag defaults.
func TestSynthConfigDocs(t *testing.T) {
	raw, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i := strings.Index(doc, "\n## QA synthesis")
	if i < 0 {
		t.Fatal("docs/configuration.md has no synth section")
	}
	start := strings.Index(doc[i:], "```yaml\n") + i + len("```yaml\n")
	end := strings.Index(doc[start:], "```") + start
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(doc[start:end]), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := newSynthCmd()
	var fromFile synth.Options
	if err := loadSynthConfig(cmd.Flags(), path, &fromFile); err != nil {
		t.Fatal(err)
	}
	def := func(name string) string { return cmd.Flags().Lookup(name).DefValue }
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	atof := func(s string) float64 { f, _ := strconv.ParseFloat(s, 64); return f }
	want := synth.Options{
		Index: fromFile.Index, Out: fromFile.Out, Model: fromFile.Model,
		Access: def("access"), N: atoi(def("n")), Seed: uint64(atoi(def("seed"))), Concurrency: atoi(def("concurrency")),
		MaxTurns: atoi(def("max-turns")), Attempts: atoi(def("attempts")), MaxSolveRate: atof(def("max-solve-rate")),
		ExitSolveRate: atof(def("exit-solve-rate")), MaxLinks: atoi(def("max-links")), Retries: atoi(def("retries")),
		MaxPageChars: atoi(def("max-page-chars")), ToolAttempts: atoi(def("tool-attempts")), Agent: def("agent"),
		Temperature: atof(def("temperature")), TopP: atof(def("top-p")), MaxTokens: atoi(def("max-tokens")),
		SolverTemperature: atof(def("solver-temperature")), SolverMaxTokens: atoi(def("solver-max-tokens")),
	}
	if fromFile != want {
		t.Fatalf("documented block\n%+v\ndiffers from the flag defaults\n%+v", fromFile, want)
	}
}
