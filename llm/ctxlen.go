package llm

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"time"
)

// ErrContextLength marks a request the server refused because prompt plus
// max tokens exceed the model's context window. It is not retryable: the
// same request fails the same way on every replica. Match it with
// errors.Is; the agent ends the trajectory as context_full on it.
var ErrContextLength = errors.New("prompt and max tokens exceed the model's context length")

// ContextLengther is implemented by samplers that know their model's
// context length: the most prompt + generated tokens one call can hold (a
// longer request is refused). Agents cap their context budget to it, so a
// run that outgrows the model ends as context_full instead of a model
// error.
type ContextLengther interface {
	// ContextLength is the model's context window in tokens, learned once
	// from the server (or the engine's config); 0 when unknown.
	ContextLength(ctx context.Context) int
}

// Unwrapper is implemented by samplers that wrap another one (limits,
// gates, resubmitters), so that ContextLength can see through them.
type Unwrapper interface {
	Unwrap() Sampler
}

// ContextLength is the context window of the model behind s, looking
// through wrappers; 0 when no layer knows it.
func ContextLength(ctx context.Context, s Sampler) int {
	for range 16 { // wrappers nest a few deep; the bound stops a cycle
		if cl, ok := s.(ContextLengther); ok {
			return cl.ContextLength(ctx)
		}
		u, ok := s.(Unwrapper)
		if !ok {
			return 0
		}
		s = u.Unwrap()
		if s == nil {
			return 0
		}
	}
	return 0
}

// contextLengthPhrases are how servers word a context-length refusal:
// vLLM's "This model's maximum context length is L tokens…" (also
// OpenAI's message), SGLang's "Requested token count exceeds the model's
// maximum context length…" and "The input (N tokens) is longer than the
// model's context length…", vLLM V1's "…is longer than the maximum model
// length of L", and OpenAI's error code.
var contextLengthPhrases = [][]byte{
	[]byte("maximum context length"),
	[]byte("longer than the model's context length"),
	[]byte("longer than the maximum model length"),
	[]byte("context_length_exceeded"),
}

// isContextLengthReply says whether a 4xx body is a context-length
// refusal.
func isContextLengthReply(status int, body []byte) bool {
	if status != 400 && status != 413 && status != 422 {
		return false
	}
	for _, p := range contextLengthPhrases {
		if bytes.Contains(body, p) {
			return true
		}
	}
	return false
}

// ctxLenProbe learns a server's context length once. A reply (even one
// without the field) settles it for good; a transport failure is retried
// on a later call, at most every probeRetry.
type ctxLenProbe struct {
	mu      sync.Mutex
	done    bool
	n       int
	tried   time.Time
	probing func(ctx context.Context) (n int, answered bool)
}

const (
	probeRetry   = 30 * time.Second
	probeTimeout = 10 * time.Second
)

func (p *ctxLenProbe) get(ctx context.Context) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done || (!p.tried.IsZero() && time.Since(p.tried) < probeRetry) {
		return p.n
	}
	p.tried = time.Now()
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	n, answered := p.probing(pctx)
	switch {
	case answered:
		p.done, p.n = true, max(n, 0)
	case ctx.Err() != nil:
		// The caller gave up, the server did not fail: the next caller
		// asks at once.
		p.tried = time.Time{}
	}
	return p.n
}
