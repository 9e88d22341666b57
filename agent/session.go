package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/asearcher/asearcher/llm"
)

// ErrContextFull is returned by Generate when the context leaves less than
// Limits.MinCallTokens for the call.
var ErrContextFull = errors.New("context token budget exhausted")

// Session is one agent run in progress: the context the model sees and the
// trajectory being recorded. Built-in agents and custom workflows drive
// it the same way: Append prompt text and tool output, Generate model
// output, RunTool for tools, Finish at the end.
//
// In token mode the context is a list of token ids. Text given to Append
// is encoded on its own and appended; model output is appended exactly as
// the model returned it. History is never re-tokenised, so what the model
// saw is exactly what the trajectory trains on.
//
// A Session is used by one goroutine.
type Session struct {
	env   *Env
	lim   Limits
	log   *slog.Logger
	traj  *Trajectory
	start time.Time

	ids  []int  // the context, token mode
	text []byte // the context, text and chat modes

	// dirty is the shortest the context has been since the last call; the
	// next call's input shares at least that much with the last call.
	dirty int
	last  int // index of the last call, -1 before the first
	turn  int
	act   int // index of the last act call, for tool records
	seed  *int64
	// fitted says the context budget was checked against the server's
	// context window (once, at the first call).
	fitted bool
}

// NewSession starts a run of task under the workflow and prompt names
// given (they are recorded in the trajectory).
func NewSession(env *Env, task Task, workflow, prompt string) *Session {
	log := env.Log
	if log == nil {
		log = slog.Default()
	}
	mode := ModeText
	if env.Tokenizer != nil {
		mode = ModeTokens
	}
	now := time.Now()
	s := &Session{
		env:   env,
		lim:   env.Limits.WithDefaults(),
		start: now,
		last:  -1,
		act:   -1,
		seed:  env.Sampling.Seed,
		traj: &Trajectory{
			ID:         trajectoryID(task),
			TaskID:     task.ID,
			Sample:     task.Sample,
			Agent:      workflow,
			Prompt:     prompt,
			Question:   task.Question,
			Mode:       mode,
			TokenLevel: mode == ModeTokens,
			Calls:      []Call{},
			Tools:      []ToolCall{},
			Started:    now,
		},
	}
	if task.Seed != nil {
		s.seed = task.Seed
	}
	s.log = log.With("trajectory", s.traj.ID)
	return s
}

func trajectoryID(task Task) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := task.ID
	if id == "" {
		id = "q"
	}
	return id + "." + strconv.Itoa(task.Sample) + "." + hex.EncodeToString(b[:])
}

// UseChat switches a text-mode session to chat requests: the context is
// the content of one user message. Only for sessions without a tokenizer.
func (s *Session) UseChat() {
	if s.traj.Mode == ModeText {
		s.traj.Mode = ModeChat
	}
}

// Mode is ModeTokens, ModeText or ModeChat.
func (s *Session) Mode() string { return s.traj.Mode }

// Limits are the run's limits with defaults filled in.
func (s *Session) Limits() Limits { return s.lim }

// Trajectory is the record so far.
func (s *Session) Trajectory() *Trajectory { return s.traj }

// Log is the session's logger.
func (s *Session) Log() *slog.Logger { return s.log }

// SetTurn sets the act turn that following calls and tool calls belong to.
func (s *Session) SetTurn(turn int) { s.turn = turn }

// Turn is the current act turn.
func (s *Session) Turn() int { return s.turn }

// Mark is the current length of the context, for Rewind.
func (s *Session) Mark() int {
	if s.traj.Mode == ModeTokens {
		return len(s.ids)
	}
	return len(s.text)
}

// Rewind cuts the context back to an earlier Mark, e.g. to replace a page
// part the model has read by a short stub.
func (s *Session) Rewind(mark int) {
	if mark < 0 || mark > s.Mark() {
		panic(fmt.Sprintf("agent: rewind to %d of a %d-long context", mark, s.Mark()))
	}
	// The capacity is cut too, so the next append copies instead of
	// overwriting tokens a sampler was given: a request's InputIDs are
	// never changed after the call, even if a backend kept them.
	if s.traj.Mode == ModeTokens {
		s.ids = s.ids[:mark:mark]
	} else {
		s.text = s.text[:mark:mark]
	}
	s.dirty = min(s.dirty, mark)
}

// Len is the context size in tokens (estimated as bytes/4 in text modes).
func (s *Session) Len() int {
	if s.traj.Mode == ModeTokens {
		return len(s.ids)
	}
	return estimateTokens(len(s.text))
}

func estimateTokens(bytes int) int { return (bytes + 3) / 4 }

// Piece is text ready to append: encoded once, so its size can be checked
// against the budget before it is added.
type Piece struct {
	Text string
	IDs  []int // token mode only
}

// Tokens is the size of the piece in tokens (estimated in text modes).
func (p Piece) Tokens() int {
	if p.IDs != nil {
		return len(p.IDs)
	}
	return estimateTokens(len(p.Text))
}

// Encode prepares text for AppendPiece.
func (s *Session) Encode(text string) Piece {
	p := Piece{Text: text}
	if s.traj.Mode == ModeTokens {
		p.IDs = s.env.Tokenizer.Encode(text)
		if p.IDs == nil {
			p.IDs = []int{}
		}
	}
	return p
}

// Append adds text the model did not write (prompt, tool output, glue);
// in training it is masked out.
func (s *Session) Append(text string) { s.AppendPiece(s.Encode(text)) }

// AppendPiece adds an encoded piece.
func (s *Session) AppendPiece(p Piece) {
	if s.traj.Mode == ModeTokens {
		s.ids = append(s.ids, p.IDs...)
	} else {
		s.text = append(s.text, p.Text...)
	}
}

// AppendOutput appends the output of call i again, exactly as the model
// wrote it, after a Rewind removed it (a note re-attached behind a page
// stub). In the next call's training sequence it is prompt, not output.
func (s *Session) AppendOutput(i int) {
	c := &s.traj.Calls[i]
	if s.traj.Mode == ModeTokens {
		s.ids = append(s.ids, c.Output...)
	} else {
		s.text = append(s.text, c.Text...)
	}
}

// Fits says whether extra more tokens of context still leave room for a
// call of MinCallTokens.
func (s *Session) Fits(extra int) bool {
	return s.Len()+extra+s.lim.MinCallTokens <= s.lim.MaxContextTokens
}

// Gen describes one model call.
type Gen struct {
	Purpose string
	// Stop strings end the output (the output keeps the stop string).
	Stop []string
	// MaxTokens caps this call; 0 means Limits.MaxCallTokens. The budget
	// also shrinks to what is left under Limits.MaxContextTokens.
	MaxTokens int
	// Tool and Part link a read call to the tool result it reads
	// (Tool is an index in Trajectory.Tools, or -1).
	Tool, Part int
	// Carry is earlier text of the same generation (an act continued
	// after running out of tokens); a stop string may start in it.
	Carry string
}

// Reply is the outcome of Generate: one generation, possibly made of
// several calls when the backend returned partial (aborted) output and
// the agent continued it.
type Reply struct {
	Text        string
	Tokens      int
	Finish      llm.Finish
	StopMatched string
	EOS         bool
	// First and Last are the indexes of the calls the generation took.
	First, Last int
}

// Generate asks the model to continue the context. The output is
// appended to the context as returned and recorded as a call. Stop
// strings, stop token ids and the token budget are enforced here even when
// the backend ignores them: output past them is cut off (Call.Clipped).
func (s *Session) Generate(ctx context.Context, g Gen) (Reply, error) {
	s.fitServer(ctx)
	rep := Reply{First: -1, Last: -1}
	var sb strings.Builder
	sb.WriteString(g.Carry)
	budget := g.MaxTokens
	if budget <= 0 || budget > s.lim.MaxCallTokens {
		budget = s.lim.MaxCallTokens
	}
	stalled := 0 // aborts in a row that produced no token
	for attempt := 0; ; attempt++ {
		room := s.lim.MaxContextTokens - s.Len()
		callBudget := min(budget-rep.Tokens, room)
		if callBudget < s.lim.MinCallTokens && (attempt == 0 || callBudget <= 0) {
			if attempt == 0 {
				return rep, ErrContextFull
			}
			rep.Finish = llm.FinishLength
			break
		}
		i, err := s.call(ctx, g, callBudget, sb.String())
		if err != nil {
			return rep, err
		}
		c := &s.traj.Calls[i]
		if rep.First < 0 {
			rep.First = i
		}
		rep.Last = i
		sb.WriteString(c.Text)
		n := len(c.Output)
		if s.traj.Mode != ModeTokens {
			n = estimateTokens(len(c.Text))
		}
		rep.Tokens += n
		rep.Finish, rep.StopMatched, rep.EOS = c.Finish, c.StopMatched, c.EOS
		if c.Finish != llm.FinishAbort {
			break
		}
		// Partial output (the server was paused or preempted): keep it and
		// continue. Progress spends budget, so only aborts that produced
		// nothing are bounded.
		if n > 0 {
			stalled = 0
			continue
		}
		stalled++
		if stalled >= s.lim.MaxAborts {
			return rep, fmt.Errorf("generation aborted %d times in a row without output; giving up", stalled)
		}
		select {
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-time.After(time.Duration(stalled) * 50 * time.Millisecond):
		}
	}
	rep.Text = sb.String()[len(g.Carry):]
	return rep, nil
}

// fitServer caps MaxContextTokens at the context window the model server
// reports, so a run against a smaller model ends as EndContext instead of
// with requests the server refuses. It asks once per session; the backend
// itself asks its server once.
func (s *Session) fitServer(ctx context.Context) {
	if s.fitted || s.env.Sampler == nil {
		return
	}
	s.fitted = true
	if n := llm.ContextLength(ctx, s.env.Sampler); n > 0 && n < s.lim.MaxContextTokens {
		s.log.Debug("context budget capped at the model's context length", "max_context_tokens", s.lim.MaxContextTokens, "context_length", n)
		s.lim.MaxContextTokens = n
	}
}

// call makes one sampler request and records it. carry is the text
// already generated for this reply (stop strings may straddle it).
func (s *Session) call(ctx context.Context, g Gen, budget int, carry string) (int, error) {
	params := s.env.Sampling
	params.Stop = g.Stop
	params.StopTokenIDs = s.env.StopTokenIDs
	params.MaxNewTokens = budget
	params.Seed = s.seed
	req := &llm.Request{ID: s.traj.ID, Params: params}
	in := s.recordInput()
	switch s.traj.Mode {
	case ModeTokens:
		req.InputIDs = s.ids
	case ModeText:
		req.Prompt = string(s.text)
	case ModeChat:
		req.Messages = []llm.Message{{Role: "user", Content: string(s.text)}}
		in.Messages = req.Messages
	}
	t0 := time.Now()
	resp, err := s.env.Sampler.Sample(ctx, req)
	lat := time.Since(t0)
	if err != nil {
		if errors.Is(err, llm.ErrContextLength) && ctx.Err() == nil {
			// The server's window is smaller than our budget thought (it
			// reports none, or text-mode token estimates ran short): the
			// context is full, which ends the run cleanly.
			s.log.Debug("model server refused the call: context length", "err", err)
			return -1, fmt.Errorf("%s call %d: %w: %w", purposeOr(g.Purpose), len(s.traj.Calls), ErrContextFull, err)
		}
		return -1, fmt.Errorf("%s call %d: %w", purposeOr(g.Purpose), len(s.traj.Calls), err)
	}
	c := Call{
		Purpose:   g.Purpose,
		Turn:      s.turn,
		Tool:      g.Tool,
		Part:      g.Part,
		Input:     in,
		InputLen:  s.Mark(),
		MaxTokens: budget,
		Stop:      g.Stop,
		Start:     t0.Sub(s.start),
		Latency:   lat,
	}
	s.fillOutput(&c, resp, carry, budget)
	s.traj.Calls = append(s.traj.Calls, c)
	i := len(s.traj.Calls) - 1
	s.last = i
	if g.Purpose == PurposeAct {
		s.act = i
	}
	s.AppendOutput(i)
	s.dirty = s.Mark()
	if s.env.OnStep != nil {
		s.env.OnStep(Step{Trajectory: s.traj.ID, Turn: s.turn, Call: &s.traj.Calls[i]})
	}
	return i, nil
}

func purposeOr(p string) string {
	if p == "" {
		return "model"
	}
	return p
}

// recordInput describes the current context as a delta against the last
// call's full sequence, so each token is stored about once.
func (s *Session) recordInput() Input {
	if s.last < 0 {
		in := Input{Base: -1}
		if s.traj.Mode == ModeTokens {
			in.Added = slices.Clone(s.ids)
		} else {
			in.AddedText = string(s.text)
		}
		return in
	}
	t := s.traj
	full := t.fullLen(s.last)
	keep := min(s.dirty, full)
	in := Input{Base: s.last}
	if t.Mode == ModeTokens {
		limit := min(full, len(s.ids))
		keep = extendCommon(s.ids, keep, limit, func(dst []int, from, to int) []int {
			return t.appendFullIDs(dst, s.last, from, to)
		})
		in.Keep = keep
		in.Added = slices.Clone(s.ids[keep:])
	} else {
		limit := min(full, len(s.text))
		keep = extendCommon(s.text, keep, limit, func(dst []byte, from, to int) []byte {
			return t.appendFullText(dst, s.last, from, to)
		})
		in.Keep = keep
		in.AddedText = string(s.text[keep:])
	}
	return in
}

// extendCommon grows keep while cur agrees with the earlier sequence that
// fetch reads, up to limit. Only the compared stretch is materialised, in
// blocks, so the cost is about the size of what changed.
func extendCommon[E comparable](cur []E, keep, limit int, fetch func(dst []E, from, to int) []E) int {
	const block = 512
	var buf []E
	for keep < limit {
		end := min(keep+block, limit)
		buf = fetch(buf[:0], keep, end)
		for k, e := range buf {
			if cur[keep+k] != e {
				return keep + k
			}
		}
		keep = end
	}
	return keep
}

// fillOutput copies the response into c and enforces stops and budget.
func (s *Session) fillOutput(c *Call, resp *llm.Response, carry string, budget int) {
	s.restoreTrimmedStop(resp, c.Stop)
	c.Text = resp.Text
	c.Finish = resp.Finish
	c.StopMatched = resp.StopMatched
	if s.traj.Mode != ModeTokens {
		if len(resp.OutputIDs) > 0 {
			c.Output = slices.Clone(resp.OutputIDs)
		}
		s.clipText(c, carry, budget)
		return
	}
	if len(resp.OutputIDs) == 0 && resp.Text != "" {
		// The backend gave text only: keep going on our own encoding of
		// it, but the trajectory can no longer be trained on.
		c.NoTokenIDs = true
		s.traj.TokenLevel = false
		s.clipText(c, carry, 0)
		c.Output = s.env.Tokenizer.Encode(c.Text)
		if len(c.Output) > budget {
			c.Output = c.Output[:budget]
			c.Text = s.env.Tokenizer.Decode(c.Output)
			c.Finish, c.StopMatched, c.EOS, c.Clipped = llm.FinishLength, "", false, true
		}
		return
	}
	c.Output = slices.Clone(resp.OutputIDs)
	if len(resp.Logprobs) == len(resp.OutputIDs) {
		c.Logprobs = slices.Clone(resp.Logprobs)
	} else if len(resp.Logprobs) > 0 {
		s.log.Warn("backend returned logprobs of the wrong length; dropping them", "tokens", len(resp.OutputIDs), "logprobs", len(resp.Logprobs))
	}
	if len(resp.Versions) == len(resp.OutputIDs) {
		c.Versions = slices.Clone(resp.Versions)
	} else if len(resp.Versions) > 0 {
		s.log.Warn("backend returned versions of the wrong length; dropping them", "tokens", len(resp.OutputIDs), "versions", len(resp.Versions))
	}
	s.clipTokens(c, carry, budget)
	if resp.StopRestored && c.StopMatched == resp.StopMatched && !c.EOS &&
		!strings.HasSuffix(s.env.Tokenizer.Decode(c.Output), c.StopMatched) {
		// The server's tokens end before the stop string it trimmed: add
		// its encoding, marked unsampled, so the context holds the tag.
		ids := s.env.Tokenizer.Encode(c.StopMatched)
		c.Output = append(c.Output, ids...)
		if c.Logprobs != nil {
			c.Logprobs = append(c.Logprobs, make([]float32, len(ids))...)
		}
		if c.Versions != nil {
			for range ids {
				c.Versions = append(c.Versions, -1)
			}
		}
		c.Unsampled = len(ids)
	}
}

// restoreTrimmedStop is llm.RestoreTrimmedStop with the session's own
// context as the prompt: a backend given token ids cannot see that a note
// call's prompt ends in an opened "<think>". It runs only when nothing in
// the reply says how generation ended: no stop string named or at the
// end, and no stop token as the last id.
func (s *Session) restoreTrimmedStop(resp *llm.Response, stops []string) {
	if resp.Finish != llm.FinishStop || resp.StopMatched != "" || len(stops) == 0 {
		return
	}
	if n := len(resp.OutputIDs); n > 0 && slices.Contains(s.env.StopTokenIDs, resp.OutputIDs[n-1]) {
		return
	}
	llm.RestoreTrimmedStop(resp, s.contextTail(), stops)
}

// contextTail is the end of the context as text.
func (s *Session) contextTail() string {
	const tailTokens = 32
	if s.traj.Mode == ModeTokens {
		return s.env.Tokenizer.Decode(s.ids[max(0, len(s.ids)-tailTokens):])
	}
	return string(s.text[max(0, len(s.text)-4*tailTokens):])
}

// clipTokens cuts the output at the first stop token, the first stop
// string or the budget, whichever comes first.
func (s *Session) clipTokens(c *Call, carry string, budget int) {
	n := len(c.Output)
	eos := false
	reason := c.Finish
	for k, id := range c.Output[:min(n, budget)] {
		if slices.Contains(s.env.StopTokenIDs, id) {
			n, eos, reason = k+1, true, llm.FinishStop
			break
		}
	}
	if n > budget {
		n, reason = budget, llm.FinishLength
	}
	text := c.Text
	if n < len(c.Output) {
		text = s.env.Tokenizer.Decode(c.Output[:n])
	}
	stopped := ""
	if len(c.Stop) > 0 {
		if stop, _ := firstStop(carryTail(carry, c.Stop)+text, c.Stop); stop != "" {
			// The shortest token prefix whose text holds a stop string.
			tail := carryTail(carry, c.Stop)
			k := firstPrefix(n, func(k int) bool {
				st, _ := firstStop(tail+s.env.Tokenizer.Decode(c.Output[:k]), c.Stop)
				return st != ""
			})
			st, _ := firstStop(tail+s.env.Tokenizer.Decode(c.Output[:k]), c.Stop)
			if st == "" {
				// The backend's text and our decoding disagree (skipped
				// special tokens); trust the text.
				st = stop
			}
			if k < n {
				n, eos = k, false
				text = s.env.Tokenizer.Decode(c.Output[:n])
			}
			stopped, reason = st, llm.FinishStop
		}
	}
	if n < len(c.Output) {
		c.Clipped = true
		c.Output = c.Output[:n]
		if c.Logprobs != nil {
			c.Logprobs = c.Logprobs[:n]
		}
		if c.Versions != nil {
			c.Versions = c.Versions[:n]
		}
	}
	c.Text = text
	c.Finish = reason
	c.EOS = eos || (reason == llm.FinishStop && stopped == "" && n > 0 && slices.Contains(s.env.StopTokenIDs, c.Output[n-1]))
	c.StopMatched = stopped
	if c.EOS {
		c.StopMatched = ""
	}
}

// textBytesPerToken bounds the output of a text-only call: text longer
// than this many bytes per budgeted token means the backend ignored the
// cap (real text averages about 4).
const textBytesPerToken = 8

// clipText cuts text-only output after the first stop string, and, when
// budget > 0, at textBytesPerToken bytes per budgeted token.
func (s *Session) clipText(c *Call, carry string, budget int) {
	if len(c.Stop) > 0 {
		tail := carryTail(carry, c.Stop)
		if stop, end := firstStop(tail+c.Text, c.Stop); stop != "" {
			end -= len(tail)
			if end < len(c.Text) {
				c.Text = c.Text[:end]
				c.Clipped = true
				c.Output = nil
			}
			c.Finish, c.StopMatched = llm.FinishStop, stop
			if budget <= 0 || len(c.Text) <= budget*textBytesPerToken {
				return
			}
		}
	}
	c.StopMatched = ""
	c.EOS = c.Finish == llm.FinishStop
	if limit := budget * textBytesPerToken; budget > 0 && len(c.Text) > limit {
		c.Text = strings.ToValidUTF8(c.Text[:limit], "")
		c.Output = nil
		c.Finish, c.EOS, c.Clipped = llm.FinishLength, false, true
	}
}

// carryTail is the end of the earlier text of a reply that a stop string
// could start in.
func carryTail(carry string, stops []string) string {
	longest := 0
	for _, st := range stops {
		longest = max(longest, len(st))
	}
	if longest <= 1 || carry == "" {
		return ""
	}
	return carry[max(0, len(carry)-(longest-1)):]
}

// firstStop finds the stop string that ends first in text, and where.
func firstStop(text string, stops []string) (string, int) {
	best, bestEnd := "", -1
	for _, st := range stops {
		if st == "" {
			continue
		}
		if i := strings.Index(text, st); i >= 0 {
			if end := i + len(st); bestEnd < 0 || end < bestEnd {
				best, bestEnd = st, end
			}
		}
	}
	return best, bestEnd
}

// firstPrefix is the smallest k in [1, n] with ok(k), given ok(n) and that
// ok stays true once true.
func firstPrefix(n int, ok func(int) bool) int {
	lo, hi := 1, n
	for lo < hi {
		mid := lo + (hi-lo)/2
		if ok(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// ToolFunc runs a tool. It should honour ctx; RunTool enforces the timeout
// even when it does not.
type ToolFunc[T any] func(ctx context.Context) (T, error)

// RunTool runs fn under Limits.ToolTimeout and records a tool call for the
// current turn. It returns the result, the index of the record in
// Trajectory.Tools (for the caller to fill in the observation) and the
// tool's error: a failure, or a timeout reported as soon as it expires
// even when fn does not return. The run itself goes on either way.
func RunTool[T any](ctx context.Context, s *Session, name, arg string, fn ToolFunc[T]) (T, int, error) {
	t0 := time.Now()
	tctx, cancel := context.WithTimeout(ctx, s.lim.ToolTimeout)
	defer cancel()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				var zero T
				done <- result{zero, fmt.Errorf("%s tool panicked: %v", name, p)}
			}
		}()
		v, err := fn(tctx)
		done <- result{v, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-tctx.Done():
		if ctx.Err() != nil {
			r.err = ctx.Err()
		} else {
			r.err = fmt.Errorf("%s timed out after %s", name, s.lim.ToolTimeout)
		}
	}
	if r.err != nil && errors.Is(r.err, context.DeadlineExceeded) && ctx.Err() == nil {
		r.err = fmt.Errorf("%s timed out after %s", name, s.lim.ToolTimeout)
	}
	rec := ToolCall{
		Name:    name,
		Arg:     arg,
		Turn:    s.turn,
		Call:    s.act,
		Start:   t0.Sub(s.start),
		Latency: time.Since(t0),
	}
	if r.err != nil {
		rec.Error = r.err.Error()
	}
	s.traj.Tools = append(s.traj.Tools, rec)
	idx := len(s.traj.Tools) - 1
	if s.env.OnStep != nil {
		s.env.OnStep(Step{Trajectory: s.traj.ID, Turn: s.turn, Tool: &s.traj.Tools[idx]})
	}
	return r.v, idx, r.err
}

// Finish ends the run: it records the end reason, the error if any, and
// the duration, and returns the trajectory.
func (s *Session) Finish(end EndReason, err error) *Trajectory {
	t := s.traj
	t.End = end
	if err != nil {
		t.Error = err.Error()
		if t.End == "" || t.End == EndModelError {
			t.End = endFromError(err)
		}
	}
	t.Duration = time.Since(s.start)
	return t
}

// SetAnswer records the final answer.
func (s *Session) SetAnswer(answer string) {
	s.traj.Answer = answer
	s.traj.Answered = true
}

func endFromError(err error) EndReason {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return EndCanceled
	case errors.Is(err, ErrContextFull):
		return EndContext
	default:
		return EndModelError
	}
}
