package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/asearcher/asearcher/llm"
)

// SearchConfig configures the concatenating search agent: one growing
// context (prompt, the model's turns, tool output), as the ASearcher base
// agents, Search-R1 and the tiny-model agent use.
type SearchConfig struct {
	// Name is the workflow name recorded in trajectories.
	Name string `json:"name" yaml:"name"`
	// Prompt names the prompt in Prompts; it may use {question},
	// {validity} and {date}.
	Prompt  string   `json:"prompt" yaml:"prompt"`
	Prompts *Prompts `json:"-" yaml:"-"`
	// Access offers <access> url </access>.
	Access bool `json:"access" yaml:"access"`
	// Notes makes the model write a note (a read call that stops at
	// </think>) after each search result and each page part. Without
	// notes, results are appended and the act continues, and only the
	// first part of a page is shown.
	Notes bool `json:"notes" yaml:"notes"`
	// Style is the observation format: StyleASearcher, StyleSearchR1 or
	// StyleCompact.
	Style string `json:"style" yaml:"style"`
	// TopK hits per search, each cut to DocChars characters.
	TopK     int `json:"topk" yaml:"topk"`
	DocChars int `json:"doc_chars" yaml:"doc_chars"`
	// Pages are cut to PageChars characters and read in at most MaxParts
	// parts of PartChars; once read, a part stays in context as its first
	// StubChars characters followed by the note.
	PageChars int `json:"page_chars" yaml:"page_chars"`
	PartChars int `json:"part_chars" yaml:"part_chars"`
	MaxParts  int `json:"max_parts" yaml:"max_parts"`
	StubChars int `json:"stub_chars" yaml:"stub_chars"`
	// NoteTokens caps a note (0: Limits.MaxCallTokens).
	NoteTokens int `json:"note_tokens" yaml:"note_tokens"`
	// MaxArgChars cuts search queries and urls (default 2000).
	MaxArgChars int `json:"max_arg_chars" yaml:"max_arg_chars"`
	// ExtraStops are more stop strings for act calls (end-of-turn markers
	// in text mode, where stop token ids are unknown).
	ExtraStops []string `json:"extra_stops,omitempty" yaml:"extra_stops"`
	// InvalidHint, when set, is appended after a turn without an action
	// (Search-R1's correction), and a turn ending in EOS without an action
	// does not end the run.
	InvalidHint string `json:"invalid_hint,omitempty" yaml:"invalid_hint"`
	// AutoCloseSearch treats a search left open when the model stopped as
	// complete (Search-R1).
	AutoCloseSearch bool `json:"auto_close_search,omitempty" yaml:"auto_close_search"`
	// MaxIdleTurns ends the run after that many act turns in a row
	// without an action (default 8).
	MaxIdleTurns int `json:"max_idle_turns" yaml:"max_idle_turns"`
	// ClosedBook offers no tools: only <answer> is parsed, so a search the
	// model writes anyway is no action. The closed-book baseline runs
	// through the same loop, limits, trajectory and scoring as the search
	// agents, so the two are compared on equal terms.
	ClosedBook bool `json:"closed_book,omitempty" yaml:"closed_book"`
}

// ASearcherConfig is the ASearcher base-model agent: search and access,
// a note after every search result and page part, 5 hits of at most 5,000
// characters, pages cut to 250,000 characters and read in at most 10 parts
// of 25,000, 100-character stubs.
func ASearcherConfig() SearchConfig {
	return SearchConfig{
		Name: "asearcher", Prompt: PromptASearcher, Access: true, Notes: true, Style: StyleASearcher,
		TopK: 5, DocChars: 5000, PageChars: 250_000, PartChars: 25_000, MaxParts: 10, StubChars: 100,
	}
}

// SearchOnlyConfig is ASearcherConfig without access.
func SearchOnlyConfig() SearchConfig {
	c := ASearcherConfig()
	c.Name, c.Prompt, c.Access = "asearcher-search-only", PromptSearchOnly, false
	return c
}

// SearchR1Config is the Search-R1 style agent: raw text concatenation,
// results appended in place, no notes, a correction after invalid turns.
func SearchR1Config() SearchConfig {
	return SearchConfig{
		Name: "search-r1", Prompt: PromptSearchR1, Style: StyleSearchR1,
		TopK: 5, DocChars: 5000, PageChars: 25_000, PartChars: 25_000, MaxParts: 1,
		ExtraStops:      []string{"<|im_end|>", "<|endoftext|>"},
		InvalidHint:     "\nThat was not a valid action. To search, put the query between <search> and </search>; to answer, put the answer between <answer> and </answer>.\n",
		AutoCloseSearch: true,
	}
}

// ClosedBookConfig is the closed-book baseline: the base-model prompt
// family of ASearcherConfig without tools, answering from the model's own
// knowledge. Two idle turns: a reply cut by the token budget gets one
// continuation.
func ClosedBookConfig() SearchConfig {
	return SearchConfig{Name: "closed-book", Prompt: PromptClosedBook, Style: StyleASearcher, ClosedBook: true, MaxIdleTurns: 2}
}

// TinyConfig is for a tiny model with a short context: the minimal prompt,
// compact observations, 3 hits of at most 300 characters, no notes.
func TinyConfig() SearchConfig {
	return SearchConfig{
		Name: "tiny", Prompt: PromptTiny, Style: StyleCompact,
		TopK: 3, DocChars: 300, PageChars: 1000, PartChars: 1000, MaxParts: 1, MaxIdleTurns: 2,
	}
}

func (c SearchConfig) withDefaults() SearchConfig {
	if c.Name == "" {
		c.Name = "search-agent"
	}
	if c.Prompt == "" {
		c.Prompt = PromptASearcher
	}
	if c.Prompts == nil {
		c.Prompts = NewPrompts()
	}
	if c.Style == "" {
		c.Style = StyleASearcher
	}
	if c.TopK <= 0 {
		c.TopK = 5
	}
	if c.DocChars <= 0 {
		c.DocChars = 5000
	}
	if c.PageChars <= 0 {
		c.PageChars = 250_000
	}
	if c.PartChars <= 0 {
		c.PartChars = 25_000
	}
	if c.MaxParts <= 0 {
		c.MaxParts = 10
	}
	if c.StubChars <= 0 {
		c.StubChars = 100
	}
	if c.MaxArgChars <= 0 {
		c.MaxArgChars = 2000
	}
	if c.MaxIdleTurns <= 0 {
		c.MaxIdleTurns = 8
	}
	return c
}

// SearchAgent is the concatenating agent (ASearcher base, search-only,
// Search-R1, tiny), configured by SearchConfig.
type SearchAgent struct {
	cfg    SearchConfig
	prompt Prompt
	parser *Parser
	stops  []string
	// searchOpen is the search tag exploration writes ("" without search).
	searchOpen string
}

// NewSearchAgent checks the configuration and builds the agent.
func NewSearchAgent(cfg SearchConfig) (*SearchAgent, error) {
	cfg = cfg.withDefaults()
	p, err := cfg.Prompts.Get(cfg.Prompt)
	if err != nil {
		return nil, err
	}
	if p.Chat {
		return nil, fmt.Errorf("prompt %q is a chat prompt; the search agent needs a raw prompt", cfg.Prompt)
	}
	switch cfg.Style {
	case StyleASearcher, StyleSearchR1, StyleCompact:
	default:
		return nil, fmt.Errorf("unknown observation style %q (want %s, %s or %s)", cfg.Style, StyleASearcher, StyleSearchR1, StyleCompact)
	}
	if cfg.ClosedBook && cfg.Access {
		return nil, errors.New("a closed-book agent offers no tools: it cannot also offer access")
	}
	var tags []Tag
	if !cfg.ClosedBook {
		tags = append(tags, Tag{KindSearch, "<search>", "</search>"})
		if cfg.Style == StyleSearchR1 {
			tags = append(tags, Tag{KindSearch, "<|begin_of_query|>", "<|end_of_query|>"})
		}
		if cfg.Access {
			tags = append(tags, Tag{KindAccess, "<access>", "</access>"})
		}
	}
	tags = append(tags, Tag{KindAnswer, "<answer>", "</answer>"})
	parser := NewParser(tags...)
	a := &SearchAgent{cfg: cfg, prompt: p, parser: parser, stops: append(parser.CloseMarkers(), cfg.ExtraStops...)}
	if !cfg.ClosedBook {
		a.searchOpen = tags[0].Open
	}
	return a, nil
}

// Name implements Workflow.
func (a *SearchAgent) Name() string { return a.cfg.Name }

// Config returns the agent's configuration with defaults filled in.
func (a *SearchAgent) Config() SearchConfig { return a.cfg }

const (
	noteOpen  = "\n\n<think>\n"
	noteClose = "</think>"
)

// Run implements Workflow: act turns until an answer, EOS or a limit.
func (a *SearchAgent) Run(ctx context.Context, env *Env, task Task) (*Trajectory, error) {
	s := NewSession(env, task, a.cfg.Name, a.cfg.Prompt)
	if env.Sampler == nil {
		err := errors.New("no model: the environment has no sampler")
		return s.Finish(EndUnsupported, err), err
	}
	s.Append(a.prompt.Render(promptVars(task)))
	lim := s.Limits()
	idle := 0
	// pending is act text cut off by the token budget without an action:
	// the next act call continues it, and the action may span both.
	pending := ""
	for turn := 0; ; turn++ {
		if turn >= lim.MaxTurns {
			return s.Finish(EndMaxTurns, nil), nil
		}
		s.SetTurn(turn)
		rep, err := s.Generate(ctx, Gen{Purpose: PurposeAct, Stop: a.stops, Tool: -1, Carry: pending})
		if err != nil {
			return a.fail(s, err)
		}
		text := pending + rep.Text
		pending = ""
		act := a.action(text, rep)
		forced := false
		if act.Kind == KindAnswer && turn+1 < lim.MaxTurns {
			// Exploration: the answer is replaced by the search tag and the
			// model writes the query, in the same turn.
			if carry, ok := a.forceSearch(s, rep, text, act); ok {
				forced = true
				rep, err = s.Generate(ctx, Gen{Purpose: PurposeAct, Stop: a.stops, Tool: -1, Carry: carry})
				if err != nil {
					return a.fail(s, err)
				}
				text = carry + rep.Text
				act = a.action(text, rep)
			}
		}
		switch act.Kind {
		case KindAnswer:
			s.SetAnswer(AnswerOf(text, act))
			return s.Finish(EndAnswer, nil), nil
		case KindSearch:
			err = a.search(ctx, s, act.Arg)
			if forced && act.Start < len(text)-len(rep.Text) {
				// The search whose tag exploration wrote.
				s.traj.Tools[len(s.traj.Tools)-1].Forced = true
			}
		case KindAccess:
			err = a.access(ctx, s, act.Arg)
		default:
			idle++
			switch {
			case a.cfg.InvalidHint != "":
				s.Append(a.cfg.InvalidHint)
			case rep.EOS:
				return s.Finish(EndStopped, nil), nil
			case rep.Finish == llm.FinishLength:
				pending = text
			}
			if idle >= a.cfg.MaxIdleTurns {
				return s.Finish(EndNoProgress, nil), nil
			}
			continue
		}
		idle = 0
		if errors.Is(err, errStopped) {
			return s.Finish(EndStopped, nil), nil
		}
		if err != nil {
			return a.fail(s, err)
		}
	}
}

// action is the act a reply asks for (text is the whole generation,
// carry included).
func (a *SearchAgent) action(text string, rep Reply) Action {
	parsed := a.parser.Parse(text)
	act := parsed.Action
	if act.Kind == "" && a.cfg.AutoCloseSearch && rep.Finish != llm.FinishLength {
		for _, u := range parsed.Unterminated {
			if u.Kind == KindSearch {
				act = u
			}
		}
	}
	return act
}

// errStopped is a note that ended with EOS: the model ended the episode.
var errStopped = errors.New("model stopped")

func (a *SearchAgent) fail(s *Session, err error) (*Trajectory, error) {
	if errors.Is(err, ErrContextFull) {
		return s.Finish(EndContext, nil), nil
	}
	t := s.Finish(EndModelError, err)
	return t, err
}

func promptVars(task Task) map[string]string {
	validity := ValidityIsValid
	if task.MayBeInvalid {
		validity = ValidityMayBeInvalid
	}
	return map[string]string{"question": strings.TrimSpace(task.Question), "validity": validity, "date": taskDate(task)}
}

// search runs one search, shows the hits and, with notes, asks for a note.
func (a *SearchAgent) search(ctx context.Context, s *Session, query string) error {
	query = capRunes(query, a.cfg.MaxArgChars)
	docs, idx, err := searchTool(ctx, s, query, a.cfg.TopK)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	obs := searchObservation(a.cfg.Style, docs, a.cfg.DocChars, err)
	rec := &s.traj.Tools[idx]
	rec.Observation = obs
	rec.Docs = capDocs(docs, a.cfg.DocChars)
	if err != nil {
		s.log.Debug("search failed", "query", query, "err", err)
	}
	if !a.cfg.Notes {
		s.Append(obs)
		return nil
	}
	piece := s.Encode(obs + noteOpen)
	if !s.Fits(piece.Tokens()) {
		return ErrContextFull
	}
	s.AppendPiece(piece)
	return a.note(ctx, s, idx, 0)
}

// note asks for a note on the tool result just appended.
func (a *SearchAgent) note(ctx context.Context, s *Session, tool, part int) error {
	rep, err := s.Generate(ctx, Gen{Purpose: PurposeRead, Stop: []string{noteClose}, MaxTokens: a.cfg.NoteTokens, Tool: tool, Part: part})
	if err != nil {
		return err
	}
	if rep.EOS {
		return errStopped
	}
	if rep.StopMatched != noteClose {
		s.Append("\n" + noteClose)
	}
	return nil
}

// access reads a page part by part, a note per part; each part is then
// replaced by a short stub so later turns carry only the notes.
func (a *SearchAgent) access(ctx context.Context, s *Session, url string) error {
	url = capRunes(url, a.cfg.MaxArgChars)
	page, idx, err := accessTool(ctx, s, url)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		obs := failureObservation(a.cfg.Style, "Could not open "+url, err)
		s.traj.Tools[idx].Observation = obs
		s.Append(obs)
		return nil
	}
	content := capRunes(page.Content, a.cfg.PageChars)
	parts := splitRunes(content, a.cfg.PartChars, a.cfg.MaxParts)
	rec := &s.traj.Tools[idx]
	rec.Observation = content
	rec.Page = &PageRead{URL: url, Title: page.Title, Chars: utf8.RuneCountInString(page.Content), Parts: len(parts), PartChars: a.cfg.PartChars}
	if !a.cfg.Notes {
		s.Append(pageObservation(a.cfg.Style, 1, parts[0], 0))
		rec.Page.PartsRead = 1
		return nil
	}
	for k, part := range parts {
		mark := s.Mark()
		piece := s.Encode(pageObservation(a.cfg.Style, k+1, part, 0) + noteOpen)
		if !s.Fits(piece.Tokens()) {
			s.log.Debug("page parts skipped: context budget", "url", url, "read", k, "parts", len(parts))
			break
		}
		s.AppendPiece(piece)
		rep, err := s.Generate(ctx, Gen{Purpose: PurposeRead, Stop: []string{noteClose}, MaxTokens: a.cfg.NoteTokens, Tool: idx, Part: k + 1})
		if errors.Is(err, ErrContextFull) {
			// The server refused the part (its window is smaller than the
			// budget knew); later parts are no smaller. Take it back out.
			s.Rewind(mark)
			s.log.Debug("page parts skipped: the server's context window", "url", url, "read", k, "parts", len(parts))
			break
		}
		if err != nil {
			return err
		}
		s.Rewind(mark)
		s.Append(pageObservation(a.cfg.Style, k+1, part, a.cfg.StubChars) + noteOpen)
		for i := rep.First; i <= rep.Last; i++ {
			s.AppendOutput(i)
		}
		s.traj.Tools[idx].Page.PartsRead++
		if rep.EOS {
			return errStopped
		}
		if rep.StopMatched != noteClose {
			s.Append("\n" + noteClose)
		}
	}
	return nil
}
