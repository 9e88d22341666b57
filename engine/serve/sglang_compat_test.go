package serve

import (
	"encoding/json"
	"math"
	"net/http"
	"testing"
)

// The request shapes SGLang accepts and its own clients send (issue 14 §4).

type sglangTestReply struct {
	Text      string `json:"text"`
	OutputIDs []int  `json:"output_ids"`
	MetaInfo  struct {
		ID                     string    `json:"id"`
		FinishReason           any       `json:"finish_reason"`
		InputTokenLogprobs     [][3]any  `json:"input_token_logprobs"`
		OutputTokenLogprobs    [][3]any  `json:"output_token_logprobs"`
		InputTopLogprobs       [][][]any `json:"input_top_logprobs"`
		OutputTopLogprobs      [][][]any `json:"output_top_logprobs"`
		InputTokenIDsLogprobs  [][][]any `json:"input_token_ids_logprobs"`
		OutputTokenIDsLogprobs [][][]any `json:"output_token_ids_logprobs"`
	} `json:"meta_info"`
}

// A batch may give one sampling_params object per prompt.
func TestSGLangPerItemSamplingParams(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), nil)
	st, body := post(t, ts.url+"/generate", map[string]any{"input_ids": [][]int{{1, 2}, {3, 4}},
		"sampling_params": []any{map[string]any{"max_new_tokens": 2, "temperature": 0, "ignore_eos": true},
			map[string]any{"max_new_tokens": 5, "temperature": 0, "ignore_eos": true, "n": 2}}})
	var out []sglangTestReply
	if st != 200 || json.Unmarshal(body, &out) != nil {
		t.Fatalf("%d %s", st, body)
	}
	if len(out) != 3 || len(out[0].OutputIDs) != 2 || len(out[1].OutputIDs) != 5 || len(out[2].OutputIDs) != 5 {
		t.Fatalf("per-item params not applied: %s", body)
	}
	st, body = post(t, ts.url+"/generate", map[string]any{"input_ids": [][]int{{1, 2}, {3, 4}}, "sampling_params": []any{map[string]any{}}})
	wantJSONError(t, "1 sampling_params for 2 prompts", st, body, 400, "sampling_params")
}

// top_logprobs_num and token_ids_logprob return [logprob, id, text]
// lists per position, consistent with the sampled tokens' logprobs; with
// max_new_tokens 0 the output lists score the position after the prompt.
func TestSGLangTopAndTokenIDsLogprobs(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), nil)
	prompt := []int{4, 8, 15, 16}
	st, body := post(t, ts.url+"/generate", map[string]any{"input_ids": prompt, "return_logprob": true, "logprob_start_len": 0,
		"top_logprobs_num": 3, "token_ids_logprob": []int{5, 7}, "sampling_params": map[string]any{"max_new_tokens": 3, "temperature": 0, "ignore_eos": true}})
	var out sglangTestReply
	if st != 200 || json.Unmarshal(body, &out) != nil {
		t.Fatalf("%d %s", st, body)
	}
	m := out.MetaInfo
	if len(m.InputTopLogprobs) != len(prompt) || m.InputTopLogprobs[0] != nil || len(m.InputTopLogprobs[1]) != 3 {
		t.Fatalf("input_top_logprobs: %v", m.InputTopLogprobs)
	}
	if len(m.OutputTopLogprobs) != 3 || len(m.OutputTokenIDsLogprobs) != 3 || len(m.InputTokenIDsLogprobs) != len(prompt) {
		t.Fatalf("output lists: top %d, ids %d, input ids %d", len(m.OutputTopLogprobs), len(m.OutputTokenIDsLogprobs), len(m.InputTokenIDsLogprobs))
	}
	for j, top := range m.OutputTopLogprobs {
		// Greedy: the best alternative is the sampled token, with (about)
		// its logprob.
		if int(top[0][1].(float64)) != out.OutputIDs[j] || math.Abs(top[0][0].(float64)-m.OutputTokenLogprobs[j][0].(float64)) > 1e-3 {
			t.Fatalf("position %d: top %v, sampled %v", j, top[0], m.OutputTokenLogprobs[j])
		}
		ids := m.OutputTokenIDsLogprobs[j]
		if len(ids) != 2 || ids[0][1].(float64) != 5 || ids[1][1].(float64) != 7 || ids[0][0].(float64) > 0 {
			t.Fatalf("position %d: token_ids_logprob %v", j, ids)
		}
	}
	// Scoring only: one output position, the distribution after the prompt.
	st, body = post(t, ts.url+"/generate", map[string]any{"input_ids": prompt, "return_logprob": true,
		"token_ids_logprob": []int{5}, "sampling_params": map[string]any{"max_new_tokens": 0}})
	out = sglangTestReply{}
	if st != 200 || json.Unmarshal(body, &out) != nil || len(out.MetaInfo.OutputTokenIDsLogprobs) != 1 || len(out.MetaInfo.OutputTokenIDsLogprobs[0]) != 1 {
		t.Fatalf("score-only token_ids_logprob: %d %s", st, body)
	}
	st, body = post(t, ts.url+"/generate", map[string]any{"input_ids": prompt, "return_logprob": true, "token_ids_logprob": []int{1 << 20}})
	wantJSONError(t, "token id outside the vocabulary", st, body, 400, "vocabulary")
}

// /server_info and /model_info are the names newer SGLang (and its own
// RuntimeEndpoint) use; the old ones stay.
func TestSGLangInfoAliases(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), nil)
	for _, p := range []string{"/server_info", "/get_server_info", "/model_info", "/get_model_info"} {
		resp, err := http.Get(ts.url + p)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if resp.StatusCode != 200 || v["weight_version"] == nil {
			t.Errorf("%s: %d %v", p, resp.StatusCode, v)
		}
	}
}

// Every stream event, the first included, carries the request id and
// (with return_logprob) the logprobs so far.
func TestSGLangStreamFirstEvent(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), nil)
	chunks := sseChunks(t, ts.url+"/generate", map[string]any{"input_ids": []int{1, 2, 3}, "stream": true, "return_logprob": true,
		"logprob_start_len": 0, "sampling_params": map[string]any{"max_new_tokens": 4, "ignore_eos": true}})
	if len(chunks) < 2 {
		t.Fatalf("%d events", len(chunks))
	}
	var id any
	for i, c := range chunks {
		meta := c["meta_info"].(map[string]any)
		if meta["id"] == "" || meta["id"] == nil || (id != nil && meta["id"] != id) {
			t.Fatalf("event %d: id %v (first %v)", i, meta["id"], id)
		}
		id = meta["id"]
		ids := c["output_ids"].([]any)
		lps, _ := meta["output_token_logprobs"].([]any)
		if len(lps) != len(ids) || len(ids) == 0 {
			t.Fatalf("event %d: %d output ids, %d logprobs", i, len(ids), len(lps))
		}
		if in, _ := meta["input_token_logprobs"].([]any); len(in) != 3 {
			t.Fatalf("event %d: input_token_logprobs %v", i, meta["input_token_logprobs"])
		}
	}
}
