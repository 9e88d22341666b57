package tools

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/internal/fakeweb"
)

func TestSpecs(t *testing.T) {
	ctx := context.Background()
	rs := fakeweb.NewRetrieval([]fakeweb.Doc{{ID: "1", Contents: "\"A\"\nalpha beta", URL: "u1"}}, map[string]string{"u1": "page one"})
	defer rs.Close()
	dir := t.TempDir()
	host := strings.TrimPrefix(rs.URL, "http://")
	os.WriteFile(filepath.Join(dir, "Host127.0.0.1_IP"+host[strings.Index(host, ":")+1:]+".txt"), []byte(host), 0o644)

	for _, spec := range []string{rs.URL, "local:" + rs.URL + "/", "addrdir:" + dir} {
		s, err := SearcherFromSpec(spec, SpecOptions{})
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if res, err := s.Search(ctx, "alpha", 3); err != nil || len(res) != 1 {
			t.Errorf("%s: %v %v", spec, res, err)
		}
		b, err := BrowserFromSpec(spec, SpecOptions{})
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if p, err := b.Access(ctx, "u1"); err != nil || p.Content != "page one" {
			t.Errorf("%s: %v %v", spec, p, err)
		}
	}
	t.Setenv("SERPER_API_KEY", "")
	if _, err := SearcherFromSpec("serper", SpecOptions{}); err == nil || !strings.Contains(err.Error(), "SERPER_API_KEY") {
		t.Errorf("serper without key: %v", err)
	}
	if s, err := SearcherFromSpec("serper", SpecOptions{SerperKey: "k"}); err != nil || s.(*Serper).String() != "serper" {
		t.Errorf("serper: %v", err)
	}
	if b, err := BrowserFromSpec("fetch", SpecOptions{AllowPrivateFetch: true}); err != nil || !b.(*Fetcher).cfg.Policy.AllowPrivate {
		t.Errorf("fetch: %v", err)
	}
	if b, err := BrowserFromSpec("none", SpecOptions{}); err != nil || b != nil {
		t.Errorf("none: %v %v", b, err)
	}
	for _, bad := range []string{"google", "fetch", "ftp://x", "addrdir:/nonexistent"} {
		if _, err := SearcherFromSpec(bad, SpecOptions{}); err == nil {
			t.Errorf("--search %s accepted", bad)
		}
	}
	if _, err := BrowserFromSpec("serper", SpecOptions{}); err == nil {
		t.Error("--access serper accepted")
	}
	// Replay needs no key and no server.
	c, _ := OpenCache(t.TempDir(), CacheOptions{Mode: CacheReplay})
	s, err := SearcherFromSpec("serper", SpecOptions{Cache: c})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Search(ctx, "q", 1); !errors.Is(err, ErrReplayMiss) {
		t.Errorf("replay: %v", err)
	}
}
