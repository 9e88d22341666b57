package llm

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// A request pinned to a LoRA adapter names it where each server reads it:
// SGLang's /generate in lora_path, vLLM's /v1/completions in model.
func TestAdapterReachesTheServer(t *testing.T) {
	var got map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = map[string]any{}
		json.Unmarshal(body, &got)
		switch r.URL.Path {
		case "/generate":
			w.Write([]byte(`{"text":"a","output_ids":[7],"meta_info":{"id":"x","finish_reason":{"type":"length","length":1},"prompt_tokens":2,"completion_tokens":1,"output_token_logprobs":[[-0.5,7,null]]}}`))
		case "/v1/completions":
			w.Write([]byte(`{"id":"c","object":"text_completion","model":"m","choices":[{"index":0,"text":"a","token_ids":[7],"logprobs":{"tokens":["token_id:7"],"token_logprobs":[-0.5]},"finish_reason":"length"}]}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	sg, err := NewSGLang(SGLangConfig{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	for _, adapter := range []string{"policy-v7", ""} {
		if _, err := sg.Sample(ctx, &Request{InputIDs: []int{1, 2}, Params: Params{MaxNewTokens: 1}, Adapter: adapter}); err != nil {
			t.Fatal(err)
		}
		if lp, ok := got["lora_path"]; (adapter != "" && lp != adapter) || (adapter == "" && ok) {
			t.Errorf("adapter %q: SGLang body lora_path = %v (present %v)", adapter, lp, ok)
		}
	}
	oa, err := NewOpenAI(OpenAIConfig{BaseURL: srv.URL + "/v1", Model: "base", Dialect: DialectExtended})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ adapter, model string }{{"policy-v7", "policy-v7"}, {"", "base"}} {
		if _, err := oa.Sample(ctx, &Request{InputIDs: []int{1, 2}, Params: Params{MaxNewTokens: 1}, Adapter: tc.adapter}); err != nil {
			t.Fatal(err)
		}
		if got["model"] != tc.model {
			t.Errorf("adapter %q: vLLM body model = %v, want %s", tc.adapter, got["model"], tc.model)
		}
	}
}
