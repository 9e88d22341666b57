package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Search-R1's server declares its request as a pydantic model
// (topk: Optional[int], return_scores: bool) that FastAPI validates in
// pydantic's lax mode, so clients written against it may send "3" for 3 or
// "true" for true. The two types below accept what pydantic accepts for
// those fields (testdata/pydantic_retrieve.json records pydantic's own
// verdicts; scripts/retrieve_pydantic_fixture.py regenerates it).

// TopK is the topk field: an integer, null, or what pydantic's lax int
// accepts (true/false, an integral float, a string such as " 3 ", "+3",
// "1_000" or "3.0").
type TopK struct {
	// Set is false for a missing or null topk.
	Set   bool
	Value int64
}

// UnmarshalJSON implements json.Unmarshaler.
func (t *TopK) UnmarshalJSON(data []byte) error {
	v, set, err := laxInt(data)
	if err != nil {
		return requestError{msg: fmt.Sprintf(`field "topk": %v`, err)}
	}
	*t = TopK{Set: set, Value: v}
	return nil
}

// MarshalJSON writes the integer, or null when unset.
func (t TopK) MarshalJSON() ([]byte, error) {
	if !t.Set {
		return []byte("null"), nil
	}
	return strconv.AppendInt(nil, t.Value, 10), nil
}

// Flag is the return_scores field: true/false, 0/1 (also 0.0/1.0) or one
// of pydantic's boolean words ("true", "yes", "on", "1", "t", "y" and their
// false counterparts, any case). null means false, as before coercion.
type Flag bool

// UnmarshalJSON implements json.Unmarshaler.
func (f *Flag) UnmarshalJSON(data []byte) error {
	v, err := laxBool(data)
	if err != nil {
		return requestError{msg: fmt.Sprintf(`field "return_scores": %v`, err)}
	}
	*f = Flag(v)
	return nil
}

// laxInt parses a JSON value as pydantic's lax int does. Integers too large
// for int64 come back as ±MaxInt64, which every range check refuses.
func laxInt(data []byte) (v int64, set bool, err error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return 0, false, fmt.Errorf("want an integer")
	}
	switch c := data[0]; {
	case string(data) == "null":
		return 0, false, nil
	case string(data) == "true":
		return 1, true, nil
	case string(data) == "false":
		return 0, true, nil
	case c == '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return 0, false, fmt.Errorf("want an integer")
		}
		v, ok := parseLaxIntString(s)
		if !ok {
			return 0, false, fmt.Errorf("got %q, want an integer", s)
		}
		return v, true, nil
	case c == '-' || (c >= '0' && c <= '9'):
		if v, err := strconv.ParseInt(string(data), 10, 64); err == nil {
			return v, true, nil
		} else if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return clampSign(data[0] == '-'), true, nil
		}
		f, err := strconv.ParseFloat(string(data), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return 0, false, fmt.Errorf("got %s, want a finite integer", data)
		}
		if f != math.Trunc(f) {
			return 0, false, fmt.Errorf("got %s, want an integer (it has a fractional part)", data)
		}
		if math.Abs(f) >= 1<<63 {
			return clampSign(f < 0), true, nil
		}
		return int64(f), true, nil
	}
	return 0, false, fmt.Errorf("got %s, want an integer", jsonKindOf(data))
}

func clampSign(neg bool) int64 {
	if neg {
		return -math.MaxInt64
	}
	return math.MaxInt64
}

// parseLaxIntString follows pydantic-core's str → int: surrounding white
// space is ignored; then an optional sign, decimal digits with single
// underscores between them, and optionally a '.' followed only by zeros.
func parseLaxIntString(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if i := strings.IndexByte(s, '.'); i >= 0 {
		frac := s[i+1:]
		if frac == "" || strings.Trim(frac, "0") != "" {
			return 0, false
		}
		s = s[:i]
	}
	if s == "" {
		return 0, false
	}
	var v int64
	overflow := false
	prevDigit := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if v > (math.MaxInt64-int64(c-'0'))/10 {
				overflow = true
			} else {
				v = v*10 + int64(c-'0')
			}
			prevDigit = true
		case c == '_' && prevDigit && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			prevDigit = false
		default:
			return 0, false
		}
	}
	if overflow {
		return clampSign(neg), true
	}
	if neg {
		v = -v
	}
	return v, true
}

// laxBool parses a JSON value as pydantic's lax bool does; null is false.
func laxBool(data []byte) (bool, error) {
	data = bytes.TrimSpace(data)
	switch {
	case len(data) == 0:
		return false, fmt.Errorf("want true or false")
	case string(data) == "null", string(data) == "false":
		return false, nil
	case string(data) == "true":
		return true, nil
	case data[0] == '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return false, fmt.Errorf("want true or false")
		}
		switch strings.ToLower(s) {
		case "1", "on", "t", "true", "y", "yes":
			return true, nil
		case "0", "off", "f", "false", "n", "no":
			return false, nil
		}
		return false, fmt.Errorf("got %q, want true or false", s)
	case data[0] == '-' || (data[0] >= '0' && data[0] <= '9'):
		f, err := strconv.ParseFloat(string(data), 64)
		if err == nil && (f == 0 || f == 1) {
			return f == 1, nil
		}
		return false, fmt.Errorf("got %s, want true or false (or 0 or 1)", data)
	}
	return false, fmt.Errorf("got %s, want true or false", jsonKindOf(data))
}

// jsonKindOf names the kind of a raw JSON value for error messages.
func jsonKindOf(data []byte) string {
	switch data[0] {
	case '[':
		return "a list"
	case '{':
		return "an object"
	}
	return "JSON " + string(data)
}
