package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asearcher/asearcher/llm"
)

// SamplerOptions configure a Sampler; zero values take the defaults.
type SamplerOptions struct {
	// Tokenizer decodes output text, matches stop strings and encodes
	// text prompts. Optional for token-id requests.
	Tokenizer Tokenizer
	// ChatTemplate renders Messages requests into a prompt. Optional.
	ChatTemplate func([]llm.Message) (string, error)
	// StopTokenIDs end every request (the model's EOS, <|im_end|>, ...).
	StopTokenIDs []int
	// MaxBatch caps the sequences decoded together (default 64); later
	// requests queue until a slot frees.
	MaxBatch int
	// PrefillChunk caps prompt tokens processed per step across sequences
	// (default 512), so long prompts do not stall decoding of others.
	PrefillChunk int
	// DefaultMaxNewTokens applies when a request sets none (default 512).
	DefaultMaxNewTokens int
	// PrefixCache is how many finished sequences keep their KV cache for
	// reuse by the next request with the same ID (default 32; -1 disables).
	PrefixCache int
	Logger      *slog.Logger
}

// Sampler generates from an in-process model with continuous batching:
// every step runs one forward pass over all active sequences (prefill
// chunks and single decoding tokens packed together), and new requests join
// between steps. It implements llm.Sampler and llm.Aborter.
type Sampler struct {
	opts   SamplerOptions
	next   atomic.Pointer[Model] // weights to use from the next step on
	submit chan *seqState
	wake   chan struct{}
	quit   chan struct{}
	done   chan struct{}

	mu       sync.Mutex
	byID     map[string][]*seqState // queued and active sequences
	paused   bool
	resumeCh chan struct{}
	rng      *rand.Rand

	stats samplerStats
}

type samplerStats struct {
	steps, generated, prefilled, reusedPrefix atomic.Int64
	active                                    atomic.Int64
}

// StreamEvent is one generated token, delivered as it is sampled.
type StreamEvent struct {
	ID      int
	Logprob float32
	Version int
	// Text is the newly completed text (empty while a multi-byte character
	// is split across tokens, and for stop tokens).
	Text string
}

type seqState struct {
	id        string
	tokens    []int // prompt, then generated
	promptLen int
	maxNew    int
	params    sampleParams
	stopIDs   []int
	stops     []string
	rng       *rand.Rand
	cache     *kvCache
	version   int // weights the cache was computed with
	// lora is the adapter the request named, held for its whole life:
	// unloading or replacing the adapter by name does not change it.
	lora *Adapter

	out      []int
	logprobs []float32
	versions []int
	text     strings.Builder
	dec      textStream
	onToken  func(StreamEvent)

	aborted atomic.Bool
	result  chan *llm.Response
}

// NewSampler starts a sampler over w, which it never mutates; version
// stamps the tokens it generates until SetWeights replaces it.
func NewSampler(w *Weights, version int, opts SamplerOptions) *Sampler {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 64
	}
	if opts.PrefillChunk <= 0 {
		opts.PrefillChunk = 512
	}
	if opts.DefaultMaxNewTokens <= 0 {
		opts.DefaultMaxNewTokens = 512
	}
	if opts.PrefixCache == 0 {
		opts.PrefixCache = 32
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Sampler{opts: opts, submit: make(chan *seqState, 1024), wake: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{}), byID: map[string][]*seqState{},
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))}
	s.next.Store(NewModel(w, version))
	go s.loop()
	return s
}

// Close stops the scheduler; in-flight requests end as aborted.
func (s *Sampler) Close() {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	<-s.done
}

// SetWeights publishes new weights. Sequences in flight switch at the next
// step: their KV caches are recomputed under the new weights (prompt plus
// what they generated so far), and every later token carries version.
func (s *Sampler) SetWeights(w *Weights, version int) {
	m := NewModel(w, version)
	m.packAll() // pack here, off the decoding loop
	s.next.Store(m)
	s.poke()
}

// Version is the weight version new tokens are generated with.
func (s *Sampler) Version() int { return s.next.Load().Version }

// Config is the model configuration being served.
func (s *Sampler) Config() *Config { return s.next.Load().Config }

// Tokenizer returns the tokenizer the sampler was given (nil if none).
func (s *Sampler) Tokenizer() Tokenizer { return s.opts.Tokenizer }

func (s *Sampler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Sample generates for one request.
func (s *Sampler) Sample(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	return s.SampleStream(ctx, req, nil)
}

// SampleStream is Sample with a callback per generated token, called from
// the scheduler goroutine (keep it short).
func (s *Sampler) SampleStream(ctx context.Context, req *llm.Request, onToken func(StreamEvent)) (*llm.Response, error) {
	return s.SampleLoRA(ctx, req, nil, onToken)
}

// SampleLoRA is SampleStream through a LoRA adapter (nil: the base model).
// Sequences with different adapters share batches: each adds its own
// adapter's low-rank terms to its rows.
func (s *Sampler) SampleLoRA(ctx context.Context, req *llm.Request, ad *Adapter, onToken func(StreamEvent)) (*llm.Response, error) {
	seq, err := s.newSeq(req)
	if err != nil {
		return nil, err
	}
	if ad != nil {
		if err := ad.compatible(s.Config()); err != nil {
			return nil, err
		}
		seq.lora = ad
	}
	seq.onToken = onToken
	s.mu.Lock()
	for s.paused {
		ch := s.resumeCh
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		s.mu.Lock()
	}
	s.byID[seq.id] = append(s.byID[seq.id], seq)
	s.mu.Unlock()
	select {
	case s.submit <- seq:
	case <-ctx.Done():
		s.forget(seq)
		return nil, ctx.Err()
	case <-s.quit:
		s.forget(seq)
		return nil, errors.New("sampler closed")
	}
	s.poke()
	select {
	case r := <-seq.result:
		return r, nil
	case <-ctx.Done():
		seq.aborted.Store(true)
		s.poke()
		return nil, ctx.Err()
	case <-s.done:
		// The scheduler answers everything it holds before it exits; a
		// request still in the submit queue then gets no answer.
		select {
		case r := <-seq.result:
			return r, nil
		default:
			s.forget(seq)
			return nil, errors.New("sampler closed")
		}
	}
}

func (s *Sampler) forget(seq *seqState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.byID[seq.id]
	list = slices.DeleteFunc(list, func(x *seqState) bool { return x == seq })
	if len(list) == 0 {
		delete(s.byID, seq.id)
	} else {
		s.byID[seq.id] = list
	}
}

// Abort ends the requests with this ID; their Sample calls return the
// partial output with FinishAbort. Unknown IDs are not an error (the
// request may have just finished).
func (s *Sampler) Abort(ctx context.Context, requestID string) error {
	s.mu.Lock()
	for _, seq := range s.byID[requestID] {
		seq.aborted.Store(true)
	}
	s.mu.Unlock()
	s.poke()
	return ctx.Err()
}

// Pause ends every in-flight request with its partial output (FinishAbort)
// and holds new requests until Continue, the way SGLang's
// /pause_generation is used around a weight update.
func (s *Sampler) Pause() {
	s.mu.Lock()
	if !s.paused {
		s.paused = true
		s.resumeCh = make(chan struct{})
	}
	for _, list := range s.byID {
		for _, seq := range list {
			seq.aborted.Store(true)
		}
	}
	s.mu.Unlock()
	s.poke()
}

// Continue releases requests held by Pause.
func (s *Sampler) Continue() {
	s.mu.Lock()
	if s.paused {
		s.paused = false
		close(s.resumeCh)
	}
	s.mu.Unlock()
}

func (s *Sampler) newSeq(req *llm.Request) (*seqState, error) {
	m := s.next.Load()
	ids := req.InputIDs
	switch {
	case len(ids) > 0:
	case len(req.Messages) > 0:
		if s.opts.ChatTemplate == nil || s.opts.Tokenizer == nil {
			return nil, errors.New("chat requests need a tokenizer with a chat template; send input_ids")
		}
		text, err := s.opts.ChatTemplate(req.Messages)
		if err != nil {
			return nil, fmt.Errorf("chat template: %w", err)
		}
		ids = s.opts.Tokenizer.Encode(text)
	case req.Prompt != "":
		if s.opts.Tokenizer == nil {
			return nil, errors.New("text prompts need a tokenizer; send input_ids")
		}
		ids = s.opts.Tokenizer.Encode(req.Prompt)
	}
	if len(ids) == 0 {
		return nil, errors.New("empty prompt")
	}
	if err := m.checkTokens(ids); err != nil {
		return nil, err
	}
	p := req.Params
	if len(p.Stop) > 0 && s.opts.Tokenizer == nil {
		return nil, errors.New("stop strings need a tokenizer; use stop_token_ids")
	}
	if p.Temperature < 0 || p.TopP < 0 || p.TopP > 1 || p.MaxNewTokens < 0 {
		return nil, fmt.Errorf("bad sampling params: temperature %v, top_p %v, max_new_tokens %d", p.Temperature, p.TopP, p.MaxNewTokens)
	}
	ctxLen := m.Config.MaxPositionEmbeddings
	if len(ids) >= ctxLen {
		return nil, fmt.Errorf("prompt of %d tokens leaves no room in the %d-token context: %w", len(ids), ctxLen, llm.ErrContextLength)
	}
	maxNew := p.MaxNewTokens
	if maxNew == 0 {
		maxNew = s.opts.DefaultMaxNewTokens
	}
	maxNew = min(maxNew, ctxLen-len(ids))
	var seed uint64
	if p.Seed != nil {
		seed = uint64(*p.Seed)
	} else {
		s.mu.Lock()
		seed = s.rng.Uint64()
		s.mu.Unlock()
	}
	seq := &seqState{
		id: req.ID, tokens: append(make([]int, 0, len(ids)+maxNew), ids...), promptLen: len(ids), maxNew: maxNew,
		params:  sampleParams{temperature: p.Temperature, topP: p.TopP, topK: p.TopK},
		stopIDs: append(slices.Clone(p.StopTokenIDs), s.opts.StopTokenIDs...), stops: p.Stop,
		rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)), result: make(chan *llm.Response, 1),
	}
	if s.opts.Tokenizer != nil {
		seq.dec = newTextStream(s.opts.Tokenizer)
	}
	return seq, nil
}

// ContextLength implements llm.ContextLengther: the model's position
// limit (max_position_embeddings), past which newSeq refuses a prompt.
func (s *Sampler) ContextLength(context.Context) int {
	return s.next.Load().Config.MaxPositionEmbeddings
}

// SamplerStats is a snapshot of the scheduler's counters.
type SamplerStats struct {
	Steps, Generated, Prefilled, ReusedPrefix, Active int64
}

// Stats returns the scheduler's counters.
func (s *Sampler) Stats() SamplerStats {
	return SamplerStats{Steps: s.stats.steps.Load(), Generated: s.stats.generated.Load(),
		Prefilled: s.stats.prefilled.Load(), ReusedPrefix: s.stats.reusedPrefix.Load(), Active: s.stats.active.Load()}
}
