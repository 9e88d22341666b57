package agent

import (
	"strings"
	"unicode/utf8"

	"github.com/asearcher/asearcher/reward"
)

// Action kinds of the built-in tag protocol. Custom tools use their own
// names (the Kind of their Tag).
const (
	KindSearch = "search"
	KindAccess = "access"
	KindAnswer = "answer"
)

// Tag is one action's pair of markers. Several tags may share a Kind
// (Search-R1's <|begin_of_query|> ... <|end_of_query|> is another spelling of
// a search).
type Tag struct {
	Kind  string
	Open  string
	Close string
}

// ProtocolTags are the action tags of the ASearcher protocol: search,
// access and answer, plus the Search-R1 query markers as a second spelling
// of search.
func ProtocolTags() []Tag {
	return []Tag{
		{KindSearch, "<search>", "</search>"},
		{KindSearch, "<|begin_of_query|>", "<|end_of_query|>"},
		{KindAccess, "<access>", "</access>"},
		{KindAnswer, "<answer>", "</answer>"},
	}
}

// Action is one tag pair found in a generation.
type Action struct {
	// Kind is the action's name; "" means the generation holds no action.
	Kind string `json:"kind,omitempty"`
	// Arg is the text between the markers, trimmed of surrounding white
	// space, with invalid UTF-8 replaced by U+FFFD. It may be empty.
	Arg string `json:"arg,omitempty"`
	// Start and End are the byte offsets of the opening marker and of the
	// end of the closing marker (for an unterminated tag, End is the end of
	// the text).
	Start int `json:"start"`
	End   int `json:"end"`
}

// Parsed is what a generation asks for.
//
// The rules, in order:
//   - An action is an opening marker followed later by its tag's closing
//     marker. When an opening marker is repeated before the close
//     (<search>a<search>b</search>), the innermost one counts, so the
//     argument is "b". A closing marker with no open tag is ignored.
//   - Tags of different kinds are matched independently, so one tag pair may
//     sit inside another's argument.
//   - Exactly one action is chosen per generation: the complete pair whose
//     closing marker ends last ("last match wins"). With stop strings at
//     the closing markers this is the action the model stopped on.
//   - An opening marker never closed is reported in Unterminated and is not
//     an action; agents decide what to do with it (Search-R1 closes a
//     dangling search itself).
//   - An empty argument is still an action; agents answer an empty search
//     or access with an error observation and accept an empty answer.
type Parsed struct {
	Action Action `json:"action"`
	// Complete counts all complete tag pairs; more than one means the model
	// wrote several actions in one generation (only Action is executed).
	Complete int `json:"complete,omitempty"`
	// Unterminated lists, per kind, the last opening marker left open after
	// the last complete action of that kind, with the text after it as Arg.
	Unterminated []Action `json:"unterminated,omitempty"`
}

// Parser finds actions in model output. The zero value is not usable; build
// one with NewParser. A Parser is safe for concurrent use.
type Parser struct {
	tags []Tag
	// first bytes after '<' of every marker, to skip most '<' quickly
	seconds [256]bool
}

// NewParser returns a parser for the given tags; with none it uses
// ProtocolTags. Every marker must start with '<'.
func NewParser(tags ...Tag) *Parser {
	if len(tags) == 0 {
		tags = ProtocolTags()
	}
	p := &Parser{tags: append([]Tag(nil), tags...)}
	for _, t := range p.tags {
		for _, m := range []string{t.Open, t.Close} {
			if len(m) > 1 {
				p.seconds[m[1]] = true
			}
		}
	}
	return p
}

// Tags returns the parser's tags.
func (p *Parser) Tags() []Tag { return append([]Tag(nil), p.tags...) }

// CloseMarkers returns the distinct closing markers: the stop strings of an
// act call.
func (p *Parser) CloseMarkers() []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range p.tags {
		if !seen[t.Close] {
			seen[t.Close] = true
			out = append(out, t.Close)
		}
	}
	return out
}

// Parse finds the action of one generation. It runs in time linear in the
// text (times the number of tags) and never fails: text without tags, or
// garbage, parses to an empty Action.
func (p *Parser) Parse(text string) Parsed {
	var res Parsed
	// Per tag: where its innermost open marker starts and where its
	// argument begins; -1 when not open.
	openAt := make([]int, len(p.tags))
	argAt := make([]int, len(p.tags))
	for i := range openAt {
		openAt[i] = -1
	}
	best := Action{}
	bestEnd := -1
	for i := 0; i < len(text); {
		j := strings.IndexByte(text[i:], '<')
		if j < 0 {
			break
		}
		i += j
		if i+1 >= len(text) || !p.seconds[text[i+1]] {
			i++
			continue
		}
		rest := text[i:]
		advanced := false
		for t := range p.tags {
			tag := &p.tags[t]
			switch {
			case strings.HasPrefix(rest, tag.Open):
				openAt[t] = i
				argAt[t] = i + len(tag.Open)
				i += len(tag.Open)
				advanced = true
			case strings.HasPrefix(rest, tag.Close):
				end := i + len(tag.Close)
				if openAt[t] >= 0 {
					res.Complete++
					if end > bestEnd {
						bestEnd = end
						best = Action{Kind: tag.Kind, Arg: cleanArg(text[argAt[t]:i]), Start: openAt[t], End: end}
					}
					openAt[t] = -1
				}
				i = end
				advanced = true
			}
			if advanced {
				break
			}
		}
		if !advanced {
			i++
		}
	}
	res.Action = best
	for t := range p.tags {
		if openAt[t] >= 0 {
			res.Unterminated = append(res.Unterminated, Action{
				Kind: p.tags[t].Kind, Arg: cleanArg(text[argAt[t]:]), Start: openAt[t], End: len(text),
			})
		}
	}
	return res
}

// cleanArg trims an argument and makes it valid UTF-8.
func cleanArg(s string) string {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

// AnswerOf is the final answer in a generation whose action is an answer,
// extracted as upstream does (ASearcher's eval driver and reward both take
// the last non-greedy match of <answer>(.*?)</answer>, stripped as Python
// strips): "<answer>x<answer>y</answer>" answers "x<answer>y", not the
// innermost "y" the action parser sees. It falls back to the action's
// argument when the text has no complete pair (an answer closed by a
// restored or continued stop).
func AnswerOf(text string, act Action) string {
	if ans, ok := reward.ExtractAnswer(text); ok {
		return cleanArg(ans)
	}
	return act.Arg
}

// FallbackAnswer is upstream's answer for a reasoning run that ended
// without one (asearcher_reasoning.get_answer): of the act generations
// joined by blank lines, the last line that mentions "answer" (any case),
// as it stands; with no such line, the text after the last </think>,
// trimmed. "" when there is nothing.
func FallbackAnswer(generations []string) string {
	text := strings.Join(generations, "\n\n")
	lines := strings.Split(text, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(strings.ToLower(lines[i]), "answer") {
			return strings.ToValidUTF8(lines[i], "\uFFFD")
		}
	}
	text = strings.TrimSpace(text)
	if i := strings.LastIndex(text, "</think>"); i >= 0 {
		text = text[i+len("</think>"):]
	}
	return cleanArg(text)
}
