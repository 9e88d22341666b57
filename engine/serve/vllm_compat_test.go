package serve

import (
	"bufio"
	"encoding/json"
	"math"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/llm"
)

// Behaviour real OpenAI clients depend on, matched to vLLM (issue 14 §3).

// sseChunks posts a streaming request and returns its data: payloads
// (without [DONE]) decoded.
func sseChunks(t *testing.T, url string, body any) []map[string]any {
	t.Helper()
	data, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("stream: status %d", resp.StatusCode)
	}
	var out []map[string]any
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	done := false
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			done = true
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("chunk %q: %v", line, err)
		}
		out = append(out, m)
	}
	if !done {
		t.Fatal("stream did not end with [DONE]")
	}
	return out
}

// Streaming with n > 1 and several prompts: every choice index streams
// the same text as the non-streamed request, and ends with finish_reason
// and a stop_reason key (in every chunk, as vLLM).
func TestStreamSeveralChoices(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), nil)
	req := map[string]any{"prompt": [][]int{{1, 2}, {3, 4, 5}}, "n": 2, "max_tokens": 5, "temperature": 0, "ignore_eos": true}
	_, body := post(t, ts.url+"/v1/completions", req)
	var full struct {
		Choices []struct {
			Index int    `json:"index"`
			Text  string `json:"text"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(body, &full); err != nil || len(full.Choices) != 4 {
		t.Fatalf("non-stream: %s", body)
	}
	req["stream"] = true
	req["stream_options"] = map[string]any{"include_usage": true}
	texts := map[int]string{}
	finished := map[int]any{}
	var usage map[string]any
	for _, c := range sseChunks(t, ts.url+"/v1/completions", req) {
		chs := c["choices"].([]any)
		if len(chs) == 0 {
			usage = c["usage"].(map[string]any)
			continue
		}
		ch := chs[0].(map[string]any)
		if _, ok := ch["stop_reason"]; !ok {
			t.Fatalf("chunk without stop_reason: %v", ch)
		}
		i := int(ch["index"].(float64))
		texts[i] += ch["text"].(string)
		if ch["finish_reason"] != nil {
			finished[i] = ch["finish_reason"]
		}
	}
	for _, c := range full.Choices {
		if texts[c.Index] != c.Text || finished[c.Index] != "length" {
			t.Errorf("choice %d streamed %q (finish %v), want %q (length)", c.Index, texts[c.Index], finished[c.Index], c.Text)
		}
	}
	if usage["completion_tokens"].(float64) != 20 || usage["prompt_tokens"].(float64) != 5 {
		t.Errorf("usage %v, want 20 completion and 5 prompt tokens", usage)
	}

	// Chat with n = 3: a role chunk and a finish chunk per index.
	chat := map[string]any{"messages": []any{map[string]any{"role": "user", "content": "hi"}}, "n": 3, "max_tokens": 3, "stream": true, "ignore_eos": true}
	roles, fins := map[float64]bool{}, map[float64]bool{}
	for _, c := range sseChunks(t, ts.url+"/v1/chat/completions", chat) {
		ch := c["choices"].([]any)[0].(map[string]any)
		if d := ch["delta"].(map[string]any); d["role"] == "assistant" {
			roles[ch["index"].(float64)] = true
		}
		if ch["finish_reason"] != nil {
			fins[ch["index"].(float64)] = true
		}
	}
	if len(roles) != 3 || len(fins) != 3 {
		t.Fatalf("chat n=3 stream: role chunks for %v, finish chunks for %v", roles, fins)
	}
}

// Loglikelihood as lm-eval-harness asks for it: echo, max_tokens 1,
// logprobs 1, temperature 0 on token ids; token_logprobs[0] is null, the
// prompt's logprobs equal /generate's scoring, each top_logprobs dict
// holds the token and the argmax, and echo with max_tokens 0 returns the
// prompt only.
func TestEchoPromptLogprobs(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), nil)
	prompt := []int{4, 8, 15, 16, 23, 42}
	want, _, err := ts.promptLogprobs(t.Context(), prompt)
	if err != nil {
		t.Fatal(err)
	}
	type lps struct {
		Tokens        []string             `json:"tokens"`
		TokenLogprobs []*float64           `json:"token_logprobs"`
		TopLogprobs   []map[string]float64 `json:"top_logprobs"`
		TextOffset    []int                `json:"text_offset"`
	}
	var out struct {
		Choices []struct {
			Text         string `json:"text"`
			FinishReason string `json:"finish_reason"`
			Logprobs     lps    `json:"logprobs"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	for _, maxTokens := range []int{1, 0} {
		st, body := post(t, ts.url+"/v1/completions", map[string]any{"prompt": prompt, "echo": true, "max_tokens": maxTokens, "logprobs": 1, "temperature": 0, "seed": 1234})
		if st != 200 || json.Unmarshal(body, &out) != nil || len(out.Choices) != 1 {
			t.Fatalf("max_tokens %d: %d %s", maxTokens, st, body)
		}
		c := out.Choices[0]
		if n := len(prompt) + maxTokens; len(c.Logprobs.Tokens) != n || len(c.Logprobs.TokenLogprobs) != n || len(c.Logprobs.TopLogprobs) != n {
			t.Fatalf("max_tokens %d: %d tokens, want %d: %s", maxTokens, len(c.Logprobs.Tokens), n, body)
		}
		if c.Logprobs.TokenLogprobs[0] != nil || c.Logprobs.TopLogprobs[0] != nil {
			t.Fatalf("first prompt token has a logprob: %s", body)
		}
		for i := 1; i < len(prompt); i++ {
			got := *c.Logprobs.TokenLogprobs[i]
			if math.Abs(got-float64(want[i])) > 1e-5 {
				t.Fatalf("prompt token %d: logprob %v, /generate scores %v", i, got, want[i])
			}
			top := c.Logprobs.TopLogprobs[i]
			if top[c.Logprobs.Tokens[i]] != got || len(top) < 1 || len(top) > 2 {
				t.Fatalf("prompt token %d: top_logprobs %v lacks the token %q at %v", i, top, c.Logprobs.Tokens[i], got)
			}
		}
		if !strings.HasPrefix(c.Text, ts.opts.Tokenizer.Decode(prompt)) {
			t.Fatalf("echoed text %q does not start with the prompt", c.Text)
		}
		if maxTokens == 0 && (c.FinishReason != "length" || out.Usage.CompletionTokens != 0 || c.Text != ts.opts.Tokenizer.Decode(prompt)) {
			t.Fatalf("echo with max_tokens 0: %s", body)
		}
	}
	// max_tokens 0 without echo is still an error.
	st, body := post(t, ts.url+"/v1/completions", map[string]any{"prompt": prompt, "max_tokens": 0})
	wantJSONError(t, "max_tokens 0 without echo", st, body, 400, "max_tokens")
}

// top_logprobs on chat: N alternatives per token, most likely first; with
// greedy decoding the first is the sampled token. bytes are lists of ints,
// and a token holding half a UTF-8 character keeps its own byte.
func TestChatTopLogprobsAndBytes(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), nil)
	st, body := post(t, ts.url+"/v1/chat/completions", map[string]any{"messages": []any{map[string]any{"role": "user", "content": "hi"}},
		"max_tokens": 4, "temperature": 0, "logprobs": true, "top_logprobs": 3, "ignore_eos": true})
	var out struct {
		Choices []struct {
			Logprobs struct {
				Content []struct {
					Token       string  `json:"token"`
					Logprob     float64 `json:"logprob"`
					Bytes       []int   `json:"bytes"`
					TopLogprobs []struct {
						Token   string  `json:"token"`
						Logprob float64 `json:"logprob"`
						Bytes   []int   `json:"bytes"`
					} `json:"top_logprobs"`
				} `json:"content"`
			} `json:"logprobs"`
		} `json:"choices"`
	}
	if st != 200 || json.Unmarshal(body, &out) != nil || len(out.Choices) != 1 {
		t.Fatalf("%d %s", st, body)
	}
	for i, e := range out.Choices[0].Logprobs.Content {
		if len(e.TopLogprobs) != 3 {
			t.Fatalf("entry %d: %d top_logprobs, want 3", i, len(e.TopLogprobs))
		}
		for j := 1; j < 3; j++ {
			if e.TopLogprobs[j].Logprob > e.TopLogprobs[j-1].Logprob {
				t.Fatalf("entry %d: top_logprobs not sorted: %+v", i, e.TopLogprobs)
			}
		}
		if e.TopLogprobs[0].Token != e.Token || math.Abs(e.TopLogprobs[0].Logprob-e.Logprob) > 1e-3 {
			t.Fatalf("entry %d: greedy token %q (%v) is not the top alternative %+v", i, e.Token, e.Logprob, e.TopLogprobs[0])
		}
		if string(intsToBytes(e.Bytes)) != e.Token {
			t.Fatalf("entry %d: bytes %v are not the token %q", i, e.Bytes, e.Token)
		}
	}
	for _, bad := range []map[string]any{{"top_logprobs": 21, "logprobs": true}, {"top_logprobs": 2}, {"top_logprobs": 2, "logprobs": true, "stream": true}} {
		req := map[string]any{"messages": []any{map[string]any{"role": "user", "content": "hi"}}, "max_tokens": 2}
		for k, v := range bad {
			req[k] = v
		}
		st, body := post(t, ts.url+"/v1/chat/completions", req)
		wantJSONError(t, "bad top_logprobs", st, body, 400, "top_logprobs")
	}

	// "é" is two byte tokens in the test tokenizer, each half a character:
	// its bytes survive (Decode would give U+FFFD).
	ids := ts.opts.Tokenizer.Encode("é")
	if len(ids) != 2 {
		t.Fatalf("é encodes to %v", ids)
	}
	lp := ts.chatLogprobs([]tokenLogprob{{id: ids[0], lp: -1}, {id: ids[1], lp: -2}}, &openAIRequest{})
	data, _ := json.Marshal(lp)
	if !strings.Contains(string(data), `"bytes":[195]`) || !strings.Contains(string(data), `"bytes":[169]`) {
		t.Fatalf("partial UTF-8 tokens lost their bytes: %s", data)
	}
}

func intsToBytes(xs []int) []byte {
	b := make([]byte, len(xs))
	for i, x := range xs {
		b[i] = byte(x)
	}
	return b
}

// A prompt plus max_tokens past the context is a 400 in vLLM's words on
// the OpenAI endpoints and in SGLang's on /generate — never a silent clamp.
func TestContextLengthErrors(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), nil)
	long := make([]int, ts.ctxLen-3)
	for i := range long {
		long[i] = 1 + i%50
	}
	cases := []struct {
		path string
		body any
		msg  string
	}{
		{"/v1/completions", map[string]any{"prompt": long, "max_tokens": 5}, "This model's maximum context length is 2048 tokens. However, you requested 5 output tokens and your prompt contains at least 2045 input tokens, for a total of at least 2050 tokens."},
		{"/v1/completions", map[string]any{"prompt": append(long, 1, 2, 3), "max_tokens": 1}, "maximum context length is 2048 tokens"},
		{"/v1/completions", map[string]any{"prompt": long, "max_tokens": 5, "stream": true}, "maximum context length"},
		{"/v1/chat/completions", map[string]any{"messages": []any{map[string]any{"role": "user", "content": strings.Repeat("a", 2100)}}}, "maximum context length is 2048 tokens"},
		{"/generate", map[string]any{"input_ids": long, "sampling_params": map[string]any{"max_new_tokens": 5}}, "Requested token count exceeds the model's maximum context length of 2048 tokens. You requested a total of 2050 tokens: 2045 tokens from the input messages and 5 tokens for the completion."},
		{"/generate", map[string]any{"input_ids": append(long, 1, 2, 3)}, "The input (2048 tokens) is longer than the model's context length (2048 tokens)."},
	}
	for _, tc := range cases {
		st, body := post(t, ts.url+tc.path, tc.body)
		wantJSONError(t, tc.path, st, body, 400, tc.msg)
	}
	// What fits still runs (and /generate without max_new_tokens is
	// clamped to the context, as SGLang's scheduler does).
	if st, body := post(t, ts.url+"/v1/completions", map[string]any{"prompt": long, "max_tokens": 3}); st != 200 {
		t.Fatalf("prompt + max_tokens = context: %d %s", st, body)
	}
	if st, body := post(t, ts.url+"/generate", map[string]any{"input_ids": long, "sampling_params": map[string]any{"max_new_tokens": 2}}); st != 200 {
		t.Fatalf("/generate that fits: %d %s", st, body)
	}
}

// skip_special_tokens (default true) drops special tokens from the text.
func TestSkipSpecialTokens(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), nil)
	tok := ts.opts.Tokenizer
	start, ok := tok.TokenID("<|im_start|>")
	if !ok || !tok.IsSpecial(start) {
		t.Skip("test tokenizer has no special <|im_start|>")
	}
	ids := append(tok.Encode("ab"), start)
	ids = append(ids, tok.Encode("cd")...)
	resp := &llm.Response{OutputIDs: ids, Text: tok.Decode(ids), Finish: llm.FinishLength}
	if got := ts.choiceText(resp, &openAIRequest{skipSpecial: true}); got != "abcd" {
		t.Errorf("skip_special_tokens: %q, want \"abcd\"", got)
	}
	if got := ts.choiceText(resp, &openAIRequest{skipSpecial: false}); got != "ab<|im_start|>cd" {
		t.Errorf("skip_special_tokens false: %q", got)
	}
	o, err := ts.parseOpenAICommon(map[string]json.RawMessage{}, true)
	if err != nil || !o.skipSpecial {
		t.Fatalf("skip_special_tokens does not default to true: %+v %v", o, err)
	}
}

func TestTopK(t *testing.T) {
	row := []float32{0.5, 3, -1, 3, 2}
	got := topK(row, 0, 3)
	ids := []int{got[0].id, got[1].id, got[2].id}
	if !reflect.DeepEqual(ids, []int{1, 3, 4}) {
		t.Fatalf("topK = %+v", got)
	}
	if len(topK(row, 0, 10)) != 5 {
		t.Fatal("topK with k > len")
	}
}
