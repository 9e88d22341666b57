package llm_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/llm"
)

// A weight update in the middle of a generation: the server is paused (every
// running request ends with its partial output), its version changes, and it
// continues. The caller sees one response in which every token appears once,
// with its logprob and the version that produced it.
func TestResumerSurvivesPauseAndWeightUpdate(t *testing.T) {
	ctx := context.Background()
	srv := fakellm.New(fakellm.Options{})
	defer srv.Close()
	srv.SetVersion(1)
	text := strings.Repeat("abcdefghij", 20) // 200 tokens
	srv.Enqueue(fakellm.Reply{Text: text, TokenDelay: time.Millisecond})
	pool := newPool(t, []llm.Sampler{newSGLang(t, srv)}, llm.PoolConfig{})
	res := llm.NewResumer(pool)
	prompt := byteTok.Encode("prompt: ")
	done := make(chan *llm.Response)
	go func() {
		r, err := res.Sample(ctx, &llm.Request{ID: "traj#0", InputIDs: prompt, Params: llm.Params{MaxNewTokens: 300}})
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	waitFor(t, func() bool { return srv.InFlight() == 1 })
	time.Sleep(30 * time.Millisecond)
	srv.Pause()
	srv.SetVersion(2)
	time.Sleep(20 * time.Millisecond)
	srv.Continue()
	r := <-done
	if r == nil {
		t.FailNow()
	}
	want := append(byteTok.Encode(text), fakellm.ByteEOS)
	if !reflect.DeepEqual(r.OutputIDs, want) {
		t.Fatalf("tokens lost or duplicated: got %d tokens, want %d", len(r.OutputIDs), len(want))
	}
	if r.Text != text || r.Finish != llm.FinishStop || r.PromptTokens != len(prompt) {
		t.Errorf("text %q… finish %s prompt %d", r.Text[:10], r.Finish, r.PromptTokens)
	}
	if !reflect.DeepEqual(r.Logprobs, defaultLPs(want)) {
		t.Error("logprobs do not match the tokens' positions")
	}
	calls := srv.Calls()
	if len(calls) != 2 || !calls[1].Resumed {
		t.Fatalf("want 2 calls (one resubmission), got %d", len(calls))
	}
	k := len(calls[1].InputIDs) - len(prompt)
	if k <= 0 || k >= len(text) {
		t.Fatalf("paused after %d tokens; the test needs a pause mid-generation", k)
	}
	if calls[1].Params.MaxNewTokens != 300-k {
		t.Errorf("resubmitted with budget %d, want %d", calls[1].Params.MaxNewTokens, 300-k)
	}
	for i, v := range r.Versions {
		if (i < k && v != 1) || (i >= k && v != 2) {
			t.Fatalf("token %d has version %d (boundary at %d)", i, v, k)
		}
	}
}

// scripted is an in-process Sampler that returns prepared segments.
type scripted struct {
	mu   sync.Mutex
	segs []*llm.Response
	errs []error
	reqs []llm.Request
}

func (s *scripted) Sample(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	s.mu.Lock()
	cp := *req
	cp.InputIDs = append([]int(nil), req.InputIDs...)
	s.reqs = append(s.reqs, cp)
	i := len(s.reqs) - 1
	s.mu.Unlock()
	if i < len(s.errs) && s.errs[i] != nil {
		return nil, s.errs[i]
	}
	if i >= len(s.segs) {
		return nil, errors.New("script exhausted")
	}
	return s.segs[i], nil
}

func (s *scripted) Abort(ctx context.Context, id string) error { return nil }

func seg(ids []int, finish llm.Finish, version int) *llm.Response {
	r := &llm.Response{OutputIDs: ids, Finish: finish, Text: byteTok.Decode(ids), PromptTokens: 3}
	for i := range ids {
		r.Logprobs = append(r.Logprobs, -float32(ids[i])/100)
		if version >= 0 {
			r.Versions = append(r.Versions, version)
		}
	}
	return r
}

func TestResumerEdgeCases(t *testing.T) {
	ctx := context.Background()
	prompt := []int{1, 2, 3}
	cases := []struct {
		name     string
		segs     []*llm.Response
		budget   int
		max      int
		ids      []int
		versions []int
		finish   llm.Finish
		calls    int
	}{
		{"no interruption", []*llm.Response{seg([]int{'a', 'b'}, llm.FinishStop, 4)}, 10, 0,
			[]int{'a', 'b'}, []int{4, 4}, llm.FinishStop, 1},
		{"abort before prefill is resubmitted", []*llm.Response{seg(nil, llm.FinishAbort, 1), seg([]int{'a'}, llm.FinishStop, 2)}, 10, 0,
			[]int{'a'}, []int{2}, llm.FinishStop, 2},
		{"three segments", []*llm.Response{seg([]int{'a'}, llm.FinishAbort, 1), seg([]int{'b'}, llm.FinishAbort, 2), seg([]int{'c'}, llm.FinishLength, 3)}, 3, 0,
			[]int{'a', 'b', 'c'}, []int{1, 2, 3}, llm.FinishLength, 3},
		{"budget spent at the abort is length", []*llm.Response{seg([]int{'a', 'b'}, llm.FinishAbort, 1), seg([]int{'x'}, llm.FinishStop, 2)}, 2, 0,
			[]int{'a', 'b'}, []int{1, 1}, llm.FinishLength, 1},
		{"resubmits are bounded", []*llm.Response{seg(nil, llm.FinishAbort, 1), seg(nil, llm.FinishAbort, 1), seg(nil, llm.FinishAbort, 1), seg([]int{'z'}, llm.FinishStop, 1)}, 5, 2,
			nil, nil, llm.FinishAbort, 3},
		{"no versions reported", []*llm.Response{seg([]int{'a'}, llm.FinishAbort, -1), seg([]int{'b'}, llm.FinishStop, -1)}, 5, 0,
			[]int{'a', 'b'}, nil, llm.FinishStop, 2},
		{"versions from one segment only", []*llm.Response{seg([]int{'a'}, llm.FinishAbort, -1), seg([]int{'b'}, llm.FinishStop, 7)}, 5, 0,
			[]int{'a', 'b'}, []int{-1, 7}, llm.FinishStop, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &scripted{segs: c.segs}
			res := &llm.Resumer{Sampler: s, MaxResubmits: c.max, RetryDelay: time.Millisecond}
			r, err := res.Sample(ctx, &llm.Request{ID: "q", InputIDs: prompt, Params: llm.Params{MaxNewTokens: c.budget}})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r.OutputIDs, c.ids) || !reflect.DeepEqual(r.Versions, c.versions) || r.Finish != c.finish {
				t.Errorf("got ids %v versions %v finish %s; want %v %v %s", r.OutputIDs, r.Versions, r.Finish, c.ids, c.versions, c.finish)
			}
			if len(r.Logprobs) != len(r.OutputIDs) && !(len(r.OutputIDs) == 0 && r.Logprobs == nil) {
				t.Errorf("%d logprobs for %d tokens", len(r.Logprobs), len(r.OutputIDs))
			}
			if len(s.reqs) != c.calls {
				t.Fatalf("%d calls, want %d", len(s.reqs), c.calls)
			}
			// Each resubmission carries prompt + everything generated so far
			// and the remaining budget.
			var sofar []int
			for i, rq := range s.reqs {
				wantIn := append(append([]int(nil), prompt...), sofar...)
				if !reflect.DeepEqual(rq.InputIDs, wantIn) || rq.Params.MaxNewTokens != c.budget-len(sofar) {
					t.Errorf("call %d: input %v budget %d; want %v %d", i, rq.InputIDs, rq.Params.MaxNewTokens, wantIn, c.budget-len(sofar))
				}
				if i < len(c.segs) {
					sofar = append(sofar, c.segs[i].OutputIDs...)
				}
			}
		})
	}
}

func TestResumerDoesNotResubmitWhatTheCallerAborted(t *testing.T) {
	ctx := context.Background()
	srv := fakellm.New(fakellm.Options{})
	defer srv.Close()
	srv.Enqueue(fakellm.Reply{Text: strings.Repeat("q", 300), TokenDelay: time.Millisecond})
	res := llm.NewResumer(newPool(t, []llm.Sampler{newSGLang(t, srv)}, llm.PoolConfig{}))
	done := make(chan *llm.Response)
	go func() {
		r, err := res.Sample(ctx, &llm.Request{ID: "stale#3", InputIDs: []int{1}, Params: llm.Params{MaxNewTokens: 300}})
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	waitFor(t, func() bool { return srv.InFlight() == 1 })
	if err := res.Abort(ctx, "stale#3"); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r == nil || r.Finish != llm.FinishAbort || len(srv.Calls()) != 1 {
		t.Fatalf("want one aborted call, got %+v and %d calls", r, len(srv.Calls()))
	}
}

func TestResumerCallerContextEndsTheLoop(t *testing.T) {
	cctx, cancel := context.WithCancel(context.Background())
	s := &scripted{segs: []*llm.Response{seg([]int{'a'}, llm.FinishAbort, 1), seg([]int{'b'}, llm.FinishStop, 1)}}
	res := &llm.Resumer{Sampler: s, Wait: func(ctx context.Context) error { cancel(); return ctx.Err() }}
	r, err := res.Sample(cctx, &llm.Request{InputIDs: []int{1}, Params: llm.Params{MaxNewTokens: 5}})
	if err != nil || r.Finish != llm.FinishAbort || !reflect.DeepEqual(r.OutputIDs, []int{'a'}) || len(s.reqs) != 1 {
		t.Fatalf("%+v %v calls %d", r, err, len(s.reqs))
	}
}

func TestResumerErrorAfterProgressIsReported(t *testing.T) {
	s := &scripted{segs: []*llm.Response{seg([]int{'a'}, llm.FinishAbort, 1)}, errs: []error{nil, errors.New("server gone")}}
	res := &llm.Resumer{Sampler: s}
	_, err := res.Sample(context.Background(), &llm.Request{InputIDs: []int{1}, Params: llm.Params{MaxNewTokens: 5}})
	if err == nil || !strings.Contains(err.Error(), "resubmission 1") {
		t.Fatalf("err %v", err)
	}
}

// A stop string split across the pause boundary: the server only sees the
// second half, keeps generating, and Resumer (given a decoder) cuts the
// output right after the stop string.
func TestResumerCutsStraddlingStop(t *testing.T) {
	first := seg(byteTok.Encode("<search>q</sea"), llm.FinishAbort, 1)
	second := seg(byteTok.Encode("rch> and more text"), llm.FinishStop, 2)
	for _, withDecode := range []bool{true, false} {
		s := &scripted{segs: []*llm.Response{first, second}}
		res := &llm.Resumer{Sampler: s}
		if withDecode {
			res.Decode = byteTok.Decode
		}
		r, err := res.Sample(context.Background(), &llm.Request{InputIDs: []int{1}, Params: llm.Params{MaxNewTokens: 100, Stop: []string{"</search>"}}})
		if err != nil {
			t.Fatal(err)
		}
		if withDecode {
			want := "<search>q</search>"
			if r.Text != want || byteTok.Decode(r.OutputIDs) != want || r.Finish != llm.FinishStop || r.StopMatched != "</search>" ||
				len(r.Logprobs) != len(r.OutputIDs) || len(r.Versions) != len(r.OutputIDs) {
				t.Errorf("with decoder: %+v", r)
			}
		} else if r.Text != "<search>q</search> and more text" {
			t.Errorf("without decoder the output is left whole: %q", r.Text)
		}
	}
}

func TestResumerPinsClientVersions(t *testing.T) {
	s := &scripted{segs: []*llm.Response{seg([]int{'a'}, llm.FinishAbort, 9), seg([]int{'b', 'c'}, llm.FinishStop, 9)}}
	v := 3
	res := &llm.Resumer{Sampler: s, Wait: func(context.Context) error { v = 4; return nil }, Version: func() int { return v }}
	r, err := res.Sample(context.Background(), &llm.Request{InputIDs: []int{1}, Params: llm.Params{MaxNewTokens: 5}})
	if err != nil || !reflect.DeepEqual(r.Versions, []int{3, 4, 4}) {
		t.Fatalf("%+v %v", r, err)
	}
}

// The same, without timing: the fake aborts after 7 tokens, and the
// weights change while the Resumer waits to resubmit.
func TestResumerScriptedInterruption(t *testing.T) {
	srv := fakellm.New(fakellm.Options{})
	defer srv.Close()
	srv.SetVersion(1)
	srv.Enqueue(fakellm.Reply{Text: "<search>lighthouse of alexandria height</search>", AbortAfter: 7})
	res := &llm.Resumer{Sampler: newSGLang(t, srv), Wait: func(ctx context.Context) error { srv.SetVersion(2); return nil }}
	r, err := res.Sample(context.Background(), &llm.Request{ID: "t#0", InputIDs: []int{1, 2, 3}, Params: llm.Params{MaxNewTokens: 64, Stop: []string{"</search>"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := byteTok.Encode("<search>lighthouse of alexandria height</search>")
	if !reflect.DeepEqual(r.OutputIDs, want) || r.Text != "<search>lighthouse of alexandria height</search>" || r.Finish != llm.FinishStop || r.StopMatched != "</search>" {
		t.Fatalf("%+v", r)
	}
	if !reflect.DeepEqual(r.Versions, append(fill(7, 1), fill(len(want)-7, 2)...)) || !reflect.DeepEqual(r.Logprobs, defaultLPs(want)) {
		t.Errorf("versions %v", r.Versions)
	}
	if c := srv.Calls(); len(c) != 2 || c[1].Params.MaxNewTokens != 64-7 {
		t.Errorf("calls %+v", c)
	}
}

// A stop string the backend restored (the server trimmed it and said
// nothing) stays flagged through the Resumer, interrupted or not, so the
// agent knows the tag's tokens may be missing from OutputIDs.
func TestResumerKeepsStopRestored(t *testing.T) {
	last := seg([]int{'q'}, llm.FinishStop, 1)
	last.Text, last.StopMatched, last.StopRestored = "q</search>", "</search>", true
	for _, segs := range [][]*llm.Response{{last}, {seg([]int{'<'}, llm.FinishAbort, 1), last}} {
		s := &scripted{segs: segs}
		r := &llm.Resumer{Sampler: s}
		resp, err := r.Sample(context.Background(), &llm.Request{ID: "r", InputIDs: []int{1}, Params: llm.Params{MaxNewTokens: 10, Stop: []string{"</search>"}}})
		if err != nil {
			t.Fatal(err)
		}
		if !resp.StopRestored || resp.StopMatched != "</search>" {
			t.Fatalf("%d segments: %+v", len(segs), resp)
		}
	}
}
