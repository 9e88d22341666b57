package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/engine/serve"
	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/internal/testmodel"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tools"
)

// openSpec opens a model spec the way commands do.
func openSpec(t *testing.T, spec string) llm.Sampler {
	t.Helper()
	s, closeFn, err := llm.NewBackends().Open(context.Background(), spec, llm.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = closeFn() })
	return s
}

// TestContextFitsServer: the agent's budget is 32768 tokens (the default)
// but the model server's window is 4096. Searching forever, the history
// outgrows the window; the run must end as EndContext with no error,
// whether the backend learned the window (the budget is capped and the
// server never refuses) or not (the server's 400 ends the run), in token
// and text modes.
func TestContextFitsServer(t *testing.T) {
	const window = 4096
	docs := []tools.SearchResult{{Title: "Dune", URL: "http://wiki/dune", Text: strings.Repeat("Dune is a 1965 novel by Frank Herbert. ", 4)}}
	tests := []struct {
		name    string
		opts    fakellm.Options
		spec    func(url string) string
		tokens  bool
		refused bool // the server must have refused a call (the fallback)
	}{
		{"sglang tokens, window known", fakellm.Options{ContextLength: window}, func(u string) string { return "sglang:" + u }, true, false},
		{"vllm tokens, window known", fakellm.Options{ContextLength: window}, func(u string) string { return u + "/v1" }, true, false},
		{"sglang tokens, window hidden", fakellm.Options{ContextLength: window, HideContextLength: true}, func(u string) string { return "sglang:" + u }, true, true},
		{"vllm tokens, window hidden", fakellm.Options{ContextLength: window, HideContextLength: true}, func(u string) string { return u + "/v1" }, true, true},
		{"openai text, window hidden", fakellm.Options{ContextLength: window, Strict: true}, func(u string) string { return "openai:" + u + "/v1" }, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.Handler = func(fakellm.Call) fakellm.Reply { return fakellm.Reply{Text: "<search>again</search>"} }
			srv := fakellm.New(opts)
			defer srv.Close()
			counted := &refusalCounter{inner: openSpec(t, tc.spec(srv.URL))}
			env := &Env{
				Sampler: counted,
				Search:  &fakeSearch{docs: docs},
				Limits:  Limits{MaxCallTokens: 64},
			}
			if tc.tokens {
				env.Tokenizer, env.StopTokenIDs = byteTok{}, []int{byteEOS}
			}
			cfg := ASearcherConfig()
			cfg.Notes = false
			a, _ := NewSearchAgent(cfg)
			traj, err := a.Run(context.Background(), env, Task{Question: "Who wrote Dune?"})
			if err != nil || traj.End != EndContext || traj.Error != "" {
				t.Fatalf("err %v end %s error %q", err, traj.End, traj.Error)
			}
			if len(traj.Tools) < 5 {
				t.Fatalf("only %d searches: the run ended before the context filled", len(traj.Tools))
			}
			if n := len(srv.Calls()); n != len(traj.Calls) {
				t.Errorf("the server served %d calls, the trajectory records %d", n, len(traj.Calls))
			}
			refusals := counted.refusals
			if tc.refused != (refusals > 0) {
				t.Errorf("%d refused calls; want refusals %v", refusals, tc.refused)
			}
			if refusals > 1 {
				t.Errorf("%d refused calls: the first should have ended the run", refusals)
			}
		})
	}
}

// TestContextFitsEmbeddedServer: the same against our own model server
// with a tiny model (a 2048-token window): in token mode the budget is
// capped at 2048 and every call fits; in text mode (tokens estimated as
// bytes/4, but this tokenizer makes about one token per byte) the
// server's 400 ends the run as EndContext.
func TestContextFitsEmbeddedServer(t *testing.T) {
	dir, w, tok := testmodel.Tiny(t, 7)
	srv, err := serve.New(serve.Options{ModelName: "tiny", ModelDir: dir, Weights: w, Tokenizer: tok, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer func() { hs.Close(); srv.Close() }()
	window := w.Config.MaxPositionEmbeddings

	// fill appends tool-like text and asks for a few tokens until the
	// budget or the server says the context is full.
	fill := func(env *Env) (*Trajectory, error) {
		s := NewSession(env, Task{ID: "fill"}, "fill", "fill")
		chunk := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 8)
		for range 100 {
			s.Append(chunk)
			if _, err := s.Generate(context.Background(), Gen{Purpose: PurposeAct, MaxTokens: 24}); err != nil {
				if errors.Is(err, ErrContextFull) {
					return s.Finish(EndContext, nil), nil
				}
				return s.Finish(EndModelError, err), err
			}
		}
		return s.Finish(EndMaxTurns, nil), nil
	}
	for _, tc := range []struct {
		name   string
		spec   string
		tokens bool
	}{
		{"sglang tokens", "sglang:" + hs.URL, true},
		{"vllm tokens", hs.URL + "/v1", true},
		{"openai text", hs.URL + "/v1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			counted := &refusalCounter{inner: openSpec(t, tc.spec)}
			env := &Env{Sampler: counted, Sampling: llm.Params{Temperature: 0}}
			if tc.tokens {
				env.Tokenizer = tok
			}
			traj, err := fill(env)
			if err != nil || traj.End != EndContext {
				t.Fatalf("err %v end %s", err, traj.End)
			}
			if len(traj.Calls) < 3 {
				t.Fatalf("%d calls: the context never filled", len(traj.Calls))
			}
			// Token mode knows its sizes exactly: capped, it is never
			// refused. Text mode underestimates here and is refused once.
			if want := map[bool]int{true: 0, false: 1}[tc.tokens]; counted.refusals != want {
				t.Errorf("%d refused calls, want %d", counted.refusals, want)
			}
			if tc.tokens {
				for i, c := range traj.Calls {
					if c.InputLen+c.MaxTokens > window {
						t.Errorf("call %d asked for %d+%d tokens, over the %d window", i, c.InputLen, c.MaxTokens, window)
					}
				}
			}
		})
	}
}

// TestContextLengthErrorEndsRun: a sampler error wrapping
// llm.ErrContextLength ends the run as EndContext, not as a model error,
// and is not retried.
func TestContextLengthErrorEndsRun(t *testing.T) {
	calls := 0
	fs := samplerFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		calls++
		return nil, &llm.HTTPError{Status: 400, Body: "This model's maximum context length is 10 tokens.", ContextLength: true}
	})
	a, _ := NewSearchAgent(ASearcherConfig())
	traj, err := a.Run(context.Background(), newEnv(fs), Task{Question: "q"})
	if err != nil || traj.End != EndContext || traj.Error != "" {
		t.Fatalf("err %v end %s error %q", err, traj.End, traj.Error)
	}
	if calls != 1 {
		t.Errorf("%d calls, want 1", calls)
	}
}

// refusalCounter counts context-length refusals; Unwrap keeps the
// server's window visible through it, as eval's and rl's wrappers do.
type refusalCounter struct {
	inner    llm.Sampler
	refusals int
}

func (r *refusalCounter) Sample(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	resp, err := r.inner.Sample(ctx, req)
	if errors.Is(err, llm.ErrContextLength) {
		r.refusals++
	}
	return resp, err
}

func (r *refusalCounter) Unwrap() llm.Sampler { return r.inner }

// TestRefusedPagePartIsSkipped: when the server refuses a page part's read
// call as too long, the part is taken back out of the context and the run
// goes on (like a part the budget cannot fit), instead of ending.
func TestRefusedPagePartIsSkipped(t *testing.T) {
	acts := []string{"\n<access> http://wiki/dune </access>", "\n<answer> Frank Herbert </answer>"}
	var reads, act int
	var afterRead []int // the context of the act call after the refusal
	fs := samplerFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		if len(req.Params.Stop) == 1 && req.Params.Stop[0] == "</think>" {
			reads++
			return nil, &llm.HTTPError{Status: 400, Body: "The input (5000 tokens) is longer than the model's context length (4096 tokens).", ContextLength: true}
		}
		if act >= len(acts) {
			return nil, errors.New("unexpected call")
		}
		text := acts[act]
		if act == 1 {
			afterRead = append([]int(nil), req.InputIDs...)
		}
		act++
		return &llm.Response{Text: text, OutputIDs: byteTok{}.Encode(text), Finish: llm.FinishStop}, nil
	})
	env := newEnv(fs)
	env.Browse = &fakeBrowser{pages: map[string]string{"http://wiki/dune": page3}}
	a, _ := NewSearchAgent(smallPartsConfig())
	traj, err := a.Run(context.Background(), env, Task{Question: "Who wrote Dune?"})
	if err != nil || traj.End != EndAnswer || traj.Answer != "Frank Herbert" {
		t.Fatalf("err %v end %s answer %q", err, traj.End, traj.Answer)
	}
	if reads != 1 || traj.Tools[0].Page.PartsRead != 0 {
		t.Errorf("%d read calls, %d parts read; want 1 refused and none read", reads, traj.Tools[0].Page.PartsRead)
	}
	if strings.Contains(byteTok{}.Decode(afterRead), page3[:40]) {
		t.Error("the refused part is still in the context")
	}
}
