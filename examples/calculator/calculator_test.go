package calculator

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/internal/fakeweb"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tools"
)

func TestEval(t *testing.T) {
	tests := []struct {
		expr string
		want float64
		err  string
	}{
		{expr: "1879 - 1643", want: 236},
		{expr: "2*(3+4)", want: 14},
		{expr: "-2^2", want: -4},
		{expr: "2^3^2", want: 512},
		{expr: "1,234 + 1", want: 1235},
		{expr: "1.5e3 / 4", want: 375},
		{expr: " 7 ", want: 7},
		{expr: "1/0", err: "division by zero"},
		{expr: "2 +", err: "ends early"},
		{expr: "(1+2", err: "missing )"},
		{expr: "abc", err: "unexpected"},
		{expr: "1 2", err: "unexpected"},
		{expr: "", err: "ends early"},
		{expr: strings.Repeat("(", 200) + "1" + strings.Repeat(")", 200), err: "nested too deeply"},
		{expr: strings.Repeat("1+", 300) + "1", err: "longer than"},
		{expr: "10^400", err: "not a finite number"},
	}
	for _, tc := range tests {
		got, err := Eval(tc.expr)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Eval(%q) error %v, want %q", tc.expr, err, tc.err)
			}
			continue
		}
		if err != nil || math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("Eval(%q) = %v, %v; want %v", tc.expr, got, err, tc.want)
		}
	}
}

func FuzzEval(f *testing.F) {
	for _, s := range []string{"1+2*3", "((1))", "-(-(2^0.5))", "1e", "1e+5-", ")(", "9^9^9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		v, err := Eval(expr)
		if err == nil && (math.IsNaN(v) || math.IsInf(v, 0)) {
			t.Fatalf("Eval(%q) = %v without error", expr, v)
		}
	})
}

func fixtures(t *testing.T) (*fakellm.Server, *fakeweb.Retrieval) {
	srv := fakellm.New(fakellm.Options{})
	t.Cleanup(srv.Close)
	rs := fakeweb.NewRetrieval([]fakeweb.Doc{
		{ID: "1", URL: "http://wiki/newton", Contents: "\"Isaac Newton\"\nIsaac Newton was born in 1643."},
		{ID: "2", URL: "http://wiki/einstein", Contents: "\"Albert Einstein\"\nAlbert Einstein was born in 1879."},
	}, nil)
	t.Cleanup(rs.Close)
	srv.Enqueue(
		fakellm.Reply{Text: "First Newton.</think>\n<search>Isaac Newton born</search>"},
		fakellm.Reply{Text: "<think>Now Einstein.</think>\n<search>Albert Einstein born</search>"},
		fakellm.Reply{Text: "<think>1879 minus 1643.</think>\n<calculate>1879 - 1643</calculate>"},
		fakellm.Reply{Text: "<answer>236</answer>"},
	)
	return srv, rs
}

const question = "How many years passed between the births of Newton and Einstein?"

// TestAgentTokenLevel runs the custom agent directly in token mode and
// checks its tool records, reward and training sequences.
func TestAgentTokenLevel(t *testing.T) {
	srv, rs := fixtures(t)
	sampler, err := llm.NewSGLang(llm.SGLangConfig{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	search, err := tools.NewLocal(tools.LocalConfig{BaseURL: rs.URL})
	if err != nil {
		t.Fatal(err)
	}
	env := &agent.Env{Sampler: sampler, Tokenizer: fakellm.ByteTokenizer{}, StopTokenIDs: []int{fakellm.ByteEOS}, Search: search}
	a := New()
	task := agent.Task{ID: "newton-einstein", Question: question, Answers: []string{"236"}}
	traj, err := a.Run(context.Background(), env, task)
	if err != nil {
		t.Fatal(err)
	}
	if traj.End != agent.EndAnswer || traj.Answer != "236" {
		t.Fatalf("end %s answer %q", traj.End, traj.Answer)
	}
	var names []string
	for _, tc := range traj.Tools {
		names = append(names, tc.Name+":"+tc.Arg)
	}
	if got := strings.Join(names, "|"); got != "search:Isaac Newton born|search:Albert Einstein born|calculate:1879 - 1643" {
		t.Fatalf("tools %s", got)
	}
	if obs := traj.Tools[2].Observation; obs != "\n<result>236</result>\n" {
		t.Fatalf("calculator observation %q", obs)
	}
	if !strings.Contains(traj.Tools[1].Observation, "Albert Einstein was born in 1879.") {
		t.Fatalf("search observation %q", traj.Tools[1].Observation)
	}
	var r agent.Rewarder = a
	if got, _ := r.Reward(context.Background(), task, traj); got != 1 {
		t.Fatalf("reward %v", got)
	}
	seqs, err := traj.Sequences()
	if err != nil {
		t.Fatal(err)
	}
	// One growing context: one sequence, whose masked-in tokens are
	// exactly the model's four replies.
	if len(seqs) != 1 {
		t.Fatalf("%d sequences", len(seqs))
	}
	var model []int
	for i, m := range seqs[0].LossMask {
		if m == 1 {
			model = append(model, seqs[0].Tokens[i])
		}
	}
	var want []int
	for _, c := range traj.Calls {
		want = append(want, c.Output...)
	}
	if dec(model) != dec(want) || len(model) != len(want) {
		t.Fatalf("masked-in tokens differ from the model's output")
	}
	if !strings.Contains(dec(seqs[0].Tokens), "<calculate>1879 - 1643</calculate>\n<result>236</result>\n<answer>236</answer>") {
		t.Fatalf("sequence text: %q", dec(seqs[0].Tokens))
	}
}

// TestAgentThroughAsk runs the custom agent through agent.Ask, the code
// behind `asearcher ask`, after registering it: no change to ask needed.
func TestAgentThroughAsk(t *testing.T) {
	srv, rs := fixtures(t)
	reg := agent.NewRegistry()
	if err := Register(reg, nil); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := agent.Ask(context.Background(), &out, reg, agent.AskConfig{
		Env:      agent.EnvConfig{Model: srv.OpenAIURL(), Search: rs.URL},
		Agent:    Name,
		Question: question,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"Agent: calculator", `→ calculate "1879 - 1643"`, "<result>236</result>", "Answer: 236", "Ended: answer"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func dec(ids []int) string { return fakellm.ByteTokenizer{}.Decode(ids) }
