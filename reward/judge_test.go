package reward

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asearcher/asearcher/llm"
)

var update = flag.Bool("update", false, "rewrite golden files")

// scriptedSampler answers judge calls from a script: each entry is a reply
// text or an error. It records the requests it saw.
type scriptedSampler struct {
	mu      sync.Mutex
	replies []any // string or error; the last one repeats
	calls   []*llm.Request
	block   chan struct{} // when set, Sample waits for it (or ctx)
}

func (s *scriptedSampler) Sample(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	s.mu.Lock()
	n := len(s.calls)
	s.calls = append(s.calls, req)
	reply := s.replies[min(n, len(s.replies)-1)]
	block := s.block
	s.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err, ok := reply.(error); ok {
		return nil, err
	}
	return &llm.Response{Text: reply.(string), Finish: llm.FinishStop}, nil
}

func (s *scriptedSampler) numCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

func newTestJudge(t *testing.T, s llm.Sampler, cfg JudgeConfig, cache *JudgeCache) (*Judge, *[]time.Duration) {
	t.Helper()
	if cfg.Model == "" {
		cfg.Model = "judge-test"
	}
	j, err := NewJudge(s, cfg, cache)
	if err != nil {
		t.Fatal(err)
	}
	var slept []time.Duration
	j.sleep = func(ctx context.Context, d time.Duration) error {
		slept = append(slept, d)
		return ctx.Err()
	}
	return j, &slept
}

var paris = JudgeInput{Question: "What is the capital of France?", Golds: []string{"Paris"}, Prediction: "paris"}

func TestParseVerdict(t *testing.T) {
	tests := []struct {
		name      string
		raw       string
		want      Verdict
		rationale string
		err       string
	}{
		{"plain", "Rationale: Same city.\nVerdict: CORRECT", Correct, "Same city.", ""},
		{"lowercase with period", "rationale: differs\nverdict: incorrect.", Incorrect, "differs", ""},
		{"markdown", "**Rationale:** Both name Paris.\n**Verdict:** **CORRECT**", Correct, "Both name Paris.", ""},
		{"multi-line rationale", "Rationale: first line\nsecond line\n\nVerdict: INCORRECT", Incorrect, "first line second line", ""},
		{"think block ignored", "<think>Verdict: INCORRECT maybe</think>\nRationale: ok\nVerdict: CORRECT", Correct, "ok", ""},
		{"fullwidth colon", "Verdict： CORRECT", Correct, "", ""},
		{"repeated agreeing verdicts", "Verdict: CORRECT\nVerdict: correct", Correct, "", ""},
		{"no verdict", "The answer is correct.", "", "", "no \"Verdict"},
		{"echoed placeholder", "Rationale: x\nVerdict: <CORRECT or INCORRECT>", "", "", "neither CORRECT nor INCORRECT"},
		{"hedged", "Verdict: partially correct", "", "", "neither"},
		{"contradiction", "Verdict: CORRECT\nVerdict: INCORRECT", "", "", "both"},
		{"ASearcher JSON is not accepted", "```json\n{\"rationale\": \"x\", \"judgement\": \"Correct\"}\n```", "", "", "no \"Verdict"},
		{"empty", "", "", "", "no \"Verdict"},
		{"verdict only inside think", "<think>Verdict: CORRECT</think>", "", "", "no \"Verdict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, r, err := ParseVerdict(tt.raw)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseVerdict error = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || v != tt.want || r != tt.rationale {
				t.Fatalf("ParseVerdict = %q, %q, %v; want %q, %q", v, r, err, tt.want, tt.rationale)
			}
		})
	}
}

func TestJudgePromptGolden(t *testing.T) {
	cases := map[string]string{
		"judge_prompt_one_gold.golden":   RenderJudgePrompt("Who wrote Hamlet?", []string{"William Shakespeare"}, "Shakespeare"),
		"judge_prompt_many_golds.golden": RenderJudgePrompt(" When was the moon landing? ", []string{"20 July 1969", "July 20, 1969 "}, "1969"),
	}
	for name, got := range cases {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./reward -run Golden -update)", err)
		}
		if got != string(want) {
			t.Errorf("%s differs from the rendered prompt:\n%s", name, got)
		}
	}
	many := make([]string, 40)
	for i := range many {
		many[i] = "alias" + string(rune('A'+i%26))
	}
	if n := strings.Count(RenderJudgePrompt("q", many, "p"), "\n- alias"); n != maxJudgeGolds {
		t.Errorf("prompt lists %d golds, want %d", n, maxJudgeGolds)
	}
}

func TestJudgeVerdicts(t *testing.T) {
	ctx := context.Background()
	t.Run("correct on first try", func(t *testing.T) {
		s := &scriptedSampler{replies: []any{"Rationale: same\nVerdict: CORRECT"}}
		j, _ := newTestJudge(t, s, JudgeConfig{}, nil)
		got, err := j.Judge(ctx, paris)
		if err != nil || got.Verdict != Correct || got.Score != 1 || got.Attempts != 1 || got.Raw == "" || got.Rationale != "same" {
			t.Fatalf("got %+v, %v", got, err)
		}
		if got.Model != "judge-test" || got.PromptVersion != JudgePromptVersion {
			t.Errorf("judge identity not recorded: %+v", got)
		}
		req := s.calls[0]
		if len(req.Messages) != 1 || !strings.Contains(req.Messages[0].Content, "Predicted answer:\nparis") || req.Params.Temperature != 0 || req.Params.MaxNewTokens != 1024 {
			t.Errorf("unexpected request %+v", req)
		}
	})
	t.Run("unparsable then valid retries hotter without waiting", func(t *testing.T) {
		s := &scriptedSampler{replies: []any{"I think it's right", "Verdict: INCORRECT"}}
		j, slept := newTestJudge(t, s, JudgeConfig{}, nil)
		got, err := j.Judge(ctx, paris)
		if err != nil || got.Verdict != Incorrect || got.Score != 0 || got.Attempts != 2 || got.Error != "" {
			t.Fatalf("got %+v, %v", got, err)
		}
		if s.calls[1].Params.Temperature != 0.7 || len(*slept) != 0 {
			t.Errorf("retry temperature %v, slept %v", s.calls[1].Params.Temperature, *slept)
		}
	})
	t.Run("server errors back off then succeed", func(t *testing.T) {
		s := &scriptedSampler{replies: []any{errors.New("HTTP 503"), errors.New("HTTP 503"), "Verdict: CORRECT"}}
		j, slept := newTestJudge(t, s, JudgeConfig{Backoff: 100 * time.Millisecond, MaxBackoff: 150 * time.Millisecond}, nil)
		got, err := j.Judge(ctx, paris)
		if err != nil || got.Verdict != Correct || got.Attempts != 3 {
			t.Fatalf("got %+v, %v", got, err)
		}
		if len(*slept) != 2 {
			t.Fatalf("slept %v, want two waits", *slept)
		}
		if d := (*slept)[0]; d < 50*time.Millisecond || d > 100*time.Millisecond {
			t.Errorf("first wait %v, want within [50ms, 100ms]", d)
		}
		if d := (*slept)[1]; d < 75*time.Millisecond || d > 150*time.Millisecond {
			t.Errorf("second wait %v, want within [75ms, 150ms] (capped)", d)
		}
	})
	t.Run("persistent garbage ends unjudged and is not cached", func(t *testing.T) {
		s := &scriptedSampler{replies: []any{`{"judgement": "Correct"}`}}
		j, _ := newTestJudge(t, s, JudgeConfig{MaxAttempts: 4}, nil)
		got, err := j.Judge(ctx, paris)
		if err != nil || got.Verdict != Unjudged || got.Attempts != 4 || got.Score != 0 || !strings.Contains(got.Error, "no verdict after 4 attempts") {
			t.Fatalf("got %+v, %v", got, err)
		}
		if _, err := j.Judge(ctx, paris); err != nil || s.numCalls() != 8 {
			t.Errorf("unjudged result was cached: %d calls", s.numCalls())
		}
	})
	t.Run("slow judge times out per attempt", func(t *testing.T) {
		s := &scriptedSampler{replies: []any{"Verdict: CORRECT"}, block: make(chan struct{})}
		j, _ := newTestJudge(t, s, JudgeConfig{MaxAttempts: 2, Timeout: 20 * time.Millisecond}, nil)
		start := time.Now()
		got, err := j.Judge(ctx, paris)
		if err != nil || got.Verdict != Unjudged || !strings.Contains(got.Error, "deadline") {
			t.Fatalf("got %+v, %v", got, err)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("took %v", time.Since(start))
		}
	})
	t.Run("cancelled context is an error", func(t *testing.T) {
		s := &scriptedSampler{replies: []any{"Verdict: CORRECT"}, block: make(chan struct{})}
		j, _ := newTestJudge(t, s, JudgeConfig{}, nil)
		cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		if _, err := j.Judge(cctx, paris); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want deadline exceeded", err)
		}
	})
	t.Run("empty prediction is incorrect without a call", func(t *testing.T) {
		s := &scriptedSampler{replies: []any{"Verdict: CORRECT"}}
		j, _ := newTestJudge(t, s, JudgeConfig{}, nil)
		got, err := j.Judge(ctx, JudgeInput{Question: "q", Golds: []string{"a"}, Prediction: "  "})
		if err != nil || got.Verdict != Incorrect || s.numCalls() != 0 {
			t.Fatalf("got %+v, %v, %d calls", got, err, s.numCalls())
		}
	})
	t.Run("long prediction is cut", func(t *testing.T) {
		s := &scriptedSampler{replies: []any{"Verdict: INCORRECT"}}
		j, _ := newTestJudge(t, s, JudgeConfig{MaxPredictionChars: 10}, nil)
		if _, err := j.Judge(ctx, JudgeInput{Question: "q", Golds: []string{"a"}, Prediction: strings.Repeat("日本", 50)}); err != nil {
			t.Fatal(err)
		}
		if p := s.calls[0].Messages[0].Content; !strings.Contains(p, "Predicted answer:\n"+strings.Repeat("日本", 5)+"\n") {
			t.Errorf("prediction not cut to 10 characters:\n%s", p)
		}
	})
}

func TestNewJudgeErrors(t *testing.T) {
	if _, err := NewJudge(nil, JudgeConfig{Model: "m"}, nil); err == nil {
		t.Error("nil sampler accepted")
	}
	if _, err := NewJudge(&scriptedSampler{}, JudgeConfig{}, nil); err == nil {
		t.Error("empty model name accepted")
	}
}

func TestJudgeCacheMemoryAndFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "judge.jsonl")
	cache, err := OpenJudgeCache(path)
	if err != nil {
		t.Fatal(err)
	}
	s := &scriptedSampler{replies: []any{"Rationale: r\nVerdict: CORRECT"}}
	j, _ := newTestJudge(t, s, JudgeConfig{}, cache)
	first, err := j.Judge(ctx, paris)
	if err != nil || first.Cached {
		t.Fatalf("first = %+v, %v", first, err)
	}
	again, _ := j.Judge(ctx, paris)
	if !again.Cached || again.Verdict != Correct || again.Raw != first.Raw || s.numCalls() != 1 {
		t.Fatalf("second call not served from memory: %+v, %d calls", again, s.numCalls())
	}
	// A different prediction, gold or model is a different key.
	other := paris
	other.Prediction = "Lyon"
	if _, err := j.Judge(ctx, other); err != nil || s.numCalls() != 2 {
		t.Fatalf("other prediction: %v, %d calls", err, s.numCalls())
	}
	if err := cache.Close(); err != nil {
		t.Fatal(err)
	}

	// Simulate a kill mid-write, then reopen: the torn line goes, the rest stays.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("this is not json\n")
	f.WriteString(`{"key":"abc","verdict":"correct","raw":"Verd`)
	f.Close()
	reopened, err := OpenJudgeCache(path)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	if reopened.Len() != 2 {
		t.Fatalf("reopened cache holds %d judgements, want 2", reopened.Len())
	}
	s2 := &scriptedSampler{replies: []any{"Verdict: INCORRECT"}}
	j2, _ := newTestJudge(t, s2, JudgeConfig{}, reopened)
	got, err := j2.Judge(ctx, paris)
	if err != nil || !got.Cached || got.Verdict != Correct || got.Rationale != "r" || s2.numCalls() != 0 {
		t.Fatalf("persistent cache missed: %+v, %v, %d calls", got, err, s2.numCalls())
	}
	j3, _ := newTestJudge(t, s2, JudgeConfig{Model: "another-judge"}, reopened)
	if got, _ := j3.Judge(ctx, paris); got.Cached || got.Verdict != Incorrect {
		t.Fatalf("another model reused a verdict: %+v", got)
	}
	// New verdicts append after the repaired end and read back cleanly.
	if err := reopened.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) != 5 || lines[3] != `{"key":"abc","verdict":"correct","raw":"Verd` {
		t.Fatalf("cache file after a torn line and an append:\n%s", data)
	}
	final, err := OpenJudgeCache(path)
	if err != nil {
		t.Fatal(err)
	}
	defer final.Close()
	if final.Len() != 3 {
		t.Errorf("cache holds %d judgements after the append, want 3", final.Len())
	}
	if strings.Contains(string(data), paris.Question) || strings.Contains(string(data), `"paris"`) {
		t.Errorf("cache file holds question or prediction text:\n%s", data)
	}
}

func TestJudgeSharesConcurrentIdenticalCalls(t *testing.T) {
	s := &scriptedSampler{replies: []any{"Verdict: CORRECT"}, block: make(chan struct{})}
	j, _ := newTestJudge(t, s, JudgeConfig{}, nil)
	var wg sync.WaitGroup
	var correct atomic.Int32
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := j.Judge(context.Background(), paris)
			if err == nil && got.Verdict == Correct {
				correct.Add(1)
			}
		}()
	}
	for s.numCalls() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(s.block)
	wg.Wait()
	if correct.Load() != 32 || s.numCalls() != 1 {
		t.Fatalf("%d correct verdicts from %d model calls, want 32 from 1", correct.Load(), s.numCalls())
	}
}

func TestJudgeFollowerSurvivesLeaderCancel(t *testing.T) {
	s := &scriptedSampler{replies: []any{"Verdict: CORRECT"}, block: make(chan struct{})}
	j, _ := newTestJudge(t, s, JudgeConfig{}, nil)
	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	leaderDone := make(chan error, 1)
	go func() {
		_, err := j.Judge(leaderCtx, paris)
		leaderDone <- err
	}()
	for s.numCalls() == 0 {
		time.Sleep(time.Millisecond)
	}
	followerDone := make(chan Judgement, 1)
	go func() {
		got, _ := j.Judge(context.Background(), paris)
		followerDone <- got
	}()
	time.Sleep(20 * time.Millisecond)
	cancelLeader()
	if err := <-leaderDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader err = %v", err)
	}
	close(s.block)
	select {
	case got := <-followerDone:
		if got.Verdict != Correct {
			t.Fatalf("follower got %+v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follower did not finish after the leader was cancelled")
	}
}

func TestJudgeKeyDistinguishesFields(t *testing.T) {
	base := JudgeKey("m", "q", []string{"a", "b"}, "p")
	for _, k := range []string{
		JudgeKey("m2", "q", []string{"a", "b"}, "p"),
		JudgeKey("m", "q2", []string{"a", "b"}, "p"),
		JudgeKey("m", "q", []string{"ab"}, "p"),
		JudgeKey("m", "q", []string{"a", "b", ""}, "p"),
		JudgeKey("m", "q", []string{"a", "b"}, "p2"),
		JudgeKey("mq", "", []string{"a", "b"}, "p"),
	} {
		if k == base {
			t.Errorf("key collision: %s", k)
		}
	}
	if JudgeKey("m", "q", []string{"a", "b"}, "p") != base {
		t.Error("key is not deterministic")
	}
}

// TestJudgePromptDocumented keeps docs/metrics.md in step with the prompt.
func TestJudgePromptDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```text\n"+judgePrompt+"\n```") {
		t.Error("docs/metrics.md does not show the current judge prompt; copy judgePrompt into its ```text block")
	}
	if !strings.Contains(string(doc), JudgePromptVersion) {
		t.Error("docs/metrics.md does not name the current JudgePromptVersion")
	}
}
