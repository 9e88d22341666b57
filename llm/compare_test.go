package llm

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"
)

// TestCompareCodecs prints, for each hot codec path, our implementation
// against the encoding/json baseline, timed in alternating rounds so that
// noise from other processes hits both sides alike. Median of the rounds.
//
//	ASEARCHER_COMPARE=1 go test ./llm -run TestCompareCodecs -v
func TestCompareCodecs(t *testing.T) {
	if os.Getenv("ASEARCHER_COMPARE") == "" {
		t.Skip("set ASEARCHER_COMPARE=1 to run the side-by-side comparison")
	}
	req2k, req100k := benchRequest(2000), benchRequest(100000)
	rep256, rep4k := benchReply(256), benchReply(4096)
	var buf []byte
	decodeBaseline := func(data []byte) {
		if err := decodeReflect(data); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name  string
		ours  func()
		base  func()
		iters int
	}{
		{"encode /generate, 2k prompt tokens", func() { buf, _ = encodeSGLangGenerate(buf[:0], req2k) }, func() { _, _ = reflectBody(req2k) }, 200},
		{"encode /generate, 100k prompt tokens", func() { buf, _ = encodeSGLangGenerate(buf[:0], req100k) }, func() { _, _ = reflectBody(req100k) }, 10},
		{"decode /generate reply, 256 tokens", func() { _, _ = decodeSGLangGenerate(rep256, nil, "") }, func() { decodeBaseline(rep256) }, 100},
		{"decode /generate reply, 4096 tokens", func() { _, _ = decodeSGLangGenerate(rep4k, nil, "") }, func() { decodeBaseline(rep4k) }, 10},
	}
	const rounds = 15
	t.Logf("%-40s %12s %12s %8s", "path", "ours", "encoding/json", "speedup")
	for _, c := range cases {
		var ours, base []float64
		for range rounds {
			ours = append(ours, timePerOp(c.ours, c.iters))
			base = append(base, timePerOp(c.base, c.iters))
		}
		mo, mb := median(ours), median(base)
		t.Logf("%-40s %12s %12s %7.2fx", c.name, fmtDur(mo), fmtDur(mb), mb/mo)
	}
}

func timePerOp(f func(), n int) float64 {
	start := time.Now()
	for range n {
		f()
	}
	return float64(time.Since(start)) / float64(n)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func fmtDur(ns float64) string { return fmt.Sprint(time.Duration(ns).Round(100 * time.Nanosecond)) }
