package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/llm"
)

// chatML is a minimal ChatML template for tests on the byte tokenizer.
type chatML struct{}

func (chatML) Render(msgs []llm.Message) (string, error) {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString("<|im_start|>" + m.Role + "\n" + m.Content + "<|im_end|>\n")
	}
	b.WriteString("<|im_start|>assistant\n")
	return b.String(), nil
}

func TestReasoningAgent(t *testing.T) {
	fs := &fakeSampler{turns: []turn{
		{text: "<think>raw reasoning that is dropped</think>\n<thought>Need the author.</thought>\n<search>Dune author</search>", honour: true},
		{text: "<thought>Herbert; see http://wiki/dune</thought>", honour: true},
		{text: "<thought>Open the page.</thought><access>http://wiki/dune</access>", honour: true},
		{text: "<thought>note a</thought>", honour: true},
		{text: "<thought>note b</thought>", honour: true},
		{text: "<thought>note c</thought>", honour: true},
		{text: "<thought>Done.</thought><answer>Frank Herbert</answer>", honour: true},
	}}
	env := newEnv(fs)
	env.Template = chatML{}
	env.Search = &fakeSearch{docs: testDocs}
	env.Browse = &fakeBrowser{pages: map[string]string{"http://wiki/dune": page3}}
	cfg := ReasoningAgentConfig()
	cfg.PartChars = 40
	a, err := NewReasoningAgent(cfg)
	if err != nil {
		t.Fatal(err)
	}
	traj, err := a.Run(context.Background(), env, Task{Question: "Who wrote Dune?", Date: "2025-01-02"})
	if err != nil {
		t.Fatal(err)
	}
	if traj.End != EndAnswer || traj.Answer != "Frank Herbert" {
		t.Fatalf("end %s answer %q", traj.End, traj.Answer)
	}
	var purposes []string
	for _, c := range traj.Calls {
		purposes = append(purposes, c.Purpose)
	}
	if got := strings.Join(purposes, ","); got != "act,read,act,read,read,read,act" {
		t.Fatalf("calls %s", got)
	}
	reqs := fs.requests()
	checkInputsMatchRequests(t, traj, reqs)
	last := decode(reqs[6].InputIDs)
	for _, want := range []string{
		"<|im_start|>user\nYou are a research agent", "Today is 2025-01-02.", "Need the author.\n<search> Dune author </search>",
		"Note: Herbert; see http://wiki/dune", "Page part 2: " + strings.Repeat("b", 40)[:40], "Note: note c", AnswerActionLine,
		"<|im_end|>\n<|im_start|>assistant\n",
	} {
		if !strings.Contains(last, want) {
			t.Errorf("last prompt lacks %q", want)
		}
	}
	if strings.Contains(last, "raw reasoning") {
		t.Error("raw reasoning leaked into the history")
	}
	// Page part 2 was shown in full to its read call, with the part number.
	if p := decode(reqs[4].InputIDs); !strings.Contains(p, "part 2 of 3 of the page:\n```txt\n"+strings.Repeat("b", 40)+"\n```") {
		t.Errorf("part 2 prompt: %q", p)
	}
	seqs, err := traj.Sequences()
	if err != nil {
		t.Fatal(err)
	}
	checkSequences(t, traj, seqs)
}

func TestReasoningAgentAnswerPolicy(t *testing.T) {
	t.Run("answer too early is refused, then forced", func(t *testing.T) {
		fs := &fakeSampler{turns: []turn{
			{text: "<thought>guess</thought><answer>X</answer>"},
			{text: "<thought>look</thought><search>q</search>"},
			{text: "<thought>n</thought>"},
			{text: "<thought>sure</thought><answer>Y</answer>"},
		}}
		env := newEnv(fs)
		env.Template = chatML{}
		env.Search = &fakeSearch{docs: testDocs}
		cfg := ReasoningAgentConfig()
		cfg.AnswerAfterSearches, cfg.ForceAnswerAfter = 1, 2
		a, _ := NewReasoningAgent(cfg)
		traj, err := a.Run(context.Background(), env, Task{Question: "q"})
		if err != nil || traj.End != EndAnswer || traj.Answer != "Y" {
			t.Fatalf("err %v end %s answer %q", err, traj.End, traj.Answer)
		}
		reqs := fs.requests()
		if strings.Contains(decode(reqs[0].InputIDs), "<answer> answer </answer>") {
			t.Error("answer offered before the first search")
		}
		if !strings.Contains(decode(reqs[1].InputIDs), "proposed before enough searching: X") {
			t.Error("early answer not kept in the history")
		}
		if got := traj.Calls[len(traj.Calls)-1].Purpose; got != PurposeAnswer {
			t.Errorf("last call purpose %s", got)
		}
	})
	t.Run("chat mode without tokenizer", func(t *testing.T) {
		fs := &fakeSampler{turns: []turn{{text: "<thought>t</thought><answer>Z</answer>", noIDs: true}}}
		env := &Env{Sampler: fs}
		a, _ := NewReasoningAgent(ReasoningAgentConfig())
		traj, err := a.Run(context.Background(), env, Task{Question: "q"})
		if err != nil || traj.Mode != ModeChat || traj.Answer != "Z" {
			t.Fatalf("err %v mode %s answer %q", err, traj.Mode, traj.Answer)
		}
		req := fs.requests()[0]
		if len(req.Messages) != 1 || req.Messages[0].Role != "user" || !strings.Contains(req.Messages[0].Content, "Question:\nq") || len(req.InputIDs) != 0 || req.Prompt != "" {
			t.Fatalf("request %+v", req)
		}
		if len(traj.Calls[0].Input.Messages) != 1 {
			t.Fatalf("messages not recorded")
		}
	})
	t.Run("history is bounded", func(t *testing.T) {
		fs := &fakeSampler{fallback: &turn{text: "<thought>" + strings.Repeat("long thought ", 50) + "</thought><search>q</search>"}}
		env := newEnv(fs)
		env.Template = chatML{}
		env.Search = &fakeSearch{docs: testDocs}
		env.Limits.MaxTurns = 30
		cfg := ReasoningAgentConfig()
		cfg.HistoryChars, cfg.ForceAnswerAfter = 2000, 0
		a, _ := NewReasoningAgent(cfg)
		traj, _ := a.Run(context.Background(), env, Task{Question: "q"})
		if traj.End != EndMaxTurns {
			t.Fatalf("end %s", traj.End)
		}
		reqs := fs.requests()
		first, last := len(reqs[0].InputIDs), len(reqs[len(reqs)-1].InputIDs)
		if last > first+2000+3000 {
			t.Fatalf("prompt grew from %d to %d tokens", first, last)
		}
	})
}
