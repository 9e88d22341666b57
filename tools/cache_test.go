package tools

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/internal/fakeweb"
)

// countingSearcher answers from a function and counts calls.
type countingSearcher struct {
	calls atomic.Int64
	fn    func(q string) ([]SearchResult, error)
	delay time.Duration
}

func (s *countingSearcher) Search(ctx context.Context, q string, k int) ([]SearchResult, error) {
	s.calls.Add(1)
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	return s.fn(q)
}

type countingBrowser struct {
	calls atomic.Int64
	fn    func(u string) (*Page, error)
}

func (b *countingBrowser) Access(ctx context.Context, u string) (*Page, error) {
	b.calls.Add(1)
	return b.fn(u)
}

func openCache(t *testing.T, dir string, mode CacheMode) *Cache {
	t.Helper()
	c, err := OpenCache(dir, CacheOptions{Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCacheLiveThenReplay(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := &countingSearcher{fn: func(q string) ([]SearchResult, error) {
		return []SearchResult{{Title: q, URL: "https://x/" + q, Text: "about " + q, Score: 1.5}}, nil
	}}
	b := &countingBrowser{fn: func(u string) (*Page, error) {
		switch u {
		case "https://gone":
			return nil, &Error{Op: "fetch", Status: 404, Msg: "HTTP 404"}
		case "https://flaky":
			return nil, &Error{Op: "fetch", Status: 503, Msg: "HTTP 503", Transient: true}
		}
		return &Page{URL: u, Title: "T", Content: "content of " + u}, nil
	}}
	live := openCache(t, dir, CacheLive)
	cs, cb := live.Searcher(s, "web"), live.Browser(b, "web")
	for range 3 {
		res, err := cs.Search(ctx, "paris", 5)
		if err != nil || len(res) != 1 || res[0].Text != "about paris" {
			t.Fatalf("%+v %v", res, err)
		}
	}
	if s.calls.Load() != 1 {
		t.Errorf("backend searched %d times, want 1", s.calls.Load())
	}
	// topk is part of the key.
	if _, err := cs.Search(ctx, "paris", 3); err != nil || s.calls.Load() != 2 {
		t.Errorf("topk 3 must be a separate entry: calls %d err %v", s.calls.Load(), err)
	}
	for range 2 {
		if _, err := cb.Access(ctx, "https://a"); err != nil {
			t.Fatal(err)
		}
		if _, err := cb.Access(ctx, "https://gone"); err == nil || err.Error() != "fetch failed: HTTP 404" {
			t.Fatalf("404: %v", err)
		}
		if _, err := cb.Access(ctx, "https://flaky"); err == nil || !IsTransient(err) {
			t.Fatalf("flaky: %v", err)
		}
	}
	// Page and permanent error fetched once; the transient error is asked
	// again every time in live mode.
	if got := b.calls.Load(); got != 1+1+2 {
		t.Errorf("browser called %d times, want 4", got)
	}

	// Another process (a second Cache on the same directory) in replay
	// mode answers everything recorded, with no backend at all.
	replay := openCache(t, dir, CacheReplay)
	rs, rb := replay.Searcher(nil, "web"), replay.Browser(nil, "web")
	res, err := rs.Search(ctx, "paris", 5)
	if err != nil || !reflect.DeepEqual(res, []SearchResult{{Title: "paris", URL: "https://x/paris", Text: "about paris", Score: 1.5}}) {
		t.Errorf("replayed search: %+v %v", res, err)
	}
	if p, err := rb.Access(ctx, "https://a"); err != nil || p.Content != "content of https://a" {
		t.Errorf("replayed page: %+v %v", p, err)
	}
	if _, err := rb.Access(ctx, "https://gone"); err == nil || err.Error() != "fetch failed: HTTP 404" {
		t.Errorf("replayed 404: %v", err)
	}
	// The transient failure was recorded too, so the replay shows the model
	// exactly what the live run showed it.
	if _, err := rb.Access(ctx, "https://flaky"); err == nil || err.Error() != "fetch failed: HTTP 503" {
		t.Errorf("replayed 503: %v", err)
	}
	_, err = rs.Search(ctx, "never asked", 5)
	if !errors.Is(err, ErrReplayMiss) || !strings.Contains(err.Error(), `"never asked"`) || !strings.Contains(err.Error(), "--replay") {
		t.Errorf("replay miss: %v", err)
	}
	if _, err := rs.Search(ctx, "paris", 5); err != nil {
		t.Error(err)
	}
	if st := replay.Stats(); st.Hits != 5 || st.Misses != 1 || st.Writes != 0 {
		t.Errorf("replay stats %+v", st)
	}
	// Namespaces keep backends apart.
	if _, err := replay.Searcher(nil, "other").Search(ctx, "paris", 5); !errors.Is(err, ErrReplayMiss) {
		t.Errorf("namespace leak: %v", err)
	}
}

func TestCacheTransientNeverReplacesAnswer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fail := false
	b := &countingBrowser{fn: func(u string) (*Page, error) {
		if fail {
			return nil, &Error{Op: "fetch", Msg: "timeout", Transient: true}
		}
		return &Page{URL: u, Content: "good"}, nil
	}}
	rec := openCache(t, dir, CacheRecord).Browser(b, "web")
	if _, err := rec.Access(ctx, "https://p"); err != nil {
		t.Fatal(err)
	}
	fail = true
	if _, err := rec.Access(ctx, "https://p"); err == nil {
		t.Fatal("record mode must ask the backend")
	}
	p, err := openCache(t, dir, CacheReplay).Browser(nil, "web").Access(ctx, "https://p")
	if err != nil || p.Content != "good" {
		t.Errorf("the good page was overwritten: %+v %v", p, err)
	}
}

func TestCacheMaxAgeAndCorruption(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := &countingSearcher{fn: func(q string) ([]SearchResult, error) { return []SearchResult{{Text: q}}, nil }}
	c, _ := OpenCache(dir, CacheOptions{MaxAge: time.Hour})
	cs := c.Searcher(s, "n")
	if _, err := cs.Search(ctx, "q", 1); err != nil {
		t.Fatal(err)
	}
	old, _ := OpenCache(dir, CacheOptions{MaxAge: time.Nanosecond})
	time.Sleep(time.Millisecond)
	if _, err := old.Searcher(s, "n").Search(ctx, "q", 1); err != nil || s.calls.Load() != 2 {
		t.Errorf("expired entry not refreshed: calls %d err %v", s.calls.Load(), err)
	}
	// Corrupt every entry: they read as misses and are rewritten.
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			os.WriteFile(p, []byte("garbage"), 0o644)
		}
		return nil
	})
	if _, err := cs.Search(ctx, "q", 1); err != nil || s.calls.Load() != 3 {
		t.Errorf("corrupt entry: calls %d err %v", s.calls.Load(), err)
	}
	if _, err := cs.Search(ctx, "q", 1); err != nil || s.calls.Load() != 3 {
		t.Errorf("rewritten entry not used: calls %d", s.calls.Load())
	}
}

// entryFiles lists the cache's entry files under dir.
func entryFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// An entry is written through atomicfile: readable by the other users of
// a shared cache (os.CreateTemp alone made it 0600) and no temporary file
// is left. The fsyncs themselves are atomicfile's, tested there.
func TestCacheEntriesWrittenByAtomicfile(t *testing.T) {
	dir := t.TempDir()
	s := &countingSearcher{fn: func(q string) ([]SearchResult, error) { return []SearchResult{{Text: q}}, nil }}
	if _, err := openCache(t, dir, CacheLive).Searcher(s, "n").Search(context.Background(), "q", 1); err != nil {
		t.Fatal(err)
	}
	files := entryFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("want one entry file, got %q", files)
	}
	st, err := os.Stat(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != atomicfile.Mode {
		t.Errorf("entry mode %v, want %v", st.Mode().Perm(), atomicfile.Mode)
	}
}

// A torn entry (what a crash mid-write or a lost write-back leaves under
// the entry's name: any prefix of the file, or its length in zero bytes)
// is never served: replay reports a miss, live asks the backend again and
// rewrites the entry whole.
func TestCacheTornEntriesAreMisses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	content := strings.Repeat("a page line with some words\n", 200)
	b := &countingBrowser{fn: func(u string) (*Page, error) { return &Page{URL: u, Title: "T", Content: content}, nil }}
	live := openCache(t, dir, CacheLive).Browser(b, "web")
	if _, err := live.Access(ctx, "https://p"); err != nil {
		t.Fatal(err)
	}
	files := entryFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("want one entry file, got %q", files)
	}
	whole, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	// Each torn file logs a warning; keep the test's output readable.
	quiet, err := OpenCache(dir, CacheOptions{Mode: CacheReplay, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	replay := quiet.Browser(nil, "web")
	torn := [][]byte{make([]byte, len(whole))}
	for n := range len(whole) {
		torn = append(torn, whole[:n])
	}
	for _, data := range torn {
		if err := os.WriteFile(files[0], data, 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := replay.Access(ctx, "https://p")
		if !errors.Is(err, ErrReplayMiss) {
			t.Fatalf("torn entry of %d of %d bytes served: page %d bytes, err %v", len(data), len(whole), pageLen(p), err)
		}
	}
	calls := b.calls.Load()
	p, err := live.Access(ctx, "https://p")
	if err != nil || p.Content != content || b.calls.Load() != calls+1 {
		t.Fatalf("live over a torn entry: %d content bytes, %d backend calls, err %v", pageLen(p), b.calls.Load()-calls, err)
	}
	if p, err := replay.Access(ctx, "https://p"); err != nil || p.Content != content {
		t.Errorf("the torn entry was not rewritten whole: %d bytes, err %v", pageLen(p), err)
	}
}

func pageLen(p *Page) int {
	if p == nil {
		return -1
	}
	return len(p.Content)
}

// Many goroutines of several "processes" (Cache values) hammer the same
// and different keys: one backend call per key per process at most, every
// answer whole, no temporary files left behind.
func TestCacheConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := &countingSearcher{delay: 5 * time.Millisecond, fn: func(q string) ([]SearchResult, error) {
		return []SearchResult{{Text: strings.Repeat(q, 1000)}}, nil
	}}
	caches := []*Cache{openCache(t, dir, CacheLive), openCache(t, dir, CacheLive), openCache(t, dir, CacheLive)}
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := fmt.Sprintf("q%d", i%4)
			res, err := caches[i%3].Searcher(s, "n").Search(ctx, q, 1)
			if err != nil || len(res) != 1 || res[0].Text != strings.Repeat(q, 1000) {
				t.Errorf("%s: %v", q, err)
			}
		}()
	}
	wg.Wait()
	if n := s.calls.Load(); n > 12 {
		t.Errorf("%d backend calls for 4 keys in 3 caches", n)
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && atomicfile.IsTemp(d.Name()) {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
	replay := openCache(t, dir, CacheReplay).Searcher(nil, "n")
	for i := range 4 {
		if _, err := replay.Search(ctx, fmt.Sprintf("q%d", i), 1); err != nil {
			t.Error(err)
		}
	}
}

func TestCacheDoesNotRecordCancelledCalls(t *testing.T) {
	dir := t.TempDir()
	b := &countingBrowser{fn: func(u string) (*Page, error) {
		return nil, &Error{Op: "fetch", Msg: "cancelled: context canceled", Transient: true, err: context.Canceled, cancelled: true}
	}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _ = openCache(t, dir, CacheLive).Browser(b, "web").Access(ctx, "https://p")
	if _, err := openCache(t, dir, CacheReplay).Browser(nil, "web").Access(context.Background(), "https://p"); !errors.Is(err, ErrReplayMiss) {
		t.Errorf("a cancelled call was recorded: %v", err)
	}
}

func TestParseCacheMode(t *testing.T) {
	for in, want := range map[string]CacheMode{"": CacheLive, "live": CacheLive, "replay": CacheReplay, "record": CacheRecord} {
		if got, err := ParseCacheMode(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if _, err := ParseCacheMode("offline"); err == nil {
		t.Error("unknown mode accepted")
	}
}

// What the cache writes holds answers, never the keys used to get them.
func TestCacheFilesHoldNoKeys(t *testing.T) {
	const key = "serper-SECRET-4242"
	fake := fakeweb.NewSerper(key)
	defer fake.Close()
	fake.Set("q", fakeweb.Hit{Title: "t", Link: "https://l", Snippet: "s"})
	dir := t.TempDir()
	c := openCache(t, dir, CacheLive)
	s, _ := NewSerper(SerperConfig{APIKey: key, Endpoint: fake.URL, Retry: fastRetry})
	cs := c.Searcher(s, "")
	if _, err := cs.Search(context.Background(), "q", 3); err != nil {
		t.Fatal(err)
	}
	bad, _ := NewSerper(SerperConfig{APIKey: key + "x", Endpoint: fake.URL, Retry: fastRetry})
	_, _ = c.Searcher(bad, "").Search(context.Background(), "other", 3) // a recorded 403
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		data, _ := os.ReadFile(p)
		raw, err := c.dec.DecodeAll(data, nil)
		if err != nil {
			t.Fatal(err)
		}
		n++
		if strings.Contains(string(raw), "SECRET") {
			t.Errorf("%s holds the key: %s", p, raw)
		}
		return nil
	})
	if n != 2 {
		t.Errorf("%d cache files, want 2", n)
	}
}
