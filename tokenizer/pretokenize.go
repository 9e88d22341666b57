package tokenizer

import (
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// splitter cuts a normalised string into the pieces that BPE sees. emit is
// called once per piece, in order; the pieces cover the input exactly.
type splitter interface {
	split(s string, emit func(piece string))
}

// The GPT-4 family of split patterns. Qwen2/2.5/3 use qwenPattern (one digit
// per piece); Llama 3 and cl100k use the same shape with up to three digits.
// Both are matched by a hand-written scanner: Go's regexp has no lookahead,
// and a backtracking engine on the hot path costs an order of magnitude.
const (
	qwenPattern   = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// gpt2Pattern is what HF's ByteLevel pre-tokeniser applies when use_regex is true.
	gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
)

// runeClass is what the GPT-4-style pattern distinguishes.
type runeClass uint8

const (
	classOther   runeClass = iota // not \s, \p{L} or \p{N}; also invalid UTF-8 bytes
	classLetter                   // \p{L}
	classNumber                   // \p{N}
	classSpace                    // \s other than \r and \n
	classNewline                  // \r or \n
)

var asciiClass = func() (t [128]runeClass) {
	for c := 0; c < 128; c++ {
		r := rune(c)
		switch {
		case r == '\r' || r == '\n':
			t[c] = classNewline
		case unicode.IsSpace(r):
			t[c] = classSpace
		case unicode.IsLetter(r):
			t[c] = classLetter
		case unicode.IsNumber(r):
			t[c] = classNumber
		}
	}
	return t
}()

// classify decodes the rune at s[i:] and returns its class and width.
// An invalid byte is one rune of class other, width 1, so arbitrary bytes pass
// through the scanner unchanged.
func classify(s string, i int) (rune, runeClass, int) {
	c := s[i]
	if c < utf8.RuneSelf {
		return rune(c), asciiClass[c], 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && w == 1 {
		return r, classOther, 1
	}
	switch {
	case unicode.IsLetter(r):
		return r, classLetter, w
	case unicode.IsNumber(r):
		return r, classNumber, w
	case unicode.IsSpace(r):
		return r, classSpace, w
	}
	return r, classOther, w
}

// gpt4Splitter scans the GPT-4-style pattern (qwenPattern, llama3Pattern)
// with the same leftmost-first semantics as Oniguruma, which HF uses.
type gpt4Splitter struct {
	maxDigits int
}

func (g gpt4Splitter) split(s string, emit func(string)) {
	gap := 0 // start of text not covered by a match yet
	for i := 0; i < len(s); {
		end := g.match(s, i)
		if end == i {
			_, _, w := classify(s, i)
			i += w
			continue
		}
		if gap < i {
			emit(s[gap:i])
		}
		emit(s[i:end])
		i, gap = end, end
	}
	if gap < len(s) {
		emit(s[gap:])
	}
}

// foldsTo reports whether r matches the ASCII lower-case letter want under
// Unicode case folding, as (?i:...) does in Oniguruma.
func foldsTo(r rune, want byte) bool {
	if r == rune(want) || r == rune(want-'a'+'A') {
		return true
	}
	return want == 's' && r == 'ſ' // U+017F LATIN SMALL LETTER LONG S folds to s
}

// contraction matches (?i:'s|'t|'re|'ve|'m|'ll|'d) at s[i] == '\”.
func contraction(s string, i int) int {
	j := i + 1
	if j >= len(s) {
		return i
	}
	r1, _, w1 := classify(s, j)
	for _, c := range []byte{'s', 't', 'm', 'd'} {
		if foldsTo(r1, c) {
			return j + w1
		}
	}
	if j+w1 >= len(s) {
		return i
	}
	r2, _, w2 := classify(s, j+w1)
	for _, pair := range [][2]byte{{'r', 'e'}, {'v', 'e'}, {'l', 'l'}} {
		if foldsTo(r1, pair[0]) && foldsTo(r2, pair[1]) {
			return j + w1 + w2
		}
	}
	return i
}

// run returns the end of the run of runes of class want starting at i.
func run(s string, i int, want runeClass) int {
	for i < len(s) {
		_, c, w := classify(s, i)
		if c != want {
			break
		}
		i += w
	}
	return i
}

// match returns the end of the match at i, or i when no alternative matches.
func (g gpt4Splitter) match(s string, i int) int {
	r0, c0, w0 := classify(s, i)
	// (?i:'s|'t|'re|'ve|'m|'ll|'d)
	if r0 == '\'' {
		if end := contraction(s, i); end > i {
			return end
		}
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if c0 == classLetter {
		return run(s, i, classLetter)
	}
	if (c0 == classOther || c0 == classSpace) && i+w0 < len(s) {
		if _, c1, _ := classify(s, i+w0); c1 == classLetter {
			return run(s, i+w0, classLetter)
		}
	}
	// \p{N} or \p{N}{1,3}
	if c0 == classNumber {
		end := i + w0
		for n := 1; n < g.maxDigits && end < len(s); n++ {
			_, c, w := classify(s, end)
			if c != classNumber {
				break
			}
			end += w
		}
		return end
	}
	// ' ?[^\s\p{L}\p{N}]+[\r\n]*'
	start := -1
	if c0 == classOther {
		start = i
	} else if r0 == ' ' && i+1 < len(s) {
		if _, c1, _ := classify(s, i+1); c1 == classOther {
			start = i + 1
		}
	}
	if start >= 0 {
		end := run(s, start, classOther)
		return run(s, end, classNewline)
	}
	if c0 != classSpace && c0 != classNewline {
		return i
	}
	// Whitespace: find the run and its last newline and last rune.
	end, lastNewline, lastRune := i, -1, i
	for end < len(s) {
		_, c, w := classify(s, end)
		if c != classSpace && c != classNewline {
			break
		}
		if c == classNewline {
			lastNewline = end
		}
		lastRune = end
		end += w
	}
	// \s*[\r\n]+ : backtracks to the last newline of the run.
	if lastNewline >= 0 {
		return lastNewline + 1
	}
	// \s+(?!\S) : the whole run at the end of text, else all but its last rune.
	if end == len(s) {
		return end
	}
	if lastRune > i {
		return lastRune
	}
	// \s+
	return end
}

// regexSplitter runs an arbitrary Split pattern through a backtracking
// engine (lookahead included). It is the fallback for patterns that have no
// hand-written scanner.
type regexSplitter struct {
	re *regexp2.Regexp
}

// regexTimeout bounds one match so that a hostile pattern in an untrusted
// tokenizer.json cannot hang Encode.
const regexTimeout = 2 * time.Second

func newRegexSplitter(pattern string) (*regexSplitter, error) {
	re, err := regexp2.Compile(pattern, regexp2.Unicode)
	if err != nil {
		return nil, fmt.Errorf("compile split pattern %q: %w", pattern, err)
	}
	re.MatchTimeout = regexTimeout
	return &regexSplitter{re: re}, nil
}

func (r *regexSplitter) split(s string, emit func(string)) {
	if s == "" {
		return
	}
	// regexp2 works on runes; keep byte offsets so invalid bytes survive.
	runes := make([]rune, 0, len(s))
	offsets := make([]int, 0, len(s)+1)
	for i := 0; i < len(s); {
		c, w := utf8.DecodeRuneInString(s[i:])
		runes = append(runes, c)
		offsets = append(offsets, i)
		i += w
	}
	offsets = append(offsets, len(s))
	gap := 0
	m, err := r.re.FindRunesMatch(runes)
	for err == nil && m != nil {
		start, end := offsets[m.Index], offsets[m.Index+m.Length]
		if gap < start {
			emit(s[gap:start])
		}
		if end > start {
			emit(s[start:end])
		}
		gap = end
		m, err = r.re.FindNextMatch(m)
	}
	// On a timeout the rest of the text stays one piece: still a valid
	// (if unusual) tokenisation, never a hang.
	if gap < len(s) {
		emit(s[gap:])
	}
}

// literalSplitter isolates every occurrence of a fixed string (a Split
// pre-tokeniser with a String pattern).
type literalSplitter struct {
	lit string
}

func (l literalSplitter) split(s string, emit func(string)) {
	gap := 0
	for l.lit != "" {
		k := indexFrom(s, l.lit, gap)
		if k < 0 {
			break
		}
		if gap < k {
			emit(s[gap:k])
		}
		emit(s[k : k+len(l.lit)])
		gap = k + len(l.lit)
	}
	if gap < len(s) {
		emit(s[gap:])
	}
}

// prefixSpaceSplitter is ByteLevel's add_prefix_space: a piece that does not
// start with a space gets one.
type prefixSpaceSplitter struct{}

func (prefixSpaceSplitter) split(s string, emit func(string)) {
	if s != "" && s[0] != ' ' {
		emit(" " + s)
		return
	}
	emit(s)
}

// sequenceSplitter applies each splitter to the pieces of the one before.
type sequenceSplitter []splitter

func (seq sequenceSplitter) split(s string, emit func(string)) {
	if len(seq) == 0 {
		emit(s)
		return
	}
	seq[0].split(s, func(piece string) { seq[1:].split(piece, emit) })
}

// digitsSplitter is HF's Digits pre-tokenizer: runs of numeric characters
// (Rust's char::is_numeric, Unicode N*, which is Go's unicode.IsNumber)
// become pieces of their own; with individual each digit does. SmolLM's
// tokenizer runs it with individual digits before the GPT-2 ByteLevel split.
type digitsSplitter struct {
	individual bool
}

func (d digitsSplitter) split(s string, emit func(string)) {
	start, inDigits := 0, false
	for i := 0; i < len(s); {
		_, class, w := classify(s, i)
		isDigit := class == classNumber
		switch {
		case isDigit && d.individual:
			if start < i {
				emit(s[start:i])
			}
			emit(s[i : i+w])
			start = i + w
		case isDigit != inDigits:
			if start < i {
				emit(s[start:i])
			}
			start = i
		}
		inDigits = isDigit && !d.individual
		i += w
	}
	if start < len(s) {
		emit(s[start:])
	}
}
