package engine

import (
	"context"
	"fmt"
)

// Logits runs one sequence through the inference path (KV cache, packed
// weights) and returns logits for every position, [len(tokens)×vocab].
func (m *Model) Logits(ctx context.Context, tokens []int) ([]float32, error) {
	return m.LogitsLoRA(ctx, tokens, nil)
}

// LogitsLoRA is Logits through a LoRA adapter (nil: the base model).
func (m *Model) LogitsLoRA(ctx context.Context, tokens []int, ad *Adapter) ([]float32, error) {
	if err := m.checkTokens(tokens); err != nil {
		return nil, err
	}
	if ad != nil {
		if err := ad.compatible(m.Config); err != nil {
			return nil, err
		}
	}
	cache := newKVCache(m.Config)
	a, err := m.forward(ctx, m.W.Params, tokens, []span{{row: 0, n: len(tokens), cache: cache, lora: ad}}, false, true)
	if err != nil {
		return nil, err
	}
	return m.headRows(a.hF, len(tokens)), nil
}

// headRows multiplies rows of final hidden states by the output head.
func (m *Model) headRows(hF []float32, rows int) []float32 {
	m.packAll()
	out := make([]float32, rows*m.Config.VocabSize)
	matMulPacked(out, hF[:rows*m.Config.HiddenSize], rows, m.headPack, false)
	return out
}

func (m *Model) checkTokens(tokens []int) error {
	if len(tokens) == 0 {
		return fmt.Errorf("empty input")
	}
	for _, t := range tokens {
		if t < 0 || t >= m.Config.VocabSize {
			return fmt.Errorf("token id %d outside the vocabulary [0, %d)", t, m.Config.VocabSize)
		}
	}
	return nil
}
