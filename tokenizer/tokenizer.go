package tokenizer

import (
	"sync"
	"unicode/utf8"
)

// Tokenizer encodes text to token ids and back with the exact semantics of
// Hugging Face `tokenizers` for byte-level BPE models (Qwen2, Qwen2.5, Qwen3,
// GPT-2, Llama 3). It is safe for concurrent use.
type Tokenizer struct {
	raw        fileJSON            // pipeline stages as loaded, for Save
	normalize  func(string) string // nil: identity
	pre        splitter
	model      *bpeModel
	chatFormat ChatFormat

	added          []AddedToken
	addedByContent map[string]int
	rawAdded       *addedMatcher // tokens matched before normalisation
	normAdded      *addedMatcher // tokens matched on normalised text

	idToToken []string // token strings as in the file (byte-level runes)
	idToBytes [][]byte // what each id decodes to
	defined   []bool
	special   []bool

	scratch sync.Pool // *bpeScratch
}

// Encode returns the ids of text, as HF `tokenizers` encodes it. Added and
// special tokens written in the text (such as "<|im_end|>") are matched and
// become their ids, which is HF's default. Post-processor templates (a BOS
// some models prepend) are not applied; Qwen's tokenizers have none.
//
// Invalid UTF-8 in text is kept byte for byte: each invalid byte is encoded
// as its own byte token, so nothing is lost.
func (t *Tokenizer) Encode(text string) []int {
	return t.AppendEncode(make([]int, 0, len(text)/3+1), text)
}

// AppendEncode appends the ids of text to dst and returns the extended slice;
// it lets a caller reuse one buffer across many calls.
func (t *Tokenizer) AppendEncode(dst []int, text string) []int {
	sc, _ := t.scratch.Get().(*bpeScratch)
	if sc == nil {
		sc = &bpeScratch{}
	}
	onPiece := func(piece string) { dst = t.model.encodePiece(dst, piece, sc) }
	onToken := func(id int) { dst = append(dst, id) }
	onNormalized := func(s string) { t.pre.split(s, onPiece) }
	t.rawAdded.split(text, func(seg string) {
		if t.normalize != nil {
			seg = t.normalize(seg)
		}
		t.normAdded.split(seg, onNormalized, onToken)
	}, onToken)
	t.scratch.Put(sc)
	return dst
}

// Decode turns ids back into text. Special tokens are kept (use IsSpecial to
// drop them first); ids that no token has are skipped. Bytes that do not form
// valid UTF-8 become U+FFFD, one per maximal invalid sequence, exactly as
// HF's ByteLevel decoder does.
func (t *Tokenizer) Decode(ids []int) string {
	buf := make([]byte, 0, len(ids)*4)
	for _, id := range ids {
		buf = append(buf, t.tokenBytes(id)...)
	}
	return lossyUTF8(buf)
}

func (t *Tokenizer) tokenBytes(id int) []byte {
	if id < 0 || id >= len(t.idToBytes) {
		return nil
	}
	return t.idToBytes[id]
}

// VocabSize is one more than the largest token id, added tokens included
// (151669 for Qwen2.5/Qwen3, whose embedding matrices are padded further).
func (t *Tokenizer) VocabSize() int { return len(t.idToToken) }

// TokenID returns the id of a token given by its text: an added token such
// as "<|im_end|>", or a vocabulary entry in its byte-level spelling ("Ġthe").
func (t *Tokenizer) TokenID(token string) (int, bool) {
	if id, ok := t.addedByContent[token]; ok {
		return id, true
	}
	id, ok := t.model.vocab[token]
	return id, ok
}

// Token returns the text of a token id in the file's spelling, and whether
// the id exists.
func (t *Tokenizer) Token(id int) (string, bool) {
	if id < 0 || id >= len(t.idToToken) || !t.defined[id] {
		return "", false
	}
	return t.idToToken[id], true
}

// IsSpecial reports whether id is a special added token (such as
// <|im_end|>), the ones HF drops with skip_special_tokens.
func (t *Tokenizer) IsSpecial(id int) bool {
	return id >= 0 && id < len(t.special) && t.special[id]
}

// AddedTokens returns the added tokens in file order.
func (t *Tokenizer) AddedTokens() []AddedToken {
	return append([]AddedToken(nil), t.added...)
}

// lossyUTF8 converts b to a string, replacing each maximal invalid
// subsequence with U+FFFD (Rust's String::from_utf8_lossy, which HF uses).
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out := make([]byte, 0, len(b)+8)
	for i := 0; i < len(b); {
		n, valid := nextUTF8(b[i:])
		if valid {
			out = append(out, b[i:i+n]...)
		} else {
			out = append(out, "\uFFFD"...)
		}
		i += n
	}
	return string(out)
}

// nextUTF8 reports the length of the sequence at the start of b and whether
// it is a valid character. An invalid sequence is the longest prefix of a
// well-formed sequence (Unicode Table 3-7), at least one byte.
func nextUTF8(b []byte) (int, bool) {
	if b[0] < utf8.RuneSelf {
		return 1, true
	}
	if r, w := utf8.DecodeRune(b); r != utf8.RuneError || w > 1 {
		return w, true
	}
	need, lo, hi := utf8Lead(b[0])
	n := 1
	for n < len(b) && n <= need {
		c := b[n]
		if n == 1 {
			if c < lo || c > hi {
				break
			}
		} else if c < 0x80 || c > 0xBF {
			break
		}
		n++
	}
	return n, false
}

// utf8Lead returns how many continuation bytes a lead byte needs and the
// allowed range of the first of them; need is 0 for bytes that cannot start
// a sequence.
func utf8Lead(c byte) (need int, lo, hi byte) {
	switch {
	case c >= 0xC2 && c <= 0xDF:
		return 1, 0x80, 0xBF
	case c == 0xE0:
		return 2, 0xA0, 0xBF
	case c == 0xED:
		return 2, 0x80, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		return 2, 0x80, 0xBF
	case c == 0xF0:
		return 3, 0x90, 0xBF
	case c == 0xF4:
		return 3, 0x80, 0x8F
	case c >= 0xF1 && c <= 0xF3:
		return 3, 0x80, 0xBF
	}
	return 0, 0, 0
}
