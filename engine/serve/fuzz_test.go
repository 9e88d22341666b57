package serve

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/asearcher/asearcher/engine"
)

// fuzzServer is a tiny model with a 64-token context, so any body the
// fuzzer invents finishes quickly.
func fuzzServer(f *testing.F) *testServer {
	return newTestServer(f, testModel(f, 1, func(c *engine.Config) { c.MaxPositionEmbeddings = 64 }), func(o *Options) {
		o.LongPoll = 10 * time.Millisecond
	})
}

// fuzzBody posts body to path in process and fails on a 5xx or a panic.
func fuzzBody(t *testing.T, s *Server, path, body string) {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code >= 500 {
		t.Fatalf("%s %q: %d %s", path, body, rec.Code, rec.Body.String())
	}
}

func FuzzGenerateBody(f *testing.F) {
	ts := fuzzServer(f)
	for _, seed := range []string{
		`{"input_ids":[1,2,3],"sampling_params":{"max_new_tokens":4,"temperature":0},"return_logprob":true,"rid":"a"}`,
		`{"text":["ab","cd"],"sampling_params":{"max_new_tokens":3,"stop":["x"],"n":2}}`,
		`{"input_ids":[[1,2],[3]],"return_logprob":true,"logprob_start_len":0,"sampling_params":{"max_new_tokens":0}}`,
		`{"input_ids":[1],"stream":true,"sampling_params":{"max_new_tokens":2,"stop_token_ids":[3],"ignore_eos":true}}`,
		`{"input_ids":[1,2],"rid":["a"]}`, `{"text":null}`, `[]`, `{"sampling_params":[]}`,
		`{"input_ids":[[1,2],[3]],"sampling_params":[{"max_new_tokens":1},{"n":2,"max_new_tokens":2}]}`,
		`{"input_ids":[1,2,3],"return_logprob":true,"logprob_start_len":0,"top_logprobs_num":2,"token_ids_logprob":[1,5],"sampling_params":{"max_new_tokens":0}}`,
		`{"input_ids":[1,2],"stream":true,"return_logprob":true,"logprob_start_len":1,"sampling_params":{"max_new_tokens":2}}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) { fuzzBody(t, ts.Server, "/generate", body) })
}

func FuzzOpenAIBody(f *testing.F) {
	ts := fuzzServer(f)
	for _, seed := range []string{
		`{"messages":[{"role":"user","content":"hi"}],"max_tokens":3,"logprobs":true,"stop":["a"]}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],"stream":true,"max_tokens":2}`,
		`{"prompt":[1,2,3],"max_tokens":3,"logprobs":1,"return_token_ids":true,"n":2}`,
		`{"prompt":["ab","c"],"max_tokens":2,"stream":false,"return_tokens_as_token_ids":true}`,
		`{"prompt":"x","max_tokens":2,"stream":true,"stop":"y"}`,
		`{"prompt":[[1,2],[3]],"max_tokens":0,"echo":true,"logprobs":3}`,
		`{"prompt":[[1,2],[3]],"max_tokens":2,"n":2,"stream":true,"stream_options":{"include_usage":true}}`,
		`{"messages":[{"role":"user","content":"hi"}],"max_tokens":2,"logprobs":true,"top_logprobs":3,"n":2,"stream":true}`,
		`{"prompt":[1,2,3],"max_tokens":70,"skip_special_tokens":false}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		path := "/v1/completions"
		if strings.Contains(body, "messages") {
			path = "/v1/chat/completions"
		}
		fuzzBody(t, ts.Server, path, body)
	})
}

func FuzzTinkerBody(f *testing.F) {
	ts := fuzzServer(f)
	paths := []string{"forward_backward", "forward", "asample", "optim_step", "create_model", "retrieve_future", "save_weights_for_sampler", "create_sampling_session"}
	for i, seed := range []string{
		`{"model_id":"model-1","seq_id":1,"forward_backward_input":{"data":[{"model_input":{"chunks":[{"type":"encoded_text","tokens":[1,2]}]},"loss_fn_inputs":{"target_tokens":{"data":[2,3],"dtype":"int64","shape":[2]}}}],"loss_fn":"cross_entropy"}}`,
		`{"model_id":"model-1","forward_input":{"data":[{"model_input":{"chunks":[{"tokens":[1]}]},"loss_fn_inputs":{"target_tokens":{"data":[2],"dtype":"int64"},"logprobs":{"data":[-1],"dtype":"float32"},"advantages":{"data":[1],"dtype":"float32"}}}],"loss_fn":"ppo","loss_fn_config":{"clip_low_threshold":0.5}}}`,
		`{"base_model":"tiny","prompt":{"chunks":[{"type":"encoded_text","tokens":[1,2]}]},"num_samples":2,"prompt_logprobs":true,"sampling_params":{"max_tokens":3,"stop":[5],"seed":1}}`,
		`{"model_id":"model-1","adam_params":{"learning_rate":0.1,"beta1":0.9,"beta2":0.95,"eps":1e-8}}`,
		`{"session_id":"s","model_seq_id":0,"base_model":"tiny"}`,
		`{"request_id":"req-1-x"}`,
		`{"model_id":"model-1","path":"p"}`,
		`{"session_id":"s","sampling_session_seq_id":0,"base_model":"tiny"}`,
	} {
		f.Add(uint8(i), seed)
	}
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		fuzzBody(t, ts.Server, "/api/v1/"+paths[int(which)%len(paths)], body)
	})
}

// With an API key every request but the health checks needs it.
func TestAPIKey(t *testing.T) {
	ts := newTestServer(t, testModel(t, 1, nil), func(o *Options) { o.APIKey = "sekrit" })
	get := func(path string, header ...string) int {
		req, _ := http.NewRequest(http.MethodGet, ts.url+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		path   string
		header []string
		want   int
	}{
		{"/health", nil, 200},
		{"/api/v1/healthz", nil, 200},
		{"/v1/models", nil, 401},
		{"/v1/models", []string{"Authorization", "Bearer wrong"}, 401},
		{"/v1/models", []string{"Authorization", "Bearer sekrit"}, 200},
		{"/get_model_info", []string{"X-API-Key", "sekrit"}, 200},
	} {
		if got := get(tc.path, tc.header...); got != tc.want {
			t.Errorf("%s %v: %d, want %d", tc.path, tc.header, got, tc.want)
		}
	}
}

// Serve shuts down when its context ends, aborting what still generates.
func TestServeShutdown(t *testing.T) {
	dir := testModel(t, 1, slowModel)
	w, tok, err := engine.OpenModelDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{ModelDir: dir, Weights: w, Tokenizer: tok})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln, 100*time.Millisecond) }()
	reply := make(chan string, 1)
	go func() {
		_, body := post(t, "http://"+ln.Addr().String()+"/generate", `{"input_ids":[1,2],"sampling_params":{"max_new_tokens":3000,"ignore_eos":true}}`)
		reply <- string(body)
	}()
	waitGenerated(t, s, 2)
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return")
	}
	if body := <-reply; !strings.Contains(body, `"abort"`) {
		t.Fatalf("in-flight request after shutdown: %s", body)
	}
}

// FuzzLoRABody sends load/unload bodies (SGLang's and vLLM's) and requests
// naming adapters to a server with one adapter "a" loaded.
func FuzzLoRABody(f *testing.F) {
	ts := fuzzServer(f)
	ad, err := engine.NewAdapter(ts.opts.Weights.Config, engine.LoRAConfig{Rank: 2})
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	if err := ad.SaveAdapter(dir, ts.dir); err != nil {
		f.Fatal(err)
	}
	if err := ts.loadLoRA("a", dir, false); err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		`/load_lora_adapter {"lora_name":"b","lora_path":"` + dir + `"}`,
		`/load_lora_adapter {"lora_name":"a","lora_path":"` + dir + `","pinned":true}`,
		`/unload_lora_adapter {"lora_name":"b"}`, `/unload_lora_adapter {"lora_name":null}`,
		`/v1/load_lora_adapter {"lora_name":"a","lora_path":"` + dir + `","load_inplace":true}`,
		`/v1/load_lora_adapter {"lora_name":"c","lora_path":"tinker://m/sampler_weights/x"}`,
		`/v1/unload_lora_adapter {"lora_name":"zz","lora_int_id":3}`,
		`/generate {"input_ids":[[1,2],[3]],"lora_path":["a",null],"sampling_params":{"max_new_tokens":2}}`,
		`/generate {"input_ids":[1,2],"lora_path":"a","return_logprob":true,"logprob_start_len":0,"top_logprobs_num":2}`,
		`/generate {"input_ids":[1],"lora_path":["a"],"stream":true}`,
		`/v1/completions {"model":"a","prompt":[1,2],"max_tokens":2,"echo":true,"logprobs":2}`,
		`/v1/chat/completions {"model":"a","messages":[{"role":"user","content":"hi"}],"max_tokens":2}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		path, body, ok := strings.Cut(in, " ")
		switch path {
		case "/load_lora_adapter", "/unload_lora_adapter", "/v1/load_lora_adapter", "/v1/unload_lora_adapter",
			"/generate", "/v1/completions", "/v1/chat/completions":
		default:
			ok = false
		}
		if !ok {
			return
		}
		fuzzBody(t, ts.Server, path, body)
	})
}
