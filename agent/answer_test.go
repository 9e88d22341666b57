package agent

import (
	"context"
	"testing"
)

// AnswerOf follows upstream's regex, <answer>(.*?)</answer> with the last
// match winning, on a generation the agent has already cut at its first
// stop (as upstream's eval driver cuts at the first complete tool call).
func TestAnswerOf(t *testing.T) {
	p := NewParser()
	cases := []struct {
		name, text, want string
	}{
		{"plain", "<answer> Paris </answer>", "Paris"},
		{"nested: upstream keeps the inner open tag", "<answer>x <answer>y</answer>", "x <answer>y"},
		{"several: the last complete one", "<answer>a</answer> then <answer>b</answer>", "b"},
		{"unterminated after a complete one", "<answer>a</answer> <answer>b", "a"},
		{"inside a search argument", "<search> q </search><answer>\n Lyon\n</answer>", "Lyon"},
		{"python strip keeps inner space", "<answer>\u00a0New  York\u3000</answer>", "New  York"},
		{"empty", "<answer></answer>", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			act := p.Parse(c.text).Action
			if act.Kind != KindAnswer {
				t.Fatalf("parser action %+v", act)
			}
			if got := AnswerOf(c.text, act); got != c.want {
				t.Fatalf("AnswerOf = %q, want %q", got, c.want)
			}
		})
	}
	// No complete pair in the text (the closing tag came from a continued
	// call): the parser's argument stands.
	if got := AnswerOf("<answer> x", Action{Kind: KindAnswer, Arg: "x"}); got != "x" {
		t.Fatalf("fallback to the action argument: %q", got)
	}
}

// FallbackAnswer is asearcher_reasoning.get_answer without an answer tag:
// the last line mentioning "answer", else what follows the last </think>.
func TestFallbackAnswer(t *testing.T) {
	cases := []struct {
		name string
		gens []string
		want string
	}{
		{"last line mentioning answer, as it stands", []string{"I think.\nThe Answer is Paris.  ", "More.\nSo the final ANSWER: Lyon\nDone."}, "So the final ANSWER: Lyon"},
		{"no mention: after the last </think>", []string{"<think>hmm</think> Paris", "<think>more</think>\n Lyon \n"}, "Lyon"},
		{"no think either: all text trimmed", []string{"  Lyon  "}, "Lyon"},
		{"nothing", nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := FallbackAnswer(c.gens); got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

// A reasoning run that hits its turn limit without an <answer> gets the
// fallback answer, marked; with NoAnswerFallback it stays unanswered.
func TestReasoningAgentFallbackAnswer(t *testing.T) {
	for _, off := range []bool{false, true} {
		fs := &fakeSampler{fallback: &turn{text: "<thought>The answer is probably Frank Herbert.</thought>", honour: true}}
		env := newEnv(fs)
		env.Template = chatML{}
		env.Limits.MaxTurns = 2
		cfg := ReasoningAgentConfig()
		cfg.NoAnswerFallback = off
		cfg.MaxIdleTurns = 10
		a, err := NewReasoningAgent(cfg)
		if err != nil {
			t.Fatal(err)
		}
		traj, err := a.Run(context.Background(), env, Task{Question: "Who wrote Dune?"})
		if err != nil {
			t.Fatal(err)
		}
		if traj.End != EndMaxTurns {
			t.Fatalf("end %s", traj.End)
		}
		want := "<thought>The answer is probably Frank Herbert.</thought>"
		if off {
			want = ""
		}
		if traj.Answer != want || traj.Answered == off || traj.AnswerFallback == off {
			t.Fatalf("off=%v: answer %q answered %v fallback %v", off, traj.Answer, traj.Answered, traj.AnswerFallback)
		}
	}
}
