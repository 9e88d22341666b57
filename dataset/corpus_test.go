package dataset

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestCorporaRead(t *testing.T) {
	ctx := context.Background()
	for _, c := range Corpora() {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			n := 0
			ids := map[string]bool{}
			err := ReadCorpus(ctx, c.Name, func(p Passage) error {
				n++
				if p.ID == "" || p.Text == "" || p.Title == "" || ids[p.ID] {
					t.Fatalf("passage %d incomplete or repeated: %+v", n, p)
				}
				ids[p.ID] = true
				// wiki-18 keeps its contents as given; a few titles are unquoted.
				if contentsOf(p.Title, p.Text) != p.Contents && p.Title+"\n"+p.Text != p.Contents {
					t.Fatalf("passage %s: contents %q do not round-trip through title and text", p.ID, p.Contents)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if n != c.Passages {
				t.Errorf("%d passages, want %d", n, c.Passages)
			}
			r, err := OpenCorpus(ctx, c.Name)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			sc := bufio.NewScanner(r)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			lines := 0
			for sc.Scan() {
				var p Passage
				if err := json.Unmarshal(sc.Bytes(), &p); err != nil || p.Contents == "" {
					t.Fatalf("line %d: %v", lines+1, err)
				}
				lines++
			}
			if lines != c.Passages {
				t.Errorf("OpenCorpus gave %d lines, want %d", lines, c.Passages)
			}
		})
	}
}

// TestHotpotCorpusHoldsEvidence checks the property the offline end-to-end
// tests rely on: every supporting-fact title of hotpotqa-hipporag-100 is a
// passage id of its corpus.
func TestHotpotCorpusHoldsEvidence(t *testing.T) {
	set := loadBuiltinOnce(t, "hotpotqa-hipporag-100")
	ids := map[string]string{}
	ReadCorpus(context.Background(), set.Corpus, func(p Passage) error { ids[p.ID] = p.Text; return nil })
	for _, it := range set.Items {
		for _, f := range it.Meta["supporting_facts"].([]any) {
			title := f.([]any)[0].(string)
			if _, ok := ids[title]; !ok {
				t.Errorf("%s: supporting passage %q missing", it.ID, title)
			}
		}
	}
	if text := ids["Lilu (mythology)"]; !strings.Contains(text, "spirit") {
		t.Errorf("Lilu passage = %q", text)
	}
}

func TestReadCorpusStops(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := ReadCorpus(context.Background(), "2wiki-hipporag", func(Passage) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 10 {
		t.Errorf("err %v after %d passages", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ReadCorpus(ctx, "2wiki-hipporag", func(Passage) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled read: %v", err)
	}
	if err := ReadCorpus(context.Background(), "wikipedia", func(Passage) error { return nil }); err == nil || !strings.Contains(err.Error(), "wiki18-sample") {
		t.Errorf("unknown corpus: %v", err)
	}
	if _, ok := LookupCorpus("FLASHRAG-WIKI18-SAMPLE"); !ok {
		t.Error("alias lookup failed")
	}
}

func TestSplitContents(t *testing.T) {
	for _, tt := range []struct{ in, title, text string }{
		{"\"Evan Morris\"\nEvan Morris was a lobbyist.", "Evan Morris", "Evan Morris was a lobbyist."},
		{"no title line", "", "no title line"},
		{"Bare title\ntext", "Bare title", "text"},
	} {
		title, text := splitContents(tt.in)
		if title != tt.title || text != tt.text {
			t.Errorf("splitContents(%q) = %q, %q", tt.in, title, text)
		}
	}
}
