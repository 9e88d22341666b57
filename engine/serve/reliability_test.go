package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/wire/sglang"
)

// The attacks of issue 12 on the model server, bounded and on loopback.
// ASEARCHER_RELIABILITY=1 runs the heavy version (more connections).

// heldConns is how many half-sent requests the flood test holds.
func heldConns() int {
	switch {
	case os.Getenv("ASEARCHER_RELIABILITY") == "1":
		return 15000
	case testing.Short():
		return 300
	}
	return 1500
}

// serveLoopback runs s.Serve (the production path, with its connection
// limiter) on a loopback port until the test ends.
func serveLoopback(t *testing.T, dir string, edit func(*Options)) (*Server, string) {
	t.Helper()
	w, tok, err := engine.OpenModelDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{ModelName: "tiny", ModelDir: dir, Weights: w, Tokenizer: tok, Logger: slog.New(slog.DiscardHandler)}
	if edit != nil {
		edit(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, time.Second) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s, ln.Addr().String()
}

// healthWithin asks /health on a fresh connection and fails the test
// unless a 200 comes within limit.
func healthWithin(t *testing.T, addr string, limit time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: limit, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	resp, err := client.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatalf("/health did not answer within %v: %v", limit, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/health answered %d", resp.StatusCode)
	}
	t.Logf("/health answered in %v", time.Since(start).Round(time.Millisecond))
}

// A flood of half-sent requests (headers cut short, or a body cut short,
// with and without an API key) holds no more than MaxConns connections:
// the stalest are closed as new ones come, and /health still answers
// within 1 s.
func TestReliabilityHeldConnections(t *testing.T) {
	n := heldConns()
	const maxConns = 64
	for _, key := range []string{"", "k3y"} {
		t.Run(fmt.Sprintf("api-key=%v", key != ""), func(t *testing.T) {
			s, addr := serveLoopback(t, testModel(t, 1, nil), func(o *Options) {
				o.MaxConns, o.APIKey = maxConns, key
			})
			conns := make([]net.Conn, 0, n)
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for i := range n {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatalf("dial %d: %v", i, err)
				}
				conns = append(conns, c)
				partial := "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" // headers cut short
				if i%2 == 0 {
					partial += "Content-Length: 1000\r\n\r\n{\"prompt\": \"hel" // body cut short
				}
				if _, err := io.WriteString(c, partial); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
			}
			// Held, not still arriving: wait until the server has accepted
			// the whole flood (a loaded CI machine accepts slowly).
			lim := s.conns.Load()
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if o, ev, _ := lim.stats(); int(ev)+o >= n || time.Now().After(deadline) {
					break
				}
			}
			healthWithin(t, addr, time.Second)
			// The server closed all but (at most) maxConns of them.
			deadline := time.Now().Add(time.Second)
			open := 0
			buf := make([]byte, 1)
			for _, c := range conns {
				_ = c.SetReadDeadline(deadline)
				if _, err := c.Read(buf); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						open++
					}
				}
			}
			if open > maxConns {
				t.Fatalf("%d of %d half-sent requests still held open by the server (cap %d)", open, n, maxConns)
			}
			if o, ev, _ := lim.stats(); o > maxConns || ev < int64(n-maxConns) {
				t.Fatalf("limiter: %d open, %d evicted; want ≤ %d open and ≥ %d evicted", o, ev, maxConns, n-maxConns)
			}
			healthWithin(t, addr, time.Second)
		})
	}
}

// A body that stops arriving is cut off after BodyTimeout, but a request
// whose body has arrived may run (and stream) far longer than that.
func TestReliabilityBodyTimeout(t *testing.T) {
	_, addr := serveLoopback(t, testModel(t, 1, slowModel), func(o *Options) {
		o.BodyTimeout = 300 * time.Millisecond
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, _ = io.WriteString(c, "POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"input_ids\": [1,")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a half-sent body was held for 5 s (BodyTimeout 300ms)")
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("a half-sent body was held for %v", el)
	}
	if len(rest) > 0 && !strings.Contains(string(rest), " 400 ") {
		t.Fatalf("reply to a timed-out body: %q", rest)
	}

	// Slow model: 64 tokens take well over 300 ms on this machine; the
	// request must finish by length, not be cancelled by the deadline.
	body := `{"input_ids":[1,2,3],"sampling_params":{"max_new_tokens":64,"temperature":0,"ignore_eos":true}}`
	start = time.Now()
	resp, err := http.Post("http://"+addr+"/generate", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out sglang.Reply
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	fin, _ := out.MetaInfo.FinishReason.(map[string]any)
	if resp.StatusCode != 200 || fin["type"] != "length" || len(out.OutputIDs) != 64 {
		t.Fatalf("long request after %v: %d, finish %v, %d tokens", time.Since(start), resp.StatusCode, out.MetaInfo.FinishReason, len(out.OutputIDs))
	}
	t.Logf("a %v request outlived the 300ms body timeout", time.Since(start).Round(time.Millisecond))
}

// rawRequest sends head (and body, if any) on a new connection and reads
// one response.
func rawRequest(t *testing.T, url, head, body string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, head+body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, data
}

func wantJSONError(t *testing.T, what string, status int, body []byte, wantStatus int, wantMsg string) {
	t.Helper()
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if status != wantStatus || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error.Message, wantMsg) {
		t.Errorf("%s: got %d %s, want %d with a JSON error containing %q", what, status, body, wantStatus, wantMsg)
	}
}

// Bodies and prompt lists past what a real client sends get a JSON 413
// without being read whole; bodies that do not fit in flight wait, then
// get a JSON 429.
func TestReliabilityLargeBodies(t *testing.T) {
	const maxBody = 1 << 20
	ts := newTestServer(t, testModel(t, 1, nil), func(o *Options) {
		o.MaxBodyBytes, o.MaxInflightBytes, o.AdmitWait, o.MaxPrompts = maxBody, 2*maxBody, 200*time.Millisecond, 32
	})

	// A declared length over the cap is refused before any body is sent.
	resp, data := rawRequest(t, ts.url, fmt.Sprintf("POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", 98<<20), "")
	wantJSONError(t, "98 MB Content-Length", resp.StatusCode, data, 413, "--max-body-bytes")

	// A chunked body is cut at the cap.
	big := `{"input_ids":[` + strings.Repeat("1,", maxBody) + `1]}`
	req, _ := http.NewRequest(http.MethodPost, ts.url+"/generate", io.MultiReader(strings.NewReader(big))) // no length: chunked
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ = io.ReadAll(r2.Body)
	r2.Body.Close()
	wantJSONError(t, "chunked 2 MB body", r2.StatusCode, data, 413, "exceeds")

	// Prompt lists: 10,000 prompts, or 20 prompts × n 2, past the cap of 32.
	many := make([]string, 10000)
	for i := range many {
		many[i] = "hi"
	}
	for _, tc := range []struct {
		path string
		body any
	}{
		{"/v1/completions", map[string]any{"prompt": many, "max_tokens": 1}},
		{"/v1/completions", map[string]any{"prompt": many[:20], "max_tokens": 1, "n": 2}},
		{"/generate", map[string]any{"text": many, "sampling_params": map[string]any{"max_new_tokens": 1}}},
		{"/generate", map[string]any{"input_ids": [][]int{{1}, {2}}, "sampling_params": map[string]any{"max_new_tokens": 1, "n": 17}}},
	} {
		st, body := post(t, ts.url+tc.path, tc.body)
		wantJSONError(t, tc.path+" prompt list", st, body, 413, "--max-prompts")
	}

	// Two half-sent bodies of the maximum size fill the in-flight budget;
	// a third request waits AdmitWait and gets a 429 with Retry-After.
	var holders []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		holders = append(holders, c)
		fmt.Fprintf(c, "POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n{\"input_ids\":[1,", maxBody)
	}
	deadline := time.Now().Add(5 * time.Second)
	for ts.admission.inUse() < 2*maxBody && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	small := `{"input_ids":[1,2],"sampling_params":{"max_new_tokens":1}}`
	resp, data = rawRequest(t, ts.url, fmt.Sprintf("POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(small)), small)
	wantJSONError(t, "request past the in-flight budget", resp.StatusCode, data, 429, "--max-inflight-bytes")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	for _, c := range holders {
		c.Close()
	}
	deadline = time.Now().Add(5 * time.Second)
	for ts.admission.inUse() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st, body := post(t, ts.url+"/generate", small); st != 200 {
		t.Fatalf("after the holders left: %d %s", st, body)
	}
}

// Unknown paths and wrong methods answer JSON errors, as does a handler
// panic (a 500, the connection kept).
func TestJSONErrorsEverywhere(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), nil)
	ts.mux.HandleFunc("/test-panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	cases := []struct {
		method, path string
		status       int
	}{
		{"GET", "/nope", 404},
		{"POST", "/v1/nope", 404},
		{"GET", "/v1/completions", 405},
		{"GET", "/v1/chat/completions", 405},
		{"POST", "/v1/models", 405},
		{"GET", "/v1/models/other", 404},
		{"GET", "/generate", 405},
		{"GET", "/api/v1/nope", 404},
		{"GET", "/test-panic", 500},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, ts.url+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var v map[string]any
		if resp.StatusCode != tc.status || json.Unmarshal(data, &v) != nil || v["error"] == nil {
			t.Errorf("%s %s: %d %q, want %d with a JSON error", tc.method, tc.path, resp.StatusCode, data, tc.status)
		}
	}
	resp, err := http.Get(ts.url + "/v1/models/tiny")
	if err != nil {
		t.Fatal(err)
	}
	var card map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&card)
	resp.Body.Close()
	if resp.StatusCode != 200 || card["id"] != "tiny" || card["object"] != "model" {
		t.Fatalf("GET /v1/models/tiny: %d %v", resp.StatusCode, card)
	}
}

// tinker:// paths cannot name anything outside --checkpoint-dir.
func TestTinkerPathConfined(t *testing.T) {
	root := t.TempDir()
	ckpt := filepath.Join(root, "ckpt")
	// A model directory that a ".." path would reach.
	outside := filepath.Join(root, "sampler_weights", "X")
	src := testModel(t, 2, nil)
	if err := os.MkdirAll(filepath.Dir(outside), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(src, outside); err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, testModel(t, 1, nil), func(o *Options) { o.CheckpointDir = ckpt })
	for _, p := range []string{"tinker://../sampler_weights/X", "tinker://./sampler_weights/X", "tinker://..%2F/sampler_weights/X", "tinker://a/b/sampler_weights/X"} {
		if _, _, _, ok := parseTinkerPath(p); ok {
			t.Errorf("parseTinkerPath(%q) accepted", p)
		}
		st, body := post(t, ts.url+"/update_weights_from_disk", map[string]any{"model_path": p})
		if st == 200 {
			t.Errorf("update_weights_from_disk %s loaded weights from outside the checkpoint dir: %s", p, body)
		}
	}
}

// max_tokens must be positive when given, on both endpoints.
func TestMaxTokensMustBePositive(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), nil)
	for _, mt := range []int{-1, -5, 0} {
		st, body := post(t, ts.url+"/v1/chat/completions", map[string]any{"messages": []any{map[string]any{"role": "user", "content": "x"}}, "max_tokens": mt})
		wantJSONError(t, fmt.Sprintf("chat max_tokens %d", mt), st, body, 400, "max_tokens")
		st, body = post(t, ts.url+"/v1/completions", map[string]any{"prompt": "x", "max_tokens": mt})
		wantJSONError(t, fmt.Sprintf("completions max_tokens %d", mt), st, body, 400, "max_tokens")
	}
}

// A request whose logprob listing would be huge (sequences × positions ×
// alternatives) is refused before anything is computed.
func TestReliabilityLogprobBudget(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), nil)
	batch := make([][]int, 200)
	for i := range batch {
		batch[i] = []int{1, 2, 3}
	}
	st, body := post(t, ts.url+"/generate", map[string]any{"input_ids": batch, "return_logprob": true, "top_logprobs_num": 1000,
		"sampling_params": map[string]any{"max_new_tokens": 100}})
	wantJSONError(t, "/generate 200 × 100 × 1000 top logprobs", st, body, 413, "logprob entries")
	st, body = post(t, ts.url+"/v1/completions", map[string]any{"prompt": batch, "max_tokens": 1000, "logprobs": 20})
	wantJSONError(t, "completions 200 × 1000 × 20 top logprobs", st, body, 413, "logprob entries")
	st, _ = post(t, ts.url+"/generate", map[string]any{"input_ids": batch[:2], "return_logprob": true, "top_logprobs_num": 5,
		"sampling_params": map[string]any{"max_new_tokens": 2}})
	if st != 200 {
		t.Fatalf("a small top-logprobs request: %d", st)
	}
}
