package tools

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asearcher/asearcher/internal/fakeweb"
)

var fastRetry = Retry{MaxAttempts: 3, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}

// loopbackOnly is the policy tests use: the fake site on 127.0.0.1 is
// reachable, nothing else private is.
var loopbackOnly = AddrPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}

func htmlFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "html", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFetchContentTypes(t *testing.T) {
	ctx := context.Background()
	site := fakeweb.NewSite()
	defer site.Close()
	site.Set("/article", fakeweb.Page{Body: htmlFile(t, "article.html")})
	site.Set("/latin1", fakeweb.Page{ContentType: "text/html", Body: htmlFile(t, "latin1.html")})
	site.Set("/short", fakeweb.Page{Body: htmlFile(t, "short.html")})
	site.Set("/notes.txt", fakeweb.Page{ContentType: "text/plain; charset=utf-8", Body: "  plain notes\nline two  "})
	site.Set("/readme.md", fakeweb.Page{ContentType: "text/markdown", Body: "# Title\n\n* item"})
	site.Set("/data.json", fakeweb.Page{ContentType: "application/json", Body: `{"a":1}`})
	site.Set("/untyped", fakeweb.Page{ContentType: " ", Body: "<html><body><p>sniffed as html</p></body></html>"})
	site.Set("/paper.pdf", fakeweb.Page{ContentType: "application/pdf", Body: "%PDF-1.7 ..."})
	site.Set("/img.png", fakeweb.Page{ContentType: "image/png", Body: "\x89PNG\r\n\x1a\n"})
	site.Set("/empty", fakeweb.Page{Body: "<html><body>   </body></html>"})
	f := NewFetcher(FetchConfig{Policy: loopbackOnly, Retry: fastRetry})

	p, err := f.Access(ctx, site.URL+"/article#section")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Pharos of Alexandria", "## Construction", "- Middle: an octagonal section", "| Lower   | Square   |", "[Seven Wonders](" + site.URL + "/wiki/Seven_Wonders)"} {
		if !strings.Contains(p.Content, want) {
			t.Errorf("article markdown lacks %q:\n%s", want, p.Content)
		}
	}
	for _, junk := range []string{"TRACKING-SCRIPT-TEXT", "STYLE-TEXT", "SIDEBAR-ADVERT", "FOOTER-LINKS", "Log in"} {
		if strings.Contains(p.Content, junk) {
			t.Errorf("article markdown keeps boilerplate %q", junk)
		}
	}
	if !strings.Contains(p.Title, "Lighthouse of Alexandria") || p.URL != site.URL+"/article#section" {
		t.Errorf("title %q url %q", p.Title, p.URL)
	}

	cases := []struct {
		path, content, err string
	}{
		{"/latin1", "Le café de la gare était fermé le dimanche.", ""},
		{"/short", "Three cities", ""},
		{"/notes.txt", "plain notes\nline two", ""},
		{"/readme.md", "# Title\n\n* item", ""},
		{"/data.json", `{"a":1}`, ""},
		{"/untyped", "sniffed as html", ""},
		{"/paper.pdf", "", "fetch failed: the page is a PDF"},
		{"/img.png", "", "fetch failed: unsupported content type image/png"},
		{"/empty", "", "fetch failed: the page has no readable text"},
		{"/missing", "", "fetch failed: HTTP 404"},
	}
	for _, c := range cases {
		p, err := f.Access(ctx, site.URL+c.path)
		if c.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.path, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.path, err)
			continue
		}
		if !strings.Contains(p.Content, c.content) {
			t.Errorf("%s: content %q lacks %q", c.path, p.Content, c.content)
		}
	}
	if p, _ := f.Access(ctx, site.URL+"/latin1"); p == nil || p.Title != "Café" {
		t.Errorf("latin-1 title: %+v", p)
	}
}

func TestFetchStatusRetriesRedirectsTimeouts(t *testing.T) {
	ctx := context.Background()
	site := fakeweb.NewSite()
	defer site.Close()
	site.Set("/ok", fakeweb.Page{ContentType: "text/plain", Body: "fine"})
	site.Set("/r1", fakeweb.Page{Redirect: "/r2"})
	site.Set("/r2", fakeweb.Page{Redirect: "/ok"})
	site.Set("/loop", fakeweb.Page{Redirect: "/loop"})
	site.Set("/ftp", fakeweb.Page{Redirect: "ftp://example.com/x"})
	site.Set("/slow", fakeweb.Page{ContentType: "text/plain", Body: "late", Delay: 2 * time.Second})
	site.Set("/limited", fakeweb.Page{Status: 429, ContentType: "text/plain", Body: "slow down"})
	site.Set("/big", fakeweb.Page{ContentType: "text/plain", Body: strings.Repeat("word ", 100000)})
	f := NewFetcher(FetchConfig{Policy: loopbackOnly, Retry: fastRetry, MaxRedirects: 3, Timeout: 300 * time.Millisecond, MaxBytes: 1000})

	if p, err := f.Access(ctx, site.URL+"/r1"); err != nil || p.Content != "fine" {
		t.Errorf("redirect chain: %+v %v", p, err)
	}
	if _, err := f.Access(ctx, site.URL+"/loop"); err == nil || !strings.Contains(err.Error(), "stopped after 3 redirects") {
		t.Errorf("redirect loop: %v", err)
	}
	if _, err := f.Access(ctx, site.URL+"/ftp"); err == nil || !strings.Contains(err.Error(), "non-http") {
		t.Errorf("ftp redirect: %v", err)
	}
	start := time.Now()
	_, err := f.Access(ctx, site.URL+"/slow")
	if err == nil || !strings.Contains(err.Error(), "timeout after 300ms") || !IsTransient(err) {
		t.Errorf("slow page: %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("3 attempts of a 300ms timeout took %s", el)
	}
	n := len(site.Paths())
	_, err = f.Access(ctx, site.URL+"/limited")
	if err == nil || err.Error() != "fetch failed: HTTP 429" || !IsTransient(err) {
		t.Errorf("429: %v", err)
	}
	if got := len(site.Paths()) - n; got != 3 {
		t.Errorf("429 tried %d times, want 3", got)
	}
	p, err := f.Access(ctx, site.URL+"/big")
	if err != nil || len(p.Content) > 1000 || len(p.Content) < 900 {
		t.Errorf("big page: %d bytes, %v", len(p.Content), err)
	}
	if _, err := f.Access(ctx, "javascript:alert(1)"); err == nil {
		t.Error("javascript: URL accepted")
	}
}

func TestFetchPerHostLimit(t *testing.T) {
	site := fakeweb.NewSite()
	defer site.Close()
	site.Set("/p", fakeweb.Page{ContentType: "text/plain", Body: "x", Delay: 30 * time.Millisecond})
	f := NewFetcher(FetchConfig{Policy: loopbackOnly, PerHost: 2})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.Access(context.Background(), site.URL+"/p"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if p := site.Peak(); p != 2 {
		t.Errorf("peak concurrency at the host %d, want 2", p)
	}
}

// mapResolver answers DNS from a table.
type mapResolver map[string][]netip.Addr

func (m mapResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if ips, ok := m[host]; ok {
		return ips, nil
	}
	return nil, errors.New("no such host " + host)
}

func TestFetchSSRFGuard(t *testing.T) {
	ctx := context.Background()
	site := fakeweb.NewSite()
	defer site.Close()
	port := site.URL[strings.LastIndex(site.URL, ":")+1:]
	site.Set("/ok", fakeweb.Page{ContentType: "text/plain", Body: "public page"})
	site.Set("/to-internal", fakeweb.Page{Redirect: "http://127.0.0.2:" + port + "/ok"})
	site.Set("/to-evil", fakeweb.Page{Redirect: "http://evil.test:" + port + "/ok"})
	res := mapResolver{
		"public.test":   {netip.MustParseAddr("127.0.0.1")},
		"evil.test":     {netip.MustParseAddr("10.1.2.3")},
		"mixed.test":    {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.168.0.9")},
		"metadata.test": {netip.MustParseAddr("169.254.169.254")},
	}
	guarded := NewFetcher(FetchConfig{Policy: loopbackOnly, Resolver: res, Retry: fastRetry})
	strict := NewFetcher(FetchConfig{Resolver: res, Retry: fastRetry})
	open := NewFetcher(FetchConfig{Policy: AddrPolicy{AllowPrivate: true}, Resolver: res, Retry: fastRetry})

	if p, err := guarded.Access(ctx, "http://public.test:"+port+"/ok"); err != nil || p.Content != "public page" {
		t.Fatalf("allowed host: %+v %v", p, err)
	}
	cases := []struct {
		f    *Fetcher
		url  string
		want string
	}{
		{strict, site.URL + "/ok", "127.0.0.1 is a loopback address"},
		{strict, "http://[::1]:" + port + "/ok", "::1 is a loopback address"},
		{guarded, "http://evil.test:" + port + "/ok", "10.1.2.3 is a private address"},
		{guarded, "http://mixed.test:" + port + "/ok", "192.168.0.9 is a private address"},
		{guarded, site.URL + "/to-internal", "127.0.0.2 is a loopback address"},
		{guarded, site.URL + "/to-evil", "10.1.2.3 is a private address"},
		{open, "http://metadata.test/latest/meta-data/", "169.254.169.254 is a cloud metadata address"},
		{open, "http://169.254.169.254/latest/meta-data/", "cloud metadata address"},
	}
	for _, c := range cases {
		n := len(site.Paths())
		_, err := c.f.Access(ctx, c.url)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "--allow-private-fetch") || IsTransient(err) {
			t.Errorf("%s: err %v, want refusal %q", c.url, err, c.want)
		}
		if c.url != site.URL+"/to-internal" && c.url != site.URL+"/to-evil" && len(site.Paths()) != n {
			t.Errorf("%s: the refused request reached the site", c.url)
		}
	}
	// --allow-private-fetch reaches the loopback site.
	if p, err := open.Access(ctx, site.URL+"/ok"); err != nil || p.Content != "public page" {
		t.Errorf("allow-private: %+v %v", p, err)
	}
}

// A resolver that answers a public-looking address first and a private one
// the second time (DNS rebinding): the dial goes to the address that was
// checked, and the private answer is refused.
type rebinding struct {
	mu sync.Mutex
	n  int
}

func (r *rebinding) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	if r.n == 1 {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	return []netip.Addr{netip.MustParseAddr("10.0.0.7")}, nil
}

func TestFetchPinsCheckedAddress(t *testing.T) {
	site := fakeweb.NewSite()
	defer site.Close()
	port := site.URL[strings.LastIndex(site.URL, ":")+1:]
	site.Set("/a", fakeweb.Page{ContentType: "text/plain", Body: "first"})
	r := &rebinding{}
	f := NewFetcher(FetchConfig{Policy: loopbackOnly, Resolver: r, Retry: Retry{MaxAttempts: 1}})
	if p, err := f.Access(context.Background(), "http://rebind.test:"+port+"/a"); err != nil || p.Content != "first" {
		t.Fatalf("first lookup: %+v %v", p, err)
	}
	// Force a new connection; the second lookup now says 10.0.0.7.
	f.d.client.CloseIdleConnections()
	_, err := f.Access(context.Background(), "http://rebind.test:"+port+"/a")
	if err == nil || !strings.Contains(err.Error(), "10.0.0.7 is a private address") {
		t.Errorf("rebinding: %v", err)
	}
}

func TestAddrPolicy(t *testing.T) {
	strict := AddrPolicy{}
	private := AddrPolicy{AllowPrivate: true}
	cases := []struct {
		ip              string
		strict, private bool // allowed?
	}{
		{"93.184.215.14", true, true},
		{"2606:4700::6810:84e5", true, true},
		{"127.0.0.1", false, true},
		{"127.8.8.8", false, true},
		{"::1", false, true},
		{"10.0.0.1", false, true},
		{"172.16.5.4", false, true},
		{"172.32.0.1", true, true},
		{"192.168.1.1", false, true},
		{"100.64.0.1", false, true},
		{"100.128.0.1", true, true},
		{"169.254.1.1", false, true},
		{"169.254.169.254", false, false},
		{"169.254.170.2", false, false},
		{"100.100.100.200", false, false},
		{"fd00:ec2::254", false, false},
		{"fe80::1", false, true},
		{"fd12:3456::1", false, true},
		{"0.0.0.0", false, false},
		{"::", false, false},
		{"224.0.0.1", false, false},
		{"255.255.255.255", false, false},
		{"::ffff:127.0.0.1", false, true},
		{"::ffff:8.8.8.8", true, true},
		{"64:ff9b::a00:1", false, true},       // NAT64 of 10.0.0.1
		{"64:ff9b::808:808", true, true},      // NAT64 of 8.8.8.8
		{"2002:a9fe:a9fe::1", false, false},   // 6to4 of 169.254.169.254
		{"2002:0808:0808::1", true, true},     // 6to4 of 8.8.8.8
		{"2001:0:4136:e378::1", false, false}, // Teredo
		{"::1%0", false, true},
		{"fe80::1%eth0", false, true},
		// Issue 12: ::/96, ::ffff:0:0/96 and 64:ff9b:1::/48.
		{"::127.0.0.1", false, false}, // IPv4-compatible (deprecated)
		{"::8.8.8.8", false, false},   // IPv4-compatible, public: still refused
		{"::a9fe:a9fe", false, false}, // IPv4-compatible metadata
		{"::ffff:169.254.169.254", false, false},
		{"::ffff:10.1.2.3", false, true},
		{"::ffff:0:127.0.0.1", false, true},  // SIIT-translated loopback
		{"::ffff:0:8.8.8.8", true, true},     // SIIT-translated public
		{"::ffff:0:a9fe:a9fe", false, false}, // SIIT-translated metadata
		{"64:ff9b:1::1", false, true},        // local-use NAT64
		{"64:ff9b:1:ffff::808:808", false, true},
	}
	for _, c := range cases {
		ip := netip.MustParseAddr(c.ip)
		if got := strict.check(ip) == nil; got != c.strict {
			t.Errorf("strict %s: allowed=%v want %v (%v)", c.ip, got, c.strict, strict.check(ip))
		}
		if got := private.check(ip) == nil; got != c.private {
			t.Errorf("allow-private %s: allowed=%v want %v (%v)", c.ip, got, c.private, private.check(ip))
		}
	}
}

func FuzzExtractHTML(f *testing.F) {
	f.Add(htmlFile(f, "article.html"), "text/html; charset=utf-8")
	f.Add(htmlFile(f, "latin1.html"), "text/html")
	f.Add(htmlFile(f, "short.html"), "")
	f.Add("<p>unclosed <b><i>tags", "text/html; charset=bogus")
	f.Add("\xff\xfe<\x00h\x00", "text/plain; charset=utf-16")
	f.Add("%PDF-1.4", "")
	fe := NewFetcher(FetchConfig{})
	f.Fuzz(func(t *testing.T, body, contentType string) {
		p, err := fe.ExtractHTML("https://example.org/page", contentType, []byte(body))
		if err == nil && p == nil {
			t.Fatal("nil page without error")
		}
		if err != nil {
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("untyped error %v", err)
			}
		}
	})
}

func FuzzAddrPolicy(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::", "8.8.8.8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return
		}
		strict := AddrPolicy{}.check(ip) == nil
		private := AddrPolicy{AllowPrivate: true}.check(ip) == nil
		if strict && !private {
			t.Fatalf("%s allowed by the strict policy but not by allow-private", s)
		}
		if u := ip.Unmap(); strict && (u.IsLoopback() || u.IsPrivate() || u.IsLinkLocalUnicast() || u.IsUnspecified()) {
			t.Fatalf("%s is internal but allowed", s)
		}
	})
}
