package agent

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/internal/fakeweb"
	"github.com/asearcher/asearcher/internal/testindex"
	"github.com/asearcher/asearcher/llm"
)

// TestEndToEnd: a scripted model on the SGLang protocol (real Qwen3
// tokenizer, token mode), our retrieval server over the shipped corpus and
// a web page on loopback. The agent searches, reads a page in three parts
// and answers; the trajectory is checked token by token against what the
// model server received and generated.
func TestEndToEnd(t *testing.T) {
	tok := qwenTokenizer(t)
	eos, _ := tok.TokenID("<|im_end|>")
	llmSrv := fakellm.New(fakellm.Options{Tokenizer: tok, EOS: eos})
	defer llmSrv.Close()
	llmSrv.SetVersion(7)
	searchURL := testindex.Serve(t)

	// A 60,000-character page: three parts of 25,000, 25,000 and 10,000.
	var page strings.Builder
	for i := 0; page.Len() < 60_000; i++ {
		page.WriteString("Maximum Overdrive is a 1986 film written and directed by Stephen King, shot in and around Leland, North Carolina. ")
	}
	pageText := page.String()[:60_000]
	site := fakeweb.NewSite()
	defer site.Close()
	site.Set("/maximum-overdrive", fakeweb.Page{ContentType: "text/plain; charset=utf-8", Body: pageText})
	pageURL := site.URL + "/maximum-overdrive"

	script := []string{
		"The question is about a film shot near Leland. I should search.</think>\n<search> film shot in Leland, North Carolina 1986 </search>",
		"Leland, North Carolina is where Maximum Overdrive was filmed in 1986.</think>",
		"\n<access> " + pageURL + " </access>",
		"Part one: King wrote and directed it.</think>",
		"Part two says the same.</think>",
		"Part three confirms Stephen King.</think>",
		"\n<answer> Stephen King </answer>",
	}
	for _, r := range script {
		llmSrv.Enqueue(fakellm.Reply{Text: r})
	}
	cfg := EnvConfig{
		Model: "sglang:" + llmSrv.URL, Tokenizer: qwenTokenizerPath, Search: searchURL,
		Access: "fetch", AllowPrivateFetch: true, Sampling: llm.Params{Temperature: 0},
	}
	env, closeEnv, err := cfg.Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer closeEnv()
	a, _ := NewSearchAgent(ASearcherConfig())
	question := "Who directed the film that was shot in or around Leland, North Carolina in 1986"
	traj, err := a.Run(context.Background(), env, Task{ID: "leland", Question: question, Answers: []string{"Stephen King"}})
	if err != nil {
		t.Fatal(err)
	}
	if traj.End != EndAnswer || traj.Answer != "Stephen King" || !traj.TokenLevel || traj.Mode != ModeTokens {
		t.Fatalf("end %s answer %q token-level %v", traj.End, traj.Answer, traj.TokenLevel)
	}

	// Calls: what the server got and generated, token for token.
	calls := llmSrv.Calls()
	if len(calls) != len(script) || len(traj.Calls) != len(script) {
		t.Fatalf("%d server calls, %d recorded, %d scripted", len(calls), len(traj.Calls), len(script))
	}
	wantPurpose := []string{PurposeAct, PurposeRead, PurposeAct, PurposeRead, PurposeRead, PurposeRead, PurposeAct}
	for i, c := range traj.Calls {
		sc := calls[i]
		if c.Purpose != wantPurpose[i] {
			t.Errorf("call %d purpose %s, want %s", i, c.Purpose, wantPurpose[i])
		}
		if !slices.Equal(traj.InputIDs(i), sc.InputIDs) || c.InputLen != len(sc.InputIDs) {
			t.Fatalf("call %d: recorded prompt differs from the one the server received", i)
		}
		if sc.RID != traj.ID {
			t.Errorf("call %d rid %q", i, sc.RID)
		}
		want := tok.Encode(script[i])
		if !slices.Equal(c.Output, want) || c.Text != script[i] {
			t.Fatalf("call %d output %q, want %q", i, c.Text, script[i])
		}
		for k, id := range c.Output {
			if c.Logprobs[k] != fakellm.DefaultLogprob(k, id) || c.Versions[k] != 7 {
				t.Fatalf("call %d token %d: logprob %v version %d", i, k, c.Logprobs[k], c.Versions[k])
			}
		}
		if c.Finish != llm.FinishStop || c.Clipped {
			t.Errorf("call %d finish %s clipped %v", i, c.Finish, c.Clipped)
		}
		// Every call carried the agent's stop strings and EOS ids.
		if !slices.Equal(sc.Params.Stop, c.Stop) || !slices.Contains(sc.Params.StopTokenIDs, eos) || sc.Params.MaxNewTokens != c.MaxTokens {
			t.Errorf("call %d params %+v", i, sc.Params)
		}
	}

	// The context: each page part shown in full to its own read call, and
	// only as a stub afterwards.
	parts := []string{pageText[:25_000], pageText[25_000:50_000], pageText[50_000:]}
	for k, part := range parts {
		if !strings.Contains(calls[3+k].Prompt, ">>>> Page "+string(rune('1'+k))+" >>>>\n\n"+part+"\n</information>\n\n<think>\n") {
			t.Fatalf("read call for part %d did not see the part in full", k+1)
		}
	}
	last := calls[6].Prompt
	if strings.Contains(last, parts[0]) || !strings.Contains(last, ">>>> Page 3 >>>>\n\n"+parts[2][:100]+" ...\n</information>\n\n<think>\nPart three confirms Stephen King.</think>") {
		t.Fatalf("final prompt does not hold the stubs and notes: %q", last[len(last)-400:])
	}

	// Tool records.
	if len(traj.Tools) != 2 {
		t.Fatalf("%d tool calls", len(traj.Tools))
	}
	sr := traj.Tools[0]
	if sr.Name != KindSearch || sr.Arg != "film shot in Leland, North Carolina 1986" || sr.Error != "" || len(sr.Docs) != 5 || sr.Call != 0 || sr.Latency <= 0 {
		t.Fatalf("search record %+v", sr)
	}
	titles := []string{}
	for _, d := range sr.Docs {
		titles = append(titles, d.Title)
		if d.URL == "" || d.Text == "" {
			t.Fatalf("hit without url or text: %+v", d)
		}
	}
	if !slices.Contains(titles, "Leland, North Carolina") {
		t.Fatalf("BM25 hits %v lack the Leland page", titles)
	}
	if !strings.Contains(calls[1].Prompt, "[Doc 1]("+sr.Docs[0].URL+"):\n") {
		t.Fatal("the read call did not see the formatted results")
	}
	ac := traj.Tools[1]
	if ac.Name != KindAccess || ac.Arg != pageURL || ac.Error != "" || ac.Call != 2 || ac.Page == nil ||
		ac.Page.Chars != 60_000 || ac.Page.Parts != 3 || ac.Page.PartsRead != 3 || ac.Page.PartChars != 25_000 || ac.Observation != pageText {
		t.Fatalf("access record %+v page %+v", ac, ac.Page)
	}
	for k := range 3 {
		if c := traj.Calls[3+k]; c.Tool != 1 || c.Part != k+1 {
			t.Fatalf("read call %d links tool %d part %d", 3+k, c.Tool, c.Part)
		}
	}

	// Training sequences: masks, logprobs and versions token by token.
	seqs, err := traj.Sequences()
	if err != nil {
		t.Fatal(err)
	}
	var groups [][]int
	for _, s := range seqs {
		groups = append(groups, s.Calls)
	}
	if !slices.EqualFunc(groups, [][]int{{0, 1, 2, 3}, {4}, {5}, {6}}, slices.Equal[[]int]) {
		t.Fatalf("sequences %v", groups)
	}
	checkSequences(t, traj, seqs)
	ones := 0
	for _, s := range seqs {
		for _, m := range s.LossMask {
			ones += int(m)
		}
	}
	generated := 0
	for _, c := range traj.Calls {
		generated += len(c.Output)
	}
	// Call 3's output sits in sequence 0 only; notes re-attached behind
	// stubs are prompt (mask 0) in later sequences.
	if ones != generated {
		t.Fatalf("%d tokens trained, %d generated", ones, generated)
	}
	// The first sequence is exactly prompt + act + results + note + act +
	// part 1 + note, as one growing context.
	s0 := seqs[0]
	if got := tok.Decode(s0.Tokens); !strings.HasPrefix(got, "This is a conversation") || !strings.HasSuffix(got, "Part one: King wrote and directed it.</think>") {
		t.Fatalf("sequence 0 text %q ... %q", got[:40], got[len(got)-60:])
	}
}
