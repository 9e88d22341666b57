package synth

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/internal/fakellm"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestPromptsGolden pins the text of every synthesis prompt and the
// placeholders each is rendered with (docs/synth.md lists them).
func TestPromptsGolden(t *testing.T) {
	want := map[string][]string{
		PromptBaseQA:  {"title", "text"},
		PromptAction:  {"question", "answer", "statements", "actions", "entities"},
		PromptInject:  {"question", "answer", "statements", "title", "text"},
		PromptCovered: {"statements", "fact"},
		PromptFuzz:    {"question", "answer", "statements"},
		PromptQuality: {"question", "answer", "statements"},
		PromptSolve:   {"question"},
		PromptUnique:  {"question", "answer", "statements", "alternative"},
	}
	reg := agent.NewPrompts()
	if err := RegisterPrompts(reg); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, p := range builtinPrompts() {
		got, err := reg.Get(p.Name)
		if err != nil {
			t.Fatal(err)
		}
		ph := got.Placeholders()
		slices.Sort(ph)
		w := slices.Clone(want[p.Name])
		slices.Sort(w)
		if !slices.Equal(ph, w) {
			t.Errorf("%s placeholders %v, want %v", p.Name, ph, w)
		}
		b.WriteString("=== " + p.Name + "\n" + got.Text + "\n")
	}
	path := filepath.Join("testdata", "prompts.golden")
	if *update {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(golden) != b.String() {
		t.Fatalf("prompts differ from %s (rerun with -update if the change is meant)", path)
	}
}

// TestPromptOverride: a prompt registered under a synth name replaces the
// built-in one.
func TestPromptOverride(t *testing.T) {
	srv := fakellm.New(fakellm.Options{Handler: stateless})
	defer srv.Close()
	reg := agent.NewPrompts()
	if err := reg.Register(agent.Prompt{Name: PromptSolve, Chat: true, Text: "## Task: answer from memory\nCUSTOM SOLVER Question: {question}"}); err != nil {
		t.Fatal(err)
	}
	cfg := statelessConfig(t, srv.OpenAIURL(), 1)
	cfg.Prompts = reg
	if _, err := runOnce(t, cfg, filepath.Join(t.TempDir(), "qa.jsonl")); err != nil {
		t.Fatal(err)
	}
	custom := 0
	for _, c := range srv.Calls() {
		if len(c.Messages) > 0 && strings.Contains(c.Messages[0].Content, "CUSTOM SOLVER") {
			custom++
		}
	}
	if custom == 0 {
		t.Fatal("the registered solver prompt was not used")
	}
}
