package llm

import (
	"strconv"

	"github.com/asearcher/asearcher/internal/jsonw"
)

// Request bodies are written by hand: a 100k-token input_ids array through
// encoding/json's reflection costs several times more than appending
// integers, and the agent sends one such body per turn.

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte { return jsonw.AppendString(b, s) }

func appendInts(b []byte, xs []int) []byte { return jsonw.AppendInts(b, xs) }

func appendStrings(b []byte, xs []string) []byte {
	b = append(b, '[')
	for i, x := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, x)
	}
	return append(b, ']')
}

func appendFloat(b []byte, f float64) []byte { return jsonw.AppendFloat(b, f) }

// objWriter appends "key":value pairs with the commas in the right places.
type objWriter struct {
	b     []byte
	first bool
}

func newObj(b []byte) objWriter { return objWriter{b: append(b, '{'), first: true} }

func (o *objWriter) key(k string) {
	if !o.first {
		o.b = append(o.b, ',')
	}
	o.first = false
	o.b = appendJSONString(o.b, k)
	o.b = append(o.b, ':')
}

func (o *objWriter) str(k, v string)       { o.key(k); o.b = appendJSONString(o.b, v) }
func (o *objWriter) int(k string, v int)   { o.key(k); o.b = strconv.AppendInt(o.b, int64(v), 10) }
func (o *objWriter) i64(k string, v int64) { o.key(k); o.b = strconv.AppendInt(o.b, v, 10) }
func (o *objWriter) float(k string, v float64) {
	o.key(k)
	o.b = appendFloat(o.b, v)
}
func (o *objWriter) bool(k string, v bool) {
	o.key(k)
	o.b = strconv.AppendBool(o.b, v)
}
func (o *objWriter) ints(k string, v []int)       { o.key(k); o.b = appendInts(o.b, v) }
func (o *objWriter) strings(k string, v []string) { o.key(k); o.b = appendStrings(o.b, v) }
func (o *objWriter) close() []byte                { return append(o.b, '}') }
