package llm

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden request files")

func seed(v int64) *int64 { return &v }

// Request bodies are compared byte for byte with committed files, so a
// change to what we send is a visible diff.
func TestEncodeGoldenRequests(t *testing.T) {
	full := Params{MaxNewTokens: 512, Temperature: 0.7, TopP: 0.95, TopK: 20,
		Stop: []string{"</search>", "</answer>"}, StopTokenIDs: []int{151645, 151643}, Seed: seed(1234)}
	greedy := Params{MaxNewTokens: 16}
	ids := &Request{ID: "traj-7#0", InputIDs: []int{151644, 8948, 198, 2610, 525}, Params: full}
	text := &Request{Prompt: "Question: \"x\" <b>&\n\tend \u2028 é", Params: greedy}
	chat := &Request{ID: "c1", Messages: []Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "2+2?"}}, Params: full}
	cases := []struct {
		file string
		enc  func() ([]byte, error)
	}{
		{"sglang_request_ids.json", func() ([]byte, error) { return encodeSGLangGenerate(nil, ids) }},
		{"sglang_request_text.json", func() ([]byte, error) { return encodeSGLangGenerate(nil, text) }},
		{"openai_completion_request_extended.json", func() ([]byte, error) { return encodeCompletionRequest(nil, "qwen", ids, true), nil }},
		{"openai_completion_request_standard.json", func() ([]byte, error) { return encodeCompletionRequest(nil, "qwen", text, false), nil }},
		{"openai_chat_request_extended.json", func() ([]byte, error) { return encodeChatRequest(nil, "qwen", chat, true), nil }},
		{"openai_chat_request_standard.json", func() ([]byte, error) { return encodeChatRequest(nil, "qwen", chat, false), nil }},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			got, err := c.enc()
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(got) {
				t.Fatalf("invalid JSON: %s", got)
			}
			path := filepath.Join("testdata", "golden", c.file)
			if *update {
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./llm -run TestEncodeGoldenRequests -update)", err)
			}
			if !bytes.Equal(got, bytes.TrimRight(want, "\n")) {
				t.Errorf("body differs from %s\n got: %s\nwant: %s", path, got, want)
			}
		})
	}
}

// The hand-written encoder must agree with encoding/json on every string.
func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\"back\\slash", "ctl\x00\x01\x1f\x7f", "\n\r\t", "é中文😀", "bad\xffutf8\xc3", "\u2028\u2029", "<>&"} {
		var back string
		if err := json.Unmarshal(appendJSONString(nil, s), &back); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		want, _ := json.Marshal(s)
		var wantBack string
		_ = json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Errorf("%q: round trip %q, encoding/json %q", s, back, wantBack)
		}
	}
}

func f32s(xs ...float64) []float32 {
	out := make([]float32, len(xs))
	for i, x := range xs {
		out[i] = float32(x)
	}
	return out
}

func fill(n, v int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// Replies in the shapes the engines document decode to the Response the
// llm contract promises.
func TestDecodeGoldenReplies(t *testing.T) {
	searchIDs := []int{10061, 752, 2711, 624, 27, 1836, 29, 65063, 315, 9625, 522, 1836, 29}
	searchLPs := f32s(-0.5, -0.25, -1.125, -0.0625, -0.0078125, -0.001, 0, -2.5, -0.03125, -0.125, -0.0001, 0, -1e-05)
	vllmIDs := []int{27, 1836, 29, 65063, 315, 9625, 522, 1836, 29}
	vllmLPs := f32s(-0.0078125, -0.001, 0.0, -2.5, -0.03125, -0.125, -0.0001, 0, -1e-05)
	answerIDs := []int{27, 9217, 29, 59604, 522, 9217, 29, 151645}
	answerLPs := f32s(-0.1, -0.2, -0.3, -0.4, -0.5, -0.6, -0.7, -0.8)
	stops := []string{"</search>", "</answer>"}
	cases := []struct {
		file   string
		decode func([]byte, []string, string) (*Response, error)
		want   Response
	}{
		{"sglang_reply_stop_string.json", decodeSGLangGenerate, Response{OutputIDs: searchIDs, Logprobs: searchLPs,
			Text: "Let me search.\n<search>capital of France</search>", Finish: FinishStop, StopMatched: "</search>", PromptTokens: 42}},
		{"sglang_reply_stop_trimmed.json", decodeSGLangGenerate, Response{OutputIDs: searchIDs, Logprobs: searchLPs,
			Text: "Let me search.\n<search>capital of France</search>", Finish: FinishStop, StopMatched: "</search>", PromptTokens: 42}},
		{"sglang_reply_eos.json", decodeSGLangGenerate, Response{OutputIDs: answerIDs, Logprobs: answerLPs, Versions: fill(8, 3),
			Text: "<answer>Paris</answer>", Finish: FinishStop, PromptTokens: 120}},
		{"sglang_reply_length.json", decodeSGLangGenerate, Response{OutputIDs: []int{785, 4226}, Logprobs: f32s(-1.5, -0.75), Versions: []int{12, 12},
			Text: "The answer", Finish: FinishLength, PromptTokens: 5}},
		{"sglang_reply_abort_partial.json", decodeSGLangGenerate, Response{OutputIDs: []int{40, 686}, Logprobs: f32s(-0.2, -0.4), Versions: []int{4, 4},
			Text: "I will", Finish: FinishAbort, PromptTokens: 30}},
		{"sglang_reply_abort_before_prefill.json", decodeSGLangGenerate, Response{Finish: FinishAbort}},
		{"sglang_reply_skip_tokenizer.json", decodeSGLangGenerate, Response{OutputIDs: []int{100, 200, 300}, Logprobs: f32s(-0.1, -0.2, -0.3),
			Finish: FinishLength, PromptTokens: 4}},
		{"sglang_reply_null_logprob.json", decodeSGLangGenerate, Response{OutputIDs: []int{1, 2}, Logprobs: []float32{float32(math.Inf(-1)), -0.5},
			Versions: []int{7, 7}, Text: "ab", Finish: FinishLength, PromptTokens: 4}},
		{"sglang_reply_token_versions.json", decodeSGLangGenerate, Response{OutputIDs: []int{97, 98, 99}, Logprobs: f32s(-0.5, -0.25, -0.125),
			Versions: []int{4, 4, 5}, Text: "abc", Finish: FinishLength, PromptTokens: 2}},
		{"vllm_completion_token_ids.json", decodeCompletionResponse, Response{OutputIDs: vllmIDs, Logprobs: vllmLPs,
			Text: "<search>capital of France</search>", Finish: FinishStop, StopMatched: "</search>", PromptTokens: 3}},
		{"vllm_completion_trimmed_token_strings.json", decodeCompletionResponse, Response{OutputIDs: vllmIDs, Logprobs: vllmLPs,
			Text: "<search>capital of France</search>", Finish: FinishStop, StopMatched: "</search>", PromptTokens: 3}},
		{"vllm_completion_eos.json", decodeCompletionResponse, Response{OutputIDs: []int{59604, 151645}, Logprobs: f32s(-0.25, -0.5),
			Text: "Paris", Finish: FinishStop, PromptTokens: 7}},
		{"vllm_completion_abort.json", decodeCompletionResponse, Response{OutputIDs: []int{40, 686}, Logprobs: f32s(-0.2, -0.4),
			Text: "I will", Finish: FinishAbort, PromptTokens: 30}},
		{"openai_completion_hosted.json", decodeCompletionResponse, Response{Logprobs: f32s(-0.0013),
			Text: " Paris", Finish: FinishLength, PromptTokens: 8}},
		{"sglang_openai_completion_matched_stop.json", decodeCompletionResponse, Response{Logprobs: f32s(-0.1),
			Text: "<search>capital of France</search>", Finish: FinishStop, StopMatched: "</search>", PromptTokens: 3}},
		{"vllm_chat_token_ids.json", decodeChatResponse, Response{OutputIDs: answerIDs, Logprobs: answerLPs,
			Text: "<answer>Paris</answer>", Finish: FinishStop, PromptTokens: 20}},
		{"openai_chat_hosted.json", decodeChatResponse, Response{Logprobs: f32s(-0.31725305, -0.5),
			Text: "Hello there", Finish: FinishStop, PromptTokens: 9}},
		{"chat_reasoning_content.json", decodeChatResponse, Response{
			Text: "<think>\n2+2 is 4.\n</think>\n\n<answer>4</answer>", Finish: FinishStop, PromptTokens: 5}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "golden", c.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.decode(data, stops, "")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, c.want) {
				t.Errorf("decoded\n got %+v\nwant %+v", *got, c.want)
			}
		})
	}
}

func TestDecodeRejectsBrokenReplies(t *testing.T) {
	cases := []struct {
		name   string
		decode func([]byte, []string, string) (*Response, error)
		body   string
	}{
		{"not json", decodeSGLangGenerate, `<html>502 Bad Gateway</html>`},
		{"no meta", decodeSGLangGenerate, `{"text":"x"}`},
		{"unfinished", decodeSGLangGenerate, `{"text":"x","meta_info":{"finish_reason":null}}`},
		{"unknown finish", decodeSGLangGenerate, `{"text":"x","meta_info":{"finish_reason":{"type":"exploded"}}}`},
		{"ids disagree", decodeSGLangGenerate, `{"output_ids":[1,2],"meta_info":{"finish_reason":{"type":"length"},"output_token_logprobs":[[-1,1,null],[-1,3,null]]}}`},
		{"count disagrees", decodeSGLangGenerate, `{"output_ids":[1,2],"meta_info":{"finish_reason":{"type":"length"},"completion_tokens":5}}`},
		{"bad logprob entry", decodeSGLangGenerate, `{"meta_info":{"finish_reason":{"type":"length"},"output_token_logprobs":[[-1]]}}`},
		{"batch of two", decodeSGLangGenerate, `[{"meta_info":{"finish_reason":{"type":"length"}}},{"meta_info":{"finish_reason":{"type":"length"}}}]`},
		{"no choices", decodeCompletionResponse, `{"choices":[]}`},
		{"null finish", decodeCompletionResponse, `{"choices":[{"text":"x","finish_reason":null}]}`},
		{"ids vs logprobs", decodeCompletionResponse, `{"choices":[{"text":"x","finish_reason":"stop","token_ids":[1,2],"logprobs":{"tokens":["a"],"token_logprobs":[-1]}}]}`},
		{"chat no choices", decodeChatResponse, `{"object":"chat.completion"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if r, err := c.decode([]byte(c.body), nil, ""); err == nil {
				t.Fatalf("want an error, got %+v", r)
			}
		})
	}
}

func TestTokenLogprobsScannerAgreesWithGenericPath(t *testing.T) {
	for _, in := range []string{
		`[]`, `null`, ` [ [ -0.5 , 3 , null ] , [0,4,"x\"y"] ] `, `[[-1e-05,7],[1.5E2,8,"a",null]]`,
		`[[null,1,null]]`, `[[-0.25,2,{"nested":1}]]`,
	} {
		var fast tokenLogprobs
		if err := json.Unmarshal([]byte(in), &fast); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		var generic [][]json.RawMessage
		_ = json.Unmarshal([]byte(in), &generic)
		if len(generic) != len(fast.IDs) {
			t.Fatalf("%s: %d entries, want %d", in, len(fast.IDs), len(generic))
		}
		for i, e := range generic {
			var id int
			_ = json.Unmarshal(e[1], &id)
			lp, _ := parseLogprob(e[0])
			if fast.IDs[i] != id || fast.Logprobs[i] != lp {
				t.Errorf("%s entry %d: got (%v,%d) want (%v,%d)", in, i, fast.Logprobs[i], fast.IDs[i], lp, id)
			}
		}
	}
}

func TestParseVersion(t *testing.T) {
	cases := map[string]struct {
		v  int
		ok bool
	}{`"7"`: {7, true}, `7`: {7, true}, `"v12"`: {12, true}, `"default"`: {0, false}, `null`: {0, false}, ``: {0, false}, `1.5`: {0, false}}
	for in, want := range cases {
		v, ok := parseVersion(json.RawMessage(in))
		if v != want.v || ok != want.ok {
			t.Errorf("parseVersion(%s) = %d,%v want %d,%v", in, v, ok, want.v, want.ok)
		}
	}
}
