package agent

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tokenizer"
)

// ReasoningConfig configures the reasoning-model agent. Unlike the search
// agent it does not grow one context: every call is a fresh prompt (one
// user message in the model's chat template) holding the question, a
// bounded history of thoughts, actions and notes, and the task of the
// step: act, read a search result, read a page part, or answer.
type ReasoningConfig struct {
	Name    string   `json:"name" yaml:"name"`
	Prompts *Prompts `json:"-" yaml:"-"`
	// TopK hits per search, each cut to DocChars characters.
	TopK     int `json:"topk" yaml:"topk"`
	DocChars int `json:"doc_chars" yaml:"doc_chars"`
	// Pages are cut to PageChars and read in at most MaxParts parts of
	// PartChars; the history keeps the first StubChars of each part.
	PageChars int `json:"page_chars" yaml:"page_chars"`
	PartChars int `json:"part_chars" yaml:"part_chars"`
	MaxParts  int `json:"max_parts" yaml:"max_parts"`
	StubChars int `json:"stub_chars" yaml:"stub_chars"`
	// HistoryChars keeps the last that many characters of the history in
	// each prompt.
	HistoryChars int `json:"history_chars" yaml:"history_chars"`
	// ThoughtChars caps a thought or note kept in the history.
	ThoughtChars int `json:"thought_chars" yaml:"thought_chars"`
	// AnswerAfterSearches offers the answer action only once that many
	// searches have run (0: from the start). Upstream's evaluation agent
	// hid this at 20.
	AnswerAfterSearches int `json:"answer_after_searches" yaml:"answer_after_searches"`
	// ForceAnswerAfter makes act turn N a final-answer call (0: never;
	// upstream used 32). Limits.MaxTurns still applies.
	ForceAnswerAfter int `json:"force_answer_after" yaml:"force_answer_after"`
	// MaxIdleTurns ends the run after that many act turns in a row
	// without an action (default 8).
	MaxIdleTurns int `json:"max_idle_turns" yaml:"max_idle_turns"`
	// MaxArgChars cuts search queries and urls (default 2000).
	MaxArgChars int `json:"max_arg_chars" yaml:"max_arg_chars"`
	// NoAnswerFallback leaves a run that ended without an <answer>
	// unanswered. By default it gets upstream's fallback answer
	// (FallbackAnswer over its act generations), marked AnswerFallback.
	NoAnswerFallback bool `json:"no_answer_fallback" yaml:"no_answer_fallback"`
}

// ReasoningAgentConfig is the reasoning agent with ASearcher's numbers:
// 5 hits, 10,000-character page parts, a 25,000-character history.
func ReasoningAgentConfig() ReasoningConfig {
	return ReasoningConfig{
		Name: "asearcher-reasoning", TopK: 5, DocChars: 5000, PageChars: 250_000, PartChars: 10_000,
		MaxParts: 10, StubChars: 100, HistoryChars: 25_000, ThoughtChars: 4000, ForceAnswerAfter: 32,
	}
}

func (c ReasoningConfig) withDefaults() ReasoningConfig {
	d := ReasoningAgentConfig()
	if c.Name == "" {
		c.Name = d.Name
	}
	if c.Prompts == nil {
		c.Prompts = NewPrompts()
	}
	for _, f := range []struct {
		v   *int
		def int
	}{
		{&c.TopK, d.TopK}, {&c.DocChars, d.DocChars}, {&c.PageChars, d.PageChars}, {&c.PartChars, d.PartChars},
		{&c.MaxParts, d.MaxParts}, {&c.StubChars, d.StubChars}, {&c.HistoryChars, d.HistoryChars},
		{&c.ThoughtChars, d.ThoughtChars}, {&c.MaxIdleTurns, 8}, {&c.MaxArgChars, 2000},
	} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
	return c
}

// ReasoningAgent is the reasoning-model agent.
type ReasoningAgent struct {
	cfg                                  ReasoningConfig
	act, readPage, readFound, answerOnly Prompt
	parser                               *Parser
	thought                              *Parser
}

// NewReasoningAgent builds the agent; its prompts come from cfg.Prompts
// under the asearcher-reasoning/* names.
func NewReasoningAgent(cfg ReasoningConfig) (*ReasoningAgent, error) {
	cfg = cfg.withDefaults()
	a := &ReasoningAgent{cfg: cfg, parser: NewParser(
		Tag{KindSearch, "<search>", "</search>"},
		Tag{KindAccess, "<access>", "</access>"},
		Tag{KindAnswer, "<answer>", "</answer>"},
	), thought: NewParser(Tag{"thought", "<thought>", "</thought>"})}
	for _, p := range []struct {
		dst  *Prompt
		name string
	}{{&a.act, PromptReasonAct}, {&a.readPage, PromptReasonReadPage}, {&a.readFound, PromptReasonReadFound}, {&a.answerOnly, PromptReasonAnswer}} {
		var err error
		if *p.dst, err = cfg.Prompts.Get(p.name); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Name implements Workflow.
func (a *ReasoningAgent) Name() string { return a.cfg.Name }

// reasoningRun is the state of one run.
type reasoningRun struct {
	a        *ReasoningAgent
	s        *Session
	env      *Env
	vars     map[string]string
	history  strings.Builder
	searches int
}

// Run implements Workflow.
func (a *ReasoningAgent) Run(ctx context.Context, env *Env, task Task) (*Trajectory, error) {
	s := NewSession(env, task, a.cfg.Name, PromptReasonAct)
	if env.Sampler == nil {
		err := errors.New("no model: the environment has no sampler")
		return s.Finish(EndUnsupported, err), err
	}
	if env.Tokenizer == nil && env.Template == nil {
		s.UseChat()
	}
	if env.Tokenizer != nil && env.Template == nil {
		err := errors.New("the reasoning agent needs a chat template with a tokenizer (Env.Template)")
		return s.Finish(EndUnsupported, err), err
	}
	r := &reasoningRun{a: a, s: s, env: env, vars: map[string]string{
		"question": strings.TrimSpace(task.Question), "date": taskDate(task),
	}}
	lim := s.Limits()
	idle := 0
	for turn := 0; ; turn++ {
		if turn >= lim.MaxTurns {
			return r.end(EndMaxTurns, nil), nil
		}
		s.SetTurn(turn)
		if a.cfg.ForceAnswerAfter > 0 && turn >= a.cfg.ForceAnswerAfter {
			return r.finalAnswer(ctx)
		}
		answerOK := r.searches >= a.cfg.AnswerAfterSearches
		vars := r.withVars(map[string]string{"answer_action": ""})
		if answerOK {
			vars["answer_action"] = AnswerActionLine
		}
		rep, err := r.generate(ctx, a.act, vars, Gen{Purpose: PurposeAct, Stop: a.parser.CloseMarkers(), Tool: -1})
		if err != nil {
			return r.fail(err)
		}
		act := a.parser.Parse(rep.Text).Action
		thought := r.thoughtOf(rep.Text, act)
		switch {
		case act.Kind == KindAnswer && answerOK:
			s.SetAnswer(AnswerOf(rep.Text, act))
			return s.Finish(EndAnswer, nil), nil
		case act.Kind == KindSearch:
			r.remember(thought, "<search> "+act.Arg+" </search>")
			err = r.search(ctx, capRunes(act.Arg, a.cfg.MaxArgChars))
		case act.Kind == KindAccess:
			r.remember(thought, "<access> "+act.Arg+" </access>")
			err = r.access(ctx, capRunes(act.Arg, a.cfg.MaxArgChars))
		default:
			idle++
			if act.Kind == KindAnswer {
				r.remember(thought, "(an answer was proposed before enough searching: "+capRunes(act.Arg, 200)+")")
			}
			if idle >= a.cfg.MaxIdleTurns {
				return r.end(EndNoProgress, nil), nil
			}
			continue
		}
		idle = 0
		if err != nil {
			return r.fail(err)
		}
	}
}

func (r *reasoningRun) withVars(extra map[string]string) map[string]string {
	v := make(map[string]string, len(r.vars)+len(extra)+1)
	for k, x := range r.vars {
		v[k] = x
	}
	v["history"] = r.historyText()
	for k, x := range extra {
		v[k] = x
	}
	return v
}

// generate renders a prompt as a fresh context and calls the model.
func (r *reasoningRun) generate(ctx context.Context, p Prompt, vars map[string]string, g Gen) (Reply, error) {
	s := r.s
	content := p.Render(vars)
	s.Rewind(0)
	if s.Mode() == ModeChat {
		s.Append(content)
	} else {
		text, err := r.env.Template.Render([]llm.Message{{Role: "user", Content: content}})
		if err != nil {
			return Reply{}, fmt.Errorf("chat template: %w", err)
		}
		s.Append(text)
	}
	return s.Generate(ctx, g)
}

func (r *reasoningRun) fail(err error) (*Trajectory, error) {
	if errors.Is(err, ErrContextFull) {
		return r.end(EndContext, nil), nil
	}
	return r.s.Finish(EndModelError, err), err
}

// thoughtOf is the thought to keep from an act: the <thought> block, or
// else what follows the model's raw reasoning, up to the action.
func (r *reasoningRun) thoughtOf(text string, act Action) string {
	if act.Kind != "" {
		text = text[:act.Start]
	}
	if t := r.a.thought.Parse(text).Action; t.Kind != "" {
		return capRunes(t.Arg, r.a.cfg.ThoughtChars)
	}
	if i := strings.LastIndex(text, "</think>"); i >= 0 {
		text = text[i+len("</think>"):]
	}
	return capRunes(strings.TrimSpace(text), r.a.cfg.ThoughtChars)
}

// remember adds a step to the history.
func (r *reasoningRun) remember(parts ...string) {
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			r.history.WriteString(p)
			r.history.WriteString("\n")
		}
	}
	r.history.WriteString("\n")
}

// historyText is the end of the history that fits HistoryChars.
func (r *reasoningRun) historyText() string {
	h := r.history.String()
	if h == "" {
		return "(nothing yet)"
	}
	n := r.a.cfg.HistoryChars
	if len(h) <= n {
		return strings.TrimSpace(h)
	}
	// Cut on a character boundary near the end, then on a line boundary.
	cut := h[len(h)-n:]
	for i := 0; i < len(cut) && i < 4; i++ {
		if cut[i]&0xC0 != 0x80 {
			cut = cut[i:]
			break
		}
	}
	if i := strings.IndexByte(cut, '\n'); i >= 0 && i < len(cut)-1 {
		cut = cut[i+1:]
	}
	return "...\n" + strings.TrimSpace(cut)
}

// noteOf is the note a read call wrote.
func (r *reasoningRun) noteOf(text string) string { return r.thoughtOf(text, Action{}) }

func (r *reasoningRun) search(ctx context.Context, query string) error {
	s, cfg := r.s, r.a.cfg
	docs, idx, err := searchTool(ctx, s, query, cfg.TopK)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	r.searches++
	var content string
	switch {
	case err != nil:
		content = "Search failed: " + oneLine(err.Error()) + "."
	case len(docs) == 0:
		content = "No results were found for this query."
	default:
		var b strings.Builder
		for k, d := range docs {
			fmt.Fprintf(&b, "[%d] %s\n%s\n\n", k+1, d.URL, capRunes(docBody(d), cfg.DocChars))
		}
		content = strings.TrimSpace(b.String())
	}
	rec := &s.traj.Tools[idx]
	rec.Observation = content
	rec.Docs = capDocs(docs, cfg.DocChars)
	if err != nil || len(docs) == 0 {
		r.remember(content)
		return nil
	}
	rep, err := r.generate(ctx, r.a.readFound, r.withVars(map[string]string{"query": query, "content": content}),
		Gen{Purpose: PurposeRead, Stop: []string{"</thought>"}, Tool: idx})
	if err != nil {
		return err
	}
	r.remember("Results:\n"+content, "Note: "+r.noteOf(rep.Text))
	return nil
}

func (r *reasoningRun) access(ctx context.Context, url string) error {
	s, cfg := r.s, r.a.cfg
	page, idx, err := accessTool(ctx, s, url)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		msg := "Could not open " + url + ": " + oneLine(err.Error()) + "."
		s.traj.Tools[idx].Observation = msg
		r.remember(msg)
		return nil
	}
	content := capRunes(page.Content, cfg.PageChars)
	parts := splitRunes(content, cfg.PartChars, cfg.MaxParts)
	s.traj.Tools[idx].Observation = content
	s.traj.Tools[idx].Page = &PageRead{URL: url, Title: page.Title, Chars: utf8.RuneCountInString(page.Content), Parts: len(parts), PartChars: cfg.PartChars}
	for k, part := range parts {
		vars := r.withVars(map[string]string{"url": url, "part": strconv.Itoa(k+1) + " of " + strconv.Itoa(len(parts)), "content": part})
		rep, err := r.generate(ctx, r.a.readPage, vars, Gen{Purpose: PurposeRead, Stop: []string{"</thought>"}, Tool: idx, Part: k + 1})
		if errors.Is(err, ErrContextFull) {
			// This part does not fit; later parts are no smaller.
			s.log.Debug("page parts skipped: context budget", "url", url, "read", k, "parts", len(parts))
			break
		}
		if err != nil {
			return err
		}
		s.traj.Tools[idx].Page.PartsRead++
		r.remember("Page part "+strconv.Itoa(k+1)+": "+capRunes(part, cfg.StubChars)+" ...", "Note: "+r.noteOf(rep.Text))
	}
	return nil
}

// finalAnswer is the forced last step: one call that must answer.
func (r *reasoningRun) finalAnswer(ctx context.Context) (*Trajectory, error) {
	rep, err := r.generate(ctx, r.a.answerOnly, r.withVars(nil), Gen{Purpose: PurposeAnswer, Stop: []string{"</answer>"}, Tool: -1})
	if err != nil {
		return r.fail(err)
	}
	if act := r.a.parser.Parse(rep.Text).Action; act.Kind == KindAnswer {
		r.s.SetAnswer(AnswerOf(rep.Text, act))
		return r.s.Finish(EndAnswer, nil), nil
	}
	return r.end(EndMaxTurns, nil), nil
}

// end finishes a run that has no answer, with upstream's fallback answer
// unless the configuration turns it off.
func (r *reasoningRun) end(reason EndReason, err error) *Trajectory {
	if !r.a.cfg.NoAnswerFallback {
		var gens []string
		for _, c := range r.s.traj.Calls {
			if c.Purpose == PurposeAct || c.Purpose == PurposeAnswer {
				gens = append(gens, c.Text)
			}
		}
		if ans := FallbackAnswer(gens); ans != "" {
			r.s.SetAnswer(ans)
			r.s.traj.AnswerFallback = true
		}
	}
	return r.s.Finish(reason, err)
}

// TokenizerTemplate renders chat prompts with a tokenizer's chat template
// (Qwen2.5 / Qwen3), with the generation prompt.
type TokenizerTemplate struct {
	Tok     *tokenizer.Tokenizer
	Options tokenizer.ChatOptions
}

// Render implements ChatTemplate.
func (t TokenizerTemplate) Render(msgs []llm.Message) (string, error) {
	in := make([]tokenizer.Message, len(msgs))
	for i, m := range msgs {
		in[i] = tokenizer.Message{Role: m.Role, Content: m.Content}
	}
	opts := t.Options
	opts.AddGenerationPrompt = true
	return t.Tok.ApplyChatTemplate(in, opts)
}
