package synth

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Rejection reasons: why a candidate version was discarded.
const (
	ReasonUnparseable      = "unparseable"        // no schema-valid reply after the retries
	ReasonAnswerChanged    = "answer_changed"     // the edit changed the answer
	ReasonCovered          = "covered"            // the injected fact was already known
	ReasonUnknownEntity    = "unknown_entity"     // inject named an entity that was not offered
	ReasonNotOffered       = "action_not_offered" // exit before a hard version, inject without links
	ReasonAnswerInQuestion = "answer_in_question" // the question gives the answer away
	ReasonMalformed        = "malformed"          // empty, too long, or not one well-formed question
	ReasonConcatenation    = "concatenation"      // several questions joined together
	ReasonNotAnswerable    = "not_answerable"     // the statements do not determine the answer
	ReasonWrongAnswer      = "wrong_answer"       // the statements do not support the answer
	ReasonNotUnique        = "not_unique"         // a solver's other answer is also correct
	ReasonTooEasy          = "too_easy"           // valid, but the solver's rate is above the limit (not written; edits continue from it)
)

// Actions the model chooses between.
const (
	ActionInject = "inject"
	ActionFuzz   = "fuzz"
	ActionExit   = "exit"
)

// Stats summarise a run (all finished seeds, earlier runs included).
type Stats struct {
	Seeds             int            `json:"seeds"`
	SeedsWithAccepted int            `json:"seeds_with_accepted"`
	Accepted          int            `json:"accepted"`
	Rejected          map[string]int `json:"rejected"`
	Tried             map[string]int `json:"tried"`
	Passed            map[string]int `json:"passed"`
	Ends              map[string]int `json:"ends"`
	Calls             int            `json:"calls"`
	ParseFailures     int            `json:"parse_failures"`
	// Per accepted question: the mean and the histogram (count → questions)
	// of the injections and fuzzes behind it.
	MeanInjections float64     `json:"mean_injections"`
	MeanFuzzes     float64     `json:"mean_fuzzes"`
	Injections     map[int]int `json:"injections_hist"`
	Fuzzes         map[int]int `json:"fuzzes_hist"`
	// Difficulty counts validated versions by solver result "k/n".
	Difficulty map[string]int `json:"difficulty_hist"`
}

// ComputeStats adds up the journal.
func ComputeStats(results []SeedResult) Stats {
	s := Stats{
		Rejected: map[string]int{}, Tried: map[string]int{}, Passed: map[string]int{}, Ends: map[string]int{},
		Injections: map[int]int{}, Fuzzes: map[int]int{}, Difficulty: map[string]int{},
	}
	var inj, fuzz int
	for _, r := range results {
		s.Seeds++
		if r.Accepted > 0 {
			s.SeedsWithAccepted++
		}
		s.Accepted += r.Accepted
		addCounts(s.Rejected, r.Rejected)
		addCounts(s.Tried, r.Tried)
		addCounts(s.Passed, r.Passed)
		s.Ends[r.End]++
		s.Calls += r.Calls
		s.ParseFailures += len(r.ParseFailures)
		for _, k := range r.Kept {
			s.Injections[k.Injections]++
			s.Fuzzes[k.Fuzzes]++
			inj += k.Injections
			fuzz += k.Fuzzes
		}
		for _, d := range r.Solved {
			s.Difficulty[d]++
		}
	}
	if n := len(s.Injections); n > 0 {
		total := 0
		for _, c := range s.Injections {
			total += c
		}
		s.MeanInjections = float64(inj) / float64(total)
		s.MeanFuzzes = float64(fuzz) / float64(total)
	}
	return s
}

func addCounts(dst, src map[string]int) {
	for k, v := range src {
		dst[k] += v
	}
}

// WriteText prints the report a person reads at the end of a run.
func (s Stats) WriteText(w io.Writer) {
	fmt.Fprintf(w, "seeds %d (%d with accepted questions), accepted %d, model calls %d, unparseable replies %d\n",
		s.Seeds, s.SeedsWithAccepted, s.Accepted, s.Calls, s.ParseFailures)
	fmt.Fprintf(w, "edits tried %s; passed %s\n", counts(s.Tried), counts(s.Passed))
	fmt.Fprintf(w, "rejected: %s\n", counts(s.Rejected))
	fmt.Fprintf(w, "seed ends: %s\n", counts(s.Ends))
	fmt.Fprintf(w, "per accepted question: %.2f injections, %.2f fuzzes; injections %s; fuzzes %s\n",
		s.MeanInjections, s.MeanFuzzes, intCounts(s.Injections), intCounts(s.Fuzzes))
	keys := slices.SortedFunc(maps.Keys(s.Difficulty), compareFraction)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s:%d", k, s.Difficulty[k])
	}
	fmt.Fprintf(w, "difficulty (solver correct/attempts of validated versions):%s\n", b.String())
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func intCounts(m map[int]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d:%d", k, m[k])
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// compareFraction orders "k/n" keys by value.
func compareFraction(a, b string) int {
	fa, fb := fraction(a), fraction(b)
	switch {
	case fa < fb:
		return -1
	case fa > fb:
		return 1
	}
	return strings.Compare(a, b)
}

func fraction(s string) float64 {
	k, n, ok := strings.Cut(s, "/")
	if !ok {
		return 0
	}
	x, err1 := strconv.Atoi(k)
	y, err2 := strconv.Atoi(n)
	if err1 != nil || err2 != nil || y == 0 {
		return 0
	}
	return float64(x) / float64(y)
}
