package synth

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"

	"github.com/asearcher/asearcher/corpus"
	"github.com/asearcher/asearcher/retrieval"
	"github.com/asearcher/asearcher/tools"
)

// Page is one entity page: a seed, or a linked page a fact is taken from.
type Page struct {
	ID    string `json:"id,omitempty"`
	Title string `json:"title"`
	URL   string `json:"url,omitempty"`
	Text  string `json:"-"`
}

// Source supplies seed pages and the pages linked to a page.
type Source interface {
	// Seeds returns up to n seed pages in an order that is the same on
	// every run with the same arguments, so a resumed run picks the same
	// seeds.
	Seeds(ctx context.Context, n int) ([]Page, error)
	// Related lists up to k pages linked to p (out- and in-links).
	Related(ctx context.Context, p Page, k int) ([]Page, error)
}

// minSeedChars skips stub passages as seeds: a title and half a sentence
// rarely supports a question.
const minSeedChars = 80

// CorpusSource draws seeds and links from a built local index: seeds are
// random pages of its page store when it has one, else random passages;
// links come from a links file when given and otherwise
// from titles: a page links to the passages whose title its text mentions
// and to those whose text mentions its title, found through BM25.
type CorpusSource struct {
	ix    *retrieval.Index
	bm25  retrieval.Retriever
	links map[string][]string
	seed  uint64
}

// NewCorpusSource returns a source over an opened index. links may be nil;
// seed makes the seed sample reproducible.
func NewCorpusSource(ix *retrieval.Index, links Links, seed uint64) (*CorpusSource, error) {
	r, err := ix.Retriever("bm25")
	if err != nil {
		return nil, fmt.Errorf("corpus source: %w", err)
	}
	return &CorpusSource{ix: ix, bm25: r, links: links, seed: seed}, nil
}

// Seeds implements Source: passages in a seeded random order, skipping
// stubs.
func (s *CorpusSource) Seeds(ctx context.Context, n int) ([]Page, error) {
	store := s.ix.Store
	if s.ix.Pages != nil {
		store = s.ix.Pages
	}
	total := store.Len()
	order := make([]uint32, total)
	for i := range order {
		order[i] = uint32(i)
	}
	rng := rand.New(rand.NewPCG(s.seed, 0x5eed))
	rng.Shuffle(total, func(i, j int) { order[i], order[j] = order[j], order[i] })
	var out []Page
	for _, ord := range order {
		if len(out) >= n {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p, err := pageOf(store, ord)
		if err != nil {
			return nil, err
		}
		if len(p.Text) >= minSeedChars {
			out = append(out, p)
		}
	}
	return out, nil
}

func (s *CorpusSource) page(ord uint32) (Page, error) { return pageOf(s.ix.Store, ord) }

func pageOf(store *corpus.Store, ord uint32) (Page, error) {
	p, err := store.Passage(ord)
	if err != nil {
		return Page{}, fmt.Errorf("corpus passage %d: %w", ord, err)
	}
	return Page{ID: p.ID, Title: p.Title, URL: p.URL, Text: strings.TrimSpace(p.Text())}, nil
}

// lookup resolves a links-file reference: a passage id, a url, or a title.
func (s *CorpusSource) lookup(ref string) (Page, bool) {
	if ord, ok := s.ix.Store.LookupID(ref); ok {
		p, err := s.page(ord)
		return p, err == nil
	}
	var buf [4]uint32
	for _, u := range []string{ref, corpus.URLFor(corpus.DefaultURLTemplate, ref)} {
		if ords := s.ix.Store.LookupURL(u, buf[:0]); len(ords) > 0 {
			p, err := s.page(ords[0])
			return p, err == nil
		}
	}
	return Page{}, false
}

// Related implements Source.
func (s *CorpusSource) Related(ctx context.Context, p Page, k int) ([]Page, error) {
	if s.links != nil {
		var out []Page
		seen := map[string]bool{p.Title: true}
		for _, key := range []string{p.ID, p.URL, p.Title} {
			for _, ref := range s.links[key] {
				if len(out) >= k {
					return out, nil
				}
				if q, ok := s.lookup(ref); ok && !seen[q.Title] {
					seen[q.Title] = true
					out = append(out, q)
				}
			}
		}
		return out, nil
	}
	hits, err := s.bm25.Search(ctx, p.Title+" "+clip(p.Text, 2000), 4*k+8, nil)
	if err != nil {
		return nil, fmt.Errorf("related pages of %q: %w", p.Title, err)
	}
	var out []Page
	seen := map[string]bool{p.Title: true}
	for _, h := range hits {
		q, err := s.page(h.Doc)
		if err != nil {
			return nil, err
		}
		if seen[q.Title] {
			continue
		}
		if mentions(p.Text, q.Title) || mentions(q.Text, p.Title) {
			seen[q.Title] = true
			out = append(out, q)
			if len(out) >= k {
				break
			}
		}
	}
	return out, nil
}

// mentions reports whether text names title as whole words. Titles of two
// letters or fewer match too much to mean a link.
func mentions(text, title string) bool {
	title = strings.TrimSpace(title)
	// "John Diamond (journalist)" is written "John Diamond" in text; a
	// one-word rest ("United (album)") would match everywhere.
	if i := strings.LastIndex(title, " ("); i > 0 && strings.HasSuffix(title, ")") && strings.Contains(title[:i], " ") {
		title = title[:i]
	}
	if len(title) < 3 {
		return false
	}
	for from := 0; ; {
		i := strings.Index(text[from:], title)
		if i < 0 {
			return false
		}
		i += from
		end := i + len(title)
		if (i == 0 || !isWordByte(text[i-1])) && (end == len(text) || !isWordByte(text[end])) {
			return true
		}
		from = i + 1
	}
}

func isWordByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b >= 0x80
}

// Links maps a page (by id, url or title) to the pages it links to.
type Links map[string][]string

// maxLinksFileBytes bounds a links file read into memory.
const maxLinksFileBytes = 2 << 30

// LoadLinks reads a links file: a JSON object mapping a page to a list of
// pages or to {"links": [...], "in_links": [...]} (ASearcher's layout), or
// JSONL with one {"id"|"url"|"title": KEY, "links": [...], "in_links": [...]}
// per line.
func LoadLinks(path string) (Links, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("links file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxLinksFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("links file %s: %w", path, err)
	}
	if len(data) > maxLinksFileBytes {
		return nil, fmt.Errorf("links file %s is larger than %d bytes", path, maxLinksFileBytes)
	}
	l, err := ParseLinks(data)
	if err != nil {
		return nil, fmt.Errorf("links file %s: %w", path, err)
	}
	return l, nil
}

type linkEntry struct {
	ID      string   `json:"id"`
	URL     string   `json:"url"`
	Title   string   `json:"title"`
	Links   []string `json:"links"`
	InLinks []string `json:"in_links"`
}

// ParseLinks decodes the links file layouts LoadLinks describes.
func ParseLinks(data []byte) (Links, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, errors.New("empty links file")
	}
	out := Links{}
	// A single JSON object whose values are lists or link entries.
	var whole map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &whole); err == nil && !isLinkEntry(whole) {
		for k, v := range whole {
			var list []string
			if err := json.Unmarshal(v, &list); err == nil {
				out[k] = append(out[k], list...)
				continue
			}
			var e linkEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return nil, fmt.Errorf("links of %q: want a list of pages or {\"links\": [...]}", clip(k, 80))
			}
			out[k] = append(append(out[k], e.Links...), e.InLinks...)
		}
		return out, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(trimmed))
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var e linkEntry
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		key := cmpOr(e.ID, e.URL, e.Title)
		if key == "" {
			return nil, fmt.Errorf("line %d: no id, url or title", line)
		}
		all := append(append([]string(nil), e.Links...), e.InLinks...)
		for _, k := range slices.Compact([]string{e.ID, e.URL, e.Title}) {
			if k != "" {
				out[k] = append(out[k], all...)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// isLinkEntry tells a one-line JSONL file (an object with "links") from the
// page → links object layout.
func isLinkEntry(m map[string]json.RawMessage) bool {
	_, a := m["links"]
	_, b := m["in_links"]
	return a || b
}

func cmpOr(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// SearchSource draws seeds and links from a search engine (a retrieval
// server or the web): each seed query's best result is a seed page, and a
// page's links are the results of searching its title. A Browser, when
// given, reads whole pages instead of snippets.
type SearchSource struct {
	Search  tools.Searcher
	Browse  tools.Browser
	Queries []string
	// MaxPageChars cuts pages shown to the model [12000].
	MaxPageChars int
}

// Seeds implements Source: the first n queries, each resolved to its best
// result.
func (s *SearchSource) Seeds(ctx context.Context, n int) ([]Page, error) {
	var out []Page
	seen := map[string]bool{}
	for _, q := range s.Queries {
		if len(out) >= n {
			break
		}
		hits, err := s.Search.Search(ctx, q, 1)
		if err != nil {
			return nil, fmt.Errorf("seed query %q: %w", clip(q, 80), err)
		}
		if len(hits) == 0 {
			continue
		}
		p := s.fromHit(ctx, hits[0])
		if key := pageKey(p); !seen[key] {
			seen[key] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// Related implements Source.
func (s *SearchSource) Related(ctx context.Context, p Page, k int) ([]Page, error) {
	hits, err := s.Search.Search(ctx, p.Title, 3*k+5)
	if err != nil {
		return nil, fmt.Errorf("related pages of %q: %w", clip(p.Title, 80), err)
	}
	var linked, other []Page
	seen := map[string]bool{p.Title: true}
	for _, h := range hits {
		q := hitPage(h)
		if q.Title == "" || seen[q.Title] {
			continue
		}
		seen[q.Title] = true
		if mentions(p.Text, q.Title) || mentions(q.Text, p.Title) {
			linked = append(linked, q)
		} else {
			other = append(other, q)
		}
	}
	// Web snippets are short, so mentions are often missed: fall back to
	// the remaining results in rank order.
	out := append(linked, other...)
	if len(out) > k {
		out = out[:k]
	}
	for i := range out {
		out[i] = s.expand(ctx, out[i])
	}
	return out, nil
}

func (s *SearchSource) fromHit(ctx context.Context, h tools.SearchResult) Page {
	return s.expand(ctx, hitPage(h))
}

// expand replaces a snippet by the page text when a browser can read it;
// a page that cannot be read keeps its snippet.
func (s *SearchSource) expand(ctx context.Context, p Page) Page {
	limit := cmpInt(s.MaxPageChars, 12000)
	if s.Browse != nil && p.URL != "" {
		if pg, err := s.Browse.Access(ctx, p.URL); err == nil && strings.TrimSpace(pg.Content) != "" {
			p.Text = pg.Content
			if p.Title == "" {
				p.Title = pg.Title
			}
		}
	}
	p.Text = clip(strings.TrimSpace(p.Text), limit)
	return p
}

func hitPage(h tools.SearchResult) Page {
	title, text := h.Title, h.Text
	if title == "" {
		title = corpus.TitleOf(text)
		text = corpus.TextOf(text)
	}
	return Page{ID: h.ID, Title: strings.Trim(title, `" `), URL: h.URL, Text: text}
}

func pageKey(p Page) string { return cmpOr(p.ID, p.URL, p.Title) }

func cmpInt(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// seedRand is a per-seed generator, so choices such as the order actions are
// offered in repeat on a rerun of the same seed.
func seedRand(id string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(id))
	return rand.New(rand.NewPCG(h.Sum64(), 0xac71))
}

// IndexTools searches and reads an opened local index in process, so the
// tool-using solver can run on --index without a retrieval server. It
// implements tools.Searcher and tools.Browser.
type IndexTools struct {
	Index *retrieval.Index
}

// Search implements tools.Searcher with BM25.
func (t IndexTools) Search(ctx context.Context, query string, topk int) ([]tools.SearchResult, error) {
	r, err := t.Index.Retriever("bm25")
	if err != nil {
		return nil, err
	}
	hits, err := r.Search(ctx, query, topk, nil)
	if err != nil {
		return nil, err
	}
	out := make([]tools.SearchResult, 0, len(hits))
	for _, h := range hits {
		p, err := t.Index.Store.Passage(h.Doc)
		if err != nil {
			return nil, err
		}
		out = append(out, tools.SearchResult{Title: p.Title, URL: p.URL, ID: p.ID, Text: p.Contents, Score: float64(h.Score)})
	}
	return out, nil
}

// Access implements tools.Browser: the passages stored under the url.
func (t IndexTools) Access(ctx context.Context, url string) (*tools.Page, error) {
	ords := t.Index.Store.LookupURL(url, nil)
	if len(ords) == 0 {
		return nil, fmt.Errorf("no page %q in the index", clip(url, 200))
	}
	var b strings.Builder
	title := ""
	for _, o := range ords {
		p, err := t.Index.Store.Passage(o)
		if err != nil {
			return nil, err
		}
		title = p.Title
		b.WriteString(p.Text())
		b.WriteString("\n")
	}
	return &tools.Page{URL: url, Title: title, Content: strings.TrimSpace(b.String())}, nil
}
