package reward

import (
	"encoding/json"
	"fmt"
	"strings"
)

// One registry names every string metric once. Reports, run comparisons,
// the training reward's config and Score all iterate it, so a metric name
// means the same thing everywhere, and adding a metric is one entry here
// plus a line in docs/metrics.md.

// MetricInfo describes one string metric.
type MetricInfo struct {
	// Name is the metric's name in configs, flags, results files and
	// report columns.
	Name Metric
	// Description says what it computes and which upstream script it
	// equals, in one line (docs/metrics.md has the details).
	Description string
	// Score is the metric of a prediction against the golds, maxed over
	// the golds, in [0, 1].
	Score func(prediction string, golds []string) float64
	// Report says the metric is a column of eval reports; the others exist
	// as training rewards only.
	Report bool
	// Aliases are older names still accepted in configs and flags.
	Aliases []string
}

// Metrics returns the registry, in report column order.
func Metrics() []MetricInfo {
	return []MetricInfo{
		{Name: MetricEM, Report: true, Score: EM,
			Description: "exact match after SQuAD normalisation (lower case, no punctuation or articles)"},
		{Name: MetricF1, Report: true, Score: evalSetF1,
			Description: "ASearcher evaluate.py F1: set overlap of tokens, punctuation to spaces, articles kept (the F1 of ASearcher's tables)"},
		{Name: MetricSQuADF1, Report: true, Score: F1, Aliases: []string{"token_f1"},
			Description: "SQuAD v1.1 token F1: multiset overlap after SQuAD normalisation"},
		{Name: MetricRewardF1, Report: true, Score: rewardSetF1,
			Description: "ASearcher's RL reward F1 (rewards.py): F1 with True/False mapping and the CJK character rule"},
		{Name: MetricCEM, Report: true, Score: CEM,
			Description: "cover exact match: every token of a gold occurs in the prediction"},
		{Name: MetricSubEM, Report: true, Score: SubEM,
			Description: "a normalised gold is a substring of the normalised prediction"},
		{Name: MetricRewardEM, Score: func(p string, g []string) float64 { return EM(BoolMapping(p), BoolMapAll(g)) },
			Description: "ASearcher's reward_type EM: exact match with True/False mapping"},
		{Name: MetricRewardSubEM, Score: func(p string, g []string) float64 { return SubEM(BoolMapping(p), BoolMapAll(g)) },
			Description: "substring exact match with True/False mapping"},
	}
}

func evalSetF1(p string, g []string) float64   { return MaxSetF1(p, g, EvalSetF1) }
func rewardSetF1(p string, g []string) float64 { return MaxSetF1(p, g, RewardSetF1) }

// LookupMetric finds a metric by name or alias.
func LookupMetric(name string) (MetricInfo, bool) {
	for _, m := range Metrics() {
		if string(m.Name) == name {
			return m, true
		}
		for _, a := range m.Aliases {
			if a == name {
				return m, true
			}
		}
	}
	return MetricInfo{}, false
}

// ReportMetrics are the names of the report columns, in order.
func ReportMetrics() []string {
	var out []string
	for _, m := range Metrics() {
		if m.Report {
			out = append(out, string(m.Name))
		}
	}
	return out
}

// MetricNames lists every metric name, for error messages and help.
func MetricNames() []string {
	var out []string
	for _, m := range Metrics() {
		out = append(out, string(m.Name))
	}
	return out
}

// Scores are the report metrics of one prediction, by registry name.
type Scores map[string]float64

// Score computes every report metric of one prediction against a
// question's golds. The six built-in metrics share one normalisation of
// each string (fastScores); any other report metric of the registry is
// computed by its own function, so a new metric needs no change here.
func Score(prediction string, golds []string) Scores {
	s := make(Scores, 8)
	fastScores(s, prediction, golds)
	for _, m := range Metrics() {
		if _, done := s[string(m.Name)]; m.Report && !done {
			s[string(m.Name)] = m.Score(prediction, golds)
		}
	}
	return s
}

// fastScores fills em, subem, squad_f1, f1, reward_f1 and cem, normalising
// each string once; the fuzz and conformance tests hold it equal to the
// registry's functions.
func fastScores(s Scores, prediction string, golds []string) {
	var em, subem, squad, set, rew, cem float64
	pa := NormalizeAnswer(prediction)
	pt := NormalizeText(prediction)
	paBool, ptBool := pa, pt
	if b := BoolMapping(prediction); b != prediction {
		paBool, ptBool = NormalizeAnswer(b), NormalizeText(b)
	}
	predCEM := splitSpace(paBool)
	for _, g := range golds {
		ga := NormalizeAnswer(g)
		gt := NormalizeText(g)
		gaBool, gtBool := ga, gt
		if b := BoolMapping(g); b != g {
			gaBool, gtBool = NormalizeAnswer(b), NormalizeText(b)
		}
		if ga == pa {
			em = 1
		}
		if strings.Contains(pa, ga) {
			subem = 1
		}
		squad = max(squad, tokenF1Normalized(pa, ga, SQuADv1).F1)
		set = max(set, setF1Normalized(pt, gt, false))
		rew = max(rew, setF1Normalized(ptBool, gtBool, true))
		if covers(predCEM, gaBool) {
			cem = 1
		}
	}
	s[string(MetricEM)], s[string(MetricSubEM)], s[string(MetricSQuADF1)] = em, subem, squad
	s[string(MetricF1)], s[string(MetricRewardF1)], s[string(MetricCEM)] = set, rew, cem
}

// UnmarshalJSON reads scores written by any version. Files written before
// the registry (they have "set_f1") used "f1" for SQuAD token F1 and
// "set_f1" for ASearcher's F1; those are renamed to squad_f1 and f1 so an
// old record is never read under the new meaning of "f1".
func (s *Scores) UnmarshalJSON(data []byte) error {
	var m map[string]float64
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("scores: %w", err)
	}
	if set, legacy := m["set_f1"]; legacy {
		if squad, ok := m["f1"]; ok {
			m[string(MetricSQuADF1)] = squad
		}
		m[string(MetricF1)] = set
		delete(m, "set_f1")
	}
	*s = m
	return nil
}

// metricList is "a, b or c" of names.
func metricList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
