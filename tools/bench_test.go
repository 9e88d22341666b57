package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func benchPage() *Page {
	return &Page{URL: "https://en.wikipedia.org/wiki/Lighthouse_of_Alexandria", Title: "Lighthouse of Alexandria",
		Content: strings.Repeat("The lighthouse stood on the island of Pharos. ", 2000)} // ~90 kB
}

// BenchmarkCache measures a hit (read + decompress + decode one file) and
// a miss that stores a ~90 kB page (encode + compress + atomic write).
func BenchmarkCache(b *testing.B) {
	ctx := context.Background()
	page := benchPage()
	br := &countingBrowser{fn: func(u string) (*Page, error) { return page, nil }}
	c, err := OpenCache(b.TempDir(), CacheOptions{})
	if err != nil {
		b.Fatal(err)
	}
	cb := c.Browser(br, "bench")
	if _, err := cb.Access(ctx, "https://hit"); err != nil {
		b.Fatal(err)
	}
	b.Run("page-hit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cb.Access(ctx, "https://hit"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("page-miss-store", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if _, err := cb.Access(ctx, fmt.Sprintf("https://miss/%d", i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	res := make([]SearchResult, 5)
	for i := range res {
		res[i] = SearchResult{Title: "T", URL: "https://x", Text: strings.Repeat("passage text ", 40)}
	}
	cs := c.Searcher(&countingSearcher{fn: func(string) ([]SearchResult, error) { return res, nil }}, "bench")
	if _, err := cs.Search(ctx, "q", 5); err != nil {
		b.Fatal(err)
	}
	b.Run("search-hit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cs.Search(ctx, "q", 5); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkExtractHTML(b *testing.B) {
	body := []byte(htmlFile(b, "article.html"))
	f := NewFetcher(FetchConfig{})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.ExtractHTML("https://example.org/a", "text/html; charset=utf-8", body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAddrPolicyCheck(b *testing.B) {
	ips := []netip.Addr{netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("2606:4700::6810:84e5"), netip.MustParseAddr("::ffff:127.0.0.1")}
	p := AddrPolicy{}
	for b.Loop() {
		for _, ip := range ips {
			_ = p.check(ip)
		}
	}
}

func BenchmarkParseRetrieveReply(b *testing.B) {
	type row struct {
		ID       string `json:"id"`
		Contents string `json:"contents"`
		URL      string `json:"url"`
	}
	rows := make([]row, 10)
	for i := range rows {
		rows[i] = row{fmt.Sprint(i), "\"Title\"\n" + strings.Repeat("wiki passage text ", 60), "https://en.wikipedia.org/w/index.php?title=T"}
	}
	data, _ := json.Marshal(map[string]any{"result": [][]row{rows}})
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRetrieveReply(data); err != nil {
			b.Fatal(err)
		}
	}
}
