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
	// ("Where does the mentor of X live?") and ThreeHopFraction about the
	// mentor's mentor's city; the rest are 1-hop.
	TwoHopFraction   float64
	ThreeHopFraction float64
	// Names picks the names the world draws from: NamesAll (default),
	// one-word names of two syllables ("Favok"), or NamesTrain or
	// NamesHeldOut, the two disjoint halves of the two-word names ("Ana
	// Belko"): held-out worlds drawn from one half share no person with
	// training worlds drawn from the other, while every given and family
	// name occurs in both halves.
	Names string
	// Relations are the 1-hop question kinds to ask: "city", "employer",
	// "mentor" (default all three).
	Relations []string
}

// The name partitions of WorldOptions.Names.
const (
	NamesAll     = ""
	NamesTrain   = "train"
	NamesHeldOut = "held-out"
)

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
	// Relation is "city", "employer", "mentor", "mentor.city" or
	// "mentor.mentor.city".
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

// One-word names are two syllables, a capitalised onset and a coda.
var (
	worldOnsets = []string{"ka", "lo", "mi", "ru", "te", "vo", "sa", "ne", "bi", "do", "fa", "gu", "ha", "ji", "pe", "zo"}
	worldCodas  = []string{"ran", "mel", "tis", "vok", "dan", "lir", "mos", "pek", "sul", "ton", "var", "nix"}
)

// Two-word names are a given name and a family name, so that a byte-level
// BPE tokenizer learns each part as its own token and a name it has never
// seen whole (a held-out world's) is made of tokens it knows. With 40 × 40
// names a model cannot get by memorising which family name follows which
// given name: it has to copy both.
var (
	worldGiven = []string{"Ana", "Bo", "Cleo", "Dev", "Eli", "Finn", "Gia", "Hugo", "Ida", "Jon", "Kai", "Lea", "Milo", "Nia",
		"Otto", "Pia", "Quin", "Rosa", "Sami", "Tara", "Uma", "Vera", "Wes", "Xena", "Yuri", "Zoe", "Abel", "Beth", "Carl",
		"Dora", "Emil", "Faye", "Gus", "Hana", "Ivan", "Jade", "Kurt", "Lena", "Marc", "Nora"}
	worldFamily = []string{"Ardan", "Belko", "Corvi", "Dunmar", "Eskel", "Farrow", "Galen", "Hollis", "Ivers", "Jaro",
		"Kestrel", "Lund", "Mercer", "Norberg", "Ostrom", "Pardo", "Quist", "Rowe", "Sandor", "Tamsin", "Ulbrich", "Varga",
		"Weller", "Yates", "Zeller", "Abbot", "Brandt", "Calder", "Dorsey", "Ekberg", "Fenn", "Gorski", "Hagen", "Ilves",
		"Janek", "Kober", "Lorne", "Moller", "Nash", "Orlov"}
	worldCities  = []string{"Paris", "Lima", "Oslo", "Cairo", "Delhi", "Tokyo", "Rome", "Quito", "Dakar", "Hanoi", "Sofia", "Perth"}
	worldEmploys = []string{"Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Cyberdyne", "Soylent", "Tyrell", "Wonka", "Aperture"}
)

// WorldCities returns the pool of city answers (for guesses and tests).
func WorldCities() []string { return append([]string(nil), worldCities...) }

// WorldEmployers returns the pool of employer answers.
func WorldEmployers() []string { return append([]string(nil), worldEmploys...) }

// maxWorldPeople is the number of distinct one-word names.
var maxWorldPeople = len(worldOnsets) * len(worldCodas)

// worldNames lists the names of a partition. The train and held-out
// halves of the two-word names alternate like a checkerboard over (given,
// family), so each given and each family name is used by both.
func worldNames(part string) ([]string, error) {
	var out []string
	switch part {
	case NamesAll:
		for _, on := range worldOnsets {
			for _, co := range worldCodas {
				out = append(out, strings.ToUpper(on[:1])+on[1:]+co)
			}
		}
	case NamesTrain, NamesHeldOut:
		for g, given := range worldGiven {
			for f, family := range worldFamily {
				if ((g+f)%2 == 1) == (part == NamesHeldOut) {
					out = append(out, given+" "+family)
				}
			}
		}
	default:
		return nil, fmt.Errorf("world: names %q; want %q, %q or %q", part, NamesAll, NamesTrain, NamesHeldOut)
	}
	return out, nil
}

// WorldNameSet returns every name of a partition (for leak tests).
func WorldNameSet(part string) (map[string]bool, error) {
	ns, err := worldNames(part)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(ns))
	for _, n := range ns {
		out[n] = true
	}
	return out, nil
}

// NewWorld generates a world from o.Seed.
func NewWorld(o WorldOptions) (*World, error) {
	if o.People == 0 {
		o.People = 24
	}
	pool, err := worldNames(o.Names)
	if err != nil {
		return nil, err
	}
	if o.People < 2 || o.People > len(pool) {
		return nil, fmt.Errorf("world: %d people; want 2 to %d", o.People, len(pool))
	}
	if o.TwoHopFraction < 0 || o.ThreeHopFraction < 0 || o.TwoHopFraction+o.ThreeHopFraction > 1 {
		return nil, fmt.Errorf("world: two-hop fraction %g and three-hop fraction %g; want each ≥ 0 and their sum ≤ 1",
			o.TwoHopFraction, o.ThreeHopFraction)
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
	perm := r.Perm(len(pool))[:o.People]
	w := &World{Seed: o.Seed}
	for _, i := range perm {
		w.People = append(w.People, WorldPerson{
			Name:     pool[i],
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
		// One draw picks the depth, so a world with only two-hop
		// questions draws the same sequence it always did.
		switch u := r.Float64(); {
		case u < o.TwoHopFraction:
			q.Hops, q.Relation = 2, "mentor.city"
			q.Question = fmt.Sprintf("Where does the mentor of %s live?", p.Name)
			q.Answer, q.Queries = mentor.City, []string{p.Name, mentor.Name}
		case u < o.TwoHopFraction+o.ThreeHopFraction:
			grand := w.People[mentor.Mentor]
			q.Hops, q.Relation = 3, "mentor.mentor.city"
			q.Question = fmt.Sprintf("Where does the mentor of the mentor of %s live?", p.Name)
			q.Answer, q.Queries = grand.City, []string{p.Name, mentor.Name, grand.Name}
		default:
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
				q.Question = fmt.Sprintf("Who is the mentor of %s?", p.Name)
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
