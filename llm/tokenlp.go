package llm

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// tokenLogprobs is SGLang's meta_info.output_token_logprobs: one
// [logprob, token_id, text_or_null] triple per generated token. The logprob
// is null when the server could not serialise it (orjson writes -inf as
// null); we read that as -Inf.
type tokenLogprobs struct {
	IDs      []int
	Logprobs []float32
}

var negInf32 = float32(math.Inf(-1))

var errTokenLogprobs = errors.New("output_token_logprobs: want a list of [logprob, token_id, ...] lists")

func (t *tokenLogprobs) UnmarshalJSON(data []byte) error {
	t.IDs, t.Logprobs = t.IDs[:0], t.Logprobs[:0]
	if err := t.scan(data); err == nil {
		return nil
	}
	// The fast scanner only knows numbers, strings and null inside an entry;
	// anything else goes through encoding/json so odd but valid replies
	// still parse.
	t.IDs, t.Logprobs = t.IDs[:0], t.Logprobs[:0]
	var generic [][]json.RawMessage
	if err := json.Unmarshal(data, &generic); err != nil {
		return fmt.Errorf("%w: %v", errTokenLogprobs, err)
	}
	for i, e := range generic {
		if len(e) < 2 {
			return fmt.Errorf("%w: entry %d has %d fields", errTokenLogprobs, i, len(e))
		}
		lp, err := parseLogprob(e[0])
		if err != nil {
			return fmt.Errorf("%w: entry %d: %v", errTokenLogprobs, i, err)
		}
		var id int
		if err := json.Unmarshal(e[1], &id); err != nil {
			return fmt.Errorf("%w: entry %d token id: %v", errTokenLogprobs, i, err)
		}
		t.IDs = append(t.IDs, id)
		t.Logprobs = append(t.Logprobs, lp)
	}
	return nil
}

func parseLogprob(raw json.RawMessage) (float32, error) {
	if string(raw) == "null" {
		return negInf32, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, err
	}
	return float32(f), nil
}

// scan is the allocation-light path for the common shape.
func (t *tokenLogprobs) scan(d []byte) error {
	i := skipWS(d, 0)
	if i >= len(d) {
		return errTokenLogprobs
	}
	if d[i] == 'n' { // null: no logprobs at all
		if string(d[i:]) == "null" || string(trimRightWS(d[i:])) == "null" {
			return nil
		}
		return errTokenLogprobs
	}
	if d[i] != '[' {
		return errTokenLogprobs
	}
	i = skipWS(d, i+1)
	if i < len(d) && d[i] == ']' {
		return checkEnd(d, i+1)
	}
	for {
		if i >= len(d) || d[i] != '[' {
			return errTokenLogprobs
		}
		i = skipWS(d, i+1)
		// logprob
		var lp float32
		if hasPrefixAt(d, i, "null") {
			lp = negInf32
			i += 4
		} else {
			j := numberEnd(d, i)
			if j == i {
				return errTokenLogprobs
			}
			f, err := strconv.ParseFloat(string(d[i:j]), 64)
			if err != nil {
				return errTokenLogprobs
			}
			lp = float32(f)
			i = j
		}
		i = skipWS(d, i)
		if i >= len(d) || d[i] != ',' {
			return errTokenLogprobs
		}
		i = skipWS(d, i+1)
		j := numberEnd(d, i)
		if j == i {
			return errTokenLogprobs
		}
		id, err := strconv.Atoi(string(d[i:j]))
		if err != nil {
			return errTokenLogprobs
		}
		i = skipWS(d, j)
		// Optional further scalars (the token text, or null).
		for i < len(d) && d[i] == ',' {
			i = skipWS(d, i+1)
			switch {
			case hasPrefixAt(d, i, "null"):
				i += 4
			case i < len(d) && d[i] == '"':
				k, ok := stringEnd(d, i)
				if !ok {
					return errTokenLogprobs
				}
				i = k
			default:
				k := numberEnd(d, i)
				if k == i {
					return errTokenLogprobs
				}
				i = k
			}
			i = skipWS(d, i)
		}
		if i >= len(d) || d[i] != ']' {
			return errTokenLogprobs
		}
		t.IDs = append(t.IDs, id)
		t.Logprobs = append(t.Logprobs, lp)
		i = skipWS(d, i+1)
		if i < len(d) && d[i] == ',' {
			i = skipWS(d, i+1)
			continue
		}
		if i < len(d) && d[i] == ']' {
			return checkEnd(d, i+1)
		}
		return errTokenLogprobs
	}
}

func checkEnd(d []byte, i int) error {
	if skipWS(d, i) != len(d) {
		return errTokenLogprobs
	}
	return nil
}

func skipWS(d []byte, i int) int {
	for i < len(d) && (d[i] == ' ' || d[i] == '\n' || d[i] == '\t' || d[i] == '\r') {
		i++
	}
	return i
}

func trimRightWS(d []byte) []byte {
	for len(d) > 0 && (d[len(d)-1] == ' ' || d[len(d)-1] == '\n' || d[len(d)-1] == '\t' || d[len(d)-1] == '\r') {
		d = d[:len(d)-1]
	}
	return d
}

func hasPrefixAt(d []byte, i int, p string) bool {
	return i+len(p) <= len(d) && string(d[i:i+len(p)]) == p
}

// numberEnd returns the end of a JSON number starting at i (i when none).
func numberEnd(d []byte, i int) int {
	j := i
	for j < len(d) {
		c := d[j]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			j++
			continue
		}
		break
	}
	return j
}

// stringEnd returns the index after the closing quote of the JSON string
// that starts at i.
func stringEnd(d []byte, i int) (int, bool) {
	for j := i + 1; j < len(d); j++ {
		switch d[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return 0, false
}

// intList is a JSON list of token ids, parsed without reflection: replies
// carry thousands of them.
type intList []int

func (l *intList) UnmarshalJSON(data []byte) error {
	out := (*l)[:0]
	i := skipWS(data, 0)
	if hasPrefixAt(data, i, "null") {
		*l = nil
		return nil
	}
	if i >= len(data) || data[i] != '[' {
		return errors.New("want a list of token ids")
	}
	i = skipWS(data, i+1)
	if i < len(data) && data[i] == ']' {
		*l = out
		return checkEnd(data, i+1)
	}
	for {
		j := numberEnd(data, i)
		v, err := strconv.Atoi(string(data[i:j]))
		if err != nil {
			var generic []int
			if gerr := json.Unmarshal(data, &generic); gerr != nil {
				return gerr
			}
			*l = generic
			return nil
		}
		out = append(out, v)
		i = skipWS(data, j)
		if i < len(data) && data[i] == ',' {
			i = skipWS(data, i+1)
			continue
		}
		if i < len(data) && data[i] == ']' {
			*l = out
			return checkEnd(data, i+1)
		}
		return errors.New("want a list of token ids")
	}
}
