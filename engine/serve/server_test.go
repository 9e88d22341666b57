package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/llm"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testModel writes a randomly initialised model directory (ChatML byte
// tokenizer) with cfg's dimensions and returns its path.
func testModel(t testing.TB, seed uint64, edit func(*engine.Config)) string {
	t.Helper()
	cfg, err := engine.Preset("tiny", 16)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(cfg)
	}
	dir := filepath.Join(t.TempDir(), "model")
	if _, err := engine.InitModelDir(context.Background(), dir, engine.InitOptions{Config: cfg, Seed: seed, DType: engine.F32}); err != nil {
		t.Fatal(err)
	}
	return dir
}

type testServer struct {
	*Server
	url string
	dir string
}

func newTestServer(t testing.TB, dir string, edit func(*Options)) *testServer {
	t.Helper()
	w, tok, err := engine.OpenModelDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{ModelName: "tiny", ModelDir: dir, Weights: w, Tokenizer: tok, LongPoll: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if edit != nil {
		edit(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		hs.Close()
		s.Close()
	})
	return &testServer{Server: s, url: hs.URL, dir: dir}
}

// post sends a JSON body and returns the status and reply.
func post(t testing.TB, url string, body any) (int, []byte) {
	t.Helper()
	var data []byte
	switch b := body.(type) {
	case string:
		data = []byte(b)
	default:
		var err error
		if data, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// greedy is the greedy continuation of prompt under w, n tokens.
func greedy(t testing.TB, w *engine.Weights, prompt []int, n int) []int {
	t.Helper()
	seq := append([]int(nil), prompt...)
	m := engine.NewModel(w, 0)
	V := w.Config.VocabSize
	for range n {
		logits, err := m.Logits(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		row := logits[(len(seq)-1)*V:]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		seq = append(seq, best)
	}
	return seq[len(prompt):]
}

// The llm package's SGLang client works against the server unchanged, and
// greedy output equals the model's own greedy continuation.
func TestSGLangClientGenerates(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), nil)
	c, err := llm.NewSGLang(llm.SGLangConfig{BaseURL: ts.url})
	if err != nil {
		t.Fatal(err)
	}
	prompt := []int{10, 20, 30, 40}
	resp, err := c.Sample(context.Background(), &llm.Request{ID: "r1", InputIDs: prompt, Params: llm.Params{MaxNewTokens: 12}})
	if err != nil {
		t.Fatal(err)
	}
	want := greedy(t, ts.opts.Weights, prompt, 12)
	if !equalIDs(resp.OutputIDs, want[:len(resp.OutputIDs)]) {
		t.Fatalf("greedy output %v, want %v", resp.OutputIDs, want)
	}
	if resp.Finish == llm.FinishLength && len(resp.OutputIDs) != 12 {
		t.Fatalf("finish length after %d tokens", len(resp.OutputIDs))
	}
	if len(resp.Logprobs) != len(resp.OutputIDs) || len(resp.Versions) != len(resp.OutputIDs) {
		t.Fatalf("%d tokens, %d logprobs, %d versions", len(resp.OutputIDs), len(resp.Logprobs), len(resp.Versions))
	}
	for i, lp := range resp.Logprobs {
		if lp > 0 || resp.Versions[i] != 0 {
			t.Fatalf("token %d: logprob %v version %d", i, lp, resp.Versions[i])
		}
	}
	if err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Text prompts go through the tokenizer.
	tr, err := c.Sample(context.Background(), &llm.Request{Prompt: "hello", Params: llm.Params{MaxNewTokens: 3, Temperature: 1, Seed: seedPtr(3)}})
	if err != nil || len(tr.OutputIDs) == 0 {
		t.Fatalf("text prompt: %v %+v", err, tr)
	}
}

func seedPtr(v int64) *int64 { return &v }

func equalIDs(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The OpenAI client (chat through the tokenizer's template, completions
// with token ids) works unchanged.
func TestOpenAIClient(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), nil)
	c, err := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: ts.url + "/v1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	chat, err := c.Sample(ctx, &llm.Request{Messages: []llm.Message{{Role: "user", Content: "hi"}}, Params: llm.Params{MaxNewTokens: 6}})
	if err != nil {
		t.Fatal(err)
	}
	if len(chat.OutputIDs) == 0 || len(chat.Logprobs) != len(chat.OutputIDs) {
		t.Fatalf("chat: %+v", chat)
	}
	comp, err := c.Sample(ctx, &llm.Request{InputIDs: []int{5, 6, 7}, Params: llm.Params{MaxNewTokens: 5}})
	if err != nil {
		t.Fatal(err)
	}
	want := greedy(t, ts.opts.Weights, []int{5, 6, 7}, 5)
	if !equalIDs(comp.OutputIDs, want[:len(comp.OutputIDs)]) {
		t.Fatalf("completion %v, want %v", comp.OutputIDs, want)
	}
	// /v1/models lists the served model.
	resp, err := http.Get(ts.url + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	var models struct {
		Data []struct{ ID string } `json:"data"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&models)
	resp.Body.Close()
	if len(models.Data) != 1 || models.Data[0].ID != "tiny" {
		t.Fatalf("models: %+v", models)
	}
}

// Streaming chat sends role, content deltas whose concatenation is the
// non-streamed text, a finish chunk, usage and [DONE].
func TestOpenAIChatStream(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), nil)
	req := map[string]any{"model": "tiny", "messages": []any{map[string]any{"role": "user", "content": "abc"}},
		"max_tokens": 8, "temperature": 0, "stream": true, "stream_options": map[string]any{"include_usage": true}}
	status, body := post(t, ts.url+"/v1/chat/completions", req)
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	var text strings.Builder
	var finish string
	usageSeen, done := false, false
	for _, line := range strings.Split(string(body), "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		var ch struct {
			Choices []struct {
				Delta        struct{ Content string } `json:"delta"`
				FinishReason *string                  `json:"finish_reason"`
			} `json:"choices"`
			Usage *struct{ CompletionTokens int } `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &ch); err != nil {
			t.Fatalf("chunk %q: %v", data, err)
		}
		if ch.Usage != nil {
			usageSeen = true
		}
		for _, c := range ch.Choices {
			text.WriteString(c.Delta.Content)
			if c.FinishReason != nil {
				finish = *c.FinishReason
			}
		}
	}
	delete(req, "stream")
	delete(req, "stream_options")
	status, body = post(t, ts.url+"/v1/chat/completions", req)
	var full struct {
		Choices []struct {
			Message      struct{ Content string } `json:"message"`
			FinishReason string                   `json:"finish_reason"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(body, &full); err != nil || status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	if !done || !usageSeen || finish != full.Choices[0].FinishReason || text.String() != full.Choices[0].Message.Content {
		t.Fatalf("stream: done %v usage %v finish %q text %q; full %+v", done, usageSeen, finish, text.String(), full)
	}
}

// SGLang's abort ends a running request with its partial output.
func TestAbortRequest(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, slowModel), nil)
	c, _ := llm.NewSGLang(llm.SGLangConfig{BaseURL: ts.url})
	type result struct {
		resp *llm.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		r, err := c.Sample(context.Background(), &llm.Request{ID: "long", InputIDs: []int{1, 2, 3}, Params: llm.Params{MaxNewTokens: 3000}})
		done <- result{r, err}
	}()
	waitGenerated(t, ts.Server, 5)
	if err := c.Abort(context.Background(), "long"); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.resp.Finish != llm.FinishAbort || len(r.resp.OutputIDs) == 0 || len(r.resp.OutputIDs) >= 3000 {
		t.Fatalf("abort: finish %s after %d tokens", r.resp.Finish, len(r.resp.OutputIDs))
	}
}

// slowModel makes decoding slow enough (~ms per token) that a test can act
// while a request is still generating.
func slowModel(c *engine.Config) {
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 256, 768, 4
	c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim = 4, 2, 64
	c.MaxPositionEmbeddings = 4096
}

func waitGenerated(t testing.TB, s *Server, n int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s.Sampler().Stats().Generated < n {
		if time.Now().After(deadline) {
			t.Fatal("generation did not start")
		}
		time.Sleep(time.Millisecond)
	}
}

// The must-show: pause mid-sequence (the request ends with its partial
// output), swap weights from disk, continue, resubmit prompt + partial
// output; every token carries the version that produced it, and each
// segment is exactly the greedy continuation under its weights.
func TestPauseSwapContinueVersions(t *testing.T) {
	dir := testModel(t, 1, slowModel)
	dir2 := testModel(t, 2, slowModel)
	ts := newTestServer(t, dir, nil)
	c, _ := llm.NewSGLang(llm.SGLangConfig{BaseURL: ts.url})
	var segments []*llm.Response
	var mu sync.Mutex
	rec := samplerFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		r, err := c.Sample(ctx, req)
		if err == nil {
			mu.Lock()
			segments = append(segments, r)
			mu.Unlock()
		}
		return r, err
	})
	interrupted := make(chan struct{})
	resume := make(chan struct{})
	res := llm.NewResumer(rec)
	res.Wait = func(ctx context.Context) error {
		close(interrupted)
		<-resume
		return nil
	}
	prompt := []int{7, 8, 9, 10}
	const budget = 40
	type result struct {
		resp *llm.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		r, err := res.Sample(context.Background(), &llm.Request{ID: "traj-1", InputIDs: prompt, Params: llm.Params{MaxNewTokens: budget}})
		done <- result{r, err}
	}()
	waitGenerated(t, ts.Server, 3)
	if st, body := post(t, ts.url+"/pause_generation", `{"mode":"abort"}`); st != 200 {
		t.Fatalf("pause: %d %s", st, body)
	}
	<-interrupted
	st, body := post(t, ts.url+"/update_weights_from_disk", map[string]any{"model_path": dir2, "weight_version": "1"})
	if st != 200 || !strings.Contains(string(body), `"success":true`) {
		t.Fatalf("update: %d %s", st, body)
	}
	if st, body := post(t, ts.url+"/continue_generation", `{}`); st != 200 {
		t.Fatalf("continue: %d %s", st, body)
	}
	close(resume)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(segments) != 2 || segments[0].Finish != llm.FinishAbort {
		t.Fatalf("want an aborted segment and its continuation, got %d segments", len(segments))
	}
	k := len(segments[0].OutputIDs)
	if k == 0 || k >= budget {
		t.Fatalf("the pause came after %d tokens; want mid-sequence", k)
	}
	if len(r.resp.Versions) != len(r.resp.OutputIDs) || len(r.resp.OutputIDs) != budget {
		t.Fatalf("%d tokens, %d versions", len(r.resp.OutputIDs), len(r.resp.Versions))
	}
	for i, v := range r.resp.Versions {
		if want := map[bool]int{true: 0, false: 1}[i < k]; v != want {
			t.Fatalf("token %d has version %d, want %d (pause after %d tokens)", i, v, want, k)
		}
	}
	w1, _, _ := engine.OpenModelDir(dir)
	w2, _, _ := engine.OpenModelDir(dir2)
	if want := greedy(t, w1, prompt, k); !equalIDs(r.resp.OutputIDs[:k], want) {
		t.Fatalf("version-0 tokens %v, want %v", r.resp.OutputIDs[:k], want)
	}
	partial := append(append([]int(nil), prompt...), r.resp.OutputIDs[:k]...)
	if want := greedy(t, w2, partial, budget-k); !equalIDs(r.resp.OutputIDs[k:], want) {
		t.Fatalf("version-1 tokens %v, want %v", r.resp.OutputIDs[k:], want)
	}
	if got := ts.Version(); got != 1 {
		t.Fatalf("server version %d", got)
	}
}

type samplerFunc func(ctx context.Context, req *llm.Request) (*llm.Response, error)

func (f samplerFunc) Sample(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	return f(ctx, req)
}

// A weight update without a pause switches requests in flight at the next
// step: versions within one response go 0…0 1…1.
func TestSwapMidRequest(t *testing.T) {
	dir := testModel(t, 1, slowModel)
	dir2 := testModel(t, 2, slowModel)
	ts := newTestServer(t, dir, nil)
	c, _ := llm.NewSGLang(llm.SGLangConfig{BaseURL: ts.url})
	done := make(chan *llm.Response, 1)
	go func() {
		r, err := c.Sample(context.Background(), &llm.Request{ID: "x", InputIDs: []int{3, 4}, Params: llm.Params{MaxNewTokens: 400}})
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	waitGenerated(t, ts.Server, 3)
	if st, body := post(t, ts.url+"/update_weights_from_disk", map[string]any{"model_path": dir2}); st != 200 {
		t.Fatalf("update: %d %s", st, body)
	}
	r := <-done
	if r == nil {
		return
	}
	switches := 0
	for i := 1; i < len(r.Versions); i++ {
		if r.Versions[i] != r.Versions[i-1] {
			switches++
		}
	}
	if r.Versions[0] != 0 || r.Versions[len(r.Versions)-1] != 1 || switches != 1 {
		t.Fatalf("versions %v", r.Versions)
	}
}

// Bad requests get a 4xx with a message, and the server keeps serving.
func TestBadRequests(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), nil)
	cases := []struct {
		path, body string
		status     int
		msg        string
	}{
		{"/generate", `{"input_ids":[1,2],"text":"x"}`, 400, "either text or input_ids"},
		{"/generate", `{"input_ids":[1,99999]}`, 400, "outside the vocabulary"},
		{"/generate", `{"input_ids":"abc"}`, 400, "input_ids must be"},
		{"/generate", `{"input_ids":[1],"bogus":1}`, 400, "unexpected keyword argument 'bogus'"},
		{"/generate", `{"input_ids":[1],"sampling_params":{"temperature":-1}}`, 400, "temperature"},
		{"/generate", `{"input_ids":[1],"sampling_params":{"max_new_tokens":"x"}}`, 400, "max_new_tokens"},
		{"/generate", `not json`, 400, "not a JSON object"},
		{"/generate", `{"input_ids":[` + strings.Repeat("1,", 2100) + `1]}`, 400, "context length"},
		{"/generate", `{"input_ids":[1,2],"return_logprob":true,"logprob_start_len":5}`, 400, "logprob_start_len"},
		{"/update_weights_from_disk", `{"model_path":"/nonexistent"}`, 400, "not a model directory"},
		{"/abort_request", `{}`, 400, "rid"},
		{"/v1/chat/completions", `{"model":"other","messages":[{"role":"user","content":"x"}]}`, 404, "does not exist"},
		{"/v1/chat/completions", `{"messages":[]}`, 400, "messages"},
		{"/v1/completions", `{"prompt":[1,2],"max_tokens":0}`, 400, "max_tokens"},
		{"/v1/completions", `{"prompt":{"a":1}}`, 400, "prompt must be"},
	}
	for _, tc := range cases {
		st, body := post(t, ts.url+tc.path, tc.body)
		if st != tc.status || !strings.Contains(string(body), tc.msg) {
			t.Errorf("%s %s: got %d %s, want %d containing %q", tc.path, tc.body[:min(len(tc.body), 60)], st, body, tc.status, tc.msg)
		}
	}
	if st, _ := post(t, ts.url+"/generate", `{"input_ids":[1,2],"sampling_params":{"max_new_tokens":2}}`); st != 200 {
		t.Fatalf("server not serving after bad requests: %d", st)
	}
}

// Scoring a given sequence: max_new_tokens 0 with logprob_start_len
// returns input_token_logprobs equal to the training forward pass.
func TestGenerateScoresPrompt(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), nil)
	ids := []int{4, 8, 15, 16, 23, 42}
	st, body := post(t, ts.url+"/generate", map[string]any{"input_ids": ids, "return_logprob": true, "logprob_start_len": 0,
		"sampling_params": map[string]any{"max_new_tokens": 0}})
	if st != 200 {
		t.Fatalf("%d %s", st, body)
	}
	var r struct {
		OutputIDs []int `json:"output_ids"`
		MetaInfo  struct {
			InputTokenLogprobs [][]any `json:"input_token_logprobs"`
			FinishReason       struct{ Type string }
		} `json:"meta_info"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.OutputIDs) != 0 || len(r.MetaInfo.InputTokenLogprobs) != len(ids) || r.MetaInfo.InputTokenLogprobs[0][0] != nil {
		t.Fatalf("%s", body)
	}
	l := engine.NewLearner(ts.opts.Weights)
	fw, err := l.Forward(context.Background(), []engine.Example{{Input: ids[:len(ids)-1], Target: ids[1:]}}, engine.Loss{Fn: engine.CrossEntropy})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(ids); i++ {
		got := r.MetaInfo.InputTokenLogprobs[i][0].(float64)
		if d := got - float64(fw.Logprobs[0][i-1]); d > 1e-4 || d < -1e-4 {
			t.Fatalf("position %d: %v vs forward %v", i, got, fw.Logprobs[0][i-1])
		}
	}
}

// Golden files pin the reply shapes of /generate, /get_model_info,
// /v1/chat/completions and /v1/completions (greedy, so deterministic;
// latency and ids are blanked).
func TestGolden(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), nil)
	cases := []struct{ name, path, body string }{
		{"generate_ids", "/generate", `{"input_ids":[1,2,3],"sampling_params":{"max_new_tokens":4,"temperature":0},"return_logprob":true,"rid":"golden"}`},
		{"generate_text_batch", "/generate", `{"text":["ab","cd"],"sampling_params":{"max_new_tokens":3,"temperature":0}}`},
		{"generate_score", "/generate", `{"input_ids":[5,6,7],"sampling_params":{"max_new_tokens":0},"return_logprob":true,"logprob_start_len":1,"return_text_in_logprobs":true}`},
		{"model_info", "/get_model_info", ``},
		{"chat", "/v1/chat/completions", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"temperature":0,"logprobs":true}`},
		{"completion", "/v1/completions", `{"model":"tiny","prompt":[1,2,3],"max_tokens":3,"temperature":0,"logprobs":1,"return_token_ids":true}`},
		{"error_openai", "/v1/completions", `{"prompt":[1],"temperature":9}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var st int
			var body []byte
			if tc.body == "" {
				resp, err := http.Get(ts.url + tc.path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				st = resp.StatusCode
			} else {
				st, body = post(t, ts.url+tc.path, tc.body)
			}
			got := normalise(t, body, ts.dir)
			got = append([]byte(http.StatusText(st)+"\n"), got...)
			path := filepath.Join("testdata", "golden", tc.name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("reply differs from %s:\n%s\nwant\n%s", path, got, want)
			}
		})
	}
}

// normalise blanks volatile fields and indents.
func normalise(t testing.TB, body []byte, dir string) []byte {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	var walk func(any) any
	walk = func(x any) any {
		switch y := x.(type) {
		case map[string]any:
			for k, val := range y {
				switch k {
				case "e2e_latency", "created", "id":
					y[k] = "<volatile>"
				case "model_path", "tokenizer_path":
					y[k] = strings.ReplaceAll(val.(string), dir, "<dir>")
				default:
					y[k] = walk(val)
				}
			}
		case []any:
			for i := range y {
				y[i] = walk(y[i])
			}
		case float64:
			// Logprobs differ in the last bits across CPUs (FMA, threads).
			return math.Round(y*1e3) / 1e3
		}
		return x
	}
	out, err := json.MarshalIndent(walk(v), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

// SGLang streaming: cumulative chunks, then the full reply, then [DONE];
// the last reply equals the non-streamed one.
func TestGenerateStream(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), nil)
	req := map[string]any{"input_ids": []int{1, 2, 3}, "sampling_params": map[string]any{"max_new_tokens": 6, "temperature": 0}, "stream": true}
	st, body := post(t, ts.url+"/generate", req)
	if st != 200 {
		t.Fatalf("%d %s", st, body)
	}
	var chunks []string
	for _, line := range strings.Split(string(body), "\n") {
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			chunks = append(chunks, data)
		}
	}
	if len(chunks) < 2 || chunks[len(chunks)-1] != "[DONE]" {
		t.Fatalf("chunks %q", chunks)
	}
	var last struct {
		OutputIDs []int `json:"output_ids"`
		MetaInfo  struct {
			FinishReason map[string]any `json:"finish_reason"`
		} `json:"meta_info"`
	}
	if err := json.Unmarshal([]byte(chunks[len(chunks)-2]), &last); err != nil {
		t.Fatal(err)
	}
	delete(req, "stream")
	_, full := post(t, ts.url+"/generate", req)
	var want struct {
		OutputIDs []int `json:"output_ids"`
	}
	_ = json.Unmarshal(full, &want)
	if !equalIDs(last.OutputIDs, want.OutputIDs) || last.MetaInfo.FinishReason["type"] != "length" {
		t.Fatalf("streamed %v (%v), want %v", last.OutputIDs, last.MetaInfo.FinishReason, want.OutputIDs)
	}
}

// A stop string is trimmed identically with and without streaming, and
// streaming never sends a prefix of it.
func TestChatStreamStopString(t *testing.T) {
	ts := newTestServer(t, testModel(t, 3, nil), nil)
	// Find a seed whose sample has ASCII tokens 4..5 not seen before them:
	// their text is then a stop string that first matches there.
	var base map[string]any
	var ids []int
	var stop string
	for seed := 1; seed <= 200 && stop == ""; seed++ {
		base = map[string]any{"messages": []any{map[string]any{"role": "user", "content": "q"}}, "max_tokens": 16,
			"temperature": 1, "seed": seed, "return_token_ids": true, "ignore_eos": true}
		_, body := post(t, ts.url+"/v1/chat/completions", base)
		var full struct {
			Choices []struct {
				TokenIDs []int `json:"token_ids"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(body, &full); err != nil {
			t.Fatalf("%s", body)
		}
		ids = full.Choices[0].TokenIDs
		cand := ts.opts.Tokenizer.Decode(ids[4:6])
		clean := len(cand) == 2 && cand[0] >= 0x20 && cand[0] < 0x7f && cand[1] >= 0x20 && cand[1] < 0x7f
		if clean && !strings.Contains(ts.opts.Tokenizer.Decode(ids[:5]), cand) && !strings.ContainsRune(ts.opts.Tokenizer.Decode(ids[:4]), '\uFFFD') {
			stop = cand
		}
	}
	if stop == "" {
		t.Fatal("no seed gave a clean stop string")
	}
	var body []byte
	base["stop"] = []string{stop}
	delete(base, "return_token_ids")
	_, body = post(t, ts.url+"/v1/chat/completions", base)
	var stopped struct {
		Choices []struct {
			Message      struct{ Content string } `json:"message"`
			FinishReason string                   `json:"finish_reason"`
			StopReason   any                      `json:"stop_reason"`
		} `json:"choices"`
	}
	_ = json.Unmarshal(body, &stopped)
	want := ts.opts.Tokenizer.Decode(ids[:4])
	if c := stopped.Choices[0]; c.Message.Content != want || c.FinishReason != "stop" || c.StopReason != stop {
		t.Fatalf("with stop %q: %s; want content %q", stop, body, want)
	}
	base["stream"] = true
	_, body = post(t, ts.url+"/v1/chat/completions", base)
	var text strings.Builder
	for _, line := range strings.Split(string(body), "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var ch struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		_ = json.Unmarshal([]byte(data), &ch)
		for _, c := range ch.Choices {
			text.WriteString(c.Delta.Content)
		}
	}
	if text.String() != want {
		t.Fatalf("streamed %q, want %q", text.String(), want)
	}
}

func TestSafePrefix(t *testing.T) {
	cases := []struct {
		text  string
		stops []string
		want  int
	}{
		{"hello", nil, 5},
		{"hello</", []string{"</search>"}, 5},
		{"hello</search> more", []string{"</search>"}, 5},
		{"abc", []string{"x"}, 3},
		{"abx", []string{"xy", "bxz"}, 1},
		{"é", []string{"\xa9z"}, 0}, // never split a character
		{"", []string{"a"}, 0},
	}
	for _, c := range cases {
		if got := safePrefix(c.text, c.stops); got != c.want {
			t.Errorf("safePrefix(%q, %q) = %d, want %d", c.text, c.stops, got, c.want)
		}
	}
}
