package serve

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/peft"
	"github.com/asearcher/asearcher/wire/tinker"
)

// A Tinker client asking for a LoRA rank gets a real adapter of that rank:
// sampler weights are a PEFT adapter directory (alpha 32, the modules
// lora_config leaves on), asample through it equals sampling from the
// base with the adapter merged, and a client without lora_config still
// trains full weights.
func TestTinkerLoRATraining(t *testing.T) {
	ckpt := t.TempDir()
	ts := newTestServer(t, testModel(t, 1, nil), func(o *Options) { o.CheckpointDir = ckpt })
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
	create := func(lora map[string]any) string {
		body := map[string]any{"session_id": "s", "base_model": "tiny"}
		if lora != nil {
			body["lora_config"] = lora
		}
		var out struct {
			ModelID string `json:"model_id"`
		}
		_ = json.Unmarshal(run("create_model", body), &out)
		return out.ModelID
	}
	train := func(m, name string) string {
		for i := 0; i < 2; i++ {
			run("forward_backward", fwdBwdBody(m, 0, "cross_entropy", toks, nil))
			run("optim_step", map[string]any{"model_id": m, "adam_params": map[string]any{"learning_rate": 0.05, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8}})
		}
		var sp struct{ Path string }
		_ = json.Unmarshal(run("save_weights_for_sampler", map[string]any{"model_id": m, "path": name}), &sp)
		return sp.Path
	}

	m := create(map[string]any{"rank": 4, "seed": 3, "train_unembed": true, "train_mlp": true, "train_attn": true})
	var info struct {
		IsLoRA   bool `json:"is_lora"`
		LoRARank int  `json:"lora_rank"`
	}
	st, body := tinkerPost(t, ts.url+"/api/v1/get_info", map[string]any{"model_id": m})
	if err := json.Unmarshal(body, &info); st != 200 || err != nil || !info.IsLoRA || info.LoRARank != 4 {
		t.Fatalf("get_info: %d %s", st, body)
	}
	path := train(m, "pub")
	dir := filepath.Join(ckpt, m, "sampler_weights", "pub")
	pa, err := peft.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if pa.Config.R != 4 || pa.Config.LoraAlpha != 32 || !slices.Equal(pa.Targets(), engine.LoRAModules[:]) {
		t.Fatalf("adapter r=%d alpha=%v targets %v", pa.Config.R, pa.Config.LoraAlpha, pa.Targets())
	}
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err == nil {
		t.Fatal("LoRA sampler weights hold full weights")
	}
	nonzeroB := false
	for _, mod := range pa.Modules {
		nonzeroB = nonzeroB || slices.ContainsFunc(mod.B, func(v float32) bool { return v != 0 })
	}
	if !nonzeroB {
		t.Fatal("training left every lora_B at zero")
	}

	// asample through the adapter = greedy sampling from the merged model.
	prompt := []int{1, 2, 3, 4}
	st, fut := tinkerPost(t, ts.url+"/api/v1/asample", map[string]any{"model_path": path, "prompt": tinker.Input(prompt),
		"prompt_logprobs": true, "sampling_params": map[string]any{"max_tokens": 8, "temperature": 0.0}})
	if st != 200 {
		t.Fatalf("asample: %d %s", st, fut)
	}
	st, body = tinkerResult(t, ts.url, fut)
	var got tinker.SampleResponse
	if err := json.Unmarshal(body, &got); err != nil || st != 200 {
		t.Fatalf("asample result: %d %s", st, body)
	}
	ad, err := engine.LoadAdapter(dir, ts.opts.Weights.Config)
	if err != nil {
		t.Fatal(err)
	}
	merged, err := ad.MergeInto(ts.opts.Weights)
	if err != nil {
		t.Fatal(err)
	}
	ref := engine.NewSampler(merged, 0, ts.samplerOptions())
	defer ref.Close()
	want, err := ref.Sample(context.Background(), &llm.Request{InputIDs: prompt, Params: llm.Params{MaxNewTokens: 8, StopTokenIDs: ts.eos}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Sequences[0].Tokens, want.OutputIDs) {
		t.Fatalf("asample through the adapter %v, merged model %v", got.Sequences[0].Tokens, want.OutputIDs)
	}
	for i, lp := range want.Logprobs {
		if math.Abs(float64(got.Sequences[0].Logprobs[i]-lp)) > 1e-4 {
			t.Fatalf("token %d logprob %v, merged %v", i, got.Sequences[0].Logprobs[i], lp)
		}
	}

	// prompt_logprobs come through the adapter too.
	mlps, err := engine.NewModel(merged, 0).Logits(context.Background(), prompt)
	if err != nil {
		t.Fatal(err)
	}
	wantLP := logprobsFromLogits(mlps, prompt, merged.Config.VocabSize)
	for i := 1; i < len(prompt); i++ {
		if got.PromptLogprobs[i] == nil || math.Abs(float64(*got.PromptLogprobs[i]-wantLP[i])) > 1e-4 {
			t.Fatalf("prompt logprob %d: %v, merged model %v", i, got.PromptLogprobs[i], wantLP[i])
		}
	}

	// States are adapters too, and load back into a model of the same rank.
	var saved struct{ Path string }
	_ = json.Unmarshal(run("save_weights", map[string]any{"model_id": m, "path": "st"}), &saved)
	if _, err := os.Stat(filepath.Join(ckpt, m, "state", "st", peft.ConfigFile)); err != nil {
		t.Fatalf("LoRA state is not an adapter directory: %v", err)
	}
	m2 := create(map[string]any{"rank": 4})
	run("load_weights", map[string]any{"model_id": m2, "path": saved.Path, "optimizer": true})

	// Only the MLP when train_attn is false.
	m3 := create(map[string]any{"rank": 2, "train_attn": false})
	train(m3, "mlp")
	pa3, err := peft.Load(filepath.Join(ckpt, m3, "sampler_weights", "mlp"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pa3.Targets(), []string{"gate_proj", "up_proj", "down_proj"}) {
		t.Fatalf("train_attn=false adapter targets %v", pa3.Targets())
	}

	// Without lora_config: full weights, as before.
	full := create(nil)
	train(full, "fullw")
	if _, err := os.Stat(filepath.Join(ckpt, full, "sampler_weights", "fullw", "model.safetensors")); err != nil {
		t.Fatalf("full-weight sampler weights: %v", err)
	}
	// A full-weight model cannot load a LoRA state.
	st, fut = tinkerPost(t, ts.url+"/api/v1/load_weights", map[string]any{"model_id": full, "path": saved.Path})
	if st == 200 {
		st, body = tinkerResult(t, ts.url, fut)
	}
	if st != 400 || !strings.Contains(string(body), "LoRA") {
		t.Fatalf("full-weight model loading a LoRA state: %d %s", st, body)
	}
	for _, bad := range []map[string]any{{"rank": -1}, {"rank": 4, "train_attn": false, "train_mlp": false}} {
		st, body := tinkerPost(t, ts.url+"/api/v1/create_model", map[string]any{"session_id": "s", "base_model": "tiny", "lora_config": bad})
		if st != 400 || !strings.Contains(string(body), "lora_config") {
			t.Errorf("lora_config %v: %d %s", bad, st, body)
		}
	}
}
