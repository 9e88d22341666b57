package agent

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/internal/fakeweb"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tokenizer"
)

const qwenTokenizerPath = "../tokenizer/testdata/qwen3/tokenizer.json.zst"

var qwenOnce = sync.OnceValues(func() (*tokenizer.Tokenizer, error) { return tokenizer.Load(qwenTokenizerPath) })

func qwenTokenizer(t testing.TB) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := qwenOnce()
	if err != nil {
		t.Fatalf("load the Qwen3 tokenizer fixture: %v", err)
	}
	return tok
}

func retrievalFixture() *fakeweb.Retrieval {
	return fakeweb.NewRetrieval([]fakeweb.Doc{
		{ID: "1", URL: "http://wiki/dune", Contents: "\"Dune (novel)\"\nDune is a 1965 science fiction novel by Frank Herbert."},
		{ID: "2", URL: "http://wiki/herbert", Contents: "\"Frank Herbert\"\nFrank Herbert was an American science fiction author."},
	}, map[string]string{"http://wiki/dune": "Dune is a novel. " + strings.Repeat("More text. ", 20)})
}

// TestAskReadable: ask against an OpenAI-compatible server without a
// tokenizer (text mode) prints the turns, the search, the note and the
// answer.
func TestAskReadable(t *testing.T) {
	srv := fakellm.New(fakellm.Options{})
	defer srv.Close()
	rs := retrievalFixture()
	defer rs.Close()
	srv.Enqueue(
		fakellm.Reply{Text: "Let me look it up.</think>\n<search>Dune novel author</search>"},
		fakellm.Reply{Text: "Dune is by Frank Herbert.</think>"},
		fakellm.Reply{Text: "\n<answer>Frank Herbert</answer>"},
	)
	var out bytes.Buffer
	err := Ask(context.Background(), &out, nil, AskConfig{
		Env:      EnvConfig{Model: srv.OpenAIURL(), Search: rs.URL, Sampling: llm.Params{Temperature: 0}},
		Question: "Who wrote Dune?",
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"Question: Who wrote Dune?", "Agent: asearcher (prompt asearcher, text mode)", "Turn 1",
		`→ search "Dune novel author"`, "2 results", "[1] Dune (novel) http://wiki/dune",
		"note (", "Dune is by Frank Herbert.", "    Dune is a 1965 science fiction novel by Frank Herbert.", "Tokens: ", "Turn 2", "Answer: Frank Herbert", "Ended: answer",
		"Turns: 2 · model calls: 3 · searches: 1 · accesses: 0 · tool errors: 0", "not trained on",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

// TestAskTokenModeSGLang: with a real tokenizer and the SGLang backend the
// record printed by --json holds token ids that match, call for call, what
// the server received and generated; stop strings that span several
// tokens end generation.
func TestAskTokenModeSGLang(t *testing.T) {
	tok := qwenTokenizer(t)
	eos, _ := tok.TokenID("<|im_end|>")
	srv := fakellm.New(fakellm.Options{Tokenizer: tok, EOS: eos})
	defer srv.Close()
	rs := retrievalFixture()
	defer rs.Close()
	srv.Enqueue(
		fakellm.Reply{Text: "我先搜索。</think>\n<search>Dune author</search> ignored tail"},
		fakellm.Reply{Text: "Herbert 写了它 🙂</think>"},
		fakellm.Reply{Text: "\n<access>http://wiki/dune</access>"},
		fakellm.Reply{Text: "A novel.</think>"},
		fakellm.Reply{Text: "\n<answer>Frank Herbert</answer>"},
	)
	var out bytes.Buffer
	err := Ask(context.Background(), &out, nil, AskConfig{
		Env:      EnvConfig{Model: "sglang:" + srv.URL, Tokenizer: qwenTokenizerPath, Search: rs.URL, Sampling: llm.Params{Temperature: 0}},
		Question: "Who wrote Dune?",
		JSON:     true,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	r, err := NewReader(&out)
	if err != nil {
		t.Fatal(err)
	}
	traj, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if traj.Mode != ModeTokens || !traj.TokenLevel || traj.Answer != "Frank Herbert" || traj.End != EndAnswer {
		t.Fatalf("mode %s token-level %v answer %q end %s", traj.Mode, traj.TokenLevel, traj.Answer, traj.End)
	}
	calls := srv.Calls()
	if len(calls) != len(traj.Calls) {
		t.Fatalf("%d server calls, %d recorded", len(calls), len(traj.Calls))
	}
	for i, c := range calls {
		if !slices.Equal(c.InputIDs, traj.InputIDs(i)) {
			t.Fatalf("call %d: recorded input differs from what the server got", i)
		}
		if c.RID != traj.ID {
			t.Fatalf("call %d: rid %q, want the trajectory id", i, c.RID)
		}
	}
	// The server honours stop strings, so the first reply ends at
	// </search> (three tokens) and its tail never exists.
	if got := traj.Calls[0].Text; !strings.HasSuffix(got, "<search>Dune author</search>") {
		t.Fatalf("first act %q", got)
	}
	if want := tok.Encode("Herbert 写了它 🙂</think>"); !slices.Equal(traj.Calls[1].Output, want) {
		t.Fatalf("note tokens %v, want %v", traj.Calls[1].Output, want)
	}
	seqs, err := traj.Sequences()
	if err != nil {
		t.Fatal(err)
	}
	checkSequences(t, traj, seqs)
	if traj.Tools[1].Page == nil || traj.Tools[1].Page.PartsRead != 1 {
		t.Fatalf("page %+v", traj.Tools[1])
	}
}

// TestSessionClipsMultiTokenStops: a backend that ignores stop strings is
// cut at the token that completes a multi-token stop string, with a real
// BPE tokenizer.
func TestSessionClipsMultiTokenStops(t *testing.T) {
	tok := qwenTokenizer(t)
	eos, _ := tok.TokenID("<|im_end|>")
	text := "思考 <search>量子 query</search> and then <answer>x</answer>"
	ids := tok.Encode(text)
	s := NewSession(&Env{Sampler: samplerFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		return &llm.Response{OutputIDs: ids, Text: text, Finish: llm.FinishStop}, nil
	}), Tokenizer: tok, StopTokenIDs: []int{eos}}, Task{Question: "q"}, "t", "")
	s.Append("prompt")
	rep, err := s.Generate(context.Background(), Gen{Purpose: PurposeAct, Stop: []string{"</search>", "</answer>"}, Tool: -1})
	if err != nil {
		t.Fatal(err)
	}
	want := "思考 <search>量子 query</search>"
	c := s.Trajectory().Calls[0]
	if rep.Text != want || !c.Clipped || c.StopMatched != "</search>" || tok.Decode(c.Output) != want {
		t.Fatalf("text %q clipped %v stop %q decoded %q", rep.Text, c.Clipped, c.StopMatched, tok.Decode(c.Output))
	}
	if !slices.Equal(c.Output, ids[:len(c.Output)]) {
		t.Fatal("clipped output is not a prefix of the returned tokens")
	}
}

type samplerFunc func(context.Context, *llm.Request) (*llm.Response, error)

func (f samplerFunc) Sample(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	return f(ctx, req)
}
