package tools_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/asearcher/asearcher/internal/fakeweb"
	"github.com/asearcher/asearcher/tools"
)

var fast = tools.Retry{MaxAttempts: 3, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}

func TestLocalSearchAndAccess(t *testing.T) {
	ctx := context.Background()
	rs := fakeweb.NewRetrieval([]fakeweb.Doc{
		{ID: "1", Contents: "\"Paris\"\nParis is the capital of France.", URL: "https://en.wikipedia.org/w/index.php?title=Paris"},
		{ID: "2", Contents: "\"Lyon\"\nLyon is a city in France.", URL: "https://en.wikipedia.org/w/index.php?title=Lyon"},
		{ID: "3", Contents: "\"Berlin\"\nBerlin is the capital of Germany.", URL: "u3"},
	}, map[string]string{
		"https://en.wikipedia.org/w/index.php?title=Paris": "Paris\nFull page about Paris.",
		"https://blank": "  ",
	})
	defer rs.Close()
	l, err := tools.NewLocal(tools.LocalConfig{BaseURL: rs.URL, Retry: fast})
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.Search(ctx, "capital of France", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Title != "Paris" || res[0].ID != "1" || res[0].Score != 3 || !strings.HasPrefix(res[0].Text, "\"Paris\"\n") {
		t.Errorf("results %+v", res)
	}
	p, err := l.Access(ctx, "https://en.wikipedia.org/w/index.php?title=Paris")
	if err != nil || p.Content != "Paris\nFull page about Paris." {
		t.Fatalf("%+v %v", p, err)
	}
	_, err = l.Access(ctx, "https://nowhere")
	var te *tools.Error
	if !errors.As(err, &te) || te.Status != 404 || err.Error() != "fetch failed: local: page not found in the local corpus" {
		t.Errorf("missing page: %v", err)
	}
	if _, err := l.Access(ctx, "https://blank"); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("blank page: %v", err)
	}
	if _, err := tools.NewLocal(tools.LocalConfig{BaseURL: "localhost:5005"}); err == nil {
		t.Error("a URL without scheme must be refused")
	}
}

func TestLocalServerDownIsAnErrorWithinTheTimeout(t *testing.T) {
	rs := fakeweb.NewRetrieval(nil, nil)
	url := rs.URL
	rs.Close()
	l, _ := tools.NewLocal(tools.LocalConfig{BaseURL: url, Retry: fast, Timeout: time.Second})
	start := time.Now()
	_, err := l.Search(context.Background(), "q", 3)
	if err == nil || !tools.IsTransient(err) || time.Since(start) > 3*time.Second {
		t.Fatalf("err %v after %s", err, time.Since(start))
	}
	if !strings.HasPrefix(err.Error(), "search failed: local: ") {
		t.Errorf("message %q", err)
	}
}

// captureLogs routes the default logger into a buffer for the test.
func captureLogs(t *testing.T) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(prev) })
	return &buf
}

func TestSerper(t *testing.T) {
	const key = "serper-KEY-0123456789abcdef"
	ctx := context.Background()
	logs := captureLogs(t)
	fs := fakeweb.NewSerper(key)
	defer fs.Close()
	fs.Set("capital of France",
		fakeweb.Hit{Title: "Paris - Wikipedia", Link: "https://en.wikipedia.org/wiki/Paris", Snippet: "Paris is the capital."},
		fakeweb.Hit{Title: "France", Link: "https://en.wikipedia.org/wiki/France", Snippet: "A country."},
		fakeweb.Hit{Title: "Third", Link: "https://x", Snippet: "c"})
	s, err := tools.NewSerper(tools.SerperConfig{APIKey: key, Endpoint: fs.URL, Retry: fast})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Search(ctx, "capital of France", 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []tools.SearchResult{
		{Title: "Paris - Wikipedia", URL: "https://en.wikipedia.org/wiki/Paris", Text: "Paris is the capital."},
		{Title: "France", URL: "https://en.wikipedia.org/wiki/France", Text: "A country."},
	}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("got %+v", res)
	}
	if h := fs.Headers()[0]; h.Get("X-API-KEY") != key || h.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", h)
	}
	// No hits is an empty list, not an error.
	if res, err := s.Search(ctx, "nothing matches", 5); err != nil || len(res) != 0 {
		t.Errorf("no hits: %v %v", res, err)
	}
	// 429 then success: retried.
	fs.FailNext(429)
	if _, err := s.Search(ctx, "capital of France", 1); err != nil {
		t.Errorf("429 was not retried: %v", err)
	}
	// Persistent 503: an explicit, transient error after the attempts.
	fs.FailNext(503, 503, 503)
	_, err = s.Search(ctx, "capital of France", 1)
	if err == nil || err.Error() != "search failed: serper: HTTP 503: Service Unavailable" || !tools.IsTransient(err) {
		t.Errorf("503: %v", err)
	}
	// A bad key is a permanent error that says so, without the key.
	bad, _ := tools.NewSerper(tools.SerperConfig{APIKey: key + "-wrong", Endpoint: fs.URL, Retry: fast})
	_, err = bad.Search(ctx, "q", 1)
	if err == nil || err.Error() != "search failed: serper: HTTP 403: Unauthorized." || tools.IsTransient(err) {
		t.Errorf("bad key: %v", err)
	}
	if _, err := tools.NewSerper(tools.SerperConfig{}); err == nil || !strings.Contains(err.Error(), "SERPER_API_KEY") {
		t.Errorf("missing key: %v", err)
	}
	if strings.Contains(logs.String(), key) {
		t.Errorf("logs contain the key:\n%s", logs)
	}
}

func TestJina(t *testing.T) {
	const key = "jina_KEY_fedcba9876543210"
	ctx := context.Background()
	logs := captureLogs(t)
	fj := fakeweb.NewJina(key)
	defer fj.Close()
	fj.Set("https://example.com/a?b=1", "Example", "# Heading\n\nBody text.")
	j, err := tools.NewJina(tools.JinaConfig{APIKey: key, Endpoint: fj.URL, Retry: fast})
	if err != nil {
		t.Fatal(err)
	}
	p, err := j.Access(ctx, "https://example.com/a?b=1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Title != "Example" || p.Content != "# Heading\n\nBody text." || p.URL != "https://example.com/a?b=1" {
		t.Errorf("page %+v", p)
	}
	_, err = j.Access(ctx, "https://example.com/missing")
	if err == nil || !strings.HasPrefix(err.Error(), "fetch failed: jina: HTTP 422: AssertionFailureError") {
		t.Errorf("missing page: %v", err)
	}
	fj.FailNext(500)
	if _, err := j.Access(ctx, "https://example.com/a?b=1"); err != nil {
		t.Errorf("500 was not retried: %v", err)
	}
	if _, err := j.Access(ctx, "file:///etc/passwd"); err == nil {
		t.Error("non-http URL accepted")
	}
	bad, _ := tools.NewJina(tools.JinaConfig{APIKey: "nope", Endpoint: fj.URL, Retry: fast})
	if _, err := bad.Access(ctx, "https://example.com/a?b=1"); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Errorf("bad key: %v", err)
	}
	if strings.Contains(logs.String(), key) {
		t.Errorf("logs contain the key")
	}
}

// Keys never reach errors, even when a server echoes them back.
func TestKeysNeverAppearInErrors(t *testing.T) {
	const key = "leaky-KEY-55555"
	echo := fakeweb.NewSite()
	defer echo.Close()
	echo.Set("/search", fakeweb.Page{Status: 400, ContentType: "application/json", Body: `{"message":"bad key ` + key + `"}`})
	echo.Set("/https://x.org/", fakeweb.Page{Status: 400, ContentType: "text/plain", Body: "you sent Bearer " + key})
	s, _ := tools.NewSerper(tools.SerperConfig{APIKey: key, Endpoint: echo.URL + "/search", Retry: fast})
	_, err := s.Search(context.Background(), "q", 1)
	if err == nil || strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "[REDACTED]") {
		t.Errorf("serper: %v", err)
	}
	j, _ := tools.NewJina(tools.JinaConfig{APIKey: key, Endpoint: echo.URL, Retry: fast})
	_, err = j.Access(context.Background(), "https://x.org/")
	if err == nil || strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "[REDACTED]") {
		t.Errorf("jina: %v", err)
	}
	if s.String() != "serper" || j.String() != "jina" {
		t.Error("backend names must not carry keys")
	}
}
