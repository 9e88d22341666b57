package agent

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tools"
)

// TestAgentAgainstStopStyles runs the ASearcher agent (search, note,
// answer) against each way a real server handles a matched stop string:
// trimmed and unreported (the OpenAI API; with and without token ids),
// trimmed and named in vLLM's stop_reason or SGLang's matched_stop, kept
// in the text and unreported. In token mode and in text mode the agent
// must search, note and answer; before the stop restoration every
// trimmed-and-unreported run ended on turn 1 "stopped".
func TestAgentAgainstStopStyles(t *testing.T) {
	styles := []struct {
		name   string
		opts   fakellm.Options
		hasIDs bool // the replies carry token ids
	}{
		{"hosted API: trims, says nothing, no ids", fakellm.Options{Strict: true}, false},
		{"trims, says nothing, token ids", fakellm.Options{StopStyle: fakellm.StopTrimSilent}, true},
		{"vLLM stop_reason, trims", fakellm.Options{StopStyle: fakellm.StopTrimVLLM}, true},
		{"SGLang matched_stop, trims", fakellm.Options{StopStyle: fakellm.StopTrimSGLang}, true},
		{"keeps the stop string, says nothing", fakellm.Options{StopStyle: fakellm.StopKeepSilent}, true},
		{"vLLM honouring include_stop_str_in_output", fakellm.Options{}, true},
	}
	script := []string{
		"I should search.\n<search> film shot in Leland 1986 </search> trailing words the server must cut",
		"Maximum Overdrive was shot near Leland; Stephen King directed it.</think> more",
		"\n<answer> Stephen King </answer>",
	}
	wantText := []string{
		"I should search.\n<search> film shot in Leland 1986 </search>",
		"Maximum Overdrive was shot near Leland; Stephen King directed it.</think>",
		"\n<answer> Stephen King </answer>",
	}
	for _, st := range styles {
		for _, mode := range []string{ModeTokens, ModeText} {
			t.Run(st.name+"/"+mode, func(t *testing.T) {
				srv := fakellm.New(st.opts)
				defer srv.Close()
				for _, r := range script {
					srv.Enqueue(fakellm.Reply{Text: r})
				}
				sampler, err := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: srv.OpenAIURL()})
				if err != nil {
					t.Fatal(err)
				}
				search := &fakeSearch{docs: []tools.SearchResult{{Title: "Leland", URL: "https://en.wikipedia.org/wiki/Leland", Text: "Maximum Overdrive was filmed in Leland."}}}
				env := &Env{Sampler: sampler, Search: search, Limits: Limits{MaxContextTokens: 1 << 16, MaxCallTokens: 512}}
				if mode == ModeTokens {
					env.Tokenizer = fakellm.ByteTokenizer{}
					env.StopTokenIDs = []int{fakellm.ByteEOS}
				}
				a, err := NewSearchAgent(ASearcherConfig())
				if err != nil {
					t.Fatal(err)
				}
				traj, err := a.Run(context.Background(), env, Task{ID: "leland", Question: "Who directed the film shot in Leland in 1986?"})
				if err != nil {
					t.Fatal(err)
				}
				if traj.End != EndAnswer || traj.Answer != "Stephen King" {
					t.Fatalf("end %s answer %q; calls %d", traj.End, traj.Answer, len(traj.Calls))
				}
				if !slices.Equal(search.queries, []string{"film shot in Leland 1986"}) {
					t.Fatalf("searches %q", search.queries)
				}
				if len(traj.Calls) != len(script) {
					t.Fatalf("%d calls", len(traj.Calls))
				}
				stops := []string{"</search>", "</think>", "</answer>"}
				for i, c := range traj.Calls {
					if c.Text != wantText[i] || c.StopMatched != stops[i] || c.EOS || c.Finish != llm.FinishStop {
						t.Fatalf("call %d: text %q stop %q eos %v finish %s", i, c.Text, c.StopMatched, c.EOS, c.Finish)
					}
				}
				// Each call's prompt holds the earlier output, closing tag
				// included, exactly once.
				last := srv.Calls()[2].Prompt
				if !strings.Contains(last, wantText[0]) || !strings.Contains(last, wantText[1]) || strings.Contains(last, "</think>\n</think>") {
					t.Fatalf("last prompt %q", last[max(0, len(last)-300):])
				}
				if mode != ModeTokens {
					return
				}
				if traj.TokenLevel != st.hasIDs {
					t.Fatalf("token-level %v, want %v", traj.TokenLevel, st.hasIDs)
				}
				if err := traj.Validate(); err != nil {
					t.Fatal(err)
				}
				if st.hasIDs {
					seqs, err := traj.Sequences()
					if err != nil {
						t.Fatal(err)
					}
					ones, sampled := 0, 0
					for _, q := range seqs {
						for _, m := range q.LossMask {
							ones += int(m)
						}
					}
					for _, c := range traj.Calls {
						sampled += len(c.Output) - c.Unsampled
						if (fakellm.ByteTokenizer{}).Decode(c.Output) != c.Text {
							t.Fatalf("output tokens %q, text %q", (fakellm.ByteTokenizer{}).Decode(c.Output), c.Text)
						}
					}
					if ones != sampled {
						t.Fatalf("%d tokens trained, %d sampled", ones, sampled)
					}
				}
			})
		}
	}
}

// A server that trims the stop string from the text and from the token ids
// and says nothing: the agent adds the closing tag's tokens as unsampled
// (loss mask 0, logprob 0, version -1) and the context still reads
// "</search>".
func TestRestoredStopTokensAreUnsampled(t *testing.T) {
	f := &fakeSampler{version: 3, turns: []turn{
		{text: "<search> q"},
		{text: "note", noIDs: false},
		{text: "<answer>a</answer>"},
	}}
	// The fake reports neither the stop nor its tokens: exactly what a
	// trimming server with token ids sends.
	env := newEnv(f)
	env.Search = &fakeSearch{docs: []tools.SearchResult{{Title: "T", URL: "u", Text: "c"}}}
	a, _ := NewSearchAgent(ASearcherConfig())
	traj, err := a.Run(context.Background(), env, Task{ID: "x", Question: "q?"})
	if err != nil {
		t.Fatal(err)
	}
	if traj.End != EndAnswer || traj.Answer != "a" {
		t.Fatalf("end %s answer %q", traj.End, traj.Answer)
	}
	c0, c1 := traj.Calls[0], traj.Calls[1]
	if c0.Text != "<search> q</search>" || c0.Unsampled != len("</search>") || (byteTok{}).Decode(c0.Output) != c0.Text {
		t.Fatalf("call 0: %q unsampled %d output %q", c0.Text, c0.Unsampled, (byteTok{}).Decode(c0.Output))
	}
	if c1.Text != "note</think>" || c1.Unsampled != len("</think>") {
		t.Fatalf("call 1: %q unsampled %d", c1.Text, c1.Unsampled)
	}
	if next := (byteTok{}).Decode(f.requests()[1].InputIDs); !strings.Contains(next, "<search> q</search>") {
		t.Fatal("the next prompt lacks the restored tag")
	}
	if err := traj.Validate(); err != nil {
		t.Fatal(err)
	}
	seqs, err := traj.Sequences()
	if err != nil {
		t.Fatal(err)
	}
	q := seqs[0]
	// Locate call 0's output in the sequence: right after its input.
	at := traj.Calls[0].InputLen
	n := len(c0.Output)
	for k := range n {
		sampled := k < n-c0.Unsampled
		if (q.LossMask[at+k] == 1) != sampled {
			t.Fatalf("token %d mask %d", k, q.LossMask[at+k])
		}
		if !sampled && (q.Logprobs[at+k] != 0 || q.Versions[at+k] != -1) {
			t.Fatalf("restored token %d logprob %v version %d", k, q.Logprobs[at+k], q.Versions[at+k])
		}
		if sampled && q.Versions[at+k] != 3 {
			t.Fatalf("sampled token %d version %d", k, q.Versions[at+k])
		}
	}
}
