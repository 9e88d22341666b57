package fakellm

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("reply is not a JSON object: %s", data)
		}
	}
	return resp.StatusCode, m
}

func TestGenerateShape(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	s.SetVersion(4)
	s.Enqueue(Reply{Text: "hi there</s> more"})
	code, m := post(t, s.URL+"/generate", `{"text":"Q","sampling_params":{"max_new_tokens":50,"stop":"</s>","temperature":0},"return_logprob":true,"rid":"r1"}`)
	if code != 200 {
		t.Fatalf("status %d %v", code, m)
	}
	meta := m["meta_info"].(map[string]any)
	fr := meta["finish_reason"].(map[string]any)
	if m["text"] != "hi there" || fr["type"] != "stop" || fr["matched"] != "</s>" || meta["id"] != "r1" ||
		meta["weight_version"] != "4" || meta["prompt_tokens"].(float64) != 1 || meta["completion_tokens"].(float64) != 12 {
		t.Errorf("reply %v", m)
	}
	lps := meta["output_token_logprobs"].([]any)
	first := lps[0].([]any)
	if len(lps) != 12 || len(first) != 3 || first[1].(float64) != 'h' || first[2] != nil {
		t.Errorf("logprobs %v", lps)
	}
	if ids := m["output_ids"].([]any); len(ids) != 12 {
		t.Errorf("output_ids %v", ids)
	}
}

func TestGenerateRejectsWhatSGLangRejects(t *testing.T) {
	s := New(Options{Handler: func(Call) Reply { return Reply{Text: "x"} }})
	defer s.Close()
	for body, want := range map[string]string{
		`{"input_ids":[1],"sampling_params":{"max_tokens":5}}`:   "unexpected keyword argument 'max_tokens'",
		`{"sampling_params":{}}`:                                 "Either text or input_ids",
		`{"text":"a","input_ids":[1]}`:                           "Either text or input_ids",
		`{"input_ids":[[1],[2]]}`:                                "batch",
		`{"input_ids":[1],"sampling_params":{"top_p":0}}`:        "top_p",
		`{"input_ids":[1],"sampling_params":{"temperature":-1}}`: "temperature",
		`not json`:                        "invalid JSON",
		`{"input_ids":[1],"stream":true}`: "non-streaming",
		`{"input_ids":[1],"sampling_params":{"max_new_tokens":-3}}`: "at least 0",
	} {
		code, m := post(t, s.URL+"/generate", body)
		if code != 400 || !strings.Contains(m["message"].(string), want) {
			t.Errorf("%s: %d %v, want 400 %q", body, code, m, want)
		}
	}
}

func TestPauseHoldsAndAbortsAndUpdateBumpsVersion(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	s.Enqueue(Reply{Text: strings.Repeat("a", 200), TokenDelay: time.Millisecond}, Reply{Text: "b"})
	type result struct {
		code int
		m    map[string]any
	}
	first := make(chan result)
	go func() {
		c, m := post(t, s.URL+"/generate", `{"input_ids":[1],"sampling_params":{"max_new_tokens":500},"rid":"long"}`)
		first <- result{c, m}
	}()
	for s.InFlight() == 0 {
		time.Sleep(time.Millisecond)
	}
	// In flight is not yet decoding: pausing before the first token would
	// abort "before prefill" with no output. The reply takes ~200 ms, so a
	// short wait pauses it mid-stream.
	time.Sleep(30 * time.Millisecond)
	if code, m := post(t, s.URL+"/pause_generation", `{}`); code != 200 || m["status"] != "ok" {
		t.Fatalf("pause: %d %v", code, m)
	}
	r := <-first
	meta := r.m["meta_info"].(map[string]any)
	if meta["finish_reason"].(map[string]any)["type"] != "abort" || len(r.m["output_ids"].([]any)) == 0 {
		t.Fatalf("paused request: %v", r.m)
	}
	second := make(chan result)
	go func() {
		c, m := post(t, s.URL+"/generate", `{"input_ids":[9],"sampling_params":{}}`)
		second <- result{c, m}
	}()
	select {
	case <-second:
		t.Fatal("a request ran while paused")
	case <-time.After(50 * time.Millisecond):
	}
	if code, m := post(t, s.URL+"/update_weights_from_disk", `{"model_path":"/ckpt/v7","abort_all_requests":true,"weight_version":"7"}`); code != 200 || m["success"] != true {
		t.Fatalf("update: %d %v", code, m)
	}
	post(t, s.URL+"/continue_generation", `{}`)
	r = <-second
	if r.m["text"] != "b" || r.m["meta_info"].(map[string]any)["weight_version"] != "7" {
		t.Errorf("after continue: %v", r.m)
	}
	if code, m := post(t, s.URL+"/update_weights_from_disk", `{}`); code != 400 || m["success"] != false {
		t.Errorf("update without model_path: %d %v", code, m)
	}
}

func TestResubmissionContinuesTheReply(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	s.Enqueue(Reply{IDs: []int{10, 11, 12, 13, 14}, Finish: "abort"})
	_, m := post(t, s.URL+"/generate", `{"input_ids":[1,2],"sampling_params":{"max_new_tokens":3},"rid":"x"}`)
	// max_new_tokens ran out before the scripted abort: a length finish.
	if m["meta_info"].(map[string]any)["finish_reason"].(map[string]any)["type"] != "length" {
		t.Fatalf("%v", m)
	}
	s.Enqueue(Reply{IDs: []int{20, 21, 22, 23}, AbortAfter: 3})
	_, m = post(t, s.URL+"/generate", `{"input_ids":[1,2],"sampling_params":{"max_new_tokens":10},"rid":"y"}`)
	if m["meta_info"].(map[string]any)["finish_reason"].(map[string]any)["type"] != "abort" || len(m["output_ids"].([]any)) != 3 {
		t.Fatalf("%v", m)
	}
	// The resubmission of prompt + partial output under the same rid
	// continues the same reply, which then ends with EOS.
	_, m = post(t, s.URL+"/generate", `{"input_ids":[1,2,20,21,22],"sampling_params":{"max_new_tokens":10},"rid":"y"}`)
	ids := m["output_ids"].([]any)
	if len(ids) != 2 || ids[0].(float64) != 23 || ids[1].(float64) != ByteEOS || !s.Calls()[2].Resumed {
		t.Errorf("continuation: %v", m)
	}
	// Finish "abort" aborts every time: the resubmission gets nothing more.
	s.Enqueue(Reply{IDs: []int{30}, Finish: "abort"})
	post(t, s.URL+"/generate", `{"input_ids":[5],"sampling_params":{"max_new_tokens":10},"rid":"z"}`)
	_, m = post(t, s.URL+"/generate", `{"input_ids":[5,30],"sampling_params":{"max_new_tokens":10},"rid":"z"}`)
	fr := m["meta_info"].(map[string]any)["finish_reason"].(map[string]any)
	if fr["type"] != "abort" || fr["message"] != "Abort before prefill" || !s.Calls()[4].Resumed {
		t.Errorf("endless abort: %v", m)
	}
	if s.Pending() != 0 {
		t.Errorf("pending %d", s.Pending())
	}
}

func TestOpenAIShapes(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	s.Enqueue(Reply{Text: "abc"}, Reply{Text: "xyz"})
	code, m := post(t, s.URL+"/v1/completions", `{"model":"fake-model","prompt":[1,2],"max_tokens":10,"logprobs":0,"return_token_ids":true,"return_tokens_as_token_ids":true}`)
	if code != 200 {
		t.Fatalf("%d %v", code, m)
	}
	ch := m["choices"].([]any)[0].(map[string]any)
	lp := ch["logprobs"].(map[string]any)
	if ch["text"] != "abc" || ch["finish_reason"] != "stop" || ch["stop_reason"] != nil || len(ch["token_ids"].([]any)) != 4 ||
		lp["tokens"].([]any)[0] != "token_id:97" || m["object"] != "text_completion" || m["usage"].(map[string]any)["completion_tokens"].(float64) != 4 {
		t.Errorf("completion %v", m)
	}
	code, m = post(t, s.URL+"/v1/chat/completions", `{"model":"fake-model","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"logprobs":true}`)
	if code != 200 {
		t.Fatalf("%d %v", code, m)
	}
	ch = m["choices"].([]any)[0].(map[string]any)
	if ch["message"].(map[string]any)["content"] != "xyz" || len(ch["logprobs"].(map[string]any)["content"].([]any)) != 4 || s.Calls()[1].Prompt != RenderChat([]Message{{"user", "hi"}}) {
		t.Errorf("chat %v", m)
	}
	if code, _ := post(t, s.URL+"/v1/completions", `{"model":"other","prompt":"x"}`); code != 404 {
		t.Errorf("unknown model: %d", code)
	}
	strict := New(Options{Strict: true})
	defer strict.Close()
	code, m = post(t, strict.URL+"/v1/completions", `{"model":"fake-model","prompt":"x","top_k":3}`)
	if code != 400 || !strings.Contains(m["error"].(map[string]any)["message"].(string), "top_k") {
		t.Errorf("strict: %d %v", code, m)
	}
}

func TestNoScriptIsALoudFailure(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	code, m := post(t, s.URL+"/generate", `{"input_ids":[1]}`)
	if code != 500 || !strings.Contains(m["message"].(string), "no scripted reply") {
		t.Errorf("%d %v", code, m)
	}
}

// Chat logprobs carry each token's UTF-8 bytes as a list of integers, as
// the OpenAI API and `serve model` send them (encoding/json would write a
// []byte as a base64 string).
func TestChatLogprobBytesAreIntegers(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	s.Enqueue(Reply{Text: "hi!"})
	code, m := post(t, s.URL+"/v1/chat/completions", `{"model":"fake-model","messages":[{"role":"user","content":"q"}],"logprobs":true}`)
	if code != 200 {
		t.Fatalf("%d %v", code, m)
	}
	content := m["choices"].([]any)[0].(map[string]any)["logprobs"].(map[string]any)["content"].([]any)
	if len(content) == 0 {
		t.Fatal("no logprob entries")
	}
	for i, e := range content {
		entry := e.(map[string]any)
		tok, _ := entry["token"].(string)
		list, ok := entry["bytes"].([]any)
		if !ok {
			t.Fatalf("entry %d: bytes is %T %v, want a list of integers", i, entry["bytes"], entry["bytes"])
		}
		got := make([]byte, len(list))
		for j, v := range list {
			f, ok := v.(float64)
			if !ok || f != float64(byte(f)) {
				t.Fatalf("entry %d: bytes[%d] = %v, want an integer in [0, 255]", i, j, v)
			}
			got[j] = byte(f)
		}
		if string(got) != tok {
			t.Errorf("entry %d: bytes %v spell %q, token is %q", i, list, got, tok)
		}
	}
}
