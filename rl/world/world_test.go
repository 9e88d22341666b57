package world

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

// TestWorldsAreSolvableBySearch checks every question of many worlds: the
// demonstration's searches find passages that hold the next name and the
// answer, the answer appears nowhere in the question, and a world is a
// function of its seed.
func TestWorldsAreSolvableBySearch(t *testing.T) {
	for _, o := range []Options{{People: 4, TwoHop: 0.5}, {People: 2, TwoHop: 1}, {People: 6, TwoHop: 0}} {
		for seed := uint64(1); seed <= 200; seed++ {
			w := Generate(seed, o)
			if !reflect.DeepEqual(w, Generate(seed, o)) {
				t.Fatalf("world %d differs between two generations", seed)
			}
			if len(w.Passages) != o.People || len(w.Questions) != o.People {
				t.Fatalf("world %d: %d passages, %d questions", seed, len(w.Passages), len(w.Questions))
			}
			s := NewSearcher(w)
			for _, q := range w.Questions {
				if strings.Contains(q.Question, q.Answer) {
					t.Fatalf("%s: answer %q in the question", q.ID, q.Answer)
				}
				if len(q.Demo) != q.Hops+1 || !strings.HasPrefix(q.Demo[len(q.Demo)-1], "<answer> "+q.Answer+" ") {
					t.Fatalf("%s: demo %q", q.ID, q.Demo)
				}
				// Follow the demonstration's searches.
				var seen string
				for _, d := range q.Demo[:q.Hops] {
					query := strings.TrimSuffix(strings.TrimPrefix(d, "<search> "), " </search>")
					if !strings.Contains(q.Question+seen, query) {
						t.Fatalf("%s: searched %q before reading it", q.ID, query)
					}
					hits, err := s.Search(context.Background(), query, 1)
					if err != nil || len(hits) != 1 || hits[0].Title != query {
						t.Fatalf("%s: search %q gave %+v, %v", q.ID, query, hits, err)
					}
					seen += hits[0].Text
				}
				if !strings.Contains(seen, "lives in "+q.Answer+".") {
					t.Fatalf("%s: the searched passages %q lack the answer %q", q.ID, seen, q.Answer)
				}
			}
		}
	}
}

func TestSearchNoMatch(t *testing.T) {
	s := NewSearcher(Generate(1, Options{}))
	hits, err := s.Search(context.Background(), "xyzzy", 3)
	if err != nil || len(hits) != 0 {
		t.Fatalf("%v %v", hits, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Search(ctx, "a", 3); err == nil {
		t.Fatal("cancelled search succeeded")
	}
}
