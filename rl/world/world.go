// Package world generates synthetic search worlds for the embedded RL demo:
// fresh random people and places rendered as passages of a small corpus,
// with 1-hop and 2-hop questions whose answers exist only in that corpus.
// Every world is new, so a model can answer only by searching and copying,
// never by remembering.
package world

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/asearcher/asearcher/tools"
)

// Passage is one document of a world's corpus: the page of one person.
type Passage struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Text  string `json:"text"`
}

// Question is one question of a world with its answer and a demonstration:
// the replies a perfect agent gives, in the tiny agent's format.
type Question struct {
	ID       string   `json:"id"`
	Question string   `json:"question"`
	Answer   string   `json:"answer"`
	Hops     int      `json:"hops"`
	Demo     []string `json:"demo"`
}

// World is one corpus and its questions.
type World struct {
	Seed      uint64     `json:"seed"`
	Passages  []Passage  `json:"passages"`
	Questions []Question `json:"questions"`
}

// Options size a world.
type Options struct {
	// People per world (default 4).
	People int
	// TwoHop is the fraction of 2-hop questions (default 0.5).
	TwoHop float64
}

var (
	onsets = []string{"b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z"}
	vowels = []string{"a", "e", "i", "o", "u"}
)

func name(r *rand.Rand, syllables int) string {
	var b strings.Builder
	for range syllables {
		b.WriteString(onsets[r.IntN(len(onsets))])
		b.WriteString(vowels[r.IntN(len(vowels))])
	}
	s := b.String()
	return strings.ToUpper(s[:1]) + s[1:]
}

// Pool sizes of person and place names. Names come from fixed pools so a
// tokenizer learns each as one token; who lives where and who is whose
// friend is drawn fresh for every world, so the facts can only be found by
// searching.
const (
	PersonPool = 160
	PlacePool  = 80
)

// pools are the name pools, the same for every world.
func pools() (people, places []string) {
	r := rand.New(rand.NewPCG(0x6e616d6573, 1))
	used := map[string]bool{}
	fresh := func() string {
		for {
			n := name(r, 2)
			if !used[n] {
				used[n] = true
				return n
			}
		}
	}
	for range PersonPool {
		people = append(people, fresh())
	}
	for range PlacePool {
		places = append(places, fresh())
	}
	return people, places
}

// Generate builds the world of seed.
func Generate(seed uint64, o Options) *World {
	if o.People <= 0 {
		o.People = 4
	}
	if o.TwoHop < 0 || o.TwoHop > 1 {
		o.TwoHop = 0.5
	}
	o.People = min(o.People, PlacePool)
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	personPool, placePool := pools()
	people := make([]string, o.People)
	cities := make([]string, o.People)
	pp, cp := r.Perm(len(personPool)), r.Perm(len(placePool))
	for i := range people {
		people[i], cities[i] = personPool[pp[i]], placePool[cp[i]]
	}
	// friend[i] is another person: a derangement by rotation after a shuffle.
	perm := r.Perm(o.People)
	friend := make([]int, o.People)
	for k, i := range perm {
		friend[i] = perm[(k+1)%len(perm)]
	}
	w := &World{Seed: seed}
	for i, p := range people {
		w.Passages = append(w.Passages, Passage{ID: fmt.Sprintf("w%d-p%d", seed, i), Title: p,
			Text: fmt.Sprintf("%s lives in %s. %s is a friend of %s.", p, cities[i], p, people[friend[i]])})
	}
	for i, p := range people {
		if r.Float64() < o.TwoHop {
			f := friend[i]
			w.Questions = append(w.Questions, Question{ID: fmt.Sprintf("w%d-q%d", seed, i), Hops: 2,
				Question: fmt.Sprintf("Where does the friend of %s live?", p), Answer: cities[f],
				Demo: []string{
					"<search> " + p + " </search>",
					"<search> " + people[f] + " </search>",
					"<answer> " + cities[f] + " </answer>",
				}})
			continue
		}
		w.Questions = append(w.Questions, Question{ID: fmt.Sprintf("w%d-q%d", seed, i), Hops: 1,
			Question: fmt.Sprintf("Where does %s live?", p), Answer: cities[i],
			Demo: []string{"<search> " + p + " </search>", "<answer> " + cities[i] + " </answer>"}})
	}
	return w
}

// Texts are the world's passages and demonstrations, for training a
// tokenizer.
func (w *World) Texts() []string {
	var out []string
	for _, p := range w.Passages {
		out = append(out, p.Text)
	}
	for _, q := range w.Questions {
		out = append(out, q.Question)
		out = append(out, q.Demo...)
	}
	return out
}

// Searcher is the world's search engine: passages ranked by how many query
// words they contain, a title match counting double. It implements
// tools.Searcher.
type Searcher struct {
	w *World
}

// NewSearcher indexes a world.
func NewSearcher(w *World) *Searcher { return &Searcher{w: w} }

func words(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	})
}

// Search implements tools.Searcher.
func (s *Searcher) Search(ctx context.Context, query string, topk int) ([]tools.SearchResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	q := words(query)
	type scored struct {
		i     int
		score float64
	}
	var hits []scored
	for i, p := range s.w.Passages {
		title := strings.ToLower(p.Title)
		body := map[string]bool{}
		for _, t := range words(p.Text) {
			body[t] = true
		}
		var sc float64
		for _, t := range q {
			if t == title {
				sc += 2
			}
			if body[t] {
				sc++
			}
		}
		if sc > 0 {
			hits = append(hits, scored{i, sc})
		}
	}
	sort.SliceStable(hits, func(a, b int) bool { return hits[a].score > hits[b].score })
	if topk > 0 && len(hits) > topk {
		hits = hits[:topk]
	}
	out := make([]tools.SearchResult, len(hits))
	for k, h := range hits {
		p := s.w.Passages[h.i]
		out[k] = tools.SearchResult{Title: p.Title, ID: p.ID, Text: p.Text, Score: h.score}
	}
	return out, nil
}
