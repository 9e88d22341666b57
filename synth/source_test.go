package synth

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/internal/testindex"
	"github.com/asearcher/asearcher/retrieval"
	"github.com/asearcher/asearcher/tools"
)

func titles(ps []Page) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Title
	}
	return out
}

func TestCorpusSourceDerivedLinks(t *testing.T) {
	ix := testindex.Open(t)
	src, err := NewCorpusSource(ix, nil, 48)
	if err != nil {
		t.Fatal(err)
	}
	seeds, err := src.Seeds(context.Background(), 3)
	if err != nil || len(seeds) != 3 {
		t.Fatalf("seeds %v %v", seeds, err)
	}
	again, _ := src.Seeds(context.Background(), 3)
	if !slices.Equal(titles(seeds), titles(again)) {
		t.Fatal("seed order differs between calls")
	}
	rel, err := src.Related(context.Background(), seeds[0], 10)
	if err != nil {
		t.Fatal(err)
	}
	got := titles(rel)
	// James Hetfield's passage names Metallica and Lars Ulrich (out-links);
	// Enter Sandman's names Hetfield (in-link).
	for _, want := range []string{"Metallica", "Lars Ulrich", "Enter Sandman"} {
		if !slices.Contains(got, want) {
			t.Errorf("links of %q lack %q: %q", seeds[0].Title, want, got)
		}
	}
	if slices.Contains(got, seeds[0].Title) {
		t.Error("a page links to itself")
	}
}

func TestCorpusSourceLinksFile(t *testing.T) {
	ix := testindex.Open(t)
	links, err := ParseLinks([]byte(`{"James Hetfield": {"links": ["Metallica", "No Such Page"], "in_links": ["Nigella Lawson"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	src, _ := NewCorpusSource(ix, links, 48)
	seeds, _ := src.Seeds(context.Background(), 1)
	rel, err := src.Related(context.Background(), seeds[0], 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := titles(rel); !slices.Equal(got, []string{"Metallica", "Nigella Lawson"}) {
		t.Fatalf("links %q", got)
	}
}

func TestParseLinks(t *testing.T) {
	tests := []struct {
		name, in string
		key      string
		want     []string
		err      string
	}{
		{"lists", `{"A": ["B", "C"]}`, "A", []string{"B", "C"}, ""},
		{"upstream", `{"http://x/A": {"links": ["B"], "in_links": ["C"]}}`, "http://x/A", []string{"B", "C"}, ""},
		{"jsonl", "{\"title\": \"A\", \"links\": [\"B\"]}\n{\"id\": \"7\", \"url\": \"u\", \"in_links\": [\"C\"]}\n", "u", []string{"C"}, ""},
		{"one jsonl line", `{"title": "A", "links": ["B"]}`, "A", []string{"B"}, ""},
		{"empty", "  ", "", nil, "empty"},
		{"bad value", `{"A": 5}`, "", nil, "want a list"},
		{"bad line", "{\"title\": \"A\", \"links\": []}\nnot json\n", "", nil, "line 2"},
		{"no key", `{"links": ["B"]}`, "", nil, "no id, url or title"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ParseLinks([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(l[tt.key], tt.want) {
				t.Fatalf("links[%q] = %q, want %q", tt.key, l[tt.key], tt.want)
			}
		})
	}
	path := filepath.Join(t.TempDir(), "links.json")
	os.WriteFile(path, []byte(`{"A": ["B"]}`), 0o644)
	if l, err := LoadLinks(path); err != nil || len(l["A"]) != 1 {
		t.Fatalf("LoadLinks: %v %v", l, err)
	}
	if _, err := LoadLinks(path + ".missing"); err == nil {
		t.Fatal("missing file accepted")
	}
}

func FuzzParseLinks(f *testing.F) {
	for _, s := range []string{`{"A": ["B"]}`, `{"A": {"links": ["B"]}}`, "{\"url\": \"u\", \"links\": [\"x\"]}\n", "[]", `{"A": null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLinks(data)
		if err == nil && l == nil {
			t.Fatal("nil links without an error")
		}
	})
}

func TestMentions(t *testing.T) {
	for _, tt := range []struct {
		text, title string
		want        bool
	}{
		{"founded Metallica in 1981", "Metallica", true},
		{"Metallicas are", "Metallica", false},
		{"John Diamond wrote", "John Diamond (journalist)", true},
		{"United we stand", "United (Marian Gold album)", false},
		{"in the UK", "UK", false},
		{"", "Metallica", false},
		{"xx Metallica", "Metallica", true},
	} {
		if got := mentions(tt.text, tt.title); got != tt.want {
			t.Errorf("mentions(%q, %q) = %v", tt.text, tt.title, got)
		}
	}
}

// TestSearchSource runs the web-style source against our retrieval server
// on loopback: seeds from queries, page text through /access, links from a
// title search.
func TestSearchSource(t *testing.T) {
	ix := testindex.Open(t)
	url := testindex.ServeIndex(t, ix)
	search, err := tools.SearcherFromSpec(url, tools.SpecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	browse, err := tools.BrowserFromSpec(url, tools.SpecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src := &SearchSource{Search: search, Browse: browse, Queries: []string{"James Hetfield Metallica co-founder", "James Hetfield Metallica", "Nigella Lawson"}}
	seeds, err := src.Seeds(context.Background(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if got := titles(seeds); !slices.Equal(got, []string{"James Hetfield", "Nigella Lawson"}) {
		t.Fatalf("seeds %q (duplicates must be dropped)", got)
	}
	if !strings.Contains(seeds[0].Text, "Lars Ulrich") || seeds[0].URL == "" {
		t.Fatalf("seed page %+v", seeds[0])
	}
	rel, err := src.Related(context.Background(), seeds[0], 5)
	if err != nil || len(rel) == 0 || slices.Contains(titles(rel), "James Hetfield") {
		t.Fatalf("related %q %v", titles(rel), err)
	}
	// IndexTools answers the same queries in process.
	it := IndexTools{Index: ix}
	hits, err := it.Search(context.Background(), "James Hetfield Metallica co-founder", 1)
	if err != nil || len(hits) != 1 || hits[0].Title != "James Hetfield" {
		t.Fatalf("IndexTools search %+v %v", hits, err)
	}
	page, err := it.Access(context.Background(), hits[0].URL)
	if err != nil || !strings.Contains(page.Content, "Lars Ulrich") {
		t.Fatalf("IndexTools access %+v %v", page, err)
	}
	if _, err := it.Access(context.Background(), "https://nowhere.invalid/x"); err == nil {
		t.Fatal("unknown url read")
	}
}

// TestCorpusSourcePages: an index with a page store draws its seeds from the
// pages (stubs skipped); links still come from the passages.
func TestCorpusSourcePages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "index")
	if _, err := retrieval.Build(context.Background(), retrieval.BuildOptions{
		Corpus: hotpotCorpus, Pages: "testdata/pages.jsonl", Out: dir, Progress: retrieval.ProgressOff, NoSync: true,
	}); err != nil {
		t.Fatal(err)
	}
	ix, err := retrieval.Open(dir, retrieval.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	src, _ := NewCorpusSource(ix, nil, 1)
	seeds, err := src.Seeds(context.Background(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if got := titles(seeds); !slices.Equal(got, []string{"Metallica"}) {
		t.Fatalf("seeds %q", got)
	}
	rel, err := src.Related(context.Background(), seeds[0], 5)
	if err != nil || !slices.Contains(titles(rel), "James Hetfield") {
		t.Fatalf("related %q %v", titles(rel), err)
	}
}
