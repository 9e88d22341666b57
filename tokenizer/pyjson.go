package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// The chat templates print tool schemas and call arguments with Jinja's
// tojson, which in transformers is Python's json.dumps(ensure_ascii=False):
// ", " and ": " separators, key order kept, floats in Python's repr. This
// file re-prints a JSON value that way so prompts match byte for byte.

// orderedObject is a JSON object as Python's dict sees it: keys in order of
// first appearance, the last value of a repeated key winning.
type orderedObject struct {
	keys   []string
	values map[string]any
}

// pyJSON re-prints one JSON value the way json.dumps(ensure_ascii=False)
// prints what json.loads made of it.
func pyJSON(raw []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := parseOrdered(dec)
	if err != nil {
		return "", fmt.Errorf("tool JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", errors.New("tool JSON: trailing data after the value")
	}
	var b strings.Builder
	if err := writePy(&b, v); err != nil {
		return "", fmt.Errorf("tool JSON: %w", err)
	}
	return b.String(), nil
}

func parseOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok := tok.(type) {
	case json.Delim:
		switch tok {
		case '{':
			obj := &orderedObject{values: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, _ := kt.(string)
				val, err := parseOrdered(dec)
				if err != nil {
					return nil, err
				}
				if _, seen := obj.values[key]; !seen {
					obj.keys = append(obj.keys, key)
				}
				obj.values[key] = val
			}
			_, err := dec.Token() // '}'
			return obj, err
		case '[':
			list := []any{}
			for dec.More() {
				val, err := parseOrdered(dec)
				if err != nil {
					return nil, err
				}
				list = append(list, val)
			}
			_, err := dec.Token() // ']'
			return list, err
		}
		return nil, fmt.Errorf("unexpected %v", tok)
	default:
		return tok, nil // string, json.Number, bool or nil
	}
}

func writePy(b *strings.Builder, v any) error {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if v {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case string:
		writePyString(b, v)
	case json.Number:
		s, err := pyNumber(string(v))
		if err != nil {
			return err
		}
		b.WriteString(s)
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			if err := writePy(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case *orderedObject:
		b.WriteByte('{')
		for i, k := range v.keys {
			if i > 0 {
				b.WriteString(", ")
			}
			writePyString(b, k)
			b.WriteString(": ")
			if err := writePy(b, v.values[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("unexpected value %T", v)
	}
	return nil
}

// writePyString quotes s like json.dumps with ensure_ascii=False: only the
// quote, the backslash and control characters below U+0020 are escaped.
func writePyString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 {
				fmt.Fprintf(b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// pyNumber prints a JSON number as Python does after json.loads: integers
// exactly (arbitrary precision), everything else as a float's repr.
func pyNumber(lit string) (string, error) {
	if !strings.ContainsAny(lit, ".eE") {
		n, ok := new(big.Int).SetString(lit, 10)
		if !ok {
			return "", fmt.Errorf("bad number %q", lit)
		}
		return n.String(), nil
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return "", fmt.Errorf("bad number %q", lit)
	}
	return pyFloatRepr(f), nil
}

// pyFloatRepr is Python's repr(float) as json.dumps prints it.
func pyFloatRepr(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case math.IsNaN(f):
		return "NaN"
	}
	// Shortest round-trip digits as d.ddde±XX; Go and Python both print at
	// least two exponent digits.
	e := strconv.FormatFloat(f, 'e', -1, 64)
	_, expStr, _ := strings.Cut(e, "e")
	if exp, _ := strconv.Atoi(expStr); exp < -4 || exp >= 16 {
		return e
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsRune(s, '.') {
		s += ".0"
	}
	return s
}
