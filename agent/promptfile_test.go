package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An upstream-style prompt file drives the search agent: {question} is
// filled, {{ }} are literal braces, and the model sees exactly that text.
func TestPromptFileSearchAgent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "asearcher.txt")
	text := "A conversation {{with braces}}. Answer in <answer> </answer>.\n\nUser: {question}\n\nAssistant: \n<think>"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := NewRegistry().New(AgentASearcher, Options{Prompt: "file:" + path})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSampler{turns: []turn{{text: "<answer> Paris </answer>", honour: true}}}
	traj, err := w.Run(context.Background(), newEnv(f), Task{ID: "q", Question: "Capital of {France}?"})
	if err != nil || traj.Answer != "Paris" {
		t.Fatalf("run: %v answer %q", err, traj.Answer)
	}
	got := (byteTok{}).Decode(f.requests()[0].InputIDs)
	want := "A conversation {with braces}. Answer in <answer> </answer>.\n\nUser: Capital of {France}?\n\nAssistant: \n<think>"
	if got != want {
		t.Fatalf("prompt\n%q\nwant\n%q", got, want)
	}

	for body, msg := range map[string]string{
		"User: {questoin}":   "unknown slot {questoin}",
		"no slots at all":    "uses no slot",
		"User: {question":    "never closed",
		"User: {question} }": "single '}'",
	} {
		p := filepath.Join(dir, "bad.txt")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := NewRegistry().New(AgentASearcher, Options{Prompt: "file:" + p}); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: err = %v, want %q", body, err, msg)
		}
	}
	if _, err := NewRegistry().New(AgentASearcher, Options{Prompt: "file:" + filepath.Join(dir, "missing.txt")}); err == nil {
		t.Error("a missing prompt file was accepted")
	}
}

// The reasoning agent takes a directory: files present replace their
// prompt, the others stay built in.
func TestPromptFilesReasoningAgent(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "act.txt"), []byte("Q: {question}\nHistory:\n{history}\n{answer_action}\nAct now."), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := NewRegistry().New(AgentReasoning, Options{Prompt: "file:" + dir})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSampler{turns: []turn{{text: "<thought>Known.</thought><answer>Frank Herbert</answer>", honour: true}}}
	env := newEnv(f)
	env.Template = chatML{}
	traj, err := w.Run(context.Background(), env, Task{Question: "Who wrote Dune?"})
	if err != nil || traj.Answer != "Frank Herbert" {
		t.Fatalf("run: %v %q", err, traj.Answer)
	}
	if got := (byteTok{}).Decode(f.requests()[0].InputIDs); !strings.Contains(got, "Q: Who wrote Dune?\nHistory:\n(nothing yet)\n") || !strings.Contains(got, "Act now.") {
		t.Fatalf("act prompt %q", got)
	}
	if _, err := NewRegistry().New(AgentReasoning, Options{Prompt: "file:" + t.TempDir()}); err == nil {
		t.Error("an empty prompt directory was accepted")
	}
	if _, err := NewRegistry().New(AgentReasoning, Options{Prompt: "asearcher"}); err == nil {
		t.Error("a named prompt for the reasoning agent was accepted")
	}
}
