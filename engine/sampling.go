package engine

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/asearcher/asearcher/tokenizer"
)

// Tokenizer is what the engine needs from a tokenizer; the tokenizer
// package's *Tokenizer satisfies it. It is optional: without one the
// sampler serves token-id requests only and cannot match stop strings.
type Tokenizer interface {
	Encode(text string) []int
	Decode(ids []int) string
}

// textStream turns ids into text as they arrive; Flush returns what is held
// back at the end.
type textStream interface {
	Add(id int) string
	Flush() string
}

// newTextStream uses the tokenizer's own byte-exact stream decoder when it
// has one, else the generic one below.
func newTextStream(tok Tokenizer) textStream {
	if t, ok := tok.(*tokenizer.Tokenizer); ok {
		return t.NewStreamDecoder()
	}
	return &streamDecoder{tok: tok}
}

// streamDecoder turns ids into text as they arrive, for any Tokenizer. Byte-level BPE tokens
// can split a UTF-8 character, so ids whose decoding ends in an incomplete
// character (decoded as U+FFFD) are held back until the next one completes it.
type streamDecoder struct {
	tok     Tokenizer
	pending []int
}

// Add returns the text that the new id completes ("" while held back).
func (d *streamDecoder) Add(id int) string {
	d.pending = append(d.pending, id)
	s := d.tok.Decode(d.pending)
	// A UTF-8 character is at most 4 bytes, so 8 held ids means the
	// replacement character is real, not a split.
	if strings.HasSuffix(s, "\uFFFD") && len(d.pending) < 8 {
		return ""
	}
	d.pending = d.pending[:0]
	return s
}

// Flush returns whatever is held back.
func (d *streamDecoder) Flush() string {
	if len(d.pending) == 0 {
		return ""
	}
	s := d.tok.Decode(d.pending)
	d.pending = d.pending[:0]
	return s
}

// sampleParams are one request's sampling settings, resolved.
type sampleParams struct {
	temperature float64
	topP        float64
	topK        int
}

// sampleToken draws a token from one row of logits and returns it with its
// log-probability under softmax(z/T), the distribution it was drawn from
// before top-k and top-p (SGLang's convention; what a training forward
// pass at the sampling temperature computes for the same sequence). Greedy
// decoding returns the untempered log-probability.
func sampleToken(z []float32, p sampleParams, rng *rand.Rand, scratch *[]candidate) (int, float32) {
	lse := logSumExp(z)
	if p.temperature <= 0 {
		best := 0
		for i, v := range z {
			if v > z[best] {
				best = i
			}
		}
		return best, z[best] - lse
	}
	inv := 1 / p.temperature
	mx := float64(slices.Max(z))
	// logp is the tempered log-probability given Σ exp((z−max)/T) over the
	// whole vocabulary; at T = 1 it is z−lse exactly, as before.
	logp := func(id int, total float64) float32 {
		if p.temperature == 1 {
			return z[id] - lse
		}
		return float32((float64(z[id])-mx)*inv - math.Log(total))
	}
	filtered := p.topK > 0 && p.topK < len(z) || p.topP > 0 && p.topP < 1
	var full float64
	if !filtered || p.temperature != 1 {
		for _, v := range z {
			full += math.Exp((float64(v) - mx) * inv)
		}
	}
	if !filtered {
		// Inverse CDF over exp((z−max)/T) without building a candidate list.
		u := rng.Float64() * full
		for i, v := range z {
			u -= math.Exp((float64(v) - mx) * inv)
			if u <= 0 {
				return i, logp(i, full)
			}
		}
		last := len(z) - 1
		return last, logp(last, full)
	}
	cands := (*scratch)[:0]
	// Tokens below e^-30 of the best cannot matter to top-k/top-p unless
	// very few tokens remain; keep them only in that case.
	cut := mx - 30*p.temperature
	for i, v := range z {
		if float64(v) >= cut {
			cands = append(cands, candidate{i, math.Exp((float64(v) - mx) * inv)})
		}
	}
	if p.topK > 0 && len(cands) < p.topK && len(cands) < len(z) {
		cands = cands[:0]
		for i, v := range z {
			cands = append(cands, candidate{i, math.Exp((float64(v) - mx) * inv)})
		}
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		switch {
		case a.w > b.w:
			return -1
		case a.w < b.w:
			return 1
		}
		return a.id - b.id
	})
	if p.topK > 0 && p.topK < len(cands) {
		cands = cands[:p.topK]
	}
	var total float64
	for _, c := range cands {
		total += c.w
	}
	if p.topP > 0 && p.topP < 1 {
		var cum float64
		for i, c := range cands {
			cum += c.w
			if cum >= p.topP*total {
				cands = cands[:i+1]
				break
			}
		}
		total = 0
		for _, c := range cands {
			total += c.w
		}
	}
	*scratch = cands
	u := rng.Float64() * total
	for _, c := range cands {
		u -= c.w
		if u <= 0 {
			return c.id, logp(c.id, full)
		}
	}
	c := cands[len(cands)-1]
	return c.id, logp(c.id, full)
}

type candidate struct {
	id int
	w  float64
}
