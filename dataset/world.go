package dataset

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// A synthetic search world: invented people with a home city, an employer
// and a mentor, each described by one short passage. Because every world is
// drawn fresh from a seed, no model can know its facts in advance: the only
// way to answer its questions is to search its corpus. Cities and employers
// come from small fixed pools (the places are "known", the people are new),
// so 1-hop answers are easy to recognise once found and a guess made
// without searching is right only by chance.

// WorldOptions size a world. Zero fields take the defaults.
type WorldOptions struct {
	// Seed determines everything; the same seed gives the same world.
	Seed uint64
	// People is the number of entities (default 24, at most the number of
	// distinct names the syllable inventory makes).
	People int
	// TwoHopFraction of the questions ask about a person's mentor's city
	// ("Where does the mentor of X live?"); the rest are 1-hop.
	TwoHopFraction float64
	// Relations are the 1-hop question kinds to ask: "city", "employer",
	// "mentor" (default all three).
	Relations []string
}

// WorldPerson is one entity and its relations.
type WorldPerson struct {
	Name     string `json:"name"`
	City     string `json:"city"`
	Employer string `json:"employer"`
	// Mentor is the index of another person.
	Mentor int `json:"mentor"`
}

// WorldPassage is one corpus passage.
type WorldPassage struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Text  string `json:"text"`
}

// WorldQuestion is a question about the world with its answer and the
// searches that find it, in order (one per hop).
type WorldQuestion struct {
	ID       string `json:"id"`
	Question string `json:"question"`
	Answer   string `json:"answer"`
	Hops     int    `json:"hops"`
	// Relation is "city", "employer", "mentor" or "mentor.city".
	Relation string `json:"relation"`
	// Queries are the entity names to search for, one per hop; the answer
	// is in the passage titled by the last one.
	Queries []string `json:"queries"`
}

// World is one generated world.
type World struct {
	Seed      uint64          `json:"seed"`
	People    []WorldPerson   `json:"people"`
	Passages  []WorldPassage  `json:"passages"`
	Questions []WorldQuestion `json:"questions"`
}

// The syllables make two-syllable names; capitalised first syllables and
// the lower-case rest keep a name to a few tokens under a small BPE.
var (
	worldOnsets  = []string{"ka", "lo", "mi", "ru", "te", "vo", "sa", "ne", "bi", "do", "fa", "gu", "ha", "ji", "pe", "zo"}
	worldCodas   = []string{"ran", "mel", "tis", "vok", "dan", "lir", "mos", "pek", "sul", "ton", "var", "nix"}
	worldCities  = []string{"Paris", "Lima", "Oslo", "Cairo", "Delhi", "Tokyo", "Rome", "Quito", "Dakar", "Hanoi", "Sofia", "Perth"}
	worldEmploys = []string{"Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Cyberdyne", "Soylent", "Tyrell", "Wonka", "Aperture"}
)

// WorldCities returns the pool of city answers (for guesses and tests).
func WorldCities() []string { return append([]string(nil), worldCities...) }

// WorldEmployers returns the pool of employer answers.
func WorldEmployers() []string { return append([]string(nil), worldEmploys...) }

// maxWorldPeople is the number of distinct names.
var maxWorldPeople = len(worldOnsets) * len(worldCodas)

// NewWorld generates a world from o.Seed.
func NewWorld(o WorldOptions) (*World, error) {
	if o.People == 0 {
		o.People = 24
	}
	if o.People < 2 || o.People > maxWorldPeople {
		return nil, fmt.Errorf("world: %d people; want 2 to %d", o.People, maxWorldPeople)
	}
	if o.TwoHopFraction < 0 || o.TwoHopFraction > 1 {
		return nil, fmt.Errorf("world: two-hop fraction %g; want 0 to 1", o.TwoHopFraction)
	}
	if len(o.Relations) == 0 {
		o.Relations = []string{"city", "employer", "mentor"}
	}
	for _, rel := range o.Relations {
		if rel != "city" && rel != "employer" && rel != "mentor" {
			return nil, fmt.Errorf("world: relation %q; want city, employer or mentor", rel)
		}
	}
	r := rand.New(rand.NewPCG(o.Seed, 0x3077a1d))
	names := r.Perm(maxWorldPeople)[:o.People]
	w := &World{Seed: o.Seed}
	for _, n := range names {
		on, co := worldOnsets[n/len(worldCodas)], worldCodas[n%len(worldCodas)]
		w.People = append(w.People, WorldPerson{
			Name:     strings.ToUpper(on[:1]) + on[1:] + co,
			City:     worldCities[r.IntN(len(worldCities))],
			Employer: worldEmploys[r.IntN(len(worldEmploys))],
		})
	}
	// Mentors form a random derangement-like map: never oneself.
	for i := range w.People {
		m := r.IntN(len(w.People) - 1)
		if m >= i {
			m++
		}
		w.People[i].Mentor = m
	}
	for i, p := range w.People {
		w.Passages = append(w.Passages, WorldPassage{
			ID:    fmt.Sprintf("w%d-p%d", o.Seed, i),
			Title: p.Name,
			Text: fmt.Sprintf("%s lives in %s. %s works at %s. %s is mentored by %s.",
				p.Name, p.City, p.Name, p.Employer, p.Name, w.People[p.Mentor].Name),
		})
	}
	for i, p := range w.People {
		mentor := w.People[p.Mentor]
		q := WorldQuestion{ID: fmt.Sprintf("w%d-q%d", o.Seed, i), Hops: 1}
		if r.Float64() < o.TwoHopFraction {
			q.Hops, q.Relation = 2, "mentor.city"
			q.Question = fmt.Sprintf("Where does the mentor of %s live?", p.Name)
			q.Answer, q.Queries = mentor.City, []string{p.Name, mentor.Name}
		} else {
			q.Queries = []string{p.Name}
			switch o.Relations[r.IntN(len(o.Relations))] {
			case "city":
				q.Relation, q.Answer = "city", p.City
				q.Question = fmt.Sprintf("Where does %s live?", p.Name)
			case "employer":
				q.Relation, q.Answer = "employer", p.Employer
				q.Question = fmt.Sprintf("Where does %s work?", p.Name)
			default:
				q.Relation, q.Answer = "mentor", mentor.Name
				q.Question = fmt.Sprintf("Who mentors %s?", p.Name)
			}
		}
		w.Questions = append(w.Questions, q)
	}
	return w, nil
}

// Items returns the questions as dataset items (answer as the only gold).
func (w *World) Items() []Item {
	out := make([]Item, len(w.Questions))
	for i, q := range w.Questions {
		out[i] = Item{ID: q.ID, Question: q.Question, Answers: []string{q.Answer}, Index: i,
			Meta: map[string]any{"hops": q.Hops, "relation": q.Relation}}
	}
	return out
}

// AnswerPool returns the answers a question of this relation can have in
// the world: the fixed pools, or the world's people for mentor questions.
func (w *World) AnswerPool(relation string) []string {
	switch relation {
	case "employer":
		return WorldEmployers()
	case "mentor":
		out := make([]string, len(w.People))
		for i, p := range w.People {
			out[i] = p.Name
		}
		return out
	}
	return WorldCities()
}
