package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPromptsGolden renders every built-in prompt with fixed values; a
// change to the text the model sees shows up as a diff of the golden file.
func TestPromptsGolden(t *testing.T) {
	r := NewPrompts()
	vars := map[string]string{
		"question": "Who wrote {date}?", "date": "2025-01-02", "validity": ValidityIsValid, "history": "(nothing yet)",
		"answer_action": AnswerActionLine, "url": "https://example.org/p", "part": "1 of 2", "content": "CONTENT", "query": "QUERY",
	}
	known := map[string]bool{}
	for k := range vars {
		known[k] = true
	}
	var buf bytes.Buffer
	for _, name := range r.Names() {
		p, err := r.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, ph := range p.Placeholders() {
			if !known[ph] {
				t.Errorf("prompt %s uses unknown placeholder {%s}", name, ph)
			}
		}
		out := p.Render(vars)
		if strings.Contains(out, "{question}") || !strings.Contains(out, "Who wrote {date}?") {
			t.Errorf("prompt %s: question not rendered once: %q", name, out)
		}
		buf.WriteString("==== " + name + " ====\n" + out + "\n")
	}
	golden := filepath.Join("testdata", "prompts.golden")
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
		t.Fatalf("rendered prompts changed; run go test ./agent -run PromptsGolden -update and review the diff")
	}
}

func TestPromptRegistry(t *testing.T) {
	r := NewPrompts()
	want := []string{PromptASearcher, PromptSearchOnly, PromptSearchR1, PromptTiny, PromptReasonAct, PromptReasonReadPage, PromptReasonReadFound, PromptReasonAnswer}
	for _, n := range want {
		if !slices.Contains(r.Names(), n) {
			t.Errorf("missing built-in prompt %s", n)
		}
	}
	if _, err := r.Get("nope"); err == nil || !strings.Contains(err.Error(), "known prompts: ") {
		t.Fatalf("unknown prompt: %v", err)
	}
	if err := r.Register(Prompt{Name: "x"}); err == nil {
		t.Fatal("empty prompt accepted")
	}
	if err := r.Register(Prompt{Name: "mine", Text: "Q={question}"}); err != nil {
		t.Fatal(err)
	}
	a, err := NewSearchAgent(SearchConfig{Prompt: "mine", Prompts: r})
	if err != nil {
		t.Fatal(err)
	}
	if a.prompt.Render(promptVars(Task{Question: "q"})) != "Q=q" {
		t.Fatal("custom prompt not used")
	}
	if _, err := NewSearchAgent(SearchConfig{Prompt: PromptReasonAct}); err == nil {
		t.Fatal("chat prompt accepted by the search agent")
	}
	if _, err := NewSearchAgent(SearchConfig{Style: "fancy"}); err == nil {
		t.Fatal("unknown style accepted")
	}
	// The tiny prompt stays tiny.
	tiny, _ := r.Get(PromptTiny)
	if n := len(tiny.Render(map[string]string{"question": ""})); n > 8 {
		t.Fatalf("tiny prompt overhead %d bytes", n)
	}
}

func TestRegistry(t *testing.T) {
	reg := NewRegistry()
	for _, n := range []string{AgentASearcher, AgentSearchOnly, AgentSearchR1, AgentTiny, AgentReasoning, AgentClosedBook} {
		w, err := reg.New(n, Options{})
		if err != nil || w.Name() != n {
			t.Fatalf("%s: %v", n, err)
		}
	}
	w, err := reg.New(AgentASearcher, Options{Prompt: PromptTiny})
	if err != nil || w.(*SearchAgent).Config().Prompt != PromptTiny {
		t.Fatalf("prompt override: %v", err)
	}
	if _, err := reg.New(AgentReasoning, Options{Prompt: PromptTiny}); err == nil {
		t.Fatal("prompt override accepted by the reasoning agent")
	}
	if _, err := reg.New("nope", Options{}); err == nil || !strings.Contains(err.Error(), "known agents") {
		t.Fatalf("unknown agent: %v", err)
	}
}
