package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/asearcher/asearcher/wire/tinker"
)

func tinkerPost(t testing.TB, url string, body any, header ...string) (int, []byte) {
	t.Helper()
	var data []byte
	if s, ok := body.(string); ok {
		data = []byte(s)
	} else {
		var err error
		if data, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// tinkerResult waits for a future and returns the final status and body.
func tinkerResult(t testing.TB, base string, fut []byte) (int, []byte) {
	t.Helper()
	var f struct {
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(fut, &f); err != nil || f.RequestID == "" {
		t.Fatalf("not a future: %s", fut)
	}
	for {
		st, body := tinkerPost(t, base+"/api/v1/retrieve_future", map[string]any{"request_id": f.RequestID})
		if st != http.StatusRequestTimeout {
			return st, body
		}
	}
}

func newTinkerModel(t testing.TB, base string) string {
	t.Helper()
	st, fut := tinkerPost(t, base+"/api/v1/create_model", map[string]any{"session_id": "s", "model_seq_id": 0, "base_model": "tiny", "lora_config": map[string]any{"rank": 4}})
	if st != 200 {
		t.Fatalf("create_model: %d %s", st, fut)
	}
	st, body := tinkerResult(t, base, fut)
	var out struct {
		ModelID string `json:"model_id"`
	}
	if err := json.Unmarshal(body, &out); st != 200 || err != nil || out.ModelID == "" {
		t.Fatalf("create_model result: %d %s", st, body)
	}
	return out.ModelID
}

func fwdBwdBody(model string, seq int, loss string, tokens []int, extra map[string]any) map[string]any {
	n := len(tokens) - 1
	inputs := map[string]any{"target_tokens": tinker.Int64Tensor(tokens[1:])}
	ones := make([]float32, n)
	for i := range ones {
		ones[i] = 1
	}
	if loss == "cross_entropy" {
		inputs["weights"] = tinker.Float32Tensor(ones)
	} else {
		lp := make([]float32, n)
		for i := range lp {
			lp[i] = -5.5
		}
		inputs["logprobs"], inputs["advantages"] = tinker.Float32Tensor(lp), tinker.Float32Tensor(ones)
	}
	for k, v := range extra {
		inputs[k] = v
	}
	in := map[string]any{"data": []any{map[string]any{"model_input": tinker.Input(tokens[:n]), "loss_fn_inputs": inputs}}, "loss_fn": loss}
	b := map[string]any{"model_id": model, "forward_backward_input": in}
	if seq > 0 {
		b["seq_id"] = seq
	}
	return b
}

// Bad Tinker requests get the documented 4xx with {"error", "category"},
// and the server keeps serving.
func TestTinkerBadRequests(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), nil)
	model := newTinkerModel(t, ts.url)
	toks := []int{1, 2, 3, 4, 5}
	long := make([]int, ts.ctxLen+2)
	cases := []struct {
		name, path string
		body       any
		status     int
		msg        string
	}{
		{"unknown model", "forward_backward", fwdBwdBody("model-99", 0, "cross_entropy", toks, nil), 404, "unknown model_id"},
		{"unknown loss", "forward_backward", fwdBwdBody(model, 0, "dro", toks, nil), 400, "unknown loss_fn"},
		{"wrong dtype", "forward_backward", fwdBwdBody(model, 0, "cross_entropy", toks, map[string]any{"target_tokens": tinker.Float32Tensor([]float32{1, 2, 3, 4})}), 400, `dtype "float32", want "int64"`},
		{"wrong shape", "forward_backward", fwdBwdBody(model, 0, "cross_entropy", toks, map[string]any{"weights": tinker.Float32Tensor([]float32{1})}), 400, "1 values for 4 input tokens"},
		{"2-D tensor", "forward_backward", fwdBwdBody(model, 0, "cross_entropy", toks, map[string]any{"weights": tinker.Tensor{Data: []float64{1, 1, 1, 1}, DType: "float32", Shape: []int{2, 2}}}), 400, "want a 1-D tensor"},
		{"missing advantages", "forward_backward", func() any {
			b := fwdBwdBody(model, 0, "ppo", toks, nil)
			delete(b["forward_backward_input"].(map[string]any)["data"].([]any)[0].(map[string]any)["loss_fn_inputs"].(map[string]any), "advantages")
			return b
		}(), 400, "needs loss_fn_inputs[\"advantages\"]"},
		{"input of another loss", "forward_backward", fwdBwdBody(model, 0, "cross_entropy", toks, map[string]any{"advantages": tinker.Float32Tensor([]float32{1, 1, 1, 1})}), 400, "is not an input of cross_entropy"},
		{"over context", "forward_backward", fwdBwdBody(model, 0, "cross_entropy", long, nil), 400, "exceed the context length"},
		{"token outside vocab", "forward_backward", fwdBwdBody(model, 0, "cross_entropy", []int{1, 2, 99999}, nil), 400, "outside the vocabulary"},
		{"bad loss config", "forward_backward", func() any {
			b := fwdBwdBody(model, 0, "ppo", toks, nil)
			b["forward_backward_input"].(map[string]any)["loss_fn_config"] = map[string]any{"beta": 1}
			return b
		}(), 400, "does not apply to ppo"},
		{"bad ppo bounds", "forward_backward", func() any {
			b := fwdBwdBody(model, 0, "ppo", toks, nil)
			b["forward_backward_input"].(map[string]any)["loss_fn_config"] = map[string]any{"clip_low_threshold": 1.5}
			return b
		}(), 400, "clip_low_threshold"},
		{"not JSON", "forward_backward", "{", 400, "not valid JSON"},
		{"wrong JSON type", "forward_backward", `{"model_id": 3}`, 400, `field "model_id"`},
		{"unknown future", "retrieve_future", map[string]any{"request_id": "nope"}, 404, "unknown request_id"},
		{"unknown base model", "create_model", map[string]any{"session_id": "s", "model_seq_id": 1, "base_model": "Qwen/Qwen3-8B"}, 400, "is not served here"},
		{"no adam params", "optim_step", map[string]any{"model_id": model}, 400, "adam_params is required"},
		{"unknown sampling session", "asample", map[string]any{"sampling_session_id": "x", "prompt": tinker.Input([]int{1}), "sampling_params": map[string]any{}}, 404, "unknown sampling_session_id"},
		{"unknown sampler weights", "create_sampling_session", map[string]any{"session_id": "s", "sampling_session_seq_id": 0, "model_path": "tinker://model-1/sampler_weights/none"}, 404, "no sampler weights"},
		{"empty prompt", "asample", map[string]any{"base_model": "tiny", "prompt": tinker.Input(nil), "sampling_params": map[string]any{}}, 400, "empty"},
		{"save_weights without a checkpoint dir", "save_weights", map[string]any{"model_id": model, "path": "x"}, 400, "checkpoint directory"},
		{"unknown session heartbeat", "session_heartbeat", map[string]any{"session_id": "nope"}, 404, "unknown session"},
	}
	for _, tc := range cases {
		st, body := tinkerPost(t, ts.url+"/api/v1/"+tc.path, tc.body)
		var e struct{ Error, Category string }
		_ = json.Unmarshal(body, &e)
		if st != tc.status || !strings.Contains(e.Error, tc.msg) || e.Category != "user" {
			t.Errorf("%s: got %d %s, want %d with %q", tc.name, st, body, tc.status, tc.msg)
		}
	}
	st, body := tinkerPost(t, ts.url+"/api/v1/forward_backward", "\x08\x01", "Content-Type", "application/x-protobuf")
	if st != http.StatusBadRequest || !strings.Contains(string(body), "protobuf ForwardBackwardRequest: model_id") {
		t.Errorf("bad protobuf body: %d %s", st, body)
	}
	st, body = tinkerPost(t, ts.url+"/api/v1/optim_step", "\x08\x01", "Content-Type", "application/x-protobuf")
	if st != http.StatusUnsupportedMediaType {
		t.Errorf("protobuf optim_step: %d %s", st, body)
	}
	st, body = tinkerPost(t, ts.url+"/api/v1/no_such_call", "{}")
	if st != http.StatusNotFound || !strings.Contains(string(body), "not an endpoint") {
		t.Errorf("unknown endpoint: %d %s", st, body)
	}
	st, fut := tinkerPost(t, ts.url+"/api/v1/forward_backward", fwdBwdBody(model, 0, "cross_entropy", toks, nil))
	if st != 200 {
		t.Fatalf("after bad requests: %d %s", st, fut)
	}
	if st, body := tinkerResult(t, ts.url, fut); st != 200 || !strings.Contains(string(body), `"loss:sum"`) {
		t.Fatalf("result: %d %s", st, body)
	}
}

// Requests of one model run in seq_id order whatever order they arrive
// in; retries (same idempotency key, or same seq_id and body) get the same
// future; another body under a used seq_id is a 409; a future waiting on a
// missing seq_id answers 408 until the gap times out.
func TestTinkerSeqOrderAndRetries(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), func(o *Options) {
		o.LongPoll = 50 * time.Millisecond
		o.GapTimeout = 1500 * time.Millisecond
	})
	toks := []int{9, 8, 7, 6, 5, 4}
	adam := map[string]any{"learning_rate": 0.05, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8}
	loss := func(body []byte) float64 {
		var o tinker.FwdBwdOutput
		if err := json.Unmarshal(body, &o); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		return o.Metrics["loss:sum"]
	}
	// Reference, in order: fwd_bwd (seq 1), optim (seq 2), forward (seq 3).
	ref := newTinkerModel(t, ts.url)
	_, f1 := tinkerPost(t, ts.url+"/api/v1/forward_backward", fwdBwdBody(ref, 1, "cross_entropy", toks, nil))
	_, f2 := tinkerPost(t, ts.url+"/api/v1/optim_step", map[string]any{"model_id": ref, "seq_id": 2, "adam_params": adam})
	fwd := fwdBwdBody(ref, 3, "cross_entropy", toks, nil)
	fwd["forward_input"], fwd["forward_backward_input"] = fwd["forward_backward_input"], nil
	_, f3 := tinkerPost(t, ts.url+"/api/v1/forward", fwd)
	_, b1 := tinkerResult(t, ts.url, f1)
	tinkerResult(t, ts.url, f2)
	_, b3 := tinkerResult(t, ts.url, f3)
	before, after := loss(b1), loss(b3)
	if before == after {
		t.Fatal("the step did not change the loss")
	}

	// The same calls arriving in reverse order.
	m := newTinkerModel(t, ts.url)
	fwd["model_id"] = m
	_, g3 := tinkerPost(t, ts.url+"/api/v1/forward", fwd)
	_, g2 := tinkerPost(t, ts.url+"/api/v1/optim_step", map[string]any{"model_id": m, "seq_id": 2, "adam_params": adam}, "X-Idempotency-Key", "k2")
	_, g2again := tinkerPost(t, ts.url+"/api/v1/optim_step", map[string]any{"model_id": m, "seq_id": 2, "adam_params": adam}, "X-Idempotency-Key", "k2")
	if string(g2) != string(g2again) {
		t.Fatalf("retry with the same idempotency key got another future: %s vs %s", g2, g2again)
	}
	st, conflict := tinkerPost(t, ts.url+"/api/v1/optim_step", map[string]any{"model_id": m, "seq_id": 2, "adam_params": map[string]any{"learning_rate": 1}})
	if st != http.StatusConflict {
		t.Fatalf("reused seq_id with another body: %d %s", st, conflict)
	}
	var fut struct {
		RequestID string `json:"request_id"`
	}
	_ = json.Unmarshal(g3, &fut)
	if st, body := tinkerPost(t, ts.url+"/api/v1/retrieve_future", map[string]any{"request_id": fut.RequestID}); st != http.StatusRequestTimeout || !strings.Contains(string(body), "try_again") {
		t.Fatalf("pending future: %d %s", st, body)
	}
	_, g1 := tinkerPost(t, ts.url+"/api/v1/forward_backward", fwdBwdBody(m, 1, "cross_entropy", toks, nil))
	_, g1again := tinkerPost(t, ts.url+"/api/v1/forward_backward", fwdBwdBody(m, 1, "cross_entropy", toks, nil))
	if string(g1) != string(g1again) {
		t.Fatalf("same seq_id and body got another future: %s vs %s", g1, g1again)
	}
	_, c1 := tinkerResult(t, ts.url, g1)
	tinkerResult(t, ts.url, g2)
	_, c3 := tinkerResult(t, ts.url, g3)
	if loss(c1) != before || loss(c3) != after {
		t.Fatalf("out-of-order arrival: losses %v, %v; in order %v, %v", loss(c1), loss(c3), before, after)
	}

	// A gap that never fills is skipped after GapTimeout.
	_, g9 := tinkerPost(t, ts.url+"/api/v1/forward_backward", fwdBwdBody(m, 9, "cross_entropy", toks, nil))
	start := time.Now()
	if st, body := tinkerResult(t, ts.url, g9); st != 200 {
		t.Fatalf("after a gap: %d %s", st, body)
	}
	if waited := time.Since(start); waited < 1200*time.Millisecond {
		t.Fatalf("seq 9 ran after %v without waiting for 4..8", waited)
	}
}

// save_weights / load_weights round-trip the state; sampler weights are
// servable by SGLang's /update_weights_from_disk with their tinker:// path;
// a failed request answers 400 with its category from retrieve_future.
func TestTinkerCheckpointsAndServing(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), func(o *Options) { o.CheckpointDir = t.TempDir() })
	m := newTinkerModel(t, ts.url)
	toks := []int{3, 1, 4, 1, 5, 9, 2, 6}
	run := func(path string, body any) []byte {
		t.Helper()
		st, fut := tinkerPost(t, ts.url+"/api/v1/"+path, body)
		if st != 200 {
			t.Fatalf("%s: %d %s", path, st, fut)
		}
		st, out := tinkerResult(t, ts.url, fut)
		if st != 200 {
			t.Fatalf("%s result: %d %s", path, st, out)
		}
		return out
	}
	run("forward_backward", fwdBwdBody(m, 0, "cross_entropy", toks, nil))
	run("optim_step", map[string]any{"model_id": m, "adam_params": map[string]any{"learning_rate": 0.05, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8}})
	var saved struct{ Path string }
	_ = json.Unmarshal(run("save_weights", map[string]any{"model_id": m, "path": "s1"}), &saved)
	if saved.Path != "tinker://"+m+"/weights/s1" {
		t.Fatalf("save_weights path %q", saved.Path)
	}
	fwd := fwdBwdBody(m, 0, "cross_entropy", toks, nil)
	fwd["forward_input"], fwd["forward_backward_input"] = fwd["forward_backward_input"], nil
	at := string(run("forward", fwd))
	// Another step moves the weights; loading the state brings them back.
	run("forward_backward", fwdBwdBody(m, 0, "cross_entropy", toks, nil))
	run("optim_step", map[string]any{"model_id": m, "adam_params": map[string]any{"learning_rate": 0.05, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8}})
	if string(run("forward", fwd)) == at {
		t.Fatal("the second step changed nothing")
	}
	run("load_weights", map[string]any{"model_id": m, "path": saved.Path, "optimizer": true})
	if got := string(run("forward", fwd)); got != at {
		t.Fatalf("after load_weights:\n%s\nwant\n%s", got, at)
	}
	// Saving over an existing checkpoint fails with a user error.
	st, fut := tinkerPost(t, ts.url+"/api/v1/save_weights", map[string]any{"model_id": m, "path": "s1"})
	if st != 200 {
		t.Fatalf("save_weights: %d", st)
	}
	if st, body := tinkerResult(t, ts.url, fut); st != 400 || !strings.Contains(string(body), `"category":"user"`) {
		t.Fatalf("failed future: %d %s", st, body)
	}
	var sp struct{ Path string }
	_ = json.Unmarshal(run("save_weights_for_sampler", map[string]any{"model_id": m, "path": "pub1"}), &sp)
	if st, body := post(t, ts.url+"/update_weights_from_disk", map[string]any{"model_path": sp.Path}); st != 200 || !strings.Contains(string(body), `"success":true`) {
		t.Fatalf("serve tinker weights: %d %s", st, body)
	}
	if ts.Version() != 1 {
		t.Fatalf("version %d after the update", ts.Version())
	}
	// The trained weights now score the sequence like the trained model.
	st, body := post(t, ts.url+"/generate", map[string]any{"input_ids": toks, "return_logprob": true, "logprob_start_len": 0,
		"sampling_params": map[string]any{"max_new_tokens": 0}})
	var gen struct {
		MetaInfo struct {
			InputTokenLogprobs [][]any `json:"input_token_logprobs"`
		} `json:"meta_info"`
	}
	if err := json.Unmarshal(body, &gen); err != nil || st != 200 {
		t.Fatalf("%d %s", st, body)
	}
	var fo tinker.FwdBwdOutput
	_ = json.Unmarshal(run("forward", fwd), &fo)
	for i, v := range fo.LossFnOutputs[0]["logprobs"].Data {
		if d := gen.MetaInfo.InputTokenLogprobs[i+1][0].(float64) - v; d > 1e-4 || d < -1e-4 {
			t.Fatalf("token %d: served %v, trainer %v", i, gen.MetaInfo.InputTokenLogprobs[i+1][0], v)
		}
	}
	// unload_model frees the model; later calls get 404.
	run("unload_model", map[string]any{"model_id": m})
	if st, _ := tinkerPost(t, ts.url+"/api/v1/forward", fwd); st != 404 {
		t.Fatalf("after unload: %d", st)
	}
}

// asample via a sampling session: num_samples sequences, logprobs,
// prompt_logprobs with null first, seeds honoured.
func TestTinkerSample(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), nil)
	st, body := tinkerPost(t, ts.url+"/api/v1/create_sampling_session", map[string]any{"session_id": "s", "sampling_session_seq_id": 0, "base_model": "tiny"})
	var ss struct {
		ID string `json:"sampling_session_id"`
	}
	if err := json.Unmarshal(body, &ss); err != nil || st != 200 {
		t.Fatalf("%d %s", st, body)
	}
	req := map[string]any{"sampling_session_id": ss.ID, "seq_id": 0, "num_samples": 3, "prompt": tinker.Input([]int{1, 2, 3}),
		"prompt_logprobs": true, "sampling_params": map[string]any{"max_tokens": 5, "temperature": 1.0, "seed": 11}}
	sample := func() tinker.SampleResponse {
		st, fut := tinkerPost(t, ts.url+"/api/v1/asample", req)
		if st != 200 {
			t.Fatalf("%d %s", st, fut)
		}
		st, body := tinkerResult(t, ts.url, fut)
		var out tinker.SampleResponse
		if err := json.Unmarshal(body, &out); err != nil || st != 200 {
			t.Fatalf("%d %s", st, body)
		}
		return out
	}
	a, b := sample(), sample()
	if len(a.Sequences) != 3 || fmt.Sprint(a.Sequences) != fmt.Sprint(b.Sequences) {
		t.Fatalf("seeded samples differ: %v vs %v", a.Sequences, b.Sequences)
	}
	for _, s := range a.Sequences {
		if len(s.Tokens) != 5 || len(s.Logprobs) != 5 || s.StopReason != "length" {
			t.Fatalf("sequence %+v", s)
		}
	}
	if len(a.PromptLogprobs) != 3 || a.PromptLogprobs[0] != nil || a.PromptLogprobs[1] == nil {
		t.Fatalf("prompt_logprobs %v", a.PromptLogprobs)
	}
}

// Generation keeps running while a training step runs: a /generate sent
// after a long forward_backward returns before that step finishes.
func TestGenerateDuringTraining(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), func(o *Options) { o.LongPoll = 10 * time.Millisecond })
	m := newTinkerModel(t, ts.url)
	long := make([]int, 513)
	for i := range long {
		long[i] = i % 250
	}
	body := fwdBwdBody(m, 0, "cross_entropy", long, nil)
	in := body["forward_backward_input"].(map[string]any)
	for range 7 { // 8 sequences of 512 tokens
		in["data"] = append(in["data"].([]any), in["data"].([]any)[0])
	}
	st, fut := tinkerPost(t, ts.url+"/api/v1/forward_backward", body)
	if st != 200 {
		t.Fatalf("%d %s", st, fut)
	}
	start := time.Now()
	if st, b := post(t, ts.url+"/generate", `{"input_ids":[1,2,3],"sampling_params":{"max_new_tokens":8}}`); st != 200 {
		t.Fatalf("generate: %d %s", st, b)
	}
	generated := time.Since(start)
	var f struct {
		RequestID string `json:"request_id"`
	}
	_ = json.Unmarshal(fut, &f)
	st, _ = tinkerPost(t, ts.url+"/api/v1/retrieve_future", map[string]any{"request_id": f.RequestID})
	if st != http.StatusRequestTimeout {
		t.Fatalf("the training step (status %d) finished before generation (%v) could show it runs alongside; make the batch larger", st, generated)
	}
	if st, b := tinkerResult(t, ts.url, fut); st != 200 {
		t.Fatalf("step: %d %s", st, b)
	}
	t.Logf("generation took %v while the step ran for %v", generated, time.Since(start))
}

// A Tinker sample cut by /pause_generation continues after
// /continue_generation (Tinker has no abort stop reason): it still returns
// max_tokens tokens, the later ones from the new weights.
func TestTinkerSampleAcrossPause(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, slowModel), nil)
	const n = 60
	st, fut := tinkerPost(t, ts.url+"/api/v1/asample", map[string]any{"base_model": "tiny", "prompt": tinker.Input([]int{1, 2, 3}),
		"sampling_params": map[string]any{"max_tokens": n, "temperature": 0}})
	if st != 200 {
		t.Fatalf("%d %s", st, fut)
	}
	waitGenerated(t, ts.Server, 3)
	if st, b := post(t, ts.url+"/pause_generation", `{}`); st != 200 {
		t.Fatalf("pause: %d %s", st, b)
	}
	if st, b := post(t, ts.url+"/continue_generation", `{}`); st != 200 {
		t.Fatalf("continue: %d %s", st, b)
	}
	st, body := tinkerResult(t, ts.url, fut)
	var out tinker.SampleResponse
	if err := json.Unmarshal(body, &out); err != nil || st != 200 {
		t.Fatalf("%d %s", st, body)
	}
	s := out.Sequences[0]
	if len(s.Tokens) != n || len(s.Logprobs) != n || s.StopReason != "length" {
		t.Fatalf("after a pause: %d tokens, %d logprobs, %s", len(s.Tokens), len(s.Logprobs), s.StopReason)
	}
	if want := greedy(t, ts.opts.Weights, []int{1, 2, 3}, n); !equalIDs(s.Tokens, want) {
		t.Fatalf("tokens %v, want the greedy continuation %v", s.Tokens, want)
	}
	// The continuation prefilled prompt + partial output again.
	if p := ts.Sampler().Stats().Prefilled; p <= 3 {
		t.Fatalf("prefilled %d tokens: the pause did not interrupt the sample", p)
	}
}

// A create_model retried with its idempotency key gets the same model, not
// a second copy of the weights.
func TestTinkerCreateModelRetry(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), nil)
	body := map[string]any{"session_id": "s", "model_seq_id": 0, "base_model": "tiny"}
	_, a := tinkerPost(t, ts.url+"/api/v1/create_model", body, "X-Idempotency-Key", "same")
	_, b := tinkerPost(t, ts.url+"/api/v1/create_model", body, "X-Idempotency-Key", "same")
	if string(a) != string(b) {
		t.Fatalf("retry got another future: %s vs %s", a, b)
	}
	ts.tinker.mu.Lock()
	n := len(ts.tinker.models)
	ts.tinker.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d models after a retried create_model", n)
	}
}
