package agent

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tools"
)

var testDocs = []tools.SearchResult{
	{Title: "Dune", URL: "http://wiki/dune", Text: "Dune is a 1965 novel by Frank Herbert."},
	{Title: "Herbert", URL: "http://wiki/herbert", Text: "Frank Herbert was an American writer."},
}

// page3 splits into three parts of 40 characters.
var page3 = strings.Repeat("a", 40) + strings.Repeat("b", 40) + strings.Repeat("c", 20)

func smallPartsConfig() SearchConfig {
	c := ASearcherConfig()
	c.PartChars, c.StubChars = 40, 10
	return c
}

func TestSearchAgentSearchReadAnswer(t *testing.T) {
	fs := &fakeSampler{turns: []turn{
		{text: "I should search.</think>\n<search> who wrote Dune </search>", honour: true},
		{text: "Herbert wrote it.</think>", honour: true},
		{text: "\n<access> http://wiki/dune </access>", honour: true},
		{text: "part one", honour: true, eos: false, finish: llm.FinishLength}, // note cut by length: glue closes it
		{text: "part two</think>", honour: true},
		{text: "part three</think>", honour: true},
		{text: "\n<answer> Frank Herbert </answer>", honour: true},
	}}
	env := newEnv(fs)
	env.Search = &fakeSearch{docs: testDocs}
	env.Browse = &fakeBrowser{pages: map[string]string{"http://wiki/dune": page3}}
	var steps []string
	env.OnStep = func(st Step) {
		if st.Call != nil {
			steps = append(steps, st.Call.Purpose)
		} else {
			steps = append(steps, st.Tool.Name)
		}
	}
	a, err := NewSearchAgent(smallPartsConfig())
	if err != nil {
		t.Fatal(err)
	}
	traj, err := a.Run(context.Background(), env, Task{ID: "q1", Question: "Who wrote Dune?"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(steps, ","); got != "act,search,read,act,access,read,read,read,act" {
		t.Fatalf("steps reported %s", got)
	}
	if traj.End != EndAnswer || traj.Answer != "Frank Herbert" || !traj.Answered {
		t.Fatalf("end %s answer %q", traj.End, traj.Answer)
	}
	var purposes []string
	for _, c := range traj.Calls {
		purposes = append(purposes, c.Purpose)
	}
	if got, want := strings.Join(purposes, ","), "act,read,act,read,read,read,act"; got != want {
		t.Fatalf("calls %s, want %s", got, want)
	}
	if len(traj.Tools) != 2 || traj.Tools[0].Name != KindSearch || traj.Tools[1].Name != KindAccess {
		t.Fatalf("tools %+v", traj.Tools)
	}
	if p := traj.Tools[1].Page; p == nil || p.Parts != 3 || p.PartsRead != 3 || p.Chars != 100 {
		t.Fatalf("page %+v", p)
	}
	if traj.Tools[0].Arg != "who wrote Dune" || len(traj.Tools[0].Docs) != 2 {
		t.Fatalf("search record %+v", traj.Tools[0])
	}
	reqs := fs.requests()
	checkInputsMatchRequests(t, traj, reqs)

	// What the model saw on its last turn, byte for byte.
	want := a.prompt.Render(promptVars(Task{Question: "Who wrote Dune?"})) +
		"I should search.</think>\n<search> who wrote Dune </search>" +
		"\n\n<information>\n[Doc 1](http://wiki/dune):\nDune\nDune is a 1965 novel by Frank Herbert.\n\n[Doc 2](http://wiki/herbert):\nHerbert\nFrank Herbert was an American writer.\n</information>" +
		"\n\n<think>\nHerbert wrote it.</think>" +
		"\n<access> http://wiki/dune </access>" +
		"\n\n<information>\n>>>> Page 1 >>>>\n\naaaaaaaaaa ...\n</information>\n\n<think>\npart one\n</think>" +
		"\n\n<information>\n>>>> Page 2 >>>>\n\nbbbbbbbbbb ...\n</information>\n\n<think>\npart two</think>" +
		"\n\n<information>\n>>>> Page 3 >>>>\n\ncccccccccc ...\n</information>\n\n<think>\npart three</think>"
	if got := decode(reqs[6].InputIDs); got != want {
		t.Fatalf("last prompt:\n%q\nwant\n%q", got, want)
	}
	// The second part was shown in full to its read call.
	if got := decode(reqs[4].InputIDs); !strings.Contains(got, ">>>> Page 2 >>>>\n\n"+strings.Repeat("b", 40)+"\n</information>\n\n<think>\n") {
		t.Fatalf("part 2 not shown in full: %q", got[len(got)-120:])
	}

	seqs, err := traj.Sequences()
	if err != nil {
		t.Fatal(err)
	}
	var groups [][]int
	for _, s := range seqs {
		groups = append(groups, s.Calls)
	}
	// The first page part extends the running sequence; each later part
	// and the turn after the page start a new one (the part became a stub).
	wantGroups := [][]int{{0, 1, 2, 3}, {4}, {5}, {6}}
	if !slices.EqualFunc(groups, wantGroups, slices.Equal[[]int]) {
		t.Fatalf("sequences %v, want %v", groups, wantGroups)
	}
	checkSequences(t, traj, seqs)
}

// checkInputsMatchRequests: the recorded deltas rebuild exactly what each
// request sent.
func checkInputsMatchRequests(t *testing.T, traj *Trajectory, reqs []llm.Request) {
	t.Helper()
	if len(reqs) != len(traj.Calls) {
		t.Fatalf("%d requests, %d calls", len(reqs), len(traj.Calls))
	}
	for i := range traj.Calls {
		if got := traj.InputIDs(i); !slices.Equal(got, reqs[i].InputIDs) {
			t.Fatalf("call %d: rebuilt input differs from the request (len %d vs %d)", i, len(got), len(reqs[i].InputIDs))
		}
	}
}

// checkSequences verifies every sequence token by token against the calls.
func checkSequences(t *testing.T, traj *Trajectory, seqs []Sequence) {
	t.Helper()
	seen := map[int]bool{}
	for si, s := range seqs {
		if len(s.Tokens) != len(s.LossMask) || len(s.Tokens) != len(s.Logprobs) || len(s.Tokens) != len(s.Versions) {
			t.Fatalf("seq %d: ragged lengths", si)
		}
		wantMask := make([]uint8, len(s.Tokens))
		for _, ci := range s.Calls {
			seen[ci] = true
			c := &traj.Calls[ci]
			in := traj.InputIDs(ci)
			if !slices.Equal(s.Tokens[:len(in)], in) {
				t.Fatalf("seq %d: call %d's prompt is not a prefix", si, ci)
			}
			out := s.Tokens[len(in) : len(in)+len(c.Output)]
			if !slices.Equal(out, c.Output) {
				t.Fatalf("seq %d: call %d's output misplaced", si, ci)
			}
			for k := range c.Output {
				p := len(in) + k
				if k >= len(c.Output)-c.Unsampled {
					continue // restored stop tokens: prompt, checked below
				}
				wantMask[p] = 1
				if s.Logprobs[p] != c.Logprobs[k] || s.Versions[p] != c.Versions[k] {
					t.Fatalf("seq %d call %d token %d: logprob/version %v/%d, want %v/%d", si, ci, k, s.Logprobs[p], s.Versions[p], c.Logprobs[k], c.Versions[k])
				}
			}
		}
		for p := range s.Tokens {
			if s.LossMask[p] != wantMask[p] {
				t.Fatalf("seq %d: mask at %d = %d, want %d", si, p, s.LossMask[p], wantMask[p])
			}
			if wantMask[p] == 0 && (s.Logprobs[p] != 0 || s.Versions[p] != -1) {
				t.Fatalf("seq %d: masked token %d has logprob %v version %d", si, p, s.Logprobs[p], s.Versions[p])
			}
		}
		last := s.Calls[len(s.Calls)-1]
		if len(s.Tokens) != traj.fullLen(last) {
			t.Fatalf("seq %d ends %d tokens, its last call %d", si, len(s.Tokens), traj.fullLen(last))
		}
	}
	if len(seen) != len(traj.Calls) {
		t.Fatalf("%d of %d calls in sequences", len(seen), len(traj.Calls))
	}
}

func TestSearchAgentGarbage(t *testing.T) {
	mb := strings.Repeat("blah <b>x</b> ", 1<<20/14)
	tests := []struct {
		name      string
		turns     []turn
		cfg       func() SearchConfig
		end       EndReason
		answer    string
		tools     []string // name:arg
		toolErr   string   // substring of the first tool's error
		clipped   bool     // the first call was cut by the agent
		firstText string   // the first call's recorded text
	}{
		{name: "no tags then EOS", turns: []turn{{text: "I do not know.", eos: true}}, end: EndStopped},
		{name: "two actions: cut at the first close", turns: []turn{
			{text: "<search>a</search> and <answer>b</answer>", eos: true},
			{text: "note</think>"},
			{text: "<answer>c</answer>"},
		}, end: EndAnswer, answer: "c", tools: []string{"search:a"}, clipped: true, firstText: "<search>a</search>"},
		{name: "unterminated tags then length", turns: []turn{
			{text: "<search> half a qu", finish: llm.FinishLength},
			{text: "ery</search>"},
			{text: "ok</think>"},
			{text: "<answer>done</answer>"},
		}, end: EndAnswer, answer: "done", tools: []string{"search:half a query"}},
		{name: "1 MB of text without an action", turns: []turn{{text: mb, eos: true}}, end: EndStopped},
		{name: "1 MB then an answer", turns: []turn{{text: mb + "<answer>x</answer>"}}, end: EndAnswer, answer: "x"},
		{name: "invalid UTF-8 query", turns: []turn{
			{text: "<search>caf\xe9</search>"}, {text: "n</think>"}, {text: "<answer>\xffok</answer>"},
		}, end: EndAnswer, answer: "\uFFFDok", tools: []string{"search:caf\uFFFD"}},
		{name: "empty search query", turns: []turn{
			{text: "<search>  </search>"}, {text: "n</think>"}, {text: "<answer>a</answer>"},
		}, end: EndAnswer, answer: "a", tools: []string{"search:"}, toolErr: "query is empty"},
		{name: "empty access url", turns: []turn{
			{text: "<access></access>"}, {text: "<answer>a</answer>"},
		}, end: EndAnswer, answer: "a", tools: []string{"access:"}, toolErr: "url is empty"},
		{name: "access not offered: tag ignored", cfg: SearchOnlyConfig, turns: []turn{
			{text: "<access>http://x</access>", eos: true},
		}, end: EndStopped},
		{name: "idle turns end the run", turns: []turn{
			{text: "hmm", finish: llm.FinishLength}, {text: "hmm", finish: llm.FinishLength},
		}, cfg: func() SearchConfig { c := ASearcherConfig(); c.MaxIdleTurns = 2; return c }, end: EndNoProgress},
		{name: "search-r1: dangling search closed, invalid turn corrected", cfg: SearchR1Config, turns: []turn{
			{text: "<search> capital", eos: true},
			{text: "no action here", eos: true},
			{text: "<answer> Paris </answer>"},
		}, end: EndAnswer, answer: "Paris", tools: []string{"search:capital"}},
		{name: "empty answer", turns: []turn{{text: "<answer> </answer>"}}, end: EndAnswer, answer: ""},
		{name: "closed-book: search tag is no action", cfg: ClosedBookConfig, turns: []turn{
			{text: "<search> capital </search>", eos: true},
		}, end: EndStopped},
		{name: "closed-book: cut reply continued once, then no progress", cfg: ClosedBookConfig, turns: []turn{
			{text: "hmm", finish: llm.FinishLength}, {text: "hmm", finish: llm.FinishLength},
		}, end: EndNoProgress},
		{name: "closed-book: answer after a search tag", cfg: ClosedBookConfig, turns: []turn{
			{text: "<search> capital </search> I know it.</think>\n<answer> Paris </answer>"},
		}, end: EndAnswer, answer: "Paris"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := &fakeSampler{turns: tc.turns}
			env := newEnv(fs)
			env.Search = &fakeSearch{docs: testDocs}
			env.Browse = &fakeBrowser{}
			cfg := ASearcherConfig()
			if tc.cfg != nil {
				cfg = tc.cfg()
			}
			a, err := NewSearchAgent(cfg)
			if err != nil {
				t.Fatal(err)
			}
			traj, err := a.Run(context.Background(), env, Task{Question: "q?"})
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if traj.End != tc.end || traj.Answer != tc.answer {
				t.Fatalf("end %s answer %q, want %s %q", traj.End, traj.Answer, tc.end, tc.answer)
			}
			var got []string
			for _, tl := range traj.Tools {
				got = append(got, tl.Name+":"+tl.Arg)
			}
			if strings.Join(got, "|") != strings.Join(tc.tools, "|") {
				t.Fatalf("tools %q, want %q", got, tc.tools)
			}
			if tc.toolErr != "" && !strings.Contains(traj.Tools[0].Error, tc.toolErr) {
				t.Fatalf("tool error %q, want %q", traj.Tools[0].Error, tc.toolErr)
			}
			if traj.Calls[0].Clipped != tc.clipped {
				t.Fatalf("clipped = %v", traj.Calls[0].Clipped)
			}
			if tc.firstText != "" && traj.Calls[0].Text != tc.firstText {
				t.Fatalf("first text %q, want %q", traj.Calls[0].Text, tc.firstText)
			}
			checkInputsMatchRequests(t, traj, fs.requests())
			seqs, err := traj.Sequences()
			if err != nil {
				t.Fatal(err)
			}
			checkSequences(t, traj, seqs)
		})
	}
}

// TestLimitsEnforcedOnBackendsThatIgnoreThem: a backend that ignores
// max_new_tokens, stop tokens and stop strings is cut by the agent, and
// the logprobs and versions are cut with it.
func TestLimitsEnforcedOnBackendsThatIgnoreThem(t *testing.T) {
	tests := []struct {
		name   string
		reply  turn
		limits Limits
		text   string
		finish llm.Finish
		eos    bool
	}{
		{name: "token cap", reply: turn{text: strings.Repeat("x", 100)}, limits: Limits{MaxCallTokens: 30, MinCallTokens: 1}, text: strings.Repeat("x", 30), finish: llm.FinishLength},
		{name: "stop token", reply: turn{text: "abc\x00def"}, text: "abc\x00", finish: llm.FinishStop, eos: true},
		{name: "stop string mid-token-stream", reply: turn{text: "<search>q</search><answer>a</answer>"}, text: "<search>q</search>", finish: llm.FinishStop},
		{name: "context budget shrinks the call", reply: turn{text: strings.Repeat("y", 500)}, limits: Limits{MaxContextTokens: 300, MinCallTokens: 1}, finish: llm.FinishLength},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := &fakeSampler{turns: []turn{tc.reply}}
			env := newEnv(fs)
			env.StopTokenIDs = []int{0} // NUL plays EOS here, inside the text
			if tc.limits != (Limits{}) {
				env.Limits = tc.limits
			}
			s := NewSession(env, Task{Question: "q"}, "test", "")
			s.Append(strings.Repeat("p", 200))
			rep, err := s.Generate(context.Background(), Gen{Purpose: PurposeAct, Stop: []string{"</search>", "</answer>"}, Tool: -1})
			if err != nil {
				t.Fatal(err)
			}
			c := s.Trajectory().Calls[0]
			if tc.text != "" && rep.Text != tc.text {
				t.Fatalf("text %q, want %q", rep.Text, tc.text)
			}
			if rep.Finish != tc.finish || rep.EOS != tc.eos || !c.Clipped {
				t.Fatalf("finish %s eos %v clipped %v", rep.Finish, rep.EOS, c.Clipped)
			}
			if len(c.Logprobs) != len(c.Output) || len(c.Versions) != len(c.Output) {
				t.Fatalf("logprobs/versions not cut with the output")
			}
			if lim := env.Limits.WithDefaults(); c.InputLen+len(c.Output) > lim.MaxContextTokens || len(c.Output) > lim.MaxCallTokens {
				t.Fatalf("limits exceeded: %d + %d", c.InputLen, len(c.Output))
			}
			if want := fs.requests()[0].Params.MaxNewTokens; c.MaxTokens != want || len(c.Output) > want {
				t.Fatalf("budget %d sent %d, output %d", c.MaxTokens, want, len(c.Output))
			}
		})
	}
}

func TestMaxTurnsAndContext(t *testing.T) {
	loop := &turn{text: "<search>again</search>", honour: true}
	t.Run("max turns", func(t *testing.T) {
		fs := &fakeSampler{fallback: loop}
		env := newEnv(fs)
		env.Search = &fakeSearch{docs: testDocs[:1]}
		env.Limits.MaxTurns = 3
		cfg := ASearcherConfig()
		cfg.Notes = false
		a, _ := NewSearchAgent(cfg)
		traj, err := a.Run(context.Background(), env, Task{Question: "q"})
		if err != nil || traj.End != EndMaxTurns || traj.Stats().Turns != 3 || len(traj.Tools) != 3 {
			t.Fatalf("err %v end %s stats %+v", err, traj.End, traj.Stats())
		}
	})
	t.Run("context", func(t *testing.T) {
		fs := &fakeSampler{fallback: loop}
		env := newEnv(fs)
		env.Search = &fakeSearch{docs: testDocs}
		env.Limits = Limits{MaxContextTokens: 2000, MaxCallTokens: 100}
		cfg := ASearcherConfig()
		cfg.Notes = false
		a, _ := NewSearchAgent(cfg)
		traj, err := a.Run(context.Background(), env, Task{Question: "q"})
		if err != nil || traj.End != EndContext {
			t.Fatalf("err %v end %s", err, traj.End)
		}
		for i, c := range traj.Calls {
			if c.InputLen+len(c.Output) > 2000 {
				t.Fatalf("call %d over the context budget: %d", i, c.InputLen+len(c.Output))
			}
		}
	})
}

// TestToolFailures: a dead tool, a tool that hangs ignoring its context and
// a slow page reader each become an error observation within the tool
// timeout, and the run goes on to its answer.
func TestToolFailures(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	tests := []struct {
		name   string
		search tools.Searcher
		browse tools.Browser
		first  string
		want   string // in the observation
	}{
		{name: "dead search", search: &fakeSearch{err: errors.New("dial tcp 127.0.0.1:1: connection refused")}, first: "<search>x</search>", want: "Search failed: dial tcp 127.0.0.1:1: connection refused"},
		{name: "hanging search", search: &fakeSearch{hang: true, release: release}, first: "<search>x</search>", want: "Search failed: search timed out after 200ms"},
		{name: "slow page", browse: &fakeBrowser{delay: time.Hour}, first: "<access>http://slow</access>", want: "Could not open http://slow: access timed out after 200ms"},
		{name: "page error", browse: &fakeBrowser{err: errors.New("fetch failed: HTTP 429")}, first: "<access>http://x</access>", want: "Could not open http://x: fetch failed: HTTP 429."},
		{name: "no search engine", first: "<search>x</search>", want: "no search engine is configured"},
		{name: "empty page", browse: &fakeBrowser{pages: map[string]string{"http://e": "  "}}, first: "<access>http://e</access>", want: "the page has no readable text"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := &fakeSampler{turns: []turn{{text: tc.first}, {text: "note</think>"}, {text: "<answer>a</answer>"}}}
			if strings.HasPrefix(tc.first, "<access>") {
				fs.turns = []turn{{text: tc.first}, {text: "<answer>a</answer>"}}
			}
			env := newEnv(fs)
			env.Search, env.Browse = tc.search, tc.browse
			env.Limits.ToolTimeout = 200 * time.Millisecond
			a, _ := NewSearchAgent(ASearcherConfig())
			t0 := time.Now()
			traj, err := a.Run(context.Background(), env, Task{Question: "q"})
			if err != nil {
				t.Fatal(err)
			}
			if el := time.Since(t0); el > 2*time.Second {
				t.Fatalf("run took %s", el)
			}
			if traj.End != EndAnswer || len(traj.Tools) != 1 {
				t.Fatalf("end %s tools %d", traj.End, len(traj.Tools))
			}
			tc0 := traj.Tools[0]
			if tc0.Error == "" || !strings.Contains(tc0.Observation, tc.want) {
				t.Fatalf("error %q observation %q, want %q", tc0.Error, tc0.Observation, tc.want)
			}
			if tc0.Latency > time.Second {
				t.Fatalf("tool took %s", tc0.Latency)
			}
			// The model saw the error.
			if got := decode(fs.requests()[1].InputIDs); !strings.Contains(got, tc.want) {
				t.Fatalf("model did not see the error")
			}
		})
	}
}

func TestModelErrorAndCancel(t *testing.T) {
	fs := &fakeSampler{turns: []turn{{text: "<search>x</search>"}, {err: errors.New("HTTP 503")}}}
	env := newEnv(fs)
	env.Search = &fakeSearch{docs: testDocs}
	a, _ := NewSearchAgent(ASearcherConfig())
	traj, err := a.Run(context.Background(), env, Task{Question: "q"})
	if err == nil || traj == nil || traj.End != EndModelError || !strings.Contains(traj.Error, "HTTP 503") || len(traj.Calls) != 1 {
		t.Fatalf("err %v traj %+v", err, traj)
	}
	ctx, cancel := context.WithCancel(context.Background())
	fs = &fakeSampler{turns: []turn{{text: "x", delay: time.Hour}}}
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	traj, err = a.Run(ctx, newEnv(fs), Task{Question: "q"})
	if !errors.Is(err, context.Canceled) || traj.End != EndCanceled {
		t.Fatalf("err %v end %s", err, traj.End)
	}
}

// TestAbortContinues: partial (aborted) output is kept and continued; the
// pieces form one generation and one training sequence with both versions.
func TestAbortContinues(t *testing.T) {
	fs := &fakeSampler{turns: []turn{
		{text: "<sea", finish: llm.FinishAbort},
		{text: "rch>q</sea", finish: llm.FinishAbort, version: 4}, // new weights mid-generation
		{text: "rch> and more"},                                   // the stop string straddles two calls
		{text: "n</think>"},
		{text: "<answer>a</answer>"},
	}}
	env := newEnv(fs)
	env.Search = &fakeSearch{docs: testDocs}
	a, _ := NewSearchAgent(ASearcherConfig())
	fs.version = 3
	traj, err := a.Run(context.Background(), env, Task{Question: "q"})
	if err != nil || traj.End != EndAnswer {
		t.Fatalf("err %v end %s", err, traj.End)
	}
	if len(traj.Tools) != 1 || traj.Tools[0].Arg != "q" {
		t.Fatalf("tools %+v", traj.Tools)
	}
	if c := traj.Calls[2]; c.Text != "rch>" || !c.Clipped || c.StopMatched != "</search>" {
		t.Fatalf("third piece %+v", c)
	}
	seqs, err := traj.Sequences()
	if err != nil {
		t.Fatal(err)
	}
	if len(seqs) != 1 {
		t.Fatalf("%d sequences", len(seqs))
	}
	var versions []int
	for k, m := range seqs[0].LossMask {
		if m == 1 && (len(versions) == 0 || versions[len(versions)-1] != seqs[0].Versions[k]) {
			versions = append(versions, seqs[0].Versions[k])
		}
	}
	if !slices.Equal(versions, []int{3, 4, 3}) {
		t.Fatalf("versions along the generation %v", versions)
	}
	checkSequences(t, traj, seqs)
}

func TestTextMode(t *testing.T) {
	fs := &fakeSampler{turns: []turn{
		{text: "<search>x</search> trailing", noIDs: true},
		{text: "n</think>", noIDs: true},
		{text: "<answer>a</answer>", noIDs: true},
	}}
	env := &Env{Sampler: fs, Search: &fakeSearch{docs: testDocs}}
	a, _ := NewSearchAgent(ASearcherConfig())
	traj, err := a.Run(context.Background(), env, Task{Question: "q"})
	if err != nil || traj.End != EndAnswer || traj.Mode != ModeText || traj.TokenLevel {
		t.Fatalf("err %v end %s mode %s", err, traj.End, traj.Mode)
	}
	if traj.Calls[0].Text != "<search>x</search>" || !traj.Calls[0].Clipped {
		t.Fatalf("text mode clip: %+v", traj.Calls[0])
	}
	reqs := fs.requests()
	for i := range traj.Calls {
		if got := traj.InputText(i); got != reqs[i].Prompt {
			t.Fatalf("call %d: rebuilt prompt differs", i)
		}
	}
	if _, err := traj.Sequences(); !errors.Is(err, ErrNotTokenLevel) {
		t.Fatalf("Sequences in text mode: %v", err)
	}

	// Token mode with a backend that returns text only: the run goes on,
	// the trajectory says it cannot be trained on.
	fs = &fakeSampler{turns: []turn{{text: "<answer>a</answer>", noIDs: true}}}
	traj, err = a.Run(context.Background(), newEnv(fs), Task{Question: "q"})
	if err != nil || traj.Mode != ModeTokens || traj.TokenLevel || !traj.Calls[0].NoTokenIDs {
		t.Fatalf("err %v traj %+v", err, traj)
	}
	if _, err := traj.Sequences(); !errors.Is(err, ErrNotTokenLevel) {
		t.Fatalf("Sequences: %v", err)
	}
}

func decode(ids []int) string { return byteTok{}.Decode(ids) }

// TestDemonstrate: scripted replies run through the real tiny agent give
// training sequences whose trained tokens are exactly the replies (plus
// EOS), with the observations in the agent's own format masked.
func TestDemonstrate(t *testing.T) {
	a, err := NewSearchAgent(TinyConfig())
	if err != nil {
		t.Fatal(err)
	}
	env := newEnv(nil)
	env.Search = &fakeSearch{docs: testDocs}
	replies := []string{"<search>dune author</search>", "<answer>Frank Herbert</answer>"}
	traj, err := Demonstrate(context.Background(), a, env, Task{Question: "Who wrote Dune?"}, replies)
	if err != nil {
		t.Fatal(err)
	}
	seqs, err := traj.Sequences()
	if err != nil || len(seqs) != 1 {
		t.Fatalf("%d sequences: %v", len(seqs), err)
	}
	want := "Q: Who wrote Dune?\n<search>dune author</search>\n<information>Dune\nDune is a 1965 novel by Frank Herbert.\nHerbert\nFrank Herbert was an American writer.</information>\n<answer>Frank Herbert</answer>"
	if got := decode(seqs[0].Tokens); got != want {
		t.Fatalf("demonstration text\n%q\nwant\n%q", got, want)
	}
	var trained []int
	for k, m := range seqs[0].LossMask {
		if m == 1 {
			trained = append(trained, seqs[0].Tokens[k])
		}
	}
	if decode(trained) != strings.Join(replies, "") {
		t.Fatalf("trained %q", decode(trained))
	}
	// A script the agent does not follow is refused.
	if _, err := Demonstrate(context.Background(), a, env, Task{Question: "q"}, []string{"<answer>x</answer>", "<answer>y</answer>"}); err == nil {
		t.Fatal("unused reply accepted")
	}
	if _, err := Demonstrate(context.Background(), a, env, Task{Question: "q"}, []string{"<search>x</search>"}); err == nil {
		t.Fatal("demonstration without an answer accepted")
	}
}

// TestTextOnlyBackendCap: text-only replies that ignore the token cap are
// cut too: by our own encoding in token mode, at 8 bytes per budgeted
// token in text mode.
func TestTextOnlyBackendCap(t *testing.T) {
	long := strings.Repeat("é", 50_000) // 100,000 bytes
	for _, tc := range []struct {
		name string
		env  *Env
		want int // bytes kept
	}{
		{"token mode", newEnv(nil), 30},
		{"text mode", &Env{}, 30 * textBytesPerToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.env.Sampler = &fakeSampler{turns: []turn{{text: long, noIDs: true}}}
			tc.env.Limits = Limits{MaxCallTokens: 30, MinCallTokens: 1}
			s := NewSession(tc.env, Task{Question: "q"}, "t", "")
			s.Append("prompt")
			rep, err := s.Generate(context.Background(), Gen{Purpose: PurposeAct, Stop: []string{"</search>"}, Tool: -1})
			if err != nil {
				t.Fatal(err)
			}
			c := s.Trajectory().Calls[0]
			if len(rep.Text) != tc.want || rep.Finish != llm.FinishLength || !c.Clipped || !utf8.ValidString(rep.Text) {
				t.Fatalf("kept %d bytes (want %d), finish %s, clipped %v", len(rep.Text), tc.want, rep.Finish, c.Clipped)
			}
		})
	}
}

// TestRequestsNeverChange: a backend that keeps the InputIDs it was given
// (a prefix cache) never sees them change, although the agent rewinds the
// context around page parts.
func TestRequestsNeverChange(t *testing.T) {
	var kept [][]int
	var copies [][]int
	inner := &fakeSampler{turns: []turn{
		{text: "<access>http://wiki/dune</access>"}, {text: "a</think>"}, {text: "b</think>"}, {text: "c</think>"}, {text: "<answer>x</answer>"},
	}}
	env := newEnv(samplerFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		kept = append(kept, req.InputIDs)
		copies = append(copies, slices.Clone(req.InputIDs))
		return inner.Sample(ctx, req)
	}))
	env.Browse = &fakeBrowser{pages: map[string]string{"http://wiki/dune": page3}}
	a, _ := NewSearchAgent(smallPartsConfig())
	if _, err := a.Run(context.Background(), env, Task{Question: "q"}); err != nil {
		t.Fatal(err)
	}
	for i := range kept {
		if !slices.Equal(kept[i], copies[i]) {
			t.Fatalf("request %d's input ids changed after the call", i)
		}
	}
}

// TestClosedBook checks the closed-book baseline offers no tools: its
// prompt mentions none, it stops only at </answer>, and it never calls the
// search engine even when one is configured.
func TestClosedBook(t *testing.T) {
	fs := &fakeSampler{turns: []turn{{text: "Herbert wrote Dune.</think>\n<answer> Frank Herbert </answer>", honour: true}}}
	env := newEnv(fs)
	search := &fakeSearch{docs: testDocs}
	env.Search = search
	w, err := NewRegistry().New(AgentClosedBook, Options{})
	if err != nil {
		t.Fatal(err)
	}
	traj, err := w.Run(context.Background(), env, Task{ID: "q1", Question: "Who wrote Dune?"})
	if err != nil {
		t.Fatal(err)
	}
	if traj.End != EndAnswer || traj.Answer != "Frank Herbert" || len(traj.Tools) != 0 || len(traj.Calls) != 1 {
		t.Fatalf("end %s answer %q tools %d calls %d", traj.End, traj.Answer, len(traj.Tools), len(traj.Calls))
	}
	if len(fs.reqs) != 1 {
		t.Fatalf("%d requests", len(fs.reqs))
	}
	if stops := fs.reqs[0].Params.Stop; !slices.Equal(stops, []string{"</answer>"}) {
		t.Fatalf("stops %q, want only </answer>", stops)
	}
	prompt := byteTok{}.Decode(fs.reqs[0].InputIDs)
	for _, tool := range []string{"<search>", "<access>", "<information>"} {
		if strings.Contains(prompt, tool) {
			t.Fatalf("closed-book prompt mentions %s:\n%s", tool, prompt)
		}
	}
	if len(search.queries) != 0 {
		t.Fatalf("searched %q", search.queries)
	}
	if !strings.Contains(prompt, "Who wrote Dune?") || !strings.Contains(prompt, "<answer>") {
		t.Fatalf("prompt:\n%s", prompt)
	}
	bad := ClosedBookConfig()
	bad.Access = true
	if _, err := NewSearchAgent(bad); err == nil {
		t.Fatal("closed-book agent with access accepted")
	}
}
