package reward

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"
)

// Judge styles: how a judge shows the prediction and golds and reads the
// reply. Our style is the default; JudgeStyleASearcher reproduces the MBE
// (model-based evaluation) of ASearcher's evaluation/evaluate.py, so that
// numbers can be set beside its tables.
const (
	JudgeStyleDefault   = ""
	JudgeStyleASearcher = "asearcher"
)

// ASearcherJudgePrompt is the slot layout of upstream's DefaultJudge
// prompt; load its text from upstream with PromptFile to reproduce it
// exactly. This built-in text is our own wording of the same request
// (question, labelled answer, predicted answer; a fenced JSON object with
// "rationale" and "judgement"), so the asearcher style works without a
// file.
const ASearcherJudgePrompt = `Decide whether the predicted answer is equivalent to the labelled answer.

Question: {question}

Labelled answer: {gt_answer}

Predicted answer: {pred_answer}

Is the predicted answer equivalent to the labelled answer? Reply "Correct" if it is and "Incorrect" if it is not, as a JSON object in this form:
` + "```json" + `
{{
    "rationale": "why, in a sentence or two",
    "judgement": "Correct or Incorrect"
}}
` + "```\n"

// judgeTemplate is a judge prompt in upstream's slot syntax (Python's
// str.format): {question}, {gt_answer} and {pred_answer} are filled, {{ and
// }} are literal braces.
type judgeTemplate struct {
	text string
	// version names the prompt in cache keys and judgements.
	version string
}

var judgeSlots = []string{"question", "gt_answer", "pred_answer"}

// parseJudgeTemplate checks a template: every {slot} is one of the three,
// braces are balanced, and the prediction slot is present.
func parseJudgeTemplate(text string) (judgeTemplate, error) {
	seen := map[string]bool{}
	for i := 0; i < len(text); i++ {
		switch text[i] {
		case '{':
			if i+1 < len(text) && text[i+1] == '{' {
				i++
				continue
			}
			end := strings.IndexByte(text[i:], '}')
			if end < 0 {
				return judgeTemplate{}, fmt.Errorf("judge prompt: '{' at byte %d is never closed (write {{ for a literal brace)", i)
			}
			name := text[i+1 : i+end]
			ok := false
			for _, s := range judgeSlots {
				ok = ok || s == name
			}
			if !ok {
				return judgeTemplate{}, fmt.Errorf("judge prompt: unknown slot {%s}; the slots are {question}, {gt_answer} and {pred_answer} (write {{ and }} for literal braces)", name)
			}
			seen[name] = true
			i += end
		case '}':
			if i+1 < len(text) && text[i+1] == '}' {
				i++
				continue
			}
			return judgeTemplate{}, fmt.Errorf("judge prompt: single '}' at byte %d (write }} for a literal brace)", i)
		}
	}
	if !seen["pred_answer"] {
		return judgeTemplate{}, errors.New("judge prompt: no {pred_answer} slot; the judge would never see the prediction")
	}
	sum := sha256.Sum256([]byte(text))
	return judgeTemplate{text: text, version: "template-" + hex.EncodeToString(sum[:6])}, nil
}

// loadJudgeTemplate reads a template file.
func loadJudgeTemplate(path string) (judgeTemplate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return judgeTemplate{}, fmt.Errorf("judge prompt file: %w", err)
	}
	if !utf8.Valid(data) {
		return judgeTemplate{}, fmt.Errorf("judge prompt file %s is not UTF-8 text", path)
	}
	t, err := parseJudgeTemplate(string(data))
	if err != nil {
		return judgeTemplate{}, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// render fills the slots in one pass; values are not expanded again.
func (t judgeTemplate) render(question, golds, pred string) string {
	var b strings.Builder
	s := t.text
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c == '{' || c == '}') && i+1 < len(s) && s[i+1] == c {
			b.WriteByte(c)
			i++
			continue
		}
		if c == '{' {
			end := strings.IndexByte(s[i:], '}')
			switch s[i+1 : i+end] {
			case "question":
				b.WriteString(question)
			case "gt_answer":
				b.WriteString(golds)
			case "pred_answer":
				b.WriteString(pred)
			}
			i += end
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// asearcherPrediction cuts a prediction as upstream does before judging:
// at the first "</" (then to 1,000 characters), and to 500 characters in
// the prompt. Characters are Unicode code points, as in Python.
func asearcherPrediction(pred string) string {
	if i := strings.Index(pred, "</"); i >= 0 {
		pred = truncateRunes(pred[:i], 1000)
	}
	return truncateRunes(pred, 500)
}

// asearcherGolds shows golds as upstream's prompt does: one gold as itself,
// several as Python prints a list of strings (['a', "b's"]).
func asearcherGolds(golds []string) string {
	if len(golds) == 1 {
		return golds[0]
	}
	parts := make([]string, len(golds))
	for i, g := range golds {
		parts[i] = pyStrRepr(g)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// pyStrRepr is Python's repr of a str for printable text: single quotes
// unless the text holds a single quote and no double quote; backslashes,
// the chosen quote and \n, \r, \t escaped, other control characters as
// \xNN.
func pyStrRepr(s string) string {
	q := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == rune(q):
			b.WriteByte('\\')
			b.WriteByte(q)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}

// ParseASearcherVerdict reads a reply the way upstream's DefaultJudge does:
// the text between the last "```json" and the next "```" is parsed as JSON,
// then as a Python literal (single quotes, trailing commas, True/False/None);
// a dict whose "judgement" is "correct" in any case is Correct and any other
// parsed value Incorrect. When neither parse works, the raw reply is
// searched, lower-cased, for `"judgement": "incorrect"` (Incorrect), then
// `"judgement": "correct"` or `"judgement": correct` (Correct). Anything
// else is unparsable (upstream's "Invalid", which retries).
func ParseASearcherVerdict(raw string) (Verdict, string, error) {
	block := raw
	if i := strings.LastIndex(block, "```json"); i >= 0 {
		block = block[i+len("```json"):]
	}
	if i := strings.Index(block, "```"); i >= 0 {
		block = block[:i]
	}
	block = strings.TrimSpace(block)
	var v any
	err := json.Unmarshal([]byte(block), &v)
	if err != nil {
		if js, ok := pyLiteralToJSON(block); ok {
			err = json.Unmarshal([]byte(js), &v)
		}
	}
	if err == nil {
		m, _ := v.(map[string]any)
		rationale, _ := m["rationale"].(string)
		if j, ok := m["judgement"].(string); ok && strings.ToLower(j) == "correct" {
			return Correct, strings.TrimSpace(rationale), nil
		}
		return Incorrect, strings.TrimSpace(rationale), nil
	}
	low := strings.ToLower(raw)
	switch {
	case strings.Contains(low, `"judgement": "incorrect"`):
		return Incorrect, "", nil
	case strings.Contains(low, `"judgement": "correct"`), strings.Contains(low, `"judgement": correct`):
		return Correct, "", nil
	}
	return "", "", fmt.Errorf("no parsable \"judgement\" in reply %q", clip(strings.TrimSpace(raw), 80))
}

// pyLiteralToJSON rewrites the Python literals a judge writes (single- or
// double-quoted strings, True/False/None, trailing commas) as JSON. It
// covers what ast.literal_eval accepts of dicts, lists and strings; ok is
// false on anything it cannot rewrite (an unterminated string).
func pyLiteralToJSON(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			var str strings.Builder
			for ; j < len(s) && s[j] != c; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
					switch s[j] {
					case 'n':
						str.WriteByte('\n')
					case 't':
						str.WriteByte('\t')
					case 'r':
						str.WriteByte('\r')
					default:
						str.WriteByte(s[j])
					}
					continue
				}
				if s[j] == '\n' {
					return "", false // Python strings do not span lines
				}
				str.WriteByte(s[j])
			}
			if j >= len(s) {
				return "", false
			}
			enc, _ := json.Marshal(str.String())
			b.Write(enc)
			i = j
		case c == ',':
			// Drop a trailing comma before } or ].
			k := i + 1
			for k < len(s) && (s[k] == ' ' || s[k] == '\n' || s[k] == '\t' || s[k] == '\r') {
				k++
			}
			if k < len(s) && (s[k] == '}' || s[k] == ']') {
				continue
			}
			b.WriteByte(c)
		case strings.HasPrefix(s[i:], "True"):
			b.WriteString("true")
			i += 3
		case strings.HasPrefix(s[i:], "False"):
			b.WriteString("false")
			i += 4
		case strings.HasPrefix(s[i:], "None"):
			b.WriteString("null")
			i += 3
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}
