package llm

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Resumer makes interrupted generation invisible to the caller. When a
// reply ends with FinishAbort while the caller's context is still live and
// the caller did not abort it (a server paused for a weight update, an
// engine that preempted the request), Resumer resubmits prompt + partial
// output with the remaining token budget and merges the segments:
// OutputIDs, Logprobs and Versions are concatenated, so every token appears
// exactly once and carries the version of the weights that produced it.
// This is the loop in AReaL's RemoteInfEngine.agenerate.
//
// Token-id requests resume exactly. Text prompts resume by appending the
// partial text to the prompt. Chat requests cannot be continued and come
// back as they are.
type Resumer struct {
	Sampler Sampler
	// MaxResubmits bounds resubmissions per call [20]; a reply still
	// aborted after that is returned with FinishAbort.
	MaxResubmits int
	// Wait is called before each resubmission; the RL controller passes its
	// pause gate here so resubmits queue until weights are updated. Nil
	// waits RetryDelay after a segment that produced no tokens (a server
	// that is still paused) and not at all otherwise.
	Wait func(ctx context.Context) error
	// RetryDelay [100ms]: see Wait.
	RetryDelay time.Duration
	// Decode, when set, turns token ids into text. It lets Resumer find a
	// stop string that straddles two segments (the server only checks the
	// text of the segment it is generating) and cut the output right after
	// it; without it such a straddling stop string is logged, not cut.
	Decode func(ids []int) string
	// Version, when set, labels each segment's tokens with the weight
	// version it returns just before the segment is sent, instead of the
	// version the server reports with the reply (AReaL pins versions this
	// way so an update racing with the reply cannot relabel tokens). Use it
	// together with a Wait gate that holds resubmissions during updates.
	Version func() int
	Logger  *slog.Logger

	mu      sync.Mutex
	aborted map[string]bool // IDs the caller aborted: never resubmitted
}

// NewResumer wraps s.
func NewResumer(s Sampler) *Resumer { return &Resumer{Sampler: s} }

// Abort implements Aborter: the request is aborted on its server and is
// not resubmitted.
func (r *Resumer) Abort(ctx context.Context, requestID string) error {
	r.mu.Lock()
	if r.aborted == nil {
		r.aborted = map[string]bool{}
	}
	r.aborted[requestID] = true
	r.mu.Unlock()
	ab, ok := r.Sampler.(Aborter)
	if !ok {
		return fmt.Errorf("%T cannot abort requests", r.Sampler)
	}
	return ab.Abort(ctx, requestID)
}

func (r *Resumer) wasAborted(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.aborted[id]
}

func (r *Resumer) forget(id string) {
	r.mu.Lock()
	delete(r.aborted, id)
	r.mu.Unlock()
}

// Sample implements Sampler.
func (r *Resumer) Sample(ctx context.Context, req *Request) (*Response, error) {
	if len(req.Messages) > 0 {
		return r.Sampler.Sample(ctx, req)
	}
	if req.ID != "" {
		defer r.forget(req.ID)
	}
	maxResubmits := r.MaxResubmits
	if maxResubmits <= 0 {
		maxResubmits = 20
	}
	budget := req.Params.MaxNewTokens
	cur := *req
	var acc merged
	for resubmits := 0; ; resubmits++ {
		pinned := 0
		if r.Version != nil {
			pinned = r.Version()
		}
		seg, err := r.Sampler.Sample(ctx, &cur)
		if err == nil && r.Version != nil {
			seg = withVersion(seg, pinned)
		}
		if err != nil {
			if resubmits > 0 {
				return nil, fmt.Errorf("resubmission %d after an interrupted generation (%d tokens so far): %w", resubmits, len(acc.ids), err)
			}
			return nil, err
		}
		boundaryText := len(acc.text)
		boundaryTok := len(acc.ids)
		acc.add(seg, resubmits == 0)
		if resubmits > 0 && seg.Text != "" {
			if done := r.cutStraddlingStop(&acc, req.Params.Stop, boundaryText, boundaryTok); done {
				return acc.response(), nil
			}
		}
		if seg.Finish != FinishAbort {
			acc.finish, acc.stop, acc.restored = seg.Finish, seg.StopMatched, seg.StopRestored
			return acc.response(), nil
		}
		acc.finish = FinishAbort
		if ctx.Err() != nil || (req.ID != "" && r.wasAborted(req.ID)) {
			return acc.response(), nil
		}
		if budget > 0 && len(acc.ids) >= budget {
			// The budget ran out just as the server was interrupted.
			acc.finish = FinishLength
			return acc.response(), nil
		}
		if resubmits >= maxResubmits {
			r.logger().Warn("generation still interrupted after the resubmission limit", "id", req.ID, "resubmits", resubmits, "tokens", len(acc.ids))
			return acc.response(), nil
		}
		if err := r.wait(ctx, len(seg.OutputIDs) == 0); err != nil {
			return acc.response(), nil
		}
		cur = *req
		switch {
		case len(req.InputIDs) > 0:
			if len(acc.ids) == 0 && len(acc.text) > 0 {
				return nil, fmt.Errorf("cannot resume request %q: the server reported text but no token ids", req.ID)
			}
			cur.InputIDs = make([]int, 0, len(req.InputIDs)+len(acc.ids))
			cur.InputIDs = append(append(cur.InputIDs, req.InputIDs...), acc.ids...)
		default:
			cur.Prompt = req.Prompt + acc.text
		}
		if budget > 0 {
			cur.Params.MaxNewTokens = budget - len(acc.ids)
		}
	}
}

func (r *Resumer) wait(ctx context.Context, noProgress bool) error {
	if r.Wait != nil {
		return r.Wait(ctx)
	}
	if !noProgress {
		return ctx.Err()
	}
	d := r.RetryDelay
	if d <= 0 {
		d = 100 * time.Millisecond
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Resumer) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// cutStraddlingStop handles a stop string that began in an earlier segment
// and ended in the latest one. It reports whether the output was cut.
func (r *Resumer) cutStraddlingStop(acc *merged, stops []string, boundaryText, boundaryTok int) bool {
	stop, end := straddlingStop(acc.text, stops, boundaryText)
	if stop == "" {
		return false
	}
	if r.Decode == nil || len(acc.ids) == 0 {
		r.logger().Warn("a stop string straddles an interrupted generation and the output runs past it; give Resumer a Decode function to cut it",
			"stop", stop, "at", end)
		return false
	}
	for n := boundaryTok + 1; n <= len(acc.ids); n++ {
		text := r.Decode(acc.ids[:n])
		if strings.Contains(text[min(len(text), max(0, boundaryText-len(stop))):], stop) {
			acc.truncate(n)
			acc.text = text
			acc.finish, acc.stop = FinishStop, stop
			return true
		}
	}
	return false
}

// straddlingStop finds the first stop string that starts before boundary
// and ends after it; it returns the stop string and its end offset.
func straddlingStop(text string, stops []string, boundary int) (string, int) {
	best, bestEnd := "", -1
	for _, s := range stops {
		if len(s) < 2 {
			continue
		}
		from := max(0, boundary-len(s)+1)
		if from >= len(text) {
			continue
		}
		i := strings.Index(text[from:], s)
		if i < 0 {
			continue
		}
		start := from + i
		if start < boundary && start+len(s) > boundary && (bestEnd < 0 || start+len(s) < bestEnd) {
			best, bestEnd = s, start+len(s)
		}
	}
	return best, bestEnd
}

// merged accumulates segments of one generation.
type merged struct {
	ids         []int
	lps         []float32
	versions    []int
	text        string
	finish      Finish
	stop        string
	restored    bool // the last segment's stop string was restored by the client
	prompt      int
	lpMissing   bool // a segment with tokens came without logprobs
	anyVersions bool
}

func (m *merged) add(seg *Response, first bool) {
	if first {
		m.prompt = seg.PromptTokens
	}
	n := len(seg.OutputIDs)
	m.ids = append(m.ids, seg.OutputIDs...)
	if n > 0 && len(seg.Logprobs) != n {
		m.lpMissing = true
	}
	m.lps = append(m.lps, seg.Logprobs...)
	if len(seg.Versions) == n && n > 0 {
		m.versions = append(m.versions, seg.Versions...)
		m.anyVersions = true
	} else {
		for range n {
			m.versions = append(m.versions, -1)
		}
	}
	m.text += seg.Text
}

func (m *merged) truncate(n int) {
	m.ids = m.ids[:n]
	if len(m.lps) >= n {
		m.lps = m.lps[:n]
	}
	if len(m.versions) >= n {
		m.versions = m.versions[:n]
	}
}

func (m *merged) response() *Response {
	resp := &Response{OutputIDs: m.ids, Text: m.text, Finish: m.finish, StopMatched: m.stop, StopRestored: m.restored, PromptTokens: m.prompt}
	if !m.lpMissing && len(m.lps) == len(m.ids) && len(m.ids) > 0 {
		resp.Logprobs = m.lps
	}
	if m.anyVersions {
		resp.Versions = m.versions
	}
	return resp
}

// withVersion returns a copy of seg whose tokens all carry version v.
func withVersion(seg *Response, v int) *Response {
	cp := *seg
	cp.Versions = make([]int, len(seg.OutputIDs))
	for i := range cp.Versions {
		cp.Versions[i] = v
	}
	return &cp
}

// Unwrap is the resubmitted sampler (see ContextLength).
func (r *Resumer) Unwrap() Sampler { return r.Sampler }
