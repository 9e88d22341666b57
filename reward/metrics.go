package reward

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// PRF is a token-overlap score with its precision and recall.
type PRF struct {
	F1        float64 `json:"f1"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
}

// F1Rule picks which official script's corner cases TokenF1 follows. All
// of them count tokens of NormalizeAnswer as a multiset.
type F1Rule int

const (
	// SQuADv1 is evaluate-v1.1.py: 0 when nothing overlaps, including when
	// both sides are empty.
	SQuADv1 F1Rule = iota
	// SQuADv2 is evaluate-v2.0.py, also used by MuSiQue: when either side has
	// no tokens, 1 if both have none and 0 otherwise.
	SQuADv2
	// HotpotQA is hotpot_evaluate_v1.py, also used by 2WikiMultihopQA and
	// FlashRAG: 0 when either normalised side is yes, no or noanswer and the
	// two differ.
	HotpotQA
)

// EM is exact match after NormalizeAnswer, maxed over the gold answers
// (1 or 0). It is the EM of every official script except ASearcher's
// training reward, which applies BoolMapping to both sides first.
func EM(prediction string, golds []string) float64 {
	p := NormalizeAnswer(prediction)
	for _, g := range golds {
		if NormalizeAnswer(g) == p {
			return 1
		}
	}
	return 0
}

// SubEM is 1 when some normalised gold answer is a substring of the
// normalised prediction (FlashRAG's Sub_ExactMatch, ASearcher's subem).
func SubEM(prediction string, golds []string) float64 {
	p := NormalizeAnswer(prediction)
	for _, g := range golds {
		if strings.Contains(p, NormalizeAnswer(g)) {
			return 1
		}
	}
	return 0
}

// F1 is SQuAD v1.1 token F1, maxed over the gold answers.
func F1(prediction string, golds []string) float64 {
	return MaxTokenF1(prediction, golds, SQuADv1).F1
}

// TokenF1 is the multiset token F1 of one prediction against one gold
// answer under rule.
func TokenF1(prediction, gold string, rule F1Rule) PRF {
	return tokenF1Normalized(NormalizeAnswer(prediction), NormalizeAnswer(gold), rule)
}

// tokenF1Normalized is TokenF1 on strings already passed through
// NormalizeAnswer.
func tokenF1Normalized(p, g string, rule F1Rule) PRF {
	if rule == HotpotQA && p != g && (isYesNo(p) || isYesNo(g)) {
		return PRF{}
	}
	pt := strings.Fields(p) // NormalizeAnswer leaves single ASCII spaces only
	gt := strings.Fields(g)
	if rule == SQuADv2 && (len(pt) == 0 || len(gt) == 0) {
		if len(pt) == len(gt) {
			return PRF{1, 1, 1}
		}
		return PRF{}
	}
	same := multisetOverlap(pt, gt)
	if same == 0 {
		return PRF{}
	}
	// Same operation order as the Python scripts so that the floats agree
	// to the last bit.
	precision := 1.0 * float64(same) / float64(len(pt))
	recall := 1.0 * float64(same) / float64(len(gt))
	return PRF{F1: (2 * precision * recall) / (precision + recall), Precision: precision, Recall: recall}
}

// MaxTokenF1 maxes F1, precision and recall over the gold answers, each
// independently, as the 2WikiMultihopQA and FlashRAG scripts do (so the
// three may come from different golds). For SQuAD and MuSiQue only F1 is
// reported and it is the same max.
func MaxTokenF1(prediction string, golds []string, rule F1Rule) PRF {
	var best PRF
	for _, g := range golds {
		s := TokenF1(prediction, g, rule)
		best.F1 = max(best.F1, s.F1)
		best.Precision = max(best.Precision, s.Precision)
		best.Recall = max(best.Recall, s.Recall)
	}
	return best
}

func isYesNo(s string) bool { return s == "yes" || s == "no" || s == "noanswer" }

// multisetOverlap is sum(min(count_a(t), count_b(t))) over tokens t, i.e.
// Python's sum((Counter(a) & Counter(b)).values()).
func multisetOverlap(a, b []string) int {
	if len(a) <= 16 && len(b) <= 16 {
		// Answers are a few tokens long; pairwise matching with a used mask
		// avoids building two maps.
		var used [16]bool
		same := 0
		for _, x := range a {
			for j, y := range b {
				if !used[j] && x == y {
					used[j] = true
					same++
					break
				}
			}
		}
		return same
	}
	counts := make(map[string]int, len(b))
	for _, y := range b {
		counts[y]++
	}
	same := 0
	for _, x := range a {
		if counts[x] > 0 {
			counts[x]--
			same++
		}
	}
	return same
}

// SetF1Options select the variant of ASearcher's set-based F1.
type SetF1Options struct {
	// BoolMapping applies BoolMapping to both sides first.
	BoolMapping bool
	// CJK switches to character sets when the normalised gold contains a
	// CJK ideograph: each character is a token, runs of digits are added
	// as tokens, and ASCII digits, spaces and "，。,.-" are dropped from the
	// characters.
	CJK bool
}

var (
	// EvalSetF1 is the F1 of ASearcher's evaluation script (evaluate.py):
	// no True/False mapping and no CJK rule.
	EvalSetF1 = SetF1Options{}
	// RewardSetF1 is the F1 of ASearcher's training reward (rewards.py).
	RewardSetF1 = SetF1Options{BoolMapping: true, CJK: true}
)

// SetF1 is ASearcher's F1 of one prediction against one gold: tokens of
// NormalizeText compared as sets, 0 when either side has none.
func SetF1(prediction, gold string, opt SetF1Options) float64 {
	if opt.BoolMapping {
		prediction, gold = BoolMapping(prediction), BoolMapping(gold)
	}
	return setF1Normalized(NormalizeText(prediction), NormalizeText(gold), opt.CJK)
}

// setF1Normalized is SetF1 on strings already passed through NormalizeText.
func setF1Normalized(p, g string, cjk bool) float64 {
	var pt, gt []string
	if cjk && ContainsCJK(g) {
		pt, gt = cjkTokenSet(p), cjkTokenSet(g)
	} else {
		pt, gt = tokenSet(p), tokenSet(g)
	}
	if len(gt) == 0 || len(pt) == 0 {
		return 0
	}
	common := sortedIntersection(pt, gt)
	precision := float64(common) / float64(len(pt))
	recall := float64(common) / float64(len(gt))
	if precision+recall <= 0 {
		return 0
	}
	// Multiplying by 2 is exact, so ASearcher's grouping 2*(p*r) and the
	// SQuAD scripts' (2*p)*r give the same bits.
	return 2 * (precision * recall) / (precision + recall)
}

// MaxSetF1 is SetF1 maxed over the gold answers.
func MaxSetF1(prediction string, golds []string, opt SetF1Options) float64 {
	best := 0.0
	for _, g := range golds {
		best = max(best, SetF1(prediction, g, opt))
	}
	return best
}

// tokenSet is Python's set(s.split()), as a sorted slice without repeats.
func tokenSet(s string) []string {
	return sortedSet(pyFields(s))
}

// cjkTokenSet is ASearcher's parse_chinese_str: the set of characters left
// after deleting ASCII digits, spaces and "，。,.-", plus every maximal run of
// digits (Python isdigit, so superscripts and fullwidth digits count too).
// Tokens are substrings of s, so building the set allocates one slice.
func cjkTokenSet(s string) []string {
	toks := make([]string, 0, len(s)/2+1)
	runStart := -1
	prevDigit := false
	for i, r := range s {
		d := isPyDigit(r)
		if d && !prevDigit {
			runStart = i
		}
		if !d && prevDigit {
			toks = append(toks, s[runStart:i])
		}
		prevDigit = d
		switch {
		case r >= '0' && r <= '9', r == ' ', r == ',', r == '.', r == '-', r == '，', r == '。':
		default:
			toks = append(toks, s[i:i+utf8.RuneLen(r)])
		}
	}
	if prevDigit {
		toks = append(toks, s[runStart:])
	}
	return sortedSet(toks)
}

func sortedSet(toks []string) []string {
	slices.Sort(toks)
	return slices.Compact(toks)
}

// sortedIntersection counts the strings two sorted sets share.
func sortedIntersection(a, b []string) int {
	n, i, j := 0, 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] == b[j]:
			n++
			i++
			j++
		case a[i] < b[j]:
			i++
		default:
			j++
		}
	}
	return n
}

// CEM is ASearcher's cover exact match: 1 when every token of some
// normalised gold occurs among the prediction's tokens, order and adjacency
// ignored. Both sides go through BoolMapping and NormalizeAnswer and are split
// on single spaces, so an empty gold is covered only by an empty prediction.
func CEM(prediction string, golds []string) float64 {
	pred := splitSpace(NormalizeAnswer(BoolMapping(prediction)))
	for _, g := range golds {
		if covers(pred, NormalizeAnswer(BoolMapping(g))) {
			return 1
		}
	}
	return 0
}

// covers reports whether every space-separated token of the normalised gold
// g is in pred.
func covers(pred []string, g string) bool {
	for _, t := range splitSpace(g) {
		if !containsString(pred, t) {
			return false
		}
	}
	return true
}

// splitSpace is Python's s.split(" "): an empty string gives one empty
// token.
func splitSpace(s string) []string { return strings.Split(s, " ") }

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// BoolMapAll applies BoolMapping to every answer.
func BoolMapAll(answers []string) []string {
	out := make([]string, len(answers))
	for i, a := range answers {
		out[i] = BoolMapping(a)
	}
	return out
}
