package reward

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// The official QA scripts are Python. Their normalisers lean on Python's
// str.lower, str.split and re's Unicode \b and \s, which differ from Go's
// strings.ToLower, strings.Fields and regexp in a handful of places (dotted
// capital I, final sigma, U+001C..U+001F, non-ASCII word boundaries). The
// helpers in this file reproduce the Python behaviour so that scores match the
// official scripts bit for bit; reference-vectors.jsonl and
// testdata/conformance.jsonl hold the cases that tell the two apart.

// NormalizeAnswer is SQuAD's normalize_answer, shared by the SQuAD v1.1/v2.0,
// HotpotQA, 2WikiMultihopQA, MuSiQue, FlashRAG and ASearcher scripts:
// lowercase, delete ASCII punctuation, replace the words a/an/the by a space,
// and collapse whitespace to single spaces.
func NormalizeAnswer(s string) string {
	s = pyLower(strings.ToValidUTF8(s, "\uFFFD"))

	// Delete punctuation and drop article words in one pass. Punctuation goes
	// first in Python, so "a-ha" becomes the single word "aha" and survives.
	buf := make([]byte, 0, len(s))
	wordStart := -1 // start in buf of the word run being written, -1 outside one
	endWord := func() {
		if wordStart < 0 {
			return
		}
		switch string(buf[wordStart:]) {
		case "a", "an", "the":
			buf = append(buf[:wordStart], ' ')
		}
		wordStart = -1
	}
	for _, r := range s {
		if isASCIIPunct(r) {
			continue
		}
		if isPyWord(r) {
			if wordStart < 0 {
				wordStart = len(buf)
			}
		} else {
			endWord()
		}
		buf = utf8.AppendRune(buf, r)
	}
	endWord()
	return joinPyFields(string(buf))
}

// NormalizeText is ASearcher's normalize_text, the normaliser behind its
// set-based F1: every ASCII punctuation mark becomes a space, whitespace
// runs collapse to one space, the ends are trimmed, then the text is
// lowercased. Articles are kept.
func NormalizeText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	b.Grow(len(s))
	pendingSpace := false
	for _, r := range s {
		if isASCIIPunct(r) || isPySpace(r) {
			pendingSpace = true
			continue
		}
		if pendingSpace && b.Len() > 0 {
			b.WriteByte(' ')
		}
		pendingSpace = false
		b.WriteRune(r)
	}
	return pyLower(b.String())
}

// BoolMapping maps the exact strings "True" and "False" (Python's str of a
// bool) to "yes" and "no", as ASearcher does before EM, CEM and its reward F1.
func BoolMapping(s string) string {
	switch s {
	case "True":
		return "yes"
	case "False":
		return "no"
	}
	return s
}

// ContainsCJK reports whether s holds a character that ASearcher's
// contains_chinese counts: CJK Unified Ideographs, Extension A, or the
// compatibility ideographs. Its branch for Extensions B-F can never fire in
// Python 3, so those planes are not counted here either.
func ContainsCJK(s string) bool {
	for _, r := range s {
		if isCJK(r) {
			return true
		}
	}
	return false
}

func isCJK(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0x3400 && r <= 0x4DBF) || (r >= 0xF900 && r <= 0xFAFF)
}

// isASCIIPunct reports membership in Python's string.punctuation.
func isASCIIPunct(r rune) bool {
	return (r >= '!' && r <= '/') || (r >= ':' && r <= '@') || (r >= '[' && r <= '`') || (r >= '{' && r <= '~')
}

// isPySpace is Python's str.isspace, which is also what str.split(), strip()
// and re's \s use. It is Go's unicode.IsSpace plus U+001C..U+001F.
func isPySpace(r rune) bool {
	if r < 0x80 {
		return r == ' ' || (r >= '\t' && r <= '\r') || (r >= 0x1C && r <= 0x1F)
	}
	switch r {
	case 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}

// isPyWord is re's \w on str patterns: str.isalnum() or '_'. Under Python's
// Unicode data that is exactly the L and N categories plus '_'; combining
// marks are not word characters, so "the" + U+0301 still ends a word.
func isPyWord(r rune) bool {
	if r < 0x80 {
		return r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
	}
	return unicode.IsLetter(r) || unicode.IsNumber(r)
}

// pyDigitExtra lists the code points for which Python's str.isdigit is true
// although they are not decimal digits (category Nd): superscripts,
// subscripts, circled and parenthesised digits and a few script-specific
// ones (Numeric_Type=Digit, Unicode 14 as in Python 3.11).
var pyDigitExtra = &unicode.RangeTable{
	R16: []unicode.Range16{
		{Lo: 0x00B2, Hi: 0x00B3, Stride: 1},
		{Lo: 0x00B9, Hi: 0x00B9, Stride: 1},
		{Lo: 0x1369, Hi: 0x1371, Stride: 1},
		{Lo: 0x19DA, Hi: 0x19DA, Stride: 1},
		{Lo: 0x2070, Hi: 0x2070, Stride: 1},
		{Lo: 0x2074, Hi: 0x2079, Stride: 1},
		{Lo: 0x2080, Hi: 0x2089, Stride: 1},
		{Lo: 0x2460, Hi: 0x2468, Stride: 1},
		{Lo: 0x2474, Hi: 0x247C, Stride: 1},
		{Lo: 0x2488, Hi: 0x2490, Stride: 1},
		{Lo: 0x24EA, Hi: 0x24EA, Stride: 1},
		{Lo: 0x24F5, Hi: 0x24FD, Stride: 1},
		{Lo: 0x24FF, Hi: 0x24FF, Stride: 1},
		{Lo: 0x2776, Hi: 0x277E, Stride: 1},
		{Lo: 0x2780, Hi: 0x2788, Stride: 1},
		{Lo: 0x278A, Hi: 0x2792, Stride: 1},
	},
	R32: []unicode.Range32{
		{Lo: 0x10A40, Hi: 0x10A43, Stride: 1},
		{Lo: 0x10E60, Hi: 0x10E68, Stride: 1},
		{Lo: 0x11052, Hi: 0x1105A, Stride: 1},
		{Lo: 0x1F100, Hi: 0x1F10A, Stride: 1},
	},
}

// isPyDigit is Python's str.isdigit for one character.
func isPyDigit(r rune) bool {
	if r < 0x80 {
		return r >= '0' && r <= '9'
	}
	return unicode.IsDigit(r) || unicode.Is(pyDigitExtra, r)
}

// joinPyFields is Python's " ".join(s.split()).
func joinPyFields(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	inField := false
	for i, r := range s {
		if isPySpace(r) {
			inField = false
			continue
		}
		if !inField && b.Len() > 0 {
			b.WriteByte(' ')
		}
		inField = true
		_, size := utf8.DecodeRuneInString(s[i:])
		b.WriteString(s[i : i+size])
	}
	return b.String()
}

// pyFields is Python's s.split() with no argument.
func pyFields(s string) []string {
	return strings.FieldsFunc(s, isPySpace)
}

// pyStrip is Python's s.strip() with no argument.
func pyStrip(s string) string {
	return strings.TrimFunc(s, isPySpace)
}

// pyLower is Python's str.lower: the simple lowercase mapping except that
// U+0130 becomes "i" + U+0307 and capital sigma becomes final sigma at the
// end of a word (the Final_Sigma context of the Unicode standard).
func pyLower(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return asciiLower(s)
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	for i, r := range s {
		switch r {
		case 0x130:
			b.WriteString("i\u0307")
		case 0x3A3:
			if finalSigma(s, i) {
				b.WriteRune('ς')
			} else {
				b.WriteRune('σ')
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			buf := []byte(s)
			for j := i; j < len(buf); j++ {
				if c := buf[j]; c >= 'A' && c <= 'Z' {
					buf[j] = c + ('a' - 'A')
				}
			}
			return string(buf)
		}
	}
	return s
}

// finalSigma reports whether the capital sigma at byte offset i of s is in
// the Final_Sigma context: preceded by a cased letter and not followed by
// one, skipping case-ignorable characters on both sides. This is the rule
// CPython's str.lower applies.
func finalSigma(s string, i int) bool {
	j := i
	before := false
	for j > 0 {
		r, size := utf8.DecodeLastRuneInString(s[:j])
		j -= size
		if isCaseIgnorable(r) {
			continue
		}
		before = isCased(r)
		break
	}
	if !before {
		return false
	}
	j = i + utf8.RuneLen(0x3A3)
	for j < len(s) {
		r, size := utf8.DecodeRuneInString(s[j:])
		j += size
		if isCaseIgnorable(r) {
			continue
		}
		return !isCased(r)
	}
	return true
}

func isCased(r rune) bool {
	return unicode.IsLower(r) || unicode.IsUpper(r) || unicode.IsTitle(r) ||
		unicode.Is(unicode.Other_Lowercase, r) || unicode.Is(unicode.Other_Uppercase, r)
}

// isCaseIgnorable is the Unicode Case_Ignorable property: categories Mn,
// Me, Cf, Lm, Sk, plus the Word_Break classes MidLetter, MidNumLet and
// Single_Quote, which Go's unicode package has no table for.
func isCaseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', 0xB7, 0x387, 0x55F, 0x5F4, 0x2018, 0x2019, 0x2024, 0x2027,
		0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}
