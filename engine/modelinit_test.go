package engine

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tokenizer"
)

func TestInitModelDirAndGenerate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "corpus.jsonl")
	corpus := strings.Repeat(`{"id": "1", "contents": "Paris is the capital of France.\nIt lies on the Seine."}`+"\n", 20) +
		"The quick brown fox jumps over the lazy dog.\n"
	if err := os.WriteFile(src, []byte(corpus), 0o644); err != nil {
		t.Fatal(err)
	}
	texts, err := ReadTrainTexts([]string{src})
	if err != nil || len(texts) != 21 || !strings.Contains(texts[0], "Seine") {
		t.Fatalf("ReadTrainTexts: %d texts, %v", len(texts), err)
	}
	cfg, _ := Preset("tiny", 16)
	got, err := InitModelDir(ctx, dir, InitOptions{Config: cfg, Seed: 3, DType: BF16, TrainTexts: texts, TrainVocab: 300})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("missing %s", f)
		}
	}
	w, tok, err := OpenModelDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if w.Config.VocabSize != got.VocabSize || w.Config.VocabSize%16 != 0 || tok.VocabSize() > w.Config.VocabSize {
		t.Fatalf("vocab: config %d, tokenizer %d", w.Config.VocabSize, tok.VocabSize())
	}
	imEnd, _ := tok.TokenID("<|im_end|>")
	if stops := StopTokens(dir, w.Config, tok); len(stops) < 2 || stops[0] > imEnd && stops[1] > imEnd {
		t.Fatalf("stop tokens %v lack <|im_end|> %d", stops, imEnd)
	}
	s, err := NewSamplerForDir(dir, SamplerOptions{}, tokenizer.ChatOptions{DisableThinking: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out bytes.Buffer
	// A fixed sampling seed: unseeded, the random model's first token was
	// a stop token in 3 of 300 runs (1 token, empty text; it failed CI once).
	seed := int64(1)
	st, err := Generate(ctx, s, "Paris is", GenerateOptions{Params: llm.Params{MaxNewTokens: 12, Temperature: 1, Seed: &seed}}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if st.NewTokens == 0 || out.Len() == 0 {
		t.Fatalf("generated %d tokens, %q", st.NewTokens, out.String())
	}
	// Chat: the prompt goes through the template, so it has the ChatML
	// markers and is longer than the bare text.
	out.Reset()
	st2, err := Generate(ctx, s, "Paris is", GenerateOptions{Chat: true, System: "Be brief.", Params: llm.Params{MaxNewTokens: 4}}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if st2.PromptTokens <= st.PromptTokens+6 {
		t.Fatalf("chat prompt %d tokens vs plain %d", st2.PromptTokens, st.PromptTokens)
	}
	// A supplied tokenizer is copied as is.
	dir2 := t.TempDir()
	if _, err := InitModelDir(ctx, dir2, InitOptions{Config: cfg, TokenizerPath: dir, DType: F32}); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	b, _ := os.ReadFile(filepath.Join(dir2, "tokenizer.json"))
	if !bytes.Equal(a, b) {
		t.Fatal("supplied tokenizer was not copied verbatim")
	}
}

func TestConfigParsing(t *testing.T) {
	good := `{"model_type":"qwen2","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,
		"num_attention_heads":2,"num_key_value_heads":1,"max_position_embeddings":32,"eos_token_id":[3,4],
		"rope_scaling":null,"rope_parameters":{"rope_type":"default","rope_theta":500000}}`
	c, err := ParseConfig([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.RopeTheta != 500000 || len(c.EOSTokenID) != 2 || c.headDim() != 4 || !c.qkvBias() || c.qkNorm() {
		t.Fatalf("parsed %+v", c)
	}
	for name, bad := range map[string]string{
		"type":    `{"model_type":"llama"}`,
		"gqa":     strings.Replace(good, `"num_key_value_heads":1`, `"num_key_value_heads":3`, 1),
		"rope":    strings.Replace(good, `"rope_type":"default"`, `"rope_type":"yarn"`, 1),
		"sliding": strings.Replace(good, `"rope_scaling":null`, `"use_sliding_window":true`, 1),
		"zero":    strings.Replace(good, `"hidden_size":8`, `"hidden_size":0`, 1),
		"eos":     strings.Replace(good, `[3,4]`, `"x"`, 1),
		"json":    `{`,
	} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"model_type":"qwen3","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,"head_dim":4,"max_position_embeddings":32}`))
	f.Add([]byte(`{"model_type":"qwen2","eos_token_id":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err == nil && (c.headDim() <= 0 || c.NumAttentionHeads%c.NumKeyValueHeads != 0) {
			t.Fatalf("accepted an unusable config %+v", c)
		}
	})
}

func FuzzDecodeSafetensors(f *testing.F) {
	ok, _ := EncodeSafetensors([]NamedTensor{{Name: "a", Shape: []int{2, 3}, Data: make([]float32, 6)},
		{Name: "b", Shape: []int{1}, Data: []float32{1}}}, BF16, map[string]string{"format": "pt"})
	f.Add(ok)
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, '{'})
	f.Add([]byte(nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, err := DecodeSafetensors(data)
		if err != nil {
			return
		}
		for name, tt := range ts {
			n := 1
			for _, d := range tt.Shape {
				n *= d
			}
			if n != len(tt.Data) {
				t.Fatalf("%s: shape %v but %d values", name, tt.Shape, len(tt.Data))
			}
		}
	})
}

func TestSafetensorsRoundTrip(t *testing.T) {
	vals := []float32{0, 1, -2.5, 3.14159, 1e-8, -65504, 70000, 1e-30}
	for _, dt := range []DType{F32, F16, BF16} {
		buf, err := EncodeSafetensors([]NamedTensor{{Name: "x", Shape: []int{len(vals)}, Data: vals}}, dt, nil)
		if err != nil {
			t.Fatal(err)
		}
		ts, err := DecodeSafetensors(buf)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			got := ts["x"].Data[i]
			tol := map[DType]float64{F32: 0, F16: 1e-3, BF16: 8e-3}[dt] * float64(abs32(v))
			if dt == F16 && (abs32(v) > 65504 || abs32(v) < 6e-8 && v != 0) {
				continue // outside the half range: inf or flushed to zero
			}
			if float64(abs32(got-v)) > tol {
				t.Errorf("%s: %v -> %v", dt, v, got)
			}
		}
	}
	if _, err := EncodeSafetensors([]NamedTensor{{Name: "x", Shape: []int{3}, Data: vals}}, F32, nil); err == nil {
		t.Error("shape mismatch accepted")
	}
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}

// A config shaped like Qwen/Qwen3-0.6B's (transformers 4 fields, with the
// extras the engine ignores) and its transformers 5 spelling parse to the
// same architecture: 0.44B parameters besides the 0.16B embedding, and
// 224 KiB of KV cache per token.
func TestConfigQwen3SmallCheckpoint(t *testing.T) {
	v4 := `{"architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
	"bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024,
	"initializer_range": 0.02, "intermediate_size": 3072, "max_position_embeddings": 40960, "max_window_layers": 28,
	"model_type": "qwen3", "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
	"rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null,
	"tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": true,
	"use_sliding_window": false, "vocab_size": 151936}`
	v5 := strings.NewReplacer(`"rope_scaling": null, "rope_theta": 1000000,`,
		`"rope_parameters": {"rope_type": "default", "rope_theta": 1000000}, "layer_types": ["full_attention"],`,
		`"torch_dtype"`, `"dtype"`).Replace(v4)
	for _, raw := range []string{v4, v5} {
		c, err := ParseConfig([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		embed := c.VocabSize * c.HiddenSize
		if n := c.ParamCount() - embed; n < 440e6 || n > 441e6 {
			t.Fatalf("%d non-embedding parameters, want 0.44B", n)
		}
		if c.KVBytesPerToken() != 224<<10 || c.RopeTheta != 1e6 || !c.TieWordEmbeddings || !c.qkNorm() || c.qkvBias() {
			t.Fatalf("parsed %+v", c)
		}
		if d, err := ParseDType(c.TorchDtype); err != nil || d != BF16 {
			t.Fatalf("dtype %q: %v", c.TorchDtype, err)
		}
	}
	a, _ := ParseConfig([]byte(v4))
	b, _ := ParseConfig([]byte(v5))
	if !sameArchitecture(a, b) {
		t.Fatal("the transformers 4 and 5 spellings give different architectures")
	}
}
