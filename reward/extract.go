package reward

import "strings"

const (
	answerOpen  = "<answer>"
	answerClose = "</answer>"
)

// ExtractAnswer returns the text of the last complete <answer>...</answer>
// pair in s, trimmed of whitespace, and whether there was one. Matching is
// that of Python's re.finditer(r"<answer>(.*?)</answer>", s, re.DOTALL):
// case-sensitive, non-greedy, non-overlapping from the left, so
// "<answer><answer>x</answer></answer>" yields "<answer>x". An unterminated
// <answer> does not count.
func ExtractAnswer(s string) (string, bool) {
	var last string
	found := false
	pos := 0
	for {
		i := strings.Index(s[pos:], answerOpen)
		if i < 0 {
			break
		}
		start := pos + i + len(answerOpen)
		j := strings.Index(s[start:], answerClose)
		if j < 0 {
			// No later <answer> can be closed either.
			break
		}
		last, found = s[start:start+j], true
		pos = start + j + len(answerClose)
	}
	if !found {
		return "", false
	}
	return pyStrip(last), true
}

// FormatProblem returns why one model generation fails ASearcher's format
// check (correct_format_fn), or "" when it passes. A generation passes when
// its <search>, <access> and <answer> tags are balanced, it opens at most one
// of them, it never says "Assistant" or "assistant", and it closes </think>
// at most once.
func FormatProblem(generation string) string {
	count := func(tag string) int { return strings.Count(generation, tag) }
	search, access, answer := count("<search>"), count("<access>"), count("<answer>")
	switch {
	case search != count("</search>"):
		return "unbalanced <search> tags"
	case access != count("</access>"):
		return "unbalanced <access> tags"
	case answer != count("</answer>"):
		return "unbalanced <answer> tags"
	case search+access+answer > 1:
		return "more than one action tag"
	case strings.Contains(generation, "Assistant") || strings.Contains(generation, "assistant"):
		return `contains "assistant"`
	case count("</think>") > 1:
		return "more than one </think>"
	}
	return ""
}

// FormatCheck is the outcome of the format gate over a trajectory.
type FormatCheck struct {
	OK bool `json:"ok"`
	// Generation is the index of the first generation that failed, -1 when
	// all passed.
	Generation int `json:"generation"`
	// Problem says why that generation failed.
	Problem string `json:"problem,omitempty"`
}

// CheckFormat applies FormatProblem to every generation of a trajectory,
// as ASearcher does: the gate passes only if every generation passes. A
// trajectory with no generations passes (Python's all([]) is true).
func CheckFormat(generations []string) FormatCheck {
	for i, g := range generations {
		if p := FormatProblem(g); p != "" {
			return FormatCheck{OK: false, Generation: i, Problem: p}
		}
	}
	return FormatCheck{OK: true, Generation: -1}
}
