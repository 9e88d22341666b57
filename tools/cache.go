package tools

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/singleflight"

	"github.com/asearcher/asearcher/internal/atomicfile"
)

// CacheMode says how a Cache answers.
type CacheMode int

const (
	// CacheLive answers from the cache when it can and asks the backend
	// otherwise, recording the answer.
	CacheLive CacheMode = iota
	// CacheReplay answers only from the cache: a miss is an error
	// (ErrReplayMiss) and no backend is called, so a run can be repeated
	// exactly.
	CacheReplay
	// CacheRecord always asks the backend and records the answer,
	// refreshing what is there.
	CacheRecord
)

// ParseCacheMode reads "live", "replay" or "record".
func ParseCacheMode(s string) (CacheMode, error) {
	switch s {
	case "", "live":
		return CacheLive, nil
	case "replay":
		return CacheReplay, nil
	case "record":
		return CacheRecord, nil
	}
	return 0, fmt.Errorf("cache mode %q: want live, replay or record", s)
}

// ErrReplayMiss is wrapped by every replay-mode cache miss.
var ErrReplayMiss = errors.New("not in the tool cache")

// CacheOptions configure a Cache.
type CacheOptions struct {
	Mode CacheMode
	// MaxAge, in live mode, makes older entries count as misses; 0 keeps
	// entries forever. Replay ignores it.
	MaxAge time.Duration
	Logger *slog.Logger
}

// Cache is a persistent store of tool answers (search results, pages and
// non-transient errors) shared by concurrent runs.
//
// Layout: one file per answer, DIR/<kind>/<h[0:2]>/<h>.json.zst, where h is
// the SHA-256 of kind, namespace and key; the file is zstd-compressed and
// holds one JSON line (kind, namespace, key, time, results or page or
// error) followed by the page content as raw text. Files are written
// with atomicfile (temporary name, fsync, rename, fsync of the directory),
// so readers in any process see a whole entry or none, a crash leaves the
// old entry or the new one, and concurrent writers of the same key leave
// one of their complete answers. A torn or foreign file (the zstd frame's
// checksum fails, or its header names another key) reads as a miss. Within a process, identical concurrent requests share
// one backend call.
type Cache struct {
	dir    string
	opts   CacheOptions
	logger *slog.Logger
	enc    *zstd.Encoder
	dec    *zstd.Decoder
	flight singleflight.Group

	hits, misses, writes atomic.Int64
}

// OpenCache opens (creating it if needed) the cache directory dir.
func OpenCache(dir string, opts CacheOptions) (*Cache, error) {
	if dir == "" {
		return nil, errors.New("tool cache: empty directory")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("tool cache: %w", err)
	}
	// The frame checksum (on by default, asked for here because load
	// relies on it) is what tells a torn entry from a whole one.
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true))
	if err != nil {
		return nil, err
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(256<<20))
	if err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Cache{dir: dir, opts: opts, logger: logger, enc: enc, dec: dec}, nil
}

// Mode is the cache's mode.
func (c *Cache) Mode() CacheMode { return c.opts.Mode }

// CacheStats counts cache traffic since the cache was opened.
type CacheStats struct{ Hits, Misses, Writes int64 }

// Stats returns the counters.
func (c *Cache) Stats() CacheStats {
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Writes: c.writes.Load()}
}

// cacheEntry is what one file holds.
type cacheEntry struct {
	Version   int            `json:"v"`
	Kind      string         `json:"kind"`
	Namespace string         `json:"namespace"`
	Key       string         `json:"key"`
	Created   time.Time      `json:"created"`
	Results   []SearchResult `json:"results,omitempty"`
	Page      *Page          `json:"page,omitempty"`
	Err       *cachedError   `json:"error,omitempty"`
	// ContentFollows: the page content is stored raw after the JSON
	// header line instead of as a JSON string, which would cost more to
	// escape and unescape than everything else in a hit.
	ContentFollows bool `json:"content_follows,omitempty"`
}

type cachedError struct {
	Op        string `json:"op"`
	Backend   string `json:"backend,omitempty"`
	Status    int    `json:"status,omitempty"`
	Msg       string `json:"msg"`
	Transient bool   `json:"transient,omitempty"`
}

func (c *Cache) path(kind, namespace, key string) string {
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(namespace))
	h.Write([]byte{0})
	h.Write([]byte(key))
	sum := hex.EncodeToString(h.Sum(nil))
	return filepath.Join(c.dir, kind, sum[:2], sum+".json.zst")
}

// load reads an entry; a missing, unreadable or mismatched file is a miss.
func (c *Cache) load(kind, namespace, key string) *cacheEntry {
	p := c.path(kind, namespace, key)
	data, err := os.ReadFile(p)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.logger.Warn("tool cache: unreadable entry", "path", p, "err", err)
		}
		return nil
	}
	raw, err := c.dec.DecodeAll(data, nil)
	if err != nil {
		c.logger.Warn("tool cache: corrupt entry ignored", "path", p, "err", err)
		return nil
	}
	header, body, _ := bytes.Cut(raw, []byte{'\n'})
	var e cacheEntry
	if err := json.Unmarshal(header, &e); err != nil || e.Kind != kind || e.Namespace != namespace || e.Key != key {
		c.logger.Warn("tool cache: entry does not match its key; ignored", "path", p)
		return nil
	}
	if e.ContentFollows && e.Page != nil {
		e.Page.Content = string(body)
	}
	return &e
}

// store writes an entry atomically.
func (c *Cache) store(e *cacheEntry) error {
	p := c.path(e.Kind, e.Namespace, e.Key)
	// Layout inside the compressed file: one line of JSON (which never
	// holds a raw newline), then the page content, if any, as it is.
	h := *e
	var content string
	if e.Page != nil {
		pg := *e.Page
		content, pg.Content = pg.Content, ""
		h.Page, h.ContentFollows = &pg, true
	}
	raw, err := json.Marshal(&h)
	if err != nil {
		return err
	}
	raw = append(raw, '\n')
	raw = append(raw, content...)
	data := c.enc.EncodeAll(raw, nil)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	// Temporary file, fsync, rename, fsync of the directory: without the
	// fsyncs a crash after the rename could leave the entry's name on disk
	// with its bytes missing, and every later run would find a torn file
	// there (load treats it as a miss, but a replay would then fail).
	if err := atomicfile.WriteFile(p, data); err != nil {
		return err
	}
	c.writes.Add(1)
	return nil
}

func (c *Cache) fresh(e *cacheEntry) bool {
	return c.opts.MaxAge <= 0 || time.Since(e.Created) <= c.opts.MaxAge
}

func entryError(e *cachedError) error {
	return &Error{Op: e.Op, Backend: e.Backend, Status: e.Status, Msg: e.Msg, Transient: e.Transient}
}

func toCachedError(err error) (*cachedError, bool) {
	var te *Error
	if !errors.As(err, &te) {
		return nil, false
	}
	// A cancelled call says nothing about the page or the query.
	if te.cancelled {
		return nil, false
	}
	return &cachedError{Op: te.Op, Backend: te.Backend, Status: te.Status, Msg: te.Msg, Transient: te.Transient}, true
}

// answer runs the cache protocol for one request. call asks the backend
// and fills an entry; it may be nil in replay mode.
func (c *Cache) answer(ctx context.Context, kind, namespace, key string, call func(*cacheEntry) error) (*cacheEntry, error) {
	if c.opts.Mode != CacheRecord {
		if e := c.load(kind, namespace, key); e != nil {
			usable := c.opts.Mode == CacheReplay || (c.fresh(e) && (e.Err == nil || !e.Err.Transient))
			if usable {
				c.hits.Add(1)
				return e, nil
			}
		}
	}
	c.misses.Add(1)
	if c.opts.Mode == CacheReplay {
		return nil, &ReplayMissError{Kind: kind, Namespace: namespace, Key: key}
	}
	if call == nil {
		return nil, fmt.Errorf("tool cache: no %s backend for a live lookup", kind)
	}
	for {
		e, err := c.callOnce(ctx, kind, namespace, key, call)
		// Identical concurrent requests share one call; if the caller that
		// made it gave up, a caller still waiting asks again itself.
		if err != nil && ctx.Err() == nil && isCancelled(err) {
			continue
		}
		return e, err
	}
}

func isCancelled(err error) bool {
	var te *Error
	return errors.As(err, &te) && te.cancelled
}

func (c *Cache) callOnce(ctx context.Context, kind, namespace, key string, call func(*cacheEntry) error) (*cacheEntry, error) {
	v, err, _ := c.flight.Do(kind+"\x00"+namespace+"\x00"+key, func() (any, error) {
		e := &cacheEntry{Version: 1, Kind: kind, Namespace: namespace, Key: key, Created: time.Now().UTC()}
		callErr := call(e)
		if callErr != nil {
			ce, ok := toCachedError(callErr)
			if !ok {
				return nil, callErr
			}
			e.Err = ce
			e.Results, e.Page = nil, nil
		}
		// A transient failure never replaces a good answer on disk; it is
		// recorded only where there is nothing, so a replay can show it.
		if e.Err == nil || !e.Err.Transient || c.load(kind, namespace, key) == nil {
			if err := c.store(e); err != nil {
				c.logger.Warn("tool cache: write failed", "kind", kind, "err", err)
			}
		}
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*cacheEntry), nil
}

// ReplayMissError is a replay-mode lookup the cache cannot answer.
type ReplayMissError struct {
	Kind, Namespace, Key string
}

func (e *ReplayMissError) Error() string {
	what := "search " + strconv.Quote(e.Key)
	if e.Kind == "page" {
		what = "page " + strconv.Quote(e.Key)
	}
	return fmt.Sprintf("replay: %s (%s) is not in the tool cache; run once without --replay to record it", what, e.Namespace)
}

// Is makes errors.Is(err, ErrReplayMiss) true.
func (e *ReplayMissError) Is(target error) bool { return target == ErrReplayMiss }

// Searcher wraps s with the cache under namespace (by default the
// backend's String(), e.g. "serper"). In replay mode s may be nil.
func (c *Cache) Searcher(s Searcher, namespace string) Searcher {
	if namespace == "" {
		namespace = backendName(s)
	}
	return &cachedSearcher{c: c, s: s, ns: namespace}
}

// Browser wraps b with the cache under namespace. In replay mode b may be
// nil.
func (c *Cache) Browser(b Browser, namespace string) Browser {
	if namespace == "" {
		namespace = backendName(b)
	}
	return &cachedBrowser{c: c, b: b, ns: namespace}
}

func backendName(v any) string {
	if s, ok := v.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", v)
}

type cachedSearcher struct {
	c  *Cache
	s  Searcher
	ns string
}

func (cs *cachedSearcher) String() string { return cs.ns + "+cache" }

func (cs *cachedSearcher) Search(ctx context.Context, query string, topk int) ([]SearchResult, error) {
	key := query + "\x00" + strconv.Itoa(topk)
	var call func(*cacheEntry) error
	if cs.s != nil {
		call = func(e *cacheEntry) error {
			res, err := cs.s.Search(ctx, query, topk)
			e.Results = res
			return err
		}
	}
	e, err := cs.c.answer(ctx, "search", cs.ns, key, call)
	if err != nil {
		var miss *ReplayMissError
		if errors.As(err, &miss) {
			miss.Key = query
		}
		return nil, err
	}
	if e.Err != nil {
		return nil, entryError(e.Err)
	}
	if e.Results == nil {
		return []SearchResult{}, nil
	}
	return append([]SearchResult(nil), e.Results...), nil
}

type cachedBrowser struct {
	c  *Cache
	b  Browser
	ns string
}

func (cb *cachedBrowser) String() string { return cb.ns + "+cache" }

func (cb *cachedBrowser) Access(ctx context.Context, pageURL string) (*Page, error) {
	var call func(*cacheEntry) error
	if cb.b != nil {
		call = func(e *cacheEntry) error {
			p, err := cb.b.Access(ctx, pageURL)
			e.Page = p
			if err == nil && p == nil {
				return &Error{Op: "fetch", Msg: "the browser returned no page"}
			}
			return err
		}
	}
	e, err := cb.c.answer(ctx, "page", cb.ns, pageURL, call)
	if err != nil {
		return nil, err
	}
	if e.Err != nil {
		return nil, entryError(e.Err)
	}
	if e.Page == nil {
		return nil, &Error{Op: "fetch", Msg: "cached entry has no page"}
	}
	p := *e.Page
	return &p, nil
}
