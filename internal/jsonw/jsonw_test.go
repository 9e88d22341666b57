package jsonw

import (
	"encoding/json"
	"strings"
	"testing"
)

// AppendString must decode to the same string encoding/json decodes, and
// differ from encoding/json's output only where we choose to (no HTML
// escapes).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote \" backslash \\", "\n\r\t\x00\x1f", "<a href='x'>&</a>",
		"\u2028\u2029", "中文 emoji 🙂", "bad \xff\xfe utf8", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q: not JSON: %v", got, err)
		}
		want, _ := json.Marshal(s)
		var wantBack string
		_ = json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Fatalf("%q decodes to %q, encoding/json round trip gives %q", s, back, wantBack)
		}
	})
}

func BenchmarkAppendString(b *testing.B) {
	s := strings.Repeat("The band was formed in 1981 in Los Angeles. ", 50)
	buf := make([]byte, 0, 4096)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		buf = AppendString(buf[:0], s)
	}
}
