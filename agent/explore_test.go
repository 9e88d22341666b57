package agent

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tools"
)

// TestExploreForcesSearch runs the tiny search agent on scripted replies
// with and without Explore.MinSearches and checks which searches ran,
// which were forced, what was answered, and that training sees the
// model's query but neither the forced tag nor the cut answer.
func TestExploreForcesSearch(t *testing.T) {
	cases := []struct {
		name        string
		minSearches int
		maxTurns    int
		replies     []string
		wantQueries []string
		wantForced  []bool
		wantAnswer  string
		wantCut     string
	}{
		{name: "off", minSearches: 0, maxTurns: 4,
			replies:     []string{"<search> Favok </search>", "<answer> Oslo </answer>"},
			wantQueries: []string{"Favok"}, wantForced: []bool{false}, wantAnswer: "Oslo"},
		{name: "enough searches", minSearches: 1, maxTurns: 4,
			replies:     []string{"<search> Favok </search>", "<answer> Oslo </answer>"},
			wantQueries: []string{"Favok"}, wantForced: []bool{false}, wantAnswer: "Oslo"},
		{name: "second search forced", minSearches: 2, maxTurns: 4,
			replies:     []string{"<search> Favok </search>", "<answer> Oslo </answer>", " Lomel </search>", "<answer> Rome </answer>"},
			wantQueries: []string{"Favok", "Lomel"}, wantForced: []bool{false, true}, wantAnswer: "Rome",
			wantCut: "<answer> Oslo </answer>"},
		{name: "answer at once, forced twice in two turns", minSearches: 2, maxTurns: 4,
			replies:     []string{"<answer> Oslo </answer>", " Favok </search>", "<answer> Oslo </answer>", " Lomel </search>", "<answer> Rome </answer>"},
			wantQueries: []string{"Favok", "Lomel"}, wantForced: []bool{true, true}, wantAnswer: "Rome",
			wantCut: "<answer> Oslo </answer>"},
		{name: "text before the tag is kept", minSearches: 1, maxTurns: 4,
			replies:     []string{"sure <answer> Oslo </answer>", " Favok </search>", "<answer> Rome </answer>"},
			wantQueries: []string{"Favok"}, wantForced: []bool{true}, wantAnswer: "Rome",
			wantCut: "<answer> Oslo </answer>"},
		{name: "the model answers again after the forced tag", minSearches: 2, maxTurns: 4,
			replies:    []string{"<answer> Oslo </answer>", "<answer> Bern </answer>"},
			wantAnswer: "Bern", wantCut: "<answer> Oslo </answer>"},
		{name: "model writes its own search tag after the forced one", minSearches: 1, maxTurns: 4,
			replies:     []string{"<answer> Oslo </answer>", " <search> Favok </search>", "<answer> Rome </answer>"},
			wantQueries: []string{"Favok"}, wantForced: []bool{false}, wantAnswer: "Rome", wantCut: "<answer> Oslo </answer>"},
		{name: "never on the last turn", minSearches: 2, maxTurns: 2,
			replies:     []string{"<search> Favok </search>", "<answer> Oslo </answer>"},
			wantQueries: []string{"Favok"}, wantForced: []bool{false}, wantAnswer: "Oslo"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := NewSearchAgent(TinyConfig())
			if err != nil {
				t.Fatal(err)
			}
			s := &ScriptedSampler{Tokenizer: byteTok{}, Replies: tc.replies, EOS: byteEOS}
			search := &fakeSearch{docs: []tools.SearchResult{{Title: "Favok", Text: "Favok is mentored by Lomel."}}}
			env := newEnv(s)
			env.Search = search
			env.Limits.MaxTurns = tc.maxTurns
			env.Explore = Explore{MinSearches: tc.minSearches}
			traj, err := a.Run(context.Background(), env, Task{ID: "q", Question: "Where does the mentor of Favok live?"})
			if err != nil {
				t.Fatal(err)
			}
			if s.Used() != len(tc.replies) {
				t.Errorf("used %d of %d replies", s.Used(), len(tc.replies))
			}
			var queries []string
			var forced []bool
			for _, tl := range traj.Tools {
				queries, forced = append(queries, tl.Arg), append(forced, tl.Forced)
			}
			if !slices.Equal(queries, tc.wantQueries) || !slices.Equal(forced, tc.wantForced) {
				t.Errorf("searches %q forced %v, want %q %v", queries, forced, tc.wantQueries, tc.wantForced)
			}
			if !traj.Answered || traj.Answer != tc.wantAnswer {
				t.Errorf("answer %q (answered %v), want %q", traj.Answer, traj.Answered, tc.wantAnswer)
			}
			cut := ""
			for _, c := range traj.Calls {
				if c.Cut != "" {
					cut = c.Cut
					if strings.Contains(c.Text, "<answer>") {
						t.Errorf("a cut call kept its answer: %q", c.Text)
					}
				}
			}
			if cut != tc.wantCut {
				t.Errorf("cut %q, want %q", cut, tc.wantCut)
			}
			seqs, err := traj.Sequences()
			if err != nil {
				t.Fatal(err)
			}
			if len(seqs) != 1 {
				t.Fatalf("%d training sequences, want 1 (the cut keeps the context one growing sequence)", len(seqs))
			}
			var trained, all strings.Builder
			for k, id := range seqs[0].Tokens {
				if id >= 256 {
					continue
				}
				all.WriteByte(byte(id))
				if seqs[0].LossMask[k] == 1 {
					trained.WriteByte(byte(id))
				}
			}
			if tc.wantCut != "" && strings.Contains(all.String(), tc.wantCut) {
				t.Errorf("the cut answer is still in the sequence: %q", all.String())
			}
			for i, q := range tc.wantQueries {
				if !tc.wantForced[i] {
					continue
				}
				// The model's query is trained, the forced tag before it is not.
				if !strings.Contains(trained.String(), " "+q+" </search>") {
					t.Errorf("forced search %q: the query is not trained (trained text %q)", q, trained.String())
				}
				if strings.Contains(trained.String(), "<search> "+q) {
					t.Errorf("forced search %q: the forced tag is trained (trained text %q)", q, trained.String())
				}
			}
		})
	}
}

// versioned stamps every output token with a weight version and a
// logprob, as the embedded sampler does.
type versioned struct{ *ScriptedSampler }

func (v versioned) Sample(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	r, err := v.ScriptedSampler.Sample(ctx, req)
	if err == nil {
		r.Versions = make([]int, len(r.OutputIDs))
		for i := range r.Logprobs {
			r.Logprobs[i], r.Versions[i] = -0.5, 3
		}
	}
	return r, err
}

// TestExploreTrainTag: with Explore.TrainTag the forced search tag is
// output of the exploring policy (loss mask 1, logprob 0, the cut token's
// version, marked Forced); without it the same tag is prompt.
func TestExploreTrainTag(t *testing.T) {
	for _, train := range []bool{false, true} {
		a, err := NewSearchAgent(TinyConfig())
		if err != nil {
			t.Fatal(err)
		}
		s := versioned{&ScriptedSampler{Tokenizer: byteTok{}, Replies: []string{"<answer> Oslo </answer>", " Favok </search>", "<answer> Rome </answer>"}, EOS: byteEOS}}
		env := newEnv(s)
		env.Search = &fakeSearch{docs: []tools.SearchResult{{Title: "Favok", Text: "Favok is mentored by Lomel."}}}
		env.Explore = Explore{MinSearches: 1, TrainTag: train}
		traj, err := a.Run(context.Background(), env, Task{ID: "q", Question: "Where does Favok live?"})
		if err != nil {
			t.Fatal(err)
		}
		if len(traj.Tools) != 1 || !traj.Tools[0].Forced || traj.Answer != "Rome" {
			t.Fatalf("train %v: tools %+v answer %q", train, traj.Tools, traj.Answer)
		}
		seqs, err := traj.Sequences()
		if err != nil {
			t.Fatal(err)
		}
		if len(seqs) != 1 {
			t.Fatalf("train %v: %d sequences", train, len(seqs))
		}
		q := seqs[0]
		var forced, trained strings.Builder
		for k, id := range q.Tokens {
			if q.LossMask[k] == 1 {
				trained.WriteByte(byte(id))
			}
			if q.Forced != nil && q.Forced[k] {
				forced.WriteByte(byte(id))
				if q.LossMask[k] != 1 || q.Logprobs[k] != 0 || q.Versions[k] != 3 {
					t.Errorf("forced token %d: mask %d logprob %v version %d, want 1, 0, 3", k, q.LossMask[k], q.Logprobs[k], q.Versions[k])
				}
			}
		}
		want := map[bool]string{false: "", true: "<search>"}[train]
		if forced.String() != want {
			t.Errorf("train %v: forced tokens %q, want %q", train, forced.String(), want)
		}
		if got := strings.HasPrefix(trained.String(), "<search> Favok </search>"); got != train {
			t.Errorf("train %v: trained text %q", train, trained.String())
		}
	}
}
