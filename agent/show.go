package agent

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ShowOptions control Show.
type ShowOptions struct {
	// Width caps shortened text in characters (default 240).
	Width int
}

// Show prints a trajectory for a person: each turn's reasoning and action,
// tool calls with shortened results, notes, the answer, and totals.
func Show(w io.Writer, t *Trajectory, o ShowOptions) error {
	if o.Width <= 0 {
		o.Width = 240
	}
	p := &printer{w: w, width: o.Width}
	p.line("Question: %s", t.Question)
	p.line("Agent: %s (prompt %s, %s mode)", t.Agent, t.Prompt, t.Mode)
	byCall := map[int][]int{}
	for i, tc := range t.Tools {
		byCall[tc.Call] = append(byCall[tc.Call], i)
	}
	turn := -1
	for i := range t.Calls {
		c := &t.Calls[i]
		if c.Turn != turn {
			turn = c.Turn
			p.line("")
			p.line("Turn %d", turn+1)
		}
		tokens := strconv.Itoa(len(c.Output)) + " tokens"
		if len(c.Output) == 0 && c.Text != "" {
			tokens = strconv.Itoa(len(c.Text)) + " bytes"
		}
		stat := fmt.Sprintf("(%s, %s%s)", tokens, secs(c.Latency), finishNote(c))
		switch c.Purpose {
		case PurposeRead:
			label := "note"
			if c.Part > 0 && c.Tool >= 0 && c.Tool < len(t.Tools) && t.Tools[c.Tool].Page != nil {
				label = fmt.Sprintf("note on part %d/%d", c.Part, t.Tools[c.Tool].Page.Parts)
			}
			p.line("  %s %s: %s", label, stat, p.short(stripTags(c.Text)))
		default:
			p.line("  %s %s: %s", c.Purpose, stat, p.short(c.Text))
		}
		for _, ti := range byCall[i] {
			p.tool(&t.Tools[ti])
		}
	}
	p.line("")
	if t.Answered {
		p.line("Answer: %s", t.Answer)
	} else {
		p.line("Answer: (none)")
	}
	s := t.Stats()
	end := string(t.End)
	if t.Error != "" {
		end += ": " + t.Error
	}
	p.line("Ended: %s", end)
	p.line("Turns: %d · model calls: %d · searches: %d · accesses: %d · tool errors: %d", s.Turns, s.Calls, s.Searches, s.Accesses, s.ToolErrors)
	estimated := ""
	if t.Mode != ModeTokens {
		estimated = " (estimated from text)"
	}
	p.line("Tokens: %d generated · %d context (largest call)%s", s.GeneratedTokens, s.ContextTokens, estimated)
	p.line("Time: %s (model %s, tools %s)", secs(t.Duration), secs(s.ModelTime), secs(s.ToolTime))
	switch {
	case t.Mode != ModeTokens:
		p.line("Note: %s mode (no --tokenizer): no token-level data; the trajectory can be evaluated but not trained on.", t.Mode)
	case !t.TokenLevel:
		p.line("Note: the model server returned text without token ids; the trajectory can be evaluated but not trained on.")
	}
	return p.err
}

type printer struct {
	w     io.Writer
	width int
	err   error
}

func (p *printer) line(format string, args ...any) {
	if p.err != nil {
		return
	}
	_, p.err = fmt.Fprintf(p.w, format+"\n", args...)
}

// short collapses white space and cuts to the width.
func (p *printer) short(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len([]rune(s)) > p.width {
		return capRunes(s, p.width) + " …"
	}
	if s == "" {
		return "(empty)"
	}
	return s
}

func (p *printer) tool(tc *ToolCall) {
	head := fmt.Sprintf("  → %s %q (%s)", tc.Name, tc.Arg, secs(tc.Latency))
	switch {
	case tc.Error != "":
		p.line("%s failed: %s", head, tc.Error)
	case tc.Page != nil:
		p.line("%s %d chars in %d parts, %d read", head, tc.Page.Chars, tc.Page.Parts, tc.Page.PartsRead)
	case tc.Name == KindSearch:
		p.line("%s %d results", head, len(tc.Docs))
		for k, d := range tc.Docs {
			title := d.Title
			if title == "" {
				title = "(untitled)"
			}
			p.line("      [%d] %s %s", k+1, title, d.URL)
			text := d.Text
			if first, rest, ok := strings.Cut(text, "\n"); ok && strings.Trim(strings.TrimSpace(first), `"`) == strings.Trim(title, `"`) {
				text = rest
			}
			p.line("          %s", p.short(text))
		}
	default:
		p.line("%s %s", head, p.short(tc.Observation))
	}
}

func finishNote(c *Call) string {
	switch {
	case c.Clipped:
		return ", cut by the agent"
	case c.Finish == "length":
		return ", hit the token limit"
	}
	return ""
}

func secs(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
}

// stripTags removes think markers from a note for display.
func stripTags(s string) string {
	return strings.NewReplacer("<think>", "", "</think>", "", "<thought>", "", "</thought>", "").Replace(s)
}
