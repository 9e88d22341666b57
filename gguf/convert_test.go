package gguf

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/tokenizer"
)

// byteLevelAlphabet is GPT-2's bytes_to_unicode: printable Latin-1 bytes
// stand for themselves, the rest for 256, 257, ... in byte order.
func byteLevelAlphabet() []string {
	var out []string
	n := 0
	for b := 0; b < 256; b++ {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE {
			out = append(out, string(rune(b)))
		} else {
			out = append(out, string(rune(256+n)))
			n++
		}
	}
	return out
}

const smolTemplate = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

// randomBlocks returns n values of type t with random quants and small,
// finite scales.
func randomBlocks(rng *rand.Rand, t GGMLType, n int) []byte {
	bv, bb, _ := t.blockLayout()
	var out []byte
	for b := 0; b < n/bv; b++ {
		blk := make([]byte, bb)
		for i := range blk {
			blk[i] = byte(rng.IntN(256))
		}
		switch t {
		case F32:
			copy(blk, le(float32(rng.NormFloat64()*0.1)))
		case F16, BF16: // keep the exponent small: 0x2xxx (F16) is ~0.01, 0x3Cxx (BF16) ~0.01
			blk[1] = 0x20 + byte(rng.IntN(8))
			if t == BF16 {
				blk[1] = 0x3C
			}
		case Q4_1, Q5_1:
			blk[1], blk[3] = 0x20+byte(rng.IntN(4)), 0xA0+byte(rng.IntN(4)) // d > 0, m < 0
		default:
			blk[1] = 0x20 + byte(rng.IntN(4))
		}
		out = append(out, blk...)
	}
	return out
}

const (
	tinyHidden, tinyHeads, tinyKV, tinyFF, tinyLayers = 32, 2, 1, 64, 2
)

// tinyLlamaGGUF is a two-layer Llama in every supported storage type, with
// a byte-level vocabulary of the 256 bytes, one merge ("Ġ t") and ChatML's
// two special tokens.
func tinyLlamaGGUF(tb testing.TB) []byte {
	tb.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	tokens := append(byteLevelAlphabet(), "Ġt", "<|im_start|>", "<|im_end|>")
	types := make([]int32, len(tokens))
	for i := range types {
		types[i] = 1
	}
	types[len(tokens)-2], types[len(tokens)-1] = 3, 3
	vocab := uint64(len(tokens))
	b := &builder{}
	b.str("general.architecture", "llama").u32("llama.block_count", tinyLayers).
		u32("llama.context_length", 512).u32("llama.embedding_length", tinyHidden).
		u32("llama.feed_forward_length", tinyFF).u32("llama.attention.head_count", tinyHeads).
		u32("llama.attention.head_count_kv", tinyKV).f32("llama.rope.freq_base", 100000).
		f32("llama.attention.layer_norm_rms_epsilon", 1e-5).u32("llama.rope.dimension_count", tinyHidden/tinyHeads).
		str("tokenizer.ggml.model", "gpt2").str("tokenizer.ggml.pre", "smollm").
		strs("tokenizer.ggml.tokens", tokens).i32s("tokenizer.ggml.token_type", types).
		strs("tokenizer.ggml.merges", []string{"Ġ t"}).
		u32("tokenizer.ggml.bos_token_id", uint32(vocab-2)).u32("tokenizer.ggml.eos_token_id", uint32(vocab-1)).
		u32("tokenizer.ggml.padding_token_id", uint32(vocab-1)).
		add("tokenizer.ggml.add_bos_token", TypeBool, []byte{0}).
		str("tokenizer.chat_template", smolTemplate)
	b.tensor("token_embd.weight", Q8_0, randomBlocks(rng, Q8_0, tinyHidden*int(vocab)), tinyHidden, vocab)
	hd := tinyHidden / tinyHeads
	for l := 0; l < tinyLayers; l++ {
		p := "blk." + string(rune('0'+l)) + "."
		b.tensor(p+"attn_norm.weight", F32, randomBlocks(rng, F32, tinyHidden), tinyHidden)
		b.tensor(p+"attn_q.weight", Q4_1, randomBlocks(rng, Q4_1, tinyHidden*tinyHidden), tinyHidden, tinyHidden)
		b.tensor(p+"attn_k.weight", Q4_0, randomBlocks(rng, Q4_0, tinyHidden*tinyKV*hd), tinyHidden, uint64(tinyKV*hd))
		b.tensor(p+"attn_v.weight", F16, randomBlocks(rng, F16, tinyHidden*tinyKV*hd), tinyHidden, uint64(tinyKV*hd))
		b.tensor(p+"attn_output.weight", BF16, randomBlocks(rng, BF16, tinyHidden*tinyHidden), tinyHidden, tinyHidden)
		b.tensor(p+"ffn_norm.weight", F32, randomBlocks(rng, F32, tinyHidden), tinyHidden)
		b.tensor(p+"ffn_gate.weight", Q5_0, randomBlocks(rng, Q5_0, tinyHidden*tinyFF), tinyHidden, tinyFF)
		b.tensor(p+"ffn_up.weight", Q5_1, randomBlocks(rng, Q5_1, tinyHidden*tinyFF), tinyHidden, tinyFF)
		b.tensor(p+"ffn_down.weight", Q8_0, randomBlocks(rng, Q8_0, tinyHidden*tinyFF), tinyFF, tinyHidden)
	}
	b.tensor("output_norm.weight", F32, randomBlocks(rng, F32, tinyHidden), tinyHidden)
	return b.bytes()
}

func writeTemp(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConvertTinyLlama(t *testing.T) {
	f, err := Open(writeTemp(t, tinyLlamaGGUF(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := filepath.Join(t.TempDir(), "model")
	got, err := Convert(f, dir, ConvertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ChatFormat != tokenizer.ChatSmolLM2 {
		t.Errorf("chat format %q, want smollm2", got.ChatFormat)
	}
	w, err := engine.LoadWeights(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := w.Config
	if c.ModelType != "llama" || !c.TieWordEmbeddings || c.NumKeyValueHeads != tinyKV || c.RMSNormEps != 1e-5 ||
		c.RopeTheta != 100000 || c.VocabSize != 259 || c.MaxPositionEmbeddings != 512 || *c.BOSTokenID != 257 ||
		!slices.Equal(c.EOSTokenID, engine.TokenIDs{258}) {
		t.Errorf("config %+v", c)
	}
	// q and k rows go back to transformers' order: within a head of size
	// hd, GGUF row 2i+j is transformers' row j·hd/2+i.
	hd := tinyHidden / tinyHeads
	for _, proj := range []struct {
		gguf, hf string
		heads    int
	}{{"blk.1.attn_q.weight", "model.layers.1.self_attn.q_proj.weight", tinyHeads},
		{"blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight", tinyKV}} {
		raw, err := f.Float32(proj.gguf)
		if err != nil {
			t.Fatal(err)
		}
		conv, _ := w.Tensor(proj.hf)
		for h := 0; h < proj.heads; h++ {
			for _, rows := range [][2]int{{0, 0}, {1, 2}, {hd / 2, 1}, {hd/2 + 1, 3}, {hd - 1, hd - 1}} {
				hf, gg := h*hd+rows[0], h*hd+rows[1]
				if !slices.Equal(conv[hf*tinyHidden:(hf+1)*tinyHidden], raw[gg*tinyHidden:(gg+1)*tinyHidden]) {
					t.Errorf("%s: transformers row %d is not GGUF row %d", proj.hf, hf, gg)
				}
			}
		}
	}
	// Other tensors are copied as they are.
	down, _ := f.Float32("blk.0.ffn_down.weight")
	if conv, _ := w.Tensor("model.layers.0.mlp.down_proj.weight"); !slices.Equal(conv, down) {
		t.Error("down_proj differs from the GGUF tensor")
	}

	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	// "Ġ t" merges; digits stay single (the smollm pre-tokenizer); the
	// special tokens are whole.
	if ids := tok.Encode(" t"); !slices.Equal(ids, []int{256}) {
		t.Errorf(`" t" = %v, want the merged token 256`, ids)
	}
	if ids := tok.Encode("12"); len(ids) != 2 || tok.Decode(ids) != "12" {
		t.Errorf(`"12" = %v, want two single-digit tokens`, ids)
	}
	if ids := tok.Encode("<|im_end|>"); !slices.Equal(ids, []int{258}) {
		t.Errorf("<|im_end|> = %v", ids)
	}
	text, err := tok.ApplyChatTemplate([]tokenizer.Message{{Role: "user", Content: "hi"}}, tokenizer.ChatOptions{AddGenerationPrompt: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"; text != want {
		t.Errorf("chat = %q", text)
	}
	var tc map[string]any
	raw, _ := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err := json.Unmarshal(raw, &tc); err != nil {
		t.Fatal(err)
	}
	if tc["chat_template"] != smolTemplate || tc["eos_token"] != "<|im_end|>" || tc["bos_token"] != "<|im_start|>" {
		t.Errorf("tokenizer_config %v", tc)
	}
	var gen map[string]any
	raw, _ = os.ReadFile(filepath.Join(dir, "generation_config.json"))
	if err := json.Unmarshal(raw, &gen); err != nil || gen["eos_token_id"] != 258.0 {
		t.Errorf("generation_config %s (%v)", raw, err)
	}
	// The engine runs it.
	m := engine.NewModel(w, 0)
	if _, err := m.Logits(t.Context(), tok.Encode("hello there")); err != nil {
		t.Fatal(err)
	}
}

func TestConvertRejects(t *testing.T) {
	base := func() *builder {
		return (&builder{}).str("general.architecture", "llama")
	}
	tests := []struct {
		name string
		file []byte
		want string
	}{
		{"architecture", (&builder{}).str("general.architecture", "qwen2").bytes(), `architecture "qwen2"`},
		{"no layers", base().bytes(), "llama.block_count is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseBytes(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Convert(f, t.TempDir(), ConvertOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// llamaCppPermute is what llama.cpp's converter does to q/k rows
// (reshape(heads, 2, hd/2, ·).swapaxes(1, 2)), written independently of
// unpermuteRoPE so the round trip checks one against the other.
func llamaCppPermute(w []float32, rows, cols, heads int) []float32 {
	hd := rows / heads
	out := make([]float32, len(w))
	for h := 0; h < heads; h++ {
		for a := 0; a < 2; a++ {
			for i := 0; i < hd/2; i++ {
				// source index (h, a, i) lands at (h, i, a)
				src := h*hd + a*(hd/2) + i
				dst := h*hd + i*2 + a
				copy(out[dst*cols:(dst+1)*cols], w[src*cols:(src+1)*cols])
			}
		}
	}
	return out
}

func TestUnpermuteRoPEInvertsLlamaCpp(t *testing.T) {
	rows, cols, heads := 24, 3, 3
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(i)
	}
	back, err := unpermuteRoPE(llamaCppPermute(w, rows, cols, heads), []int{rows, cols}, heads, rows/heads)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back, w) {
		t.Errorf("round trip = %v", back)
	}
	if _, err := unpermuteRoPE(w, []int{rows, cols}, 5, 4); err == nil {
		t.Error("a row count that is not heads × head size was accepted")
	}
}
