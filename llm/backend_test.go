package llm_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/llm"
)

var byteTok = fakellm.ByteTokenizer{}

func defaultLPs(ids []int) []float32 {
	out := make([]float32, len(ids))
	for i, id := range ids {
		out[i] = fakellm.DefaultLogprob(i, id)
	}
	return out
}

func newSGLang(t *testing.T, srv *fakellm.Server) *llm.SGLang {
	t.Helper()
	s, err := llm.NewSGLang(llm.SGLangConfig{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newOpenAI(t *testing.T, srv *fakellm.Server, d llm.Dialect) *llm.OpenAI {
	t.Helper()
	c, err := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: srv.OpenAIURL(), Dialect: d})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Every backend, on every finish shape, returns exactly the tokens the
// server generated, their logprobs, and the text including a stop string.
func TestBackendsAgainstFake(t *testing.T) {
	ctx := context.Background()
	type mk func(*testing.T, *fakellm.Server) llm.Sampler
	backends := map[string]mk{
		"sglang":          func(t *testing.T, s *fakellm.Server) llm.Sampler { return newSGLang(t, s) },
		"openai-extended": func(t *testing.T, s *fakellm.Server) llm.Sampler { return newOpenAI(t, s, llm.DialectExtended) },
		"openai-auto":     func(t *testing.T, s *fakellm.Server) llm.Sampler { return newOpenAI(t, s, llm.DialectAuto) },
	}
	prompt := byteTok.Encode("Q: capital of France?\n")
	searchText := "<search>capital of France</search>"
	cases := []struct {
		name   string
		reply  fakellm.Reply
		params llm.Params
		ids    []int
		text   string
		finish llm.Finish
		stop   string
	}{
		{"stop string", fakellm.Reply{Text: searchText + " never sent"}, llm.Params{MaxNewTokens: 100, Stop: []string{"</search>", "</answer>"}},
			byteTok.Encode(searchText), searchText, llm.FinishStop, "</search>"},
		{"eos", fakellm.Reply{Text: "<answer>Paris</answer>"}, llm.Params{MaxNewTokens: 100},
			append(byteTok.Encode("<answer>Paris</answer>"), fakellm.ByteEOS), "<answer>Paris</answer>", llm.FinishStop, ""},
		{"stop token", fakellm.Reply{Text: "line one\nline two"}, llm.Params{MaxNewTokens: 100, StopTokenIDs: []int{'\n'}},
			byteTok.Encode("line one\n"), "line one\n", llm.FinishStop, ""},
		{"length", fakellm.Reply{Text: "abcdefghij"}, llm.Params{MaxNewTokens: 4},
			byteTok.Encode("abcd"), "abcd", llm.FinishLength, ""},
	}
	for bname, newBackend := range backends {
		for _, c := range cases {
			t.Run(bname+"/"+c.name, func(t *testing.T) {
				srv := fakellm.New(fakellm.Options{})
				defer srv.Close()
				srv.SetVersion(5)
				srv.Enqueue(c.reply)
				resp, err := newBackend(t, srv).Sample(ctx, &llm.Request{ID: "traj-1#0", InputIDs: prompt, Params: c.params})
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(resp.OutputIDs, c.ids) {
					t.Errorf("ids %v want %v", resp.OutputIDs, c.ids)
				}
				if !reflect.DeepEqual(resp.Logprobs, defaultLPs(c.ids)) {
					t.Errorf("logprobs %v want %v", resp.Logprobs, defaultLPs(c.ids))
				}
				if resp.Text != c.text || resp.Finish != c.finish || resp.StopMatched != c.stop {
					t.Errorf("got text %q finish %s stop %q; want %q %s %q", resp.Text, resp.Finish, resp.StopMatched, c.text, c.finish, c.stop)
				}
				if resp.PromptTokens != len(prompt) {
					t.Errorf("prompt tokens %d want %d", resp.PromptTokens, len(prompt))
				}
				if bname == "sglang" {
					if !reflect.DeepEqual(resp.Versions, fill(len(c.ids), 5)) {
						t.Errorf("versions %v", resp.Versions)
					}
				} else if resp.Versions != nil {
					t.Errorf("OpenAI replies carry no version, got %v", resp.Versions)
				}
				calls := srv.Calls()
				if len(calls) != 1 || !reflect.DeepEqual(calls[0].InputIDs, prompt) || calls[0].RID != "traj-1#0" {
					t.Errorf("server saw %+v", calls)
				}
			})
		}
	}
}

func fill(n, v int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestSGLangTextPromptAndChat(t *testing.T) {
	ctx := context.Background()
	srv := fakellm.New(fakellm.Options{})
	defer srv.Close()
	s := newSGLang(t, srv)
	srv.Enqueue(fakellm.Reply{Text: "ok"}, fakellm.Reply{Text: "hello"})
	r1, err := s.Sample(ctx, &llm.Request{Prompt: "say ok", Params: llm.Params{MaxNewTokens: 8}})
	if err != nil || r1.Text != "ok" {
		t.Fatalf("text prompt: %+v %v", r1, err)
	}
	r2, err := s.Sample(ctx, &llm.Request{Messages: []llm.Message{{Role: "user", Content: "hi"}}, Params: llm.Params{MaxNewTokens: 8}})
	if err != nil || r2.Text != "hello" {
		t.Fatalf("chat: %+v %v", r2, err)
	}
	calls := srv.Calls()
	if calls[0].Path != "/generate" || calls[0].Prompt != "say ok" {
		t.Errorf("first call %+v", calls[0])
	}
	if calls[1].Path != "/v1/chat/completions" || calls[1].Messages[0].Content != "hi" {
		t.Errorf("second call %+v", calls[1])
	}
	// The chat reply carries ids because the fake honours return_token_ids.
	if !reflect.DeepEqual(r2.OutputIDs, append(byteTok.Encode("hello"), fakellm.ByteEOS)) {
		t.Errorf("chat ids %v", r2.OutputIDs)
	}
}

func TestSGLangAbortReturnsPartialOutput(t *testing.T) {
	ctx := context.Background()
	srv := fakellm.New(fakellm.Options{})
	defer srv.Close()
	s := newSGLang(t, srv)
	srv.Enqueue(fakellm.Reply{Text: strings.Repeat("x", 1000), TokenDelay: 2 * time.Millisecond})
	done := make(chan *llm.Response, 1)
	go func() {
		r, err := s.Sample(ctx, &llm.Request{ID: "slow", Prompt: "p", Params: llm.Params{MaxNewTokens: 1000}})
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	waitFor(t, func() bool { return srv.InFlight() == 1 })
	time.Sleep(20 * time.Millisecond)
	if err := s.Abort(ctx, "slow"); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r == nil {
		t.FailNow()
	}
	if r.Finish != llm.FinishAbort || len(r.OutputIDs) == 0 || len(r.OutputIDs) >= 1000 || len(r.Logprobs) != len(r.OutputIDs) {
		t.Fatalf("want a partial aborted reply, got finish %s with %d tokens", r.Finish, len(r.OutputIDs))
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestHTTPFailuresAreClassified(t *testing.T) {
	ctx := context.Background()
	srv := fakellm.New(fakellm.Options{})
	defer srv.Close()
	s := newSGLang(t, srv)
	srv.Enqueue(fakellm.Reply{Status: 503}, fakellm.Reply{Status: 400, Body: `{"error":"bad"}`}, fakellm.Reply{Drop: true})
	req := &llm.Request{InputIDs: []int{1}}
	_, err := s.Sample(ctx, req)
	var he *llm.HTTPError
	if !errors.As(err, &he) || he.Status != 503 || !llm.Retryable(err) {
		t.Errorf("503: %v", err)
	}
	_, err = s.Sample(ctx, req)
	if !errors.As(err, &he) || he.Status != 400 || llm.Retryable(err) {
		t.Errorf("400: %v", err)
	}
	_, err = s.Sample(ctx, req)
	if err == nil || !llm.Retryable(err) {
		t.Errorf("dropped connection: %v (retryable %v)", err, llm.Retryable(err))
	}
	srv.Close()
	_, err = s.Sample(ctx, req)
	if err == nil || !llm.Retryable(err) {
		t.Errorf("dead server: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Sample(cctx, req); err == nil || llm.Retryable(err) {
		t.Errorf("cancelled context must not be retryable: %v", err)
	}
}

func TestOpenAIDialects(t *testing.T) {
	ctx := context.Background()
	prompt := byteTok.Encode("Q?")
	t.Run("old vLLM: ids from token_id strings", func(t *testing.T) {
		srv := fakellm.New(fakellm.Options{NoTokenIDs: true})
		defer srv.Close()
		srv.Enqueue(fakellm.Reply{Text: "abc"})
		r, err := newOpenAI(t, srv, llm.DialectAuto).Sample(ctx, &llm.Request{InputIDs: prompt, Params: llm.Params{MaxNewTokens: 10}})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(r.OutputIDs, append(byteTok.Encode("abc"), fakellm.ByteEOS)) {
			t.Errorf("ids %v", r.OutputIDs)
		}
	})
	t.Run("hosted API: auto falls back to standard fields", func(t *testing.T) {
		srv := fakellm.New(fakellm.Options{Strict: true})
		defer srv.Close()
		srv.Enqueue(fakellm.Reply{Text: "abc"}, fakellm.Reply{Text: "def"})
		c := newOpenAI(t, srv, llm.DialectAuto)
		for _, want := range []string{"abc", "def"} {
			r, err := c.Sample(ctx, &llm.Request{Prompt: "Q?", Params: llm.Params{MaxNewTokens: 10, TopK: 5}})
			if err != nil {
				t.Fatal(err)
			}
			if r.Text != want || r.OutputIDs != nil || len(r.Logprobs) != 4 {
				t.Errorf("got %+v", r)
			}
		}
		// One rejected attempt, then standard requests only.
		calls := srv.Calls()
		if len(calls) != 2 || strings.Contains(string(calls[1].Body), "top_k") {
			t.Errorf("calls: %d, last body %s", len(calls), calls[len(calls)-1].Body)
		}
	})
	t.Run("hosted API: extended dialect reports the rejection", func(t *testing.T) {
		srv := fakellm.New(fakellm.Options{Strict: true})
		defer srv.Close()
		_, err := newOpenAI(t, srv, llm.DialectExtended).Sample(ctx, &llm.Request{Prompt: "Q?"})
		var he *llm.HTTPError
		if !errors.As(err, &he) || he.Status != 400 || !strings.Contains(err.Error(), "Unrecognized request argument") {
			t.Errorf("want the 400, got %v", err)
		}
	})
	t.Run("unknown model", func(t *testing.T) {
		srv := fakellm.New(fakellm.Options{})
		defer srv.Close()
		c, _ := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: srv.OpenAIURL(), Model: "nope"})
		if _, err := c.Sample(ctx, &llm.Request{Prompt: "Q?"}); err == nil || !strings.Contains(err.Error(), "404") {
			t.Errorf("want 404, got %v", err)
		}
	})
}

func TestAPIKeyIsSentAndNeverShown(t *testing.T) {
	const key = "sk-test-SECRET-7f3a9c"
	ctx := context.Background()
	srv := fakellm.New(fakellm.Options{APIKey: key})
	defer srv.Close()
	srv.Enqueue(fakellm.Reply{Text: "ok"})
	good, _ := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: srv.OpenAIURL(), APIKey: key})
	if r, err := good.Sample(ctx, &llm.Request{Prompt: "x"}); err != nil || r.Text != "ok" {
		t.Fatalf("with key: %+v %v", r, err)
	}
	// A server that echoes what it got must not leak the key into errors.
	srv.Enqueue(fakellm.Reply{Status: 500, Body: `{"message":"header was Bearer ` + key + `"}`})
	_, err := good.Sample(ctx, &llm.Request{Prompt: "x"})
	if err == nil || strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "[REDACTED]") {
		t.Errorf("error leaks or hides wrongly: %v", err)
	}
	bad, _ := llm.NewSGLang(llm.SGLangConfig{BaseURL: srv.URL, APIKey: "wrong-" + key})
	_, err = bad.Sample(ctx, &llm.Request{Prompt: "x"})
	var he *llm.HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusUnauthorized || strings.Contains(err.Error(), key) {
		t.Errorf("wrong key: %v", err)
	}
}

func TestRequestValidation(t *testing.T) {
	srv := fakellm.New(fakellm.Options{})
	defer srv.Close()
	s := newSGLang(t, srv)
	for _, req := range []*llm.Request{
		{},
		{InputIDs: []int{1}, Prompt: "x"},
		{Prompt: "x", Params: llm.Params{MaxNewTokens: -1}},
		{Prompt: "x", Params: llm.Params{Temperature: -0.5}},
	} {
		if _, err := s.Sample(context.Background(), req); err == nil {
			t.Errorf("%+v: want an error", req)
		}
	}
	if len(srv.Calls()) != 0 {
		t.Error("invalid requests reached the server")
	}
}
