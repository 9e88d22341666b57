package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The vocab and merges of a large tokenizer.json (151k entries each for
// Qwen) dominate its load time when decoded through reflection. These
// helpers read exactly those two shapes from the already validated raw JSON.

type jsonScanner struct {
	b []byte
	i int
}

func (s *jsonScanner) skipSpace() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *jsonScanner) peek() byte {
	s.skipSpace()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

func (s *jsonScanner) expect(c byte) error {
	if s.peek() != c {
		return fmt.Errorf("offset %d: want %q", s.i, c)
	}
	s.i++
	return nil
}

// str reads a JSON string. Strings without escapes, nearly all tokens, are
// sliced directly; the rest go through encoding/json.
func (s *jsonScanner) str() (string, error) {
	if s.peek() != '"' {
		return "", fmt.Errorf("offset %d: want a string", s.i)
	}
	start := s.i
	escaped := false
	for j := start + 1; j < len(s.b); j++ {
		switch s.b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			s.i = j + 1
			if !escaped {
				return string(s.b[start+1 : j]), nil
			}
			var out string
			if err := json.Unmarshal(s.b[start:j+1], &out); err != nil {
				return "", fmt.Errorf("offset %d: %w", start, err)
			}
			return out, nil
		}
	}
	return "", errors.New("unterminated string")
}

func (s *jsonScanner) integer() (int, error) {
	s.skipSpace()
	start := s.i
	for s.i < len(s.b) && strings.IndexByte("-+.eE0123456789", s.b[s.i]) >= 0 {
		s.i++ // the whole number, so that 1.5 is reported as not an integer
	}
	n, err := strconv.Atoi(string(s.b[start:s.i]))
	if err != nil {
		return 0, fmt.Errorf("offset %d: want an integer id", start)
	}
	return n, nil
}

// list calls item for each element of a JSON array.
func (s *jsonScanner) list(item func() error) error {
	if err := s.expect('['); err != nil {
		return err
	}
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for {
		if err := item(); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return fmt.Errorf("offset %d: want ',' or ']'", s.i)
		}
	}
}

// parseVocab reads {"token": id, ...}.
func parseVocab(raw json.RawMessage) (map[string]int, error) {
	s := &jsonScanner{b: raw}
	if s.peek() == 'n' || s.peek() == 0 {
		return nil, errors.New("model has no vocab")
	}
	if err := s.expect('{'); err != nil {
		return nil, fmt.Errorf("vocab: %w", err)
	}
	vocab := make(map[string]int, len(raw)/16)
	if s.peek() == '}' {
		return vocab, nil
	}
	for {
		tok, err := s.str()
		if err != nil {
			return nil, fmt.Errorf("vocab: %w", err)
		}
		if err := s.expect(':'); err != nil {
			return nil, fmt.Errorf("vocab: %w", err)
		}
		id, err := s.integer()
		if err != nil {
			return nil, fmt.Errorf("vocab token %q: %w", tok, err)
		}
		vocab[tok] = id
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			return vocab, nil
		default:
			return nil, fmt.Errorf("vocab: offset %d: want ',' or '}'", s.i)
		}
	}
}
