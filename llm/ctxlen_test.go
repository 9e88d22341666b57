package llm_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/llm"
)

// TestContextLengthRefusal: a server's context-length 400, in each
// family's wording, is llm.ErrContextLength and not retryable; other
// 400s and 5xx replies that mention the words are not.
func TestContextLengthRefusal(t *testing.T) {
	longOpenAI := `{"error": {"message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens` +
		strings.Repeat(" (padding so the code sits past the logged snippet)", 10) + `", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}`
	tests := []struct {
		name   string
		status int
		body   string
		want   bool
	}{
		{"vllm", 400, `{"object":"error","message":"This model's maximum context length is 2048 tokens. However, you requested 5 output tokens and your prompt contains at least 2045 input tokens, for a total of at least 2050 tokens. Please reduce the length of the input prompt or the number of requested output tokens.","type":"BadRequestError","param":null,"code":400}`, true},
		{"vllm v1", 400, `{"error":{"message":"The decoder prompt (length 5000) is longer than the maximum model length of 4096. Make sure that max_model_len is no smaller than the number of text tokens.","type":"BadRequestError","code":400}}`, true},
		{"sglang total", 400, `{"error":{"message":"Requested token count exceeds the model's maximum context length of 2048 tokens. You requested a total of 2050 tokens: 2045 tokens from the input messages and 5 tokens for the completion."}}`, true},
		{"sglang input", 400, `{"error":{"message":"The input (2048 tokens) is longer than the model's context length (2048 tokens)."}}`, true},
		{"openai code past snippet", 400, longOpenAI, true},
		{"openai code only", 400, `{"error":{"message":"too long","code":"context_length_exceeded"}}`, true},
		{"other 400", 400, `{"object":"error","message":"top_k is not supported","code":400}`, false},
		{"5xx with the words", 500, `{"message":"maximum context length bookkeeping failed"}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/models") {
					_, _ = w.Write([]byte(`{"data":[{"id":"m"}]}`))
					return
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer hs.Close()
			for _, open := range []func() (llm.Sampler, error){
				func() (llm.Sampler, error) {
					return llm.NewOpenAI(llm.OpenAIConfig{BaseURL: hs.URL + "/v1", Model: "m", Dialect: llm.DialectStandard})
				},
				func() (llm.Sampler, error) { return llm.NewSGLang(llm.SGLangConfig{BaseURL: hs.URL}) },
			} {
				s, err := open()
				if err != nil {
					t.Fatal(err)
				}
				_, err = s.Sample(context.Background(), &llm.Request{InputIDs: []int{1, 2, 3}, Params: llm.Params{MaxNewTokens: 5}})
				if err == nil {
					t.Fatal("no error")
				}
				if got := errors.Is(err, llm.ErrContextLength); got != tc.want {
					t.Errorf("%T: errors.Is(ErrContextLength) = %v, want %v (%v)", s, got, tc.want, err)
				}
				if tc.want && llm.Retryable(err) {
					t.Errorf("%T: a context-length refusal is retryable: %v", s, err)
				}
			}
		})
	}
}

// TestContextLengthDiscovery: each server backend learns the context
// window its server reports, a pool reports the smallest, wrappers pass
// it through, and a server that reports none stays unknown (0).
func TestContextLengthDiscovery(t *testing.T) {
	ctx := context.Background()
	small := fakellm.New(fakellm.Options{ContextLength: 1024})
	defer small.Close()
	large := fakellm.New(fakellm.Options{ContextLength: 4096})
	defer large.Close()
	hidden := fakellm.New(fakellm.Options{ContextLength: 1024, HideContextLength: true})
	defer hidden.Close()
	hosted := fakellm.New(fakellm.Options{Strict: true})
	defer hosted.Close()

	open := func(spec string) llm.Sampler {
		t.Helper()
		s, closeFn, err := llm.NewBackends().Open(ctx, spec, llm.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = closeFn() })
		return s
	}
	tests := []struct {
		spec string
		want int
	}{
		{small.URL + "/v1", 1024},
		{"vllm:" + large.URL + "/v1", 4096},
		{"sglang:" + small.URL, 1024},
		{"sglang:" + large.URL + "," + small.URL + "/v1", 1024},
		{"openai:" + hosted.URL + "/v1", 0},
		{hidden.URL + "/v1", 0},
		{"sglang:" + hidden.URL, 0},
	}
	for _, tc := range tests {
		s := open(tc.spec)
		if got := llm.ContextLength(ctx, s); got != tc.want {
			t.Errorf("%s: context length %d, want %d", tc.spec, got, tc.want)
		}
		if got := llm.ContextLength(ctx, llm.NewResumer(s)); got != tc.want {
			t.Errorf("%s behind a Resumer: context length %d, want %d", tc.spec, got, tc.want)
		}
	}
}

// TestContextLengthAskedOnce: the backend asks /v1/models once however
// many sessions want the window, and a dead server is unknown, not an
// error.
func TestContextLengthAskedOnce(t *testing.T) {
	var asked atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		_, _ = w.Write([]byte(`{"object":"list","data":[{"id":"other","max_model_len":99},{"id":"m","max_model_len":4096}]}`))
	}))
	defer hs.Close()
	s, err := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: hs.URL + "/v1", Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if got := s.ContextLength(context.Background()); got != 4096 {
			t.Fatalf("context length %d, want 4096 (the named model's)", got)
		}
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("asked the server %d times, want 1", n)
	}
	// A caller that gave up does not leave the window unknown for others.
	late, err := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: hs.URL + "/v1", Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if got := late.ContextLength(cancelled); got != 0 {
		t.Errorf("cancelled caller: context length %d, want 0", got)
	}
	if got := late.ContextLength(context.Background()); got != 4096 {
		t.Errorf("after a cancelled caller: context length %d, want 4096", got)
	}
	hs.Close()
	dead, err := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: hs.URL + "/v1", Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if got := dead.ContextLength(context.Background()); got != 0 {
		t.Errorf("dead server: context length %d, want 0", got)
	}
}
