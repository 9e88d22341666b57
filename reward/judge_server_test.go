package reward

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/llm"
)

// TestJudgeOverOpenAIServer runs the judge through the real OpenAI-compatible
// backend against the in-process fake server on loopback: a 503, then an
// unparsable reply, then a verdict.
func TestJudgeOverOpenAIServer(t *testing.T) {
	srv := fakellm.New(fakellm.Options{Model: "judge-model"})
	defer srv.Close()
	srv.Enqueue(
		fakellm.Reply{Status: 503, Body: `{"error": "overloaded"}`},
		fakellm.Reply{Text: "The prediction looks right to me."},
		fakellm.Reply{Text: "Rationale: Both are the same city.\nVerdict: CORRECT"},
	)
	sampler, err := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: srv.OpenAIURL(), Model: "judge-model"})
	if err != nil {
		t.Fatal(err)
	}
	j, err := NewJudge(sampler, JudgeConfig{Model: "judge-model", Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Timeout: 10 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := j.Judge(context.Background(), paris)
	if err != nil {
		t.Fatal(err)
	}
	if got.Verdict != Correct || got.Attempts != 3 || got.Rationale != "Both are the same city." || !strings.Contains(got.Raw, "Verdict: CORRECT") {
		t.Fatalf("judgement %+v", got)
	}
	calls := srv.Calls()
	if len(calls) != 3 {
		t.Fatalf("%d calls, want 3", len(calls))
	}
	for i, c := range calls {
		if c.Path != "/v1/chat/completions" || len(c.Messages) != 1 || c.Messages[0].Role != "user" ||
			c.Messages[0].Content != RenderJudgePrompt(paris.Question, paris.Golds, paris.Prediction) {
			t.Errorf("call %d: %s %+v", i, c.Path, c.Messages)
		}
		if c.Params.MaxNewTokens != 1024 || c.Params.Temperature == nil {
			t.Errorf("call %d params %+v", i, c.Params)
		}
	}
	if *calls[1].Params.Temperature != 0 || *calls[2].Params.Temperature != 0.7 {
		t.Errorf("temperatures %v, %v; want 0 then 0.7 after the unparsable reply", *calls[1].Params.Temperature, *calls[2].Params.Temperature)
	}
	// The verdict is cached: asking again makes no call.
	if again, _ := j.Judge(context.Background(), paris); !again.Cached || len(srv.Calls()) != 3 {
		t.Errorf("second judgement %+v after %d calls", again, len(srv.Calls()))
	}
}
