package tokenizer

import "unicode/utf8"

// StreamDecoder turns ids into text as a sampler produces them. A character
// split across tokens is held back until its last byte arrives, so every
// piece of text returned is final: the concatenation of all Add results and
// Flush equals Decode of all the ids. Use it to check stop strings during
// sampling. A StreamDecoder is not safe for concurrent use.
type StreamDecoder struct {
	tok     *Tokenizer
	pending []byte // bytes of an unfinished UTF-8 sequence
}

// NewStreamDecoder returns a decoder that starts with no pending bytes.
func (t *Tokenizer) NewStreamDecoder() *StreamDecoder {
	return &StreamDecoder{tok: t}
}

// Add appends one id and returns the text it completes, possibly empty.
func (d *StreamDecoder) Add(id int) string {
	d.pending = append(d.pending, d.tok.tokenBytes(id)...)
	n := completePrefix(d.pending)
	if n == 0 {
		return ""
	}
	text := lossyUTF8(d.pending[:n])
	d.pending = append(d.pending[:0], d.pending[n:]...)
	return text
}

// Flush returns whatever is held back (an unfinished sequence decodes to
// U+FFFD, as Decode does at the end of the ids) and resets the decoder.
func (d *StreamDecoder) Flush() string {
	if len(d.pending) == 0 {
		return ""
	}
	text := lossyUTF8(d.pending)
	d.pending = d.pending[:0]
	return text
}

// completePrefix returns the length of the longest prefix of b whose
// decoding cannot change when more bytes follow: b minus a trailing
// sequence that is still a valid start of a character.
func completePrefix(b []byte) int {
	// A character has at most 4 bytes, so only the last 3 can be unfinished.
	for k := len(b) - 1; k >= 0 && k >= len(b)-3; k-- {
		if utf8.RuneStart(b[k]) {
			need, _, _ := utf8Lead(b[k])
			if need == 0 {
				return len(b) // ASCII or an invalid lead: nothing can continue it
			}
			if n, valid := nextUTF8(b[k:]); !valid && n == len(b)-k && n <= need {
				return k // a proper prefix of a well-formed sequence: wait
			}
			return len(b)
		}
	}
	return len(b)
}
