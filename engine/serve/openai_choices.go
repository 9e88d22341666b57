package serve

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/llm"
)

// Running OpenAI requests and rendering their choices as vLLM does:
// context-length errors in vLLM's words, echo with prompt logprobs,
// top logprobs, bytes as lists of ints, special tokens skipped from text,
// and streams with several choices.

// contextError is vLLM's refusal of a prompt plus max_tokens that does not
// fit (clients such as LiteLLM recognise its wording); requested is the
// max_tokens asked for, 0 when unset.
func (s *Server) contextError(promptLen, requested int) error {
	return &contextLengthError{ctxLen: s.ctxLen, requested: requested, prompt: promptLen}
}

type contextLengthError struct{ ctxLen, requested, prompt int }

func (e *contextLengthError) Error() string {
	return fmt.Sprintf("This model's maximum context length is %d tokens. However, you requested %d output tokens and your prompt contains at least %d input tokens, for a total of at least %d tokens. Please reduce the length of the input prompt or the number of requested output tokens.",
		e.ctxLen, e.requested, e.prompt, e.prompt+e.requested)
}

// openAIWording rewords a prompt refused for its length as vLLM does.
func (s *Server) openAIWording(err error, o *openAIRequest) error {
	var tl *promptTooLong
	if errors.As(err, &tl) {
		return s.contextError(tl.n, max(o.maxTokens, 0))
	}
	return err
}

// checkOpenAIPrompt checks one prompt's ids and that it fits the context
// with what the request asks to generate.
func (s *Server) checkOpenAIPrompt(ids []int, o *openAIRequest) error {
	if err := s.checkIDs(ids); err != nil {
		return err
	}
	requested := max(o.maxTokens, 0)
	if o.echo && o.maxTokens == 0 {
		if len(ids) > s.ctxLen {
			return s.contextError(len(ids), 0)
		}
		return nil
	}
	if len(ids) >= s.ctxLen || len(ids)+requested > s.ctxLen {
		return s.contextError(len(ids), requested)
	}
	return nil
}

// openAILogprobBudget bounds the logprob entries the reply may list.
func (s *Server) openAILogprobBudget(prompts [][]int, o *openAIRequest) error {
	if !o.logprobs {
		return nil
	}
	var entries int64
	for _, p := range prompts {
		positions := o.maxTokens
		if positions < 0 {
			positions = s.opts.DefaultMaxNewTokens
		}
		if o.echo {
			positions += len(p)
		}
		entries += int64(o.n) * int64(positions) * int64(1+o.topLogprobs)
	}
	return logprobBudget(entries)
}

// openAIChoice is one finished generation in OpenAI terms.
type openAIChoice struct {
	prompt []int
	resp   *llm.Response
	text   string
}

// echoOnly is a request that returns its prompt without generating.
func (o *openAIRequest) echoOnly() bool { return o.echo && o.maxTokens == 0 }

func (s *Server) runChoices(ctx context.Context, prompts [][]int, o *openAIRequest) ([]openAIChoice, error) {
	var jobs [][]int
	for _, p := range prompts {
		if err := s.checkOpenAIPrompt(p, o); err != nil {
			return nil, err
		}
		for j := 0; j < o.n; j++ {
			jobs = append(jobs, p)
		}
	}
	out := make([]openAIChoice, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i := range jobs {
		if o.echoOnly() {
			out[i] = openAIChoice{prompt: jobs[i], resp: &llm.Response{Finish: llm.FinishLength}}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := s.generate(ctx, s.jobRequest(o, jobs[i], i, len(jobs), nil))
			if err != nil {
				errs[i] = err
				return
			}
			out[i] = openAIChoice{prompt: jobs[i], resp: resp, text: s.choiceText(resp, o)}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// jobRequest is choice i of total as a generation request: request ids
// and seeds get the choice index appended so choices differ.
func (s *Server) jobRequest(o *openAIRequest, prompt []int, i, total int, onToken func(engine.StreamEvent)) *genRequest {
	rid := o.rid
	if rid != "" && total > 1 {
		rid += "-" + strconv.Itoa(i)
	}
	p := o.params
	if p.Seed != nil && total > 1 {
		sd := *p.Seed + int64(i)
		p.Seed = &sd
	}
	return &genRequest{rid: rid, ids: prompt, params: p, ignoreEOS: o.ignoreEOS, onToken: onToken, lora: o.lora}
}

// choiceText is the completion text: special tokens dropped unless
// skip_special_tokens is false, the stop string trimmed unless kept.
func (s *Server) choiceText(resp *llm.Response, o *openAIRequest) string {
	text := resp.Text
	if o.skipSpecial && s.opts.Tokenizer != nil {
		ids := resp.OutputIDs
		if resp.Finish == llm.FinishStop && resp.StopMatched == "" && len(ids) > 0 {
			ids = ids[:len(ids)-1] // the stop token, which has no text
		}
		special := false
		for _, id := range ids {
			special = special || s.opts.Tokenizer.IsSpecial(id)
		}
		if special {
			kept := make([]int, 0, len(ids))
			for _, id := range ids {
				if !s.opts.Tokenizer.IsSpecial(id) {
					kept = append(kept, id)
				}
			}
			text = s.opts.Tokenizer.Decode(kept)
		}
	}
	return trimStop(text, resp.StopMatched, o.keepStop)
}

// streamText is one stream event's text under skip_special_tokens.
func (s *Server) streamText(ev engine.StreamEvent, o *openAIRequest) string {
	if o.skipSpecial && s.opts.Tokenizer != nil && s.opts.Tokenizer.IsSpecial(ev.ID) {
		return ""
	}
	return ev.Text
}

// tokenLogprob is one position of a logprobs listing.
type tokenLogprob struct {
	id  int
	lp  float64 // NaN: none (the first prompt token)
	top []altLogprob
}

type altLogprob struct {
	id int
	lp float64
}

// choiceLogprobs lists the logprobs of c: the prompt's (with echo) and the
// completion's, each with o.topLogprobs alternatives. Sampled tokens keep
// the sampler's logprob; the prompt's and the alternatives come from one
// scoring pass over prompt + completion under the current weights.
func (s *Server) choiceLogprobs(ctx context.Context, c openAIChoice, o *openAIRequest) ([]tokenLogprob, error) {
	var out []tokenLogprob
	needScore := o.echo || o.topLogprobs > 0
	var logits []float32
	V := s.opts.Weights.Config.VocabSize
	full := append(append([]int(nil), c.prompt...), c.resp.OutputIDs...)
	if needScore {
		var release func()
		var err error
		if logits, release, err = s.scoreLogitsLoRA(ctx, s.current(), full, o.lora); err != nil {
			return nil, err
		}
		defer release()
	}
	// at is the entry for full[i] given full[:i].
	at := func(i int) tokenLogprob {
		e := tokenLogprob{id: full[i], lp: math.NaN()}
		if i == 0 || logits == nil {
			return e
		}
		row := logits[(i-1)*V : i*V]
		lse := logSumExp(row)
		e.lp = float64(row[full[i]] - lse)
		if o.topLogprobs > 0 {
			e.top = topK(row, lse, o.topLogprobs)
		}
		return e
	}
	if o.echo {
		for i := range c.prompt {
			out = append(out, at(i))
		}
	}
	for j, id := range c.resp.OutputIDs {
		e := at(len(c.prompt) + j)
		e.id, e.lp = id, float64(c.resp.Logprobs[j])
		out = append(out, e)
	}
	return out, nil
}

// topK is the k most likely tokens of a logits row, most likely first.
func topK(row []float32, lse float32, k int) []altLogprob {
	best := make([]altLogprob, 0, k+1)
	for id, v := range row {
		if len(best) == k && float64(v-lse) <= best[k-1].lp {
			continue
		}
		a := altLogprob{id: id, lp: float64(v - lse)}
		i := len(best)
		best = append(best, a)
		for i > 0 && best[i-1].lp < a.lp {
			best[i] = best[i-1]
			i--
		}
		best[i] = a
		if len(best) > k {
			best = best[:k]
		}
	}
	return best
}

func nullableLogprob(lp float64) any {
	if math.IsNaN(lp) || math.IsInf(lp, 0) {
		return nil
	}
	return lp
}

// bytesList is a token's bytes as the list of ints OpenAI's schema has.
func bytesList(b []byte) []int {
	out := make([]int, len(b))
	for i, c := range b {
		out[i] = int(c)
	}
	return out
}

func (s *Server) tokenBytes(id int) []byte {
	if s.opts.Tokenizer == nil {
		return nil
	}
	return s.opts.Tokenizer.TokenBytes(id)
}

// completionLogprobs is the completions API's logprobs object; offset is
// the text offset of the first entry.
func (s *Server) completionLogprobs(entries []tokenLogprob, o *openAIRequest, offset int) map[string]any {
	toks := make([]string, len(entries))
	lps := make([]any, len(entries))
	tops := make([]any, len(entries))
	offs := make([]int, len(entries))
	for i, e := range entries {
		toks[i] = s.tokenString(e.id, o.idTokens)
		lps[i] = nullableLogprob(e.lp)
		offs[i] = offset
		offset += len(s.tokenText(e.id))
		if math.IsNaN(e.lp) {
			continue // the first prompt token: null, as vLLM
		}
		top := map[string]any{}
		for _, a := range e.top {
			top[s.tokenString(a.id, o.idTokens)] = a.lp
		}
		top[toks[i]] = e.lp // the chosen token is always listed
		tops[i] = top
	}
	return map[string]any{"tokens": toks, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offs}
}

// chatLogprobs is the chat API's logprobs object.
func (s *Server) chatLogprobs(entries []tokenLogprob, o *openAIRequest) map[string]any {
	content := make([]any, len(entries))
	for i, e := range entries {
		top := make([]any, len(e.top))
		for j, a := range e.top {
			top[j] = map[string]any{"token": s.tokenString(a.id, o.idTokens), "logprob": a.lp, "bytes": bytesList(s.tokenBytes(a.id))}
		}
		content[i] = map[string]any{"token": s.tokenString(e.id, o.idTokens), "logprob": nullableLogprob(e.lp),
			"bytes": bytesList(s.tokenBytes(e.id)), "top_logprobs": top}
	}
	return map[string]any{"content": content}
}

func (s *Server) handleCompletions(w http.ResponseWriter, r *http.Request) {
	f, o, ok := s.openAIRequest(w, r, false)
	if !ok {
		return
	}
	prompts, err := s.completionPrompts(f["prompt"])
	if err != nil {
		openAIBodyError(w, s.openAIWording(err, o))
		return
	}
	if len(prompts) == 0 {
		openAIError(w, http.StatusBadRequest, "prompt is empty")
		return
	}
	if len(prompts)*o.n > s.opts.MaxPrompts {
		openAIBodyError(w, s.tooMany(len(prompts)*o.n))
		return
	}
	if err := s.openAILogprobBudget(prompts, o); err != nil {
		openAIBodyError(w, err)
		return
	}
	id := s.newID("cmpl")
	if o.stream {
		s.streamOpenAI(w, r, id, prompts, o, false)
		return
	}
	choices, err := s.runChoices(r.Context(), prompts, o)
	if err != nil {
		if r.Context().Err() == nil {
			openAIError(w, http.StatusBadRequest, err.Error())
		}
		return
	}
	list := make([]any, len(choices))
	promptTokens, completionTokens := 0, 0
	for i, c := range choices {
		text := c.text
		var promptText string
		if o.echo {
			promptText = s.decodeText(c.prompt, o)
			text = promptText + text
		}
		ch := map[string]any{"index": i, "text": text, "finish_reason": finishReason(c.resp.Finish),
			"stop_reason": stopReason(c.resp, o.params.StopTokenIDs), "logprobs": nil}
		if o.logprobs {
			entries, err := s.choiceLogprobs(r.Context(), c, o)
			if err != nil {
				openAIError(w, http.StatusInternalServerError, err.Error())
				return
			}
			ch["logprobs"] = s.completionLogprobs(entries, o, 0)
		}
		if o.tokenIDs {
			ch["token_ids"] = nonNil(c.resp.OutputIDs)
			ch["prompt_token_ids"] = c.prompt
		}
		list[i] = ch
		if i%o.n == 0 {
			promptTokens += len(c.prompt)
		}
		completionTokens += len(c.resp.OutputIDs)
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "text_completion", "created": time.Now().Unix(),
		"model": o.model, "choices": list, "usage": usage(promptTokens, completionTokens)})
}

// decodeText is ids as text under skip_special_tokens.
func (s *Server) decodeText(ids []int, o *openAIRequest) string {
	if s.opts.Tokenizer == nil {
		return ""
	}
	if o.skipSpecial {
		kept := make([]int, 0, len(ids))
		for _, id := range ids {
			if !s.opts.Tokenizer.IsSpecial(id) {
				kept = append(kept, id)
			}
		}
		ids = kept
	}
	return s.opts.Tokenizer.Decode(ids)
}

func nonNil(ids []int) []int {
	if ids == nil {
		return []int{}
	}
	return ids
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	f, o, ok := s.openAIRequest(w, r, true)
	if !ok {
		return
	}
	ids, err := s.chatPrompt(f["messages"], o.chatOptions)
	if err != nil {
		openAIError(w, http.StatusBadRequest, s.openAIWording(err, o).Error())
		return
	}
	if o.n > s.opts.MaxPrompts {
		openAIBodyError(w, s.tooMany(o.n))
		return
	}
	if err := s.openAILogprobBudget([][]int{ids}, o); err != nil {
		openAIBodyError(w, err)
		return
	}
	id := s.newID("chatcmpl")
	if o.stream {
		s.streamOpenAI(w, r, id, [][]int{ids}, o, true)
		return
	}
	choices, err := s.runChoices(r.Context(), [][]int{ids}, o)
	if err != nil {
		if r.Context().Err() == nil {
			openAIError(w, http.StatusBadRequest, err.Error())
		}
		return
	}
	list := make([]any, len(choices))
	completionTokens := 0
	for i, c := range choices {
		ch := map[string]any{"index": i, "message": map[string]any{"role": "assistant", "content": c.text},
			"finish_reason": finishReason(c.resp.Finish), "stop_reason": stopReason(c.resp, o.params.StopTokenIDs), "logprobs": nil}
		if o.logprobs {
			entries, err := s.choiceLogprobs(r.Context(), c, o)
			if err != nil {
				openAIError(w, http.StatusInternalServerError, err.Error())
				return
			}
			ch["logprobs"] = s.chatLogprobs(entries, o)
		}
		if o.tokenIDs {
			ch["token_ids"] = nonNil(c.resp.OutputIDs)
		}
		list[i] = ch
		completionTokens += len(c.resp.OutputIDs)
	}
	reply := map[string]any{"id": id, "object": "chat.completion", "created": time.Now().Unix(),
		"model": o.model, "choices": list, "usage": usage(len(ids), completionTokens)}
	if o.tokenIDs {
		reply["prompt_token_ids"] = ids
	}
	writeJSON(w, http.StatusOK, reply)
}

// streamChoice is one choice of a streamed request.
type streamChoice struct {
	prompt []int
	// held is text not yet sent because it may be the start of a stop
	// string (which is trimmed unless the request keeps it).
	held strings.Builder
	ids  []int
	lps  []float32
	resp *llm.Response
	err  error
}

// taggedEvent is a stream event of choice i; fin marks the choice done.
type taggedEvent struct {
	i   int
	ev  engine.StreamEvent
	fin bool
}

// taggedQueue hands events from the generating goroutines to the writer
// without ever blocking them (a slow client must not stall the batch).
type taggedQueue struct {
	mu    sync.Mutex
	evs   []taggedEvent
	ready chan struct{}
}

func (q *taggedQueue) push(e taggedEvent) {
	q.mu.Lock()
	q.evs = append(q.evs, e)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *taggedQueue) take() []taggedEvent {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.evs
	q.evs = nil
	return out
}

// streamOpenAI answers stream:true with OpenAI's SSE chunks, for any
// number of prompts × n choices (each chunk carries one choice, by index,
// as vLLM sends them): text deltas as tokens are sampled, a last chunk per
// choice with finish_reason and stop_reason, a usage chunk when
// stream_options.include_usage, then data: [DONE]. Stop strings are held
// back until it is clear they are not the start of a stop.
func (s *Server) streamOpenAI(w http.ResponseWriter, r *http.Request, id string, prompts [][]int, o *openAIRequest, chat bool) {
	fl, ok := w.(http.Flusher)
	if !ok {
		openAIError(w, http.StatusInternalServerError, "streaming is not available on this connection")
		return
	}
	var choices []*streamChoice
	for _, p := range prompts {
		if err := s.checkOpenAIPrompt(p, o); err != nil {
			openAIError(w, http.StatusBadRequest, err.Error())
			return
		}
		for range o.n {
			choices = append(choices, &streamChoice{prompt: p})
		}
	}
	created := time.Now().Unix()
	object := "text_completion"
	if chat {
		object = "chat.completion.chunk"
	}
	chunk := func(i int, delta string, ids []int, lps []float32, finish, stop any) map[string]any {
		ch := map[string]any{"index": i, "finish_reason": finish, "stop_reason": stop, "logprobs": nil}
		if chat {
			ch["delta"] = map[string]any{"content": delta}
		} else {
			ch["text"] = delta
		}
		if o.logprobs && len(ids) > 0 {
			entries := make([]tokenLogprob, len(ids))
			for j, t := range ids {
				entries[j] = tokenLogprob{id: t, lp: float64(lps[j])}
			}
			if chat {
				ch["logprobs"] = s.chatLogprobs(entries, o)
			} else {
				ch["logprobs"] = s.completionLogprobs(entries, o, 0)
			}
		}
		if o.tokenIDs && ids != nil {
			ch["token_ids"] = ids
		}
		return map[string]any{"id": id, "object": object, "created": created, "model": o.model, "choices": []any{ch}}
	}
	q := &taggedQueue{ready: make(chan struct{}, 1)}
	for i, c := range choices {
		go func() {
			resp, err := s.generate(r.Context(), s.jobRequest(o, c.prompt, i, len(choices), func(ev engine.StreamEvent) {
				q.push(taggedEvent{i: i, ev: ev})
			}))
			c.resp, c.err = resp, err // read after the fin event, under q.mu
			q.push(taggedEvent{i: i, fin: true})
		}()
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if chat {
		for i := range choices {
			first := chunk(i, "", nil, nil, nil, nil)
			first["choices"].([]any)[0].(map[string]any)["delta"] = map[string]any{"role": "assistant", "content": ""}
			writeSSE(w, first)
		}
		fl.Flush()
	}
	var stops []string
	if !o.keepStop {
		stops = o.params.Stop
	}
	flush := func(i int, final bool) {
		c := choices[i]
		text := c.held.String()
		n := len(text)
		if !final {
			n = safePrefix(text, stops)
		}
		if n == 0 && len(c.ids) == 0 {
			return
		}
		writeSSE(w, chunk(i, text[:n], c.ids, c.lps, nil, nil))
		rest := text[n:]
		c.held.Reset()
		c.held.WriteString(rest)
		c.ids, c.lps = nil, nil
	}
	var failed error
	completion := 0
	for left := len(choices); left > 0; {
		<-q.ready
		touched := map[int]bool{}
		for _, e := range q.take() {
			c := choices[e.i]
			if !e.fin {
				c.held.WriteString(s.streamText(e.ev, o))
				c.ids = append(c.ids, e.ev.ID)
				c.lps = append(c.lps, e.ev.Logprob)
				touched[e.i] = true
				continue
			}
			left--
			delete(touched, e.i)
			if c.err != nil {
				failed = errors.Join(failed, c.err)
				continue
			}
			if c.resp.StopMatched != "" && !o.keepStop {
				rest := c.held.String()
				if k := strings.LastIndex(rest, c.resp.StopMatched); k >= 0 {
					c.held.Reset()
					c.held.WriteString(rest[:k])
				}
			}
			flush(e.i, true)
			last := chunk(e.i, "", nil, nil, finishReason(c.resp.Finish), stopReason(c.resp, o.params.StopTokenIDs))
			if chat {
				last["choices"].([]any)[0].(map[string]any)["delta"] = map[string]any{}
			}
			writeSSE(w, last)
			completion += len(c.resp.OutputIDs)
		}
		for i := range touched {
			flush(i, false)
		}
		fl.Flush()
	}
	if failed != nil {
		if r.Context().Err() == nil {
			writeSSE(w, map[string]any{"error": map[string]any{"message": failed.Error(), "type": "server_error", "code": 500}})
			_, _ = w.Write([]byte("data: [DONE]\n\n"))
			fl.Flush()
		}
		return
	}
	if o.usageChunk {
		promptTokens := 0
		for _, p := range prompts {
			promptTokens += len(p)
		}
		writeSSE(w, map[string]any{"id": id, "object": object, "created": created, "model": o.model,
			"choices": []any{}, "usage": usage(promptTokens, completion)})
	}
	_, _ = w.Write([]byte("data: [DONE]\n\n"))
	fl.Flush()
}
