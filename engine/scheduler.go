package engine

import (
	"context"
	"slices"
	"strings"

	"github.com/asearcher/asearcher/llm"
)

// loop is the scheduler: one goroutine owns every active sequence and its
// KV cache, so no locks guard them. Each iteration admits queued requests,
// applies aborts and weight swaps, then runs one batched step.
func (s *Sampler) loop() {
	defer close(s.done)
	var active, queue []*seqState
	prefix := &prefixCache{limit: s.opts.PrefixCache, maxBytes: 1 << 30}
	model := s.next.Load()
	for {
		if len(active) == 0 && len(queue) == 0 {
			s.stats.active.Store(0)
			select {
			case seq := <-s.submit:
				queue = append(queue, seq)
			case <-s.wake:
			case <-s.quit:
				s.abortSubmitted()
				return
			}
		}
	drain:
		for {
			select {
			case seq := <-s.submit:
				queue = append(queue, seq)
			default:
				break drain
			}
		}
		select {
		case <-s.quit:
			for _, seq := range append(active, queue...) {
				s.finish(seq, llm.FinishAbort, "", nil)
			}
			s.abortSubmitted()
			return
		default:
		}
		if m := s.next.Load(); m != model {
			model = m
			prefix.clear()
			for _, seq := range active {
				seq.cache = newKVCache(model.Config) // recompute under the new weights
				seq.version = model.Version
			}
		}
		queue = slices.DeleteFunc(queue, func(seq *seqState) bool {
			if seq.aborted.Load() {
				s.finish(seq, llm.FinishAbort, "", nil)
				return true
			}
			return false
		})
		for len(queue) > 0 && len(active) < s.opts.MaxBatch {
			seq := queue[0]
			queue = queue[1:]
			seq.version = model.Version
			if c, n := prefix.take(seq.id, seq.tokens, model.Version, seq.lora); c != nil {
				seq.cache = c
				s.stats.reusedPrefix.Add(int64(n))
			} else {
				seq.cache = newKVCache(model.Config)
			}
			active = append(active, seq)
		}
		active = slices.DeleteFunc(active, func(seq *seqState) bool {
			if seq.aborted.Load() {
				s.finish(seq, llm.FinishAbort, "", prefix)
				return true
			}
			return false
		})
		s.stats.active.Store(int64(len(active)))
		if len(active) == 0 {
			continue
		}
		finished := s.step(model, active, prefix)
		if len(finished) > 0 {
			active = slices.DeleteFunc(active, func(seq *seqState) bool { return slices.Contains(finished, seq) })
		}
	}
}

// abortSubmitted answers requests still waiting in the submit channel
// when the scheduler stops.
func (s *Sampler) abortSubmitted() {
	for {
		select {
		case seq := <-s.submit:
			s.finish(seq, llm.FinishAbort, "", nil)
		default:
			return
		}
	}
}

// step runs one forward pass: every decoding sequence contributes its one
// new token and prefilling sequences share the PrefillChunk budget. Those
// whose pending tokens are all consumed sample their next token.
func (s *Sampler) step(model *Model, active []*seqState, prefix *prefixCache) (finished []*seqState) {
	var tokens []int
	var spans []span
	var ready []*seqState
	var rows []int
	budget := s.opts.PrefillChunk
	for _, seq := range active {
		pos0 := seq.cache.len()
		pending := len(seq.tokens) - pos0
		n := pending
		if pending > 1 {
			if budget <= 0 {
				continue
			}
			n = min(pending, budget)
			budget -= n
			s.stats.prefilled.Add(int64(n))
		}
		spans = append(spans, span{row: len(tokens), n: n, pos0: pos0, cache: seq.cache, lora: seq.lora})
		tokens = append(tokens, seq.tokens[pos0:pos0+n]...)
		if pos0+n == len(seq.tokens) {
			ready = append(ready, seq)
			rows = append(rows, len(tokens)-1)
		}
	}
	a, err := model.forward(context.Background(), model.W.Params, tokens, spans, false, true)
	if err != nil { // only a cancelled context fails, and this one is never cancelled
		s.opts.Logger.Error("sampler step failed", "err", err)
		for _, seq := range active {
			s.finish(seq, llm.FinishAbort, "", nil)
		}
		return active
	}
	s.stats.steps.Add(1)
	if len(ready) == 0 {
		return nil
	}
	d, V := model.Config.HiddenSize, model.Config.VocabSize
	h := make([]float32, len(rows)*d)
	for i, r := range rows {
		copy(h[i*d:i*d+d], a.hF[r*d:r*d+d])
	}
	logits := model.headRows(h, len(rows))
	var scratch []candidate
	for i, seq := range ready {
		tok, lp := sampleToken(logits[i*V:i*V+V], seq.params, seq.rng, &scratch)
		s.stats.generated.Add(1)
		if done := s.emit(seq, tok, lp, model.Version, prefix); done {
			finished = append(finished, seq)
		}
	}
	return finished
}

// emit records one sampled token and reports whether the sequence ended.
func (s *Sampler) emit(seq *seqState, tok int, lp float32, version int, prefix *prefixCache) bool {
	seq.tokens = append(seq.tokens, tok)
	seq.out = append(seq.out, tok)
	seq.logprobs = append(seq.logprobs, lp)
	seq.versions = append(seq.versions, version)
	if slices.Contains(seq.stopIDs, tok) {
		if seq.onToken != nil {
			seq.onToken(StreamEvent{ID: tok, Logprob: lp, Version: version})
		}
		s.finish(seq, llm.FinishStop, "", prefix)
		return true
	}
	var piece string
	if seq.dec != nil {
		piece = seq.dec.Add(tok)
		seq.text.WriteString(piece)
	}
	if seq.onToken != nil {
		seq.onToken(StreamEvent{ID: tok, Logprob: lp, Version: version, Text: piece})
	}
	if piece != "" {
		text := seq.text.String()
		for _, st := range seq.stops {
			if st == "" {
				continue
			}
			from := max(0, len(text)-len(piece)-len(st)+1)
			if strings.Contains(text[from:], st) {
				s.finish(seq, llm.FinishStop, st, prefix)
				return true
			}
		}
	}
	if len(seq.out) >= seq.maxNew {
		s.finish(seq, llm.FinishLength, "", prefix)
		return true
	}
	return false
}

// finish delivers the response and hands the KV cache to the prefix cache.
func (s *Sampler) finish(seq *seqState, why llm.Finish, stop string, prefix *prefixCache) {
	if seq.dec != nil {
		seq.text.WriteString(seq.dec.Flush())
	}
	resp := &llm.Response{OutputIDs: seq.out, Text: seq.text.String(), Logprobs: seq.logprobs,
		Versions: seq.versions, Finish: why, StopMatched: stop, PromptTokens: seq.promptLen}
	if resp.OutputIDs == nil {
		resp.OutputIDs, resp.Logprobs, resp.Versions = []int{}, []float32{}, []int{}
	}
	if prefix != nil && seq.cache != nil && seq.id != "" {
		prefix.put(seq.id, seq.tokens, seq.cache, seq.version, seq.lora)
	}
	seq.cache = nil
	s.forget(seq)
	seq.result <- resp
}

// prefixCache keeps finished sequences' KV caches so that the next turn of
// the same trajectory (same request ID, prompt extending the previous
// prompt + output) only prefills the new tokens.
type prefixCache struct {
	limit    int
	maxBytes int
	entries  []prefixEntry // oldest first
}

type prefixEntry struct {
	id      string
	tokens  []int
	cache   *kvCache
	version int
	lora    *Adapter // the keys and values depend on the adapter too
}

func (p *prefixCache) clear() { p.entries = nil }

func (p *prefixCache) put(id string, tokens []int, c *kvCache, version int, lora *Adapter) {
	if p.limit < 0 {
		return
	}
	p.entries = slices.DeleteFunc(p.entries, func(e prefixEntry) bool { return e.id == id })
	p.entries = append(p.entries, prefixEntry{id: id, tokens: tokens[:c.len()], cache: c, version: version, lora: lora})
	total := 0
	for _, e := range p.entries {
		total += e.cache.bytes()
	}
	for len(p.entries) > 0 && (len(p.entries) > p.limit || total > p.maxBytes) {
		total -= p.entries[0].cache.bytes()
		p.entries = p.entries[1:]
	}
}

// take returns a cache whose first n positions match prompt, leaving at
// least one prompt token to run so that the step yields logits.
func (p *prefixCache) take(id string, prompt []int, version int, lora *Adapter) (*kvCache, int) {
	if id == "" {
		return nil, 0
	}
	for i, e := range p.entries {
		if e.id != id || e.version != version || e.lora != lora {
			continue
		}
		n := 0
		for n < len(e.tokens) && n < len(prompt)-1 && e.tokens[n] == prompt[n] {
			n++
		}
		p.entries = slices.Delete(p.entries, i, i+1)
		if n == 0 {
			return nil, 0
		}
		e.cache.truncate(n)
		return e.cache, n
	}
	return nil, 0
}
