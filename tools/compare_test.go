package tools

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"
)

// TestCompareCacheFormat prints what storing page text raw after the JSON
// header line saves over keeping it inside the JSON, for the encode and
// decode work of one cache entry (no file I/O), timed in alternating
// rounds; median of the rounds.
//
//	ASEARCHER_COMPARE=1 go test ./tools -run TestCompareCacheFormat -v
func TestCompareCacheFormat(t *testing.T) {
	if os.Getenv("ASEARCHER_COMPARE") == "" {
		t.Skip("set ASEARCHER_COMPARE=1 to run the side-by-side comparison")
	}
	page := benchPage()
	e := &cacheEntry{Version: 1, Kind: "page", Namespace: "fetch", Key: page.URL, Created: time.Now(), Page: page}
	// Ours: header line + raw text.
	h := *e
	pg := *page
	pg.Content = ""
	h.Page, h.ContentFollows = &pg, true
	hdr, _ := json.Marshal(&h)
	ours := append(append(hdr, '\n'), page.Content...)
	// Baseline: the whole entry as JSON.
	whole, _ := json.Marshal(e)
	decodeOurs := func() {
		header, body, _ := bytes.Cut(ours, []byte{'\n'})
		var d cacheEntry
		if err := json.Unmarshal(header, &d); err != nil {
			t.Fatal(err)
		}
		d.Page.Content = string(body)
	}
	decodeWhole := func() {
		var d cacheEntry
		if err := json.Unmarshal(whole, &d); err != nil {
			t.Fatal(err)
		}
	}
	encodeOurs := func() {
		b, _ := json.Marshal(&h)
		b = append(b, '\n')
		_ = append(b, page.Content...)
	}
	encodeWhole := func() { _, _ = json.Marshal(e) }
	const rounds, iters = 15, 50
	t.Logf("%-32s %12s %12s %8s", fmt.Sprintf("%d-byte page entry", len(page.Content)), "raw text", "all JSON", "speedup")
	for _, c := range []struct {
		name       string
		ours, base func()
	}{{"decode (cache hit)", decodeOurs, decodeWhole}, {"encode (cache store)", encodeOurs, encodeWhole}} {
		var a, b []float64
		for range rounds {
			a = append(a, perOp(c.ours, iters))
			b = append(b, perOp(c.base, iters))
		}
		ma, mb := med(a), med(b)
		t.Logf("%-32s %12s %12s %7.2fx", c.name, time.Duration(ma).Round(100*time.Nanosecond), time.Duration(mb).Round(100*time.Nanosecond), mb/ma)
	}
}

func perOp(f func(), n int) float64 {
	start := time.Now()
	for range n {
		f()
	}
	return float64(time.Since(start)) / float64(n)
}

func med(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
