package tokenizer

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// AddedToken is an entry of tokenizer.json's added_tokens: a string that is
// cut out of the text before pre-tokenisation and encoded as one id.
type AddedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"` // match only between non-word characters
	LStrip     bool   `json:"lstrip"`      // swallow whitespace on the left
	RStrip     bool   `json:"rstrip"`      // swallow whitespace on the right
	Normalized bool   `json:"normalized"`  // match on normalised text instead of raw text
	Special    bool   `json:"special"`     // a control token (<|im_end|>), skippable when decoding
}

// addedMatcher finds added tokens in text with HF's semantics: the leftmost
// match wins, and of the matches starting there the longest.
type addedMatcher struct {
	tokens  []AddedToken
	byFirst [256][]int // indices into tokens, longest content first
	firsts  string     // the distinct first bytes, for a fast scan
	scanAll bool       // some token starts with a non-ASCII byte: check every byte
}

func newAddedMatcher(tokens []AddedToken, pattern func(AddedToken) string) *addedMatcher {
	m := &addedMatcher{}
	for _, tok := range tokens {
		p := pattern(tok)
		if p == "" {
			continue
		}
		tok.Content = p
		m.tokens = append(m.tokens, tok)
	}
	if len(m.tokens) == 0 {
		return nil
	}
	for i, tok := range m.tokens {
		c := tok.Content[0]
		if len(m.byFirst[c]) == 0 {
			if c >= utf8.RuneSelf {
				m.scanAll = true
			} else {
				m.firsts += string(rune(c))
			}
		}
		m.byFirst[c] = append(m.byFirst[c], i)
	}
	for c := range m.byFirst {
		list := m.byFirst[c]
		sort.SliceStable(list, func(a, b int) bool {
			return len(m.tokens[list[a]].Content) > len(m.tokens[list[b]].Content)
		})
	}
	return m
}

// next returns the first match at or after from: its token index and span.
func (m *addedMatcher) next(s string, from int) (tok, start, end int) {
	for i := from; i < len(s); i++ {
		if !m.scanAll {
			k := strings.IndexAny(s[i:], m.firsts)
			if k < 0 {
				return -1, 0, 0
			}
			i += k
		}
		for _, t := range m.byFirst[s[i]] {
			if strings.HasPrefix(s[i:], m.tokens[t].Content) {
				return t, i, i + len(m.tokens[t].Content)
			}
		}
	}
	return -1, 0, 0
}

func isWordRune(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Other_Alphabetic, r)
}

// split cuts s into text segments and added tokens, calling onText for
// every non-empty stretch of text and onToken for every token id.
func (m *addedMatcher) split(s string, onText func(string), onToken func(int)) {
	if m == nil {
		if s != "" {
			onText(s)
		}
		return
	}
	done := 0 // end of what has been emitted
	for from := 0; from < len(s); {
		t, start, end := m.next(s, from)
		if t < 0 {
			break
		}
		from = start + 1
		tok := m.tokens[t]
		if start < done {
			continue // inside what an rstrip already swallowed
		}
		if tok.SingleWord {
			before, _ := utf8.DecodeLastRuneInString(s[:start])
			after, _ := utf8.DecodeRuneInString(s[end:])
			if (start > 0 && isWordRune(before)) || (end < len(s) && isWordRune(after)) {
				continue
			}
		}
		if tok.LStrip {
			for start > done {
				r, w := utf8.DecodeLastRuneInString(s[:start])
				if !unicode.IsSpace(r) {
					break
				}
				start -= w
			}
		}
		if tok.RStrip {
			for end < len(s) {
				r, w := utf8.DecodeRuneInString(s[end:])
				if !unicode.IsSpace(r) {
					break
				}
				end += w
			}
		}
		if done < start {
			onText(s[done:start])
		}
		onToken(tok.ID)
		done, from = end, end
	}
	if done < len(s) {
		onText(s[done:])
	}
}
