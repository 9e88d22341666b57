package serve

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// queueState is the Tinker queue's requests and bytes.
func queueState(ts *testServer) (int64, int64) {
	return ts.tinker.queued.Load(), ts.tinker.queuedBytes.Load()
}

// postRaw posts a JSON body and returns the whole response (headers
// included) with its body read.
func postRaw(t *testing.T, url string, body any) (*http.Response, []byte) {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

// wantQueueFull checks the Tinker-shaped 429 a full queue answers.
func wantQueueFull(t *testing.T, what string, resp *http.Response, body []byte) {
	t.Helper()
	var e struct {
		Error    string `json:"error"`
		Category string `json:"category"`
	}
	if resp.StatusCode != http.StatusTooManyRequests || json.Unmarshal(body, &e) != nil ||
		e.Category != "server" || !strings.Contains(e.Error, "queue is full") || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("%s on a full queue: %d %s (Retry-After %q), want 429 {error: queue is full, category: server} with Retry-After 1",
			what, resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
}

// The Tinker requests waiting to run are bounded in number and in body
// bytes: past either a submission is a 429 with Retry-After in Tinker's
// error shape; a retry of a queued request still gets its future, the
// request a model's queue waits for is always let in, and finished
// requests give their room back.
func TestTinkerQueueBound(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), func(o *Options) {
		o.LongPoll = 50 * time.Millisecond
		o.GapTimeout = time.Hour // seq_ids after a gap wait: the queue stays full
		o.MaxTinkerQueue = 3
	})
	model := newTinkerModel(t, ts.url)
	if n, b := queueState(ts); n != 0 || b != 0 {
		t.Fatalf("after create_model finished the queue holds %d requests, %d bytes", n, b)
	}
	adam := map[string]any{"learning_rate": 0.01}
	optim := func(seq int) map[string]any {
		return map[string]any{"model_id": model, "seq_id": seq, "adam_params": adam}
	}
	// seq_ids 2..4 wait for 1: three requests, the bound.
	futs := map[int][]byte{}
	for seq := 2; seq <= 4; seq++ {
		st, fut := tinkerPost(t, ts.url+"/api/v1/optim_step", optim(seq))
		if st != http.StatusOK {
			t.Fatalf("seq %d: %d %s", seq, st, fut)
		}
		futs[seq] = fut
	}
	resp, body := postRaw(t, ts.url+"/api/v1/optim_step", optim(5))
	wantQueueFull(t, "optim_step", resp, body)
	resp, body = postRaw(t, ts.url+"/api/v1/asample", map[string]any{"base_model": "tiny", "prompt": map[string]any{"chunks": []any{map[string]any{"type": "encoded_text", "tokens": []int{1, 2, 3}}}}, "sampling_params": map[string]any{"max_tokens": 2}})
	wantQueueFull(t, "asample", resp, body)
	resp, body = postRaw(t, ts.url+"/api/v1/create_model", map[string]any{"session_id": "s", "base_model": "tiny"})
	wantQueueFull(t, "create_model", resp, body)
	ts.tinker.mu.Lock()
	models := len(ts.tinker.models)
	ts.tinker.mu.Unlock()
	if models != 1 {
		t.Fatalf("a refused create_model left a model behind: %d models", models)
	}
	// A retry of a queued request is not a new request.
	if st, again := tinkerPost(t, ts.url+"/api/v1/optim_step", optim(3)); st != http.StatusOK || string(again) != string(futs[3]) {
		t.Fatalf("retry of queued seq 3: %d %s, want its future %s", st, again, futs[3])
	}
	// seq 1 is what the queue waits for: let in past the bound.
	st, fut1 := tinkerPost(t, ts.url+"/api/v1/optim_step", optim(1))
	if st != http.StatusOK {
		t.Fatalf("seq 1 on a full queue: %d %s", st, fut1)
	}
	futs[1] = fut1
	for seq := 1; seq <= 4; seq++ {
		if st, body := tinkerResult(t, ts.url, futs[seq]); st != http.StatusOK {
			t.Fatalf("seq %d: %d %s", seq, st, body)
		}
	}
	if n, b := queueState(ts); n != 0 || b != 0 {
		t.Fatalf("after every request finished the queue holds %d requests, %d bytes", n, b)
	}
	st, fut5 := tinkerPost(t, ts.url+"/api/v1/optim_step", optim(5))
	if st != http.StatusOK {
		t.Fatalf("seq 5 once the queue drained: %d %s", st, fut5)
	}
	if st, body := tinkerResult(t, ts.url, fut5); st != http.StatusOK {
		t.Fatalf("seq 5: %d %s", st, body)
	}
}

// The byte bound: bodies waiting to run add up to at most
// MaxTinkerQueueBytes, whatever their number.
func TestTinkerQueueBoundBytes(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), func(o *Options) {
		o.LongPoll = 50 * time.Millisecond
		o.GapTimeout = time.Hour
		o.MaxBodyBytes = 2048
		o.MaxTinkerQueueBytes = 2048
	})
	model := newTinkerModel(t, ts.url)
	pad := strings.Repeat("x", 800) // an unknown field: ignored, but its bytes are held
	optim := func(seq int) map[string]any {
		return map[string]any{"model_id": model, "seq_id": seq, "adam_params": map[string]any{"learning_rate": 0.01}, "pad": pad}
	}
	for seq := 2; seq <= 3; seq++ {
		if st, fut := tinkerPost(t, ts.url+"/api/v1/optim_step", optim(seq)); st != http.StatusOK {
			t.Fatalf("seq %d: %d %s", seq, st, fut)
		}
	}
	if _, b := queueState(ts); b < 1600 || b > 2048 {
		t.Fatalf("two ~900-byte bodies queued count %d bytes", b)
	}
	resp, body := postRaw(t, ts.url+"/api/v1/optim_step", optim(4))
	wantQueueFull(t, "a third body", resp, body)
}
