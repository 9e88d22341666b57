package retrieval

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// AnalyzerConfig says how text becomes terms. It is stored with an index so
// queries are analysed exactly as the passages were.
type AnalyzerConfig struct {
	// Stemmer is "porter" (Porter 1980, as Pyserini's default analyzer) or
	// "none".
	Stemmer string `json:"stemmer"`
	// Stopwords is "english" (Lucene's 33-word list, as Pyserini) or "none".
	Stopwords string `json:"stopwords"`
}

// DefaultAnalyzer matches Pyserini's default English analysis.
func DefaultAnalyzer() AnalyzerConfig { return AnalyzerConfig{Stemmer: "porter", Stopwords: "english"} }

// maxTermBytes drops longer tokens (base64 blobs, URLs without separators),
// which only bloat the dictionary.
const maxTermBytes = 64

type analyzer struct {
	stem, stop bool
}

func newAnalyzer(c AnalyzerConfig) (analyzer, error) {
	var a analyzer
	switch c.Stemmer {
	case "porter":
		a.stem = true
	case "none", "":
	default:
		return a, fmt.Errorf("unknown stemmer %q (want porter or none)", c.Stemmer)
	}
	switch c.Stopwords {
	case "english":
		a.stop = true
	case "none", "":
	default:
		return a, fmt.Errorf("unknown stopword list %q (want english or none)", c.Stopwords)
	}
	return a, nil
}

// terms is a reusable list of terms stored back to back in one buffer.
type terms struct {
	buf  []byte
	ends []int
}

func (t *terms) reset() { t.buf, t.ends = t.buf[:0], t.ends[:0] }

func (t *terms) len() int { return len(t.ends) }

func (t *terms) at(i int) []byte {
	start := 0
	if i > 0 {
		start = t.ends[i-1]
	}
	return t.buf[start:t.ends[i]]
}

// englishStopwords is Lucene's EnglishAnalyzer list.
func isEnglishStopword(w []byte) bool {
	switch string(w) {
	case "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
		"no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
		"they", "this", "to", "was", "will", "with":
		return true
	}
	return false
}

// analyze appends the terms of text to out. Tokens are maximal runs of
// letters, digits and combining marks, lower-cased; a possessive 's is
// dropped and other apostrophes inside words are removed (don't → dont);
// digits joined by '.' stay one token (3.14) and digit groups joined by ','
// merge (1,000 → 1000); every Han or Hiragana character is a token of its
// own, as in Lucene's StandardTokenizer.
func (a analyzer) analyze(text string, out *terms) {
	start := len(out.buf)
	plain := true // only ASCII letters so far: the stemmer applies
	end := func() {
		tok := out.buf[start:]
		switch {
		case len(tok) == 0:
		case len(tok) > maxTermBytes || (a.stop && isEnglishStopword(tok)):
			out.buf = out.buf[:start]
		default:
			if a.stem && plain {
				out.buf = append(out.buf[:start], porterStem(tok)...)
			}
			out.ends = append(out.ends, len(out.buf))
		}
		start = len(out.buf)
		plain = true
	}
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			switch {
			case c >= 'a' && c <= 'z':
				out.buf = append(out.buf, c)
			case c >= 'A' && c <= 'Z':
				out.buf = append(out.buf, c+'a'-'A')
			case c >= '0' && c <= '9':
				out.buf = append(out.buf, c)
				plain = false
			case c == '\'':
				i = a.apostrophe(text, i, 1, len(out.buf) > start, end)
				continue
			case (c == '.' || c == ',') && len(out.buf) > start && isDigit(out.buf[len(out.buf)-1]) && i+1 < len(text) && isDigit(text[i+1]):
				if c == '.' {
					out.buf = append(out.buf, '.')
				}
			default:
				end()
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		switch {
		case r == '\u2019': // right single quotation mark used as apostrophe
			i = a.apostrophe(text, i, size, len(out.buf) > start, end)
			continue
		case unicode.In(r, unicode.Han, unicode.Hiragana):
			end()
			out.buf = utf8.AppendRune(out.buf, r)
			plain = false
			end()
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			out.buf = utf8.AppendRune(out.buf, unicode.ToLower(r))
			plain = false
		default:
			end()
		}
		i += size
	}
	end()
}

// apostrophe handles a quote of width size at text[i] and returns the index
// to continue from.
func (a analyzer) apostrophe(text string, i, size int, inWord bool, end func()) int {
	next := i + size
	if !inWord || next >= len(text) || !isWordByte(text[next]) {
		end()
		return next
	}
	if (text[next] == 's' || text[next] == 'S') && (next+1 >= len(text) || !isWordByte(text[next+1])) {
		end() // possessive: John's → john
		return next + 1
	}
	return next // inside a word: don't → dont
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isWordByte is true for ASCII letters and digits and for any non-ASCII
// byte (a multi-byte letter continues the word).
func isWordByte(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || isDigit(c) || c >= utf8.RuneSelf
}
