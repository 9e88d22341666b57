package agent

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tools"
)

// byteTok is one token per byte (id = byte value) plus EOS = 256, which
// decodes to nothing: the same scheme as internal/fakellm's ByteTokenizer.
type byteTok struct{}

const byteEOS = 256

func (byteTok) Encode(text string) []int {
	ids := make([]int, len(text))
	for i := 0; i < len(text); i++ {
		ids[i] = int(text[i])
	}
	return ids
}

func (byteTok) Decode(ids []int) string {
	b := make([]byte, 0, len(ids))
	for _, id := range ids {
		if id >= 0 && id < 256 {
			b = append(b, byte(id))
		}
	}
	return string(b)
}

// turn scripts one model reply.
type turn struct {
	text   string
	eos    bool       // append EOS after the text
	finish llm.Finish // "" = stop
	// honour makes the fake behave like a real engine: stop strings, stop
	// tokens and max_new_tokens end the output. Without it the fake returns
	// everything, like a backend that ignores them.
	honour  bool
	err     error
	noIDs   bool // text-only response
	version int  // weight version reported; 0 uses the sampler's
	delay   time.Duration
}

// fakeSampler replays scripted turns and records the requests it got.
type fakeSampler struct {
	mu       sync.Mutex
	turns    []turn
	reqs     []llm.Request
	version  int
	fallback *turn // used when the script runs out
}

func (f *fakeSampler) Sample(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	f.mu.Lock()
	r := *req
	r.InputIDs = slices.Clone(req.InputIDs)
	f.reqs = append(f.reqs, r)
	var t turn
	switch {
	case len(f.turns) > 0:
		t = f.turns[0]
		f.turns = f.turns[1:]
	case f.fallback != nil:
		t = *f.fallback
	default:
		f.mu.Unlock()
		return nil, errors.New("fake sampler: script exhausted")
	}
	version := f.version
	if t.version != 0 {
		version = t.version
	}
	f.mu.Unlock()
	if t.delay > 0 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(t.delay):
		}
	}
	if t.err != nil {
		return nil, t.err
	}
	ids := byteTok{}.Encode(t.text)
	if t.eos {
		ids = append(ids, byteEOS)
	}
	finish := t.finish
	if finish == "" {
		finish = llm.FinishStop
	}
	stopMatched := ""
	if t.honour {
		n := len(ids)
		if req.Params.MaxNewTokens > 0 && n > req.Params.MaxNewTokens {
			n, finish = req.Params.MaxNewTokens, llm.FinishLength
		}
		for k := 0; k < n; k++ {
			if slices.Contains(req.Params.StopTokenIDs, ids[k]) {
				n, finish = k+1, llm.FinishStop
				break
			}
			text := byteTok{}.Decode(ids[:k+1])
			for _, st := range req.Params.Stop {
				if strings.HasSuffix(text, st) {
					n, finish, stopMatched = k+1, llm.FinishStop, st
				}
			}
			if stopMatched != "" {
				break
			}
		}
		ids = ids[:n]
	}
	resp := &llm.Response{Text: byteTok{}.Decode(ids), Finish: finish, StopMatched: stopMatched, PromptTokens: len(req.InputIDs)}
	if t.noIDs {
		return resp, nil
	}
	resp.OutputIDs = ids
	for k := range ids {
		resp.Logprobs = append(resp.Logprobs, -float32(k%7+1)/8)
		resp.Versions = append(resp.Versions, version)
	}
	return resp, nil
}

func (f *fakeSampler) requests() []llm.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

// fakeSearch answers from a fixed list, or fails, or hangs.
type fakeSearch struct {
	docs    []tools.SearchResult
	err     error
	hang    bool // ignore ctx and block until released
	release chan struct{}
	queries []string
	mu      sync.Mutex
}

func (f *fakeSearch) Search(ctx context.Context, q string, k int) ([]tools.SearchResult, error) {
	f.mu.Lock()
	f.queries = append(f.queries, q)
	f.mu.Unlock()
	if f.hang {
		<-f.release
	}
	if f.err != nil {
		return nil, f.err
	}
	return f.docs[:min(k, len(f.docs))], nil
}

// fakeBrowser serves pages from a map.
type fakeBrowser struct {
	pages map[string]string
	err   error
	delay time.Duration
}

func (f *fakeBrowser) Access(ctx context.Context, url string) (*tools.Page, error) {
	if f.delay > 0 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(f.delay):
		}
	}
	if f.err != nil {
		return nil, f.err
	}
	p, ok := f.pages[url]
	if !ok {
		return nil, errors.New("HTTP 404")
	}
	return &tools.Page{URL: url, Title: "T", Content: p}, nil
}

func newEnv(s llm.Sampler) *Env {
	return &Env{
		Sampler:      s,
		Tokenizer:    byteTok{},
		StopTokenIDs: []int{byteEOS},
		Limits:       Limits{MaxContextTokens: 1 << 23, MaxCallTokens: 1 << 21},
	}
}
