package dataset

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestWorldDeterministicAndFresh: a seed gives the same world every time;
// another seed gives other facts.
func TestWorldDeterministicAndFresh(t *testing.T) {
	a, err := NewWorld(WorldOptions{Seed: 7, TwoHopFraction: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewWorld(WorldOptions{Seed: 7, TwoHopFraction: 0.5})
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different worlds")
	}
	c, _ := NewWorld(WorldOptions{Seed: 8, TwoHopFraction: 0.5})
	if reflect.DeepEqual(a.Passages, c.Passages) {
		t.Fatal("different seeds, same passages")
	}
}

// TestWorldQuestionsAnswerable: every answer is stated in the passage of
// the last entity searched for, every hop's query names a person whose
// passage names the next hop, and names are unique within a world.
func TestWorldQuestionsAnswerable(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts WorldOptions
		hops map[int]bool
	}{
		{"one-hop", WorldOptions{Seed: 1, People: 30}, map[int]bool{1: true}},
		{"two-hop", WorldOptions{Seed: 2, People: 30, TwoHopFraction: 1}, map[int]bool{2: true}},
		{"mixed", WorldOptions{Seed: 3, People: 60, TwoHopFraction: 0.5}, map[int]bool{1: true, 2: true}},
		{"cities only", WorldOptions{Seed: 4, Relations: []string{"city"}}, map[int]bool{1: true}},
		{"up to three hops", WorldOptions{Seed: 5, People: 60, TwoHopFraction: 0.3, ThreeHopFraction: 0.3, Names: NamesHeldOut},
			map[int]bool{1: true, 2: true, 3: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := NewWorld(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			byTitle := map[string]WorldPassage{}
			for _, p := range w.Passages {
				if _, dup := byTitle[p.Title]; dup {
					t.Fatalf("name %s used twice", p.Title)
				}
				byTitle[p.Title] = p
			}
			seen := map[int]bool{}
			for _, q := range w.Questions {
				seen[q.Hops] = true
				if len(q.Queries) != q.Hops {
					t.Fatalf("%s: %d queries for %d hops", q.ID, len(q.Queries), q.Hops)
				}
				if !strings.Contains(q.Question, q.Queries[0]) {
					t.Fatalf("%s: question %q does not name %s", q.ID, q.Question, q.Queries[0])
				}
				for i, name := range q.Queries {
					p, ok := byTitle[name]
					if !ok {
						t.Fatalf("%s: no passage for %s", q.ID, name)
					}
					if i+1 < len(q.Queries) && !strings.Contains(p.Text, "mentored by "+q.Queries[i+1]) {
						t.Fatalf("%s: %q does not lead to %s", q.ID, p.Text, q.Queries[i+1])
					}
				}
				last := byTitle[q.Queries[len(q.Queries)-1]]
				if !strings.Contains(last.Text, " "+q.Answer+".") {
					t.Fatalf("%s: answer %q not in %q", q.ID, q.Answer, last.Text)
				}
				if len(tc.opts.Relations) > 0 && q.Hops == 1 && !slices.Contains(tc.opts.Relations, q.Relation) {
					t.Fatalf("%s: relation %s not asked for", q.ID, q.Relation)
				}
				if !slices.Contains(w.AnswerPool(q.Relation), q.Answer) {
					t.Fatalf("%s: answer %q not in its pool", q.ID, q.Answer)
				}
			}
			if !reflect.DeepEqual(seen, tc.hops) {
				t.Fatalf("hops %v, want %v", seen, tc.hops)
			}
			items := w.Items()
			if len(items) != len(w.Questions) || items[0].Answers[0] != w.Questions[0].Answer {
				t.Fatalf("items %+v", items[:1])
			}
		})
	}
}

func TestWorldBadOptions(t *testing.T) {
	for _, o := range []WorldOptions{
		{People: 1},
		{People: maxWorldPeople + 1},
		{TwoHopFraction: 1.5},
		{TwoHopFraction: 0.6, ThreeHopFraction: 0.6},
		{Names: NamesTrain, People: 801},
		{Relations: []string{"age"}},
	} {
		if _, err := NewWorld(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// TestWorldNamePartitions: the train and held-out halves of the two-word
// names are disjoint, equal in size, share every given and family name,
// and a world drawn from one half names only people of that half.
func TestWorldNamePartitions(t *testing.T) {
	train, err := WorldNameSet(NamesTrain)
	if err != nil {
		t.Fatal(err)
	}
	held, err := WorldNameSet(NamesHeldOut)
	if err != nil {
		t.Fatal(err)
	}
	if len(train) != len(held) || len(train) != len(worldGiven)*len(worldFamily)/2 {
		t.Fatalf("halves of %d and %d names", len(train), len(held))
	}
	parts := map[string][2]bool{}
	for name := range train {
		if held[name] {
			t.Fatalf("%s in both halves", name)
		}
		for i, p := range strings.Fields(name) {
			v := parts[p]
			v[0] = true
			parts[p+string(rune('0'+i))] = v
		}
	}
	for name := range held {
		for i, p := range strings.Fields(name) {
			v := parts[p+string(rune('0'+i))]
			if !v[0] {
				t.Fatalf("held-out name part %s never used in training names", p)
			}
		}
	}
	for part, set := range map[string]map[string]bool{NamesTrain: train, NamesHeldOut: held} {
		w, err := NewWorld(WorldOptions{Seed: 9, People: 40, TwoHopFraction: 0.3, ThreeHopFraction: 0.3, Names: part})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range w.People {
			if !set[p.Name] {
				t.Fatalf("%s world has %s", part, p.Name)
			}
		}
	}
	if _, err := NewWorld(WorldOptions{Names: "everyone"}); err == nil {
		t.Fatal("unknown name partition accepted")
	}
}
