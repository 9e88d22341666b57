package eval

import (
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/internal/grouporder"
	"github.com/asearcher/asearcher/reward"
)

// Delta is run B minus run A on one dataset's questions present in both
// (or on those of one group, with --group-by), with a paired bootstrap 95%
// interval (question pairs resampled together).
type Delta struct {
	Dataset string `json:"dataset"`
	// Group is the question group's value of the compare's group_by field.
	Group     string     `json:"group,omitempty"`
	Metric    string     `json:"metric"`
	Questions int        `json:"questions"`
	A         float64    `json:"a"`
	B         float64    `json:"b"`
	Delta     float64    `json:"delta"`
	CI        [2]float64 `json:"ci95"`
	// Turns, Searches and Accesses per trajectory (each question's mean
	// over its samples, as the trajectories recorded them), on the same
	// questions.
	Turns    Change `json:"turns"`
	Searches Change `json:"searches"`
	Accesses Change `json:"accesses"`
}

// Change is a per-question mean in run A and run B, B − A and its paired
// bootstrap 95% interval.
type Change struct {
	A     float64    `json:"a"`
	B     float64    `json:"b"`
	Delta float64    `json:"delta"`
	CI    [2]float64 `json:"ci95"`
}

// Compare reads two run directories and returns per-dataset deltas of the
// Avg@k of metric (empty: judge when both runs have it, else f1).
func Compare(dirA, dirB, metric string, bootstrap int) ([]Delta, error) {
	return CompareBy(dirA, dirB, metric, "", bootstrap)
}

// pairedQuestion is one question present in both runs.
type pairedQuestion struct{ a, b *question }

// CompareBy is Compare split by a field of the records' meta (--group-by):
// one delta per dataset and value (the value run A's records give), and,
// with several datasets, an "overall" delta per value over the datasets
// that have it. A field that neither run's records have is an error.
func CompareBy(dirA, dirB, metric, groupBy string, bootstrap int) ([]Delta, error) {
	a, err := ReadResults(filepath.Join(dirA, ResultsFile))
	if err != nil {
		return nil, fmt.Errorf("run A: %w", err)
	}
	b, err := ReadResults(filepath.Join(dirB, ResultsFile))
	if err != nil {
		return nil, fmt.Errorf("run B: %w", err)
	}
	if metric == "" {
		metric = MetricF1
		if hasJudge(a) && hasJudge(b) {
			metric = MetricJudge
		}
	}
	if m, ok := reward.LookupMetric(metric); ok && m.Report {
		metric = string(m.Name) // an old name such as token_f1
	}
	if !slices.Contains(ReportMetrics(), metric) {
		return nil, fmt.Errorf("--metric %q: want one of %s", metric, strings.Join(ReportMetrics(), ", "))
	}
	if bootstrap <= 0 {
		bootstrap = 1000
	}
	if groupBy != "" {
		if err := checkRecordField(a, groupBy); err != nil {
			return nil, fmt.Errorf("run A (%s): %w", dirA, err)
		}
	}
	ga, gb := groupQuestions(a), groupQuestions(b)
	order := datasetOrder(a)
	// Pairs per dataset, split by group ("" without --group-by).
	pairs := map[string]map[string][]pairedQuestion{}
	var values []string
	for _, ds := range order {
		qb := map[string]*question{}
		for _, q := range gb[ds] {
			qb[q.id] = q
		}
		for _, q := range ga[ds] {
			p := qb[q.id]
			if p == nil {
				continue
			}
			va, _ := perQuestion([]*question{q}, metric)
			vb, _ := perQuestion([]*question{p}, metric)
			if len(va) != 1 || len(vb) != 1 {
				continue
			}
			g := ""
			if groupBy != "" {
				g = questionGroup(q, groupBy)
			}
			if pairs[ds] == nil {
				pairs[ds] = map[string][]pairedQuestion{}
			}
			if !slices.Contains(values, g) {
				values = append(values, g)
			}
			pairs[ds][g] = append(pairs[ds][g], pairedQuestion{q, p})
		}
	}
	grouporder.Sort(values)
	var out []Delta
	for gi, g := range values {
		var strata [][]pairedQuestion
		for di, ds := range order {
			ps := pairs[ds][g]
			if len(ps) == 0 {
				continue
			}
			strata = append(strata, ps)
			// Seeds as before groups existed for the ungrouped comparison.
			out = append(out, pairedDelta(ds, g, metric, [][]pairedQuestion{ps}, bootstrap, uint64(di)+1+uint64(gi)*7919))
		}
		if len(strata) > 1 {
			out = append(out, pairedDelta("overall", g, metric, strata, bootstrap, 424242+uint64(gi)*7919))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s and %s share no questions", dirA, dirB)
	}
	return out, nil
}

// pairedDelta compares the paired questions of one or more datasets
// (strata): the mean over strata of the per-question means, as the report's
// overall, with a stratified paired bootstrap.
func pairedDelta(ds, group, metric string, strata [][]pairedQuestion, bootstrap int, seed uint64) Delta {
	d := Delta{Dataset: ds, Group: group, Metric: metric}
	measure := func(f func(q *question) float64) Change {
		var xa, xb [][]float64
		var c Change
		for _, ps := range strata {
			var sa, sb []float64
			for _, p := range ps {
				sa = append(sa, f(p.a))
				sb = append(sb, f(p.b))
			}
			xa, xb = append(xa, sa), append(xb, sb)
			c.A += mean(sa) / float64(len(strata))
			c.B += mean(sb) / float64(len(strata))
		}
		c.Delta = c.B - c.A
		c.CI = PairedBootstrap(xa, xb, bootstrap, seed)
		return c
	}
	for _, ps := range strata {
		d.Questions += len(ps)
	}
	m := measure(func(q *question) float64 {
		v, _ := perQuestion([]*question{q}, metric)
		return v[0]
	})
	d.A, d.B, d.Delta, d.CI = m.A, m.B, m.Delta, m.CI
	// Behaviour intervals get seeds of their own.
	seed += 0x5eed
	d.Turns = measure(func(q *question) float64 { return statMean(q, func(s agent.Stats) int { return s.Turns }) })
	seed++
	d.Searches = measure(func(q *question) float64 { return statMean(q, func(s agent.Stats) int { return s.Searches }) })
	seed++
	d.Accesses = measure(func(q *question) float64 { return statMean(q, func(s agent.Stats) int { return s.Accesses }) })
	return d
}

// statMean is a question's mean over its samples of one recorded count.
func statMean(q *question, f func(agent.Stats) int) float64 {
	s := 0
	for _, r := range q.recs {
		s += f(r.Stats)
	}
	return float64(s) / float64(len(q.recs))
}

func hasJudge(recs []Record) bool {
	for i := range recs {
		if recs[i].Judge != nil {
			return true
		}
	}
	return false
}

// PairedBootstrap is the one paired percentile bootstrap of the project
// (eval compare, the train demo's lift): it resamples question indices
// within each stratum, the same indices for both runs, n times, and
// returns the 95% interval of the mean over strata of mean(b) − mean(a).
// Every stratum must be non-empty with a[s] and b[s] of one length.
func PairedBootstrap(a, b [][]float64, n int, seed uint64) [2]float64 {
	rng := rand.New(rand.NewPCG(seed, 0x51ab1e))
	stats := make([]float64, 0, n)
	for range n {
		total := 0.0
		for s := range a {
			sum := 0.0
			for range a[s] {
				i := rng.IntN(len(a[s]))
				sum += b[s][i] - a[s][i]
			}
			total += sum / float64(len(a[s]))
		}
		stats = append(stats, total/float64(len(a)))
	}
	slices.Sort(stats)
	return [2]float64{percentile(stats, 0.025), percentile(stats, 0.975)}
}

// WriteCompare prints the deltas as two tables: the metric, then
// searches and turns per trajectory. groupBy names the group column ("":
// none).
func WriteCompare(w io.Writer, dirA, dirB, groupBy string, ds []Delta) {
	fmt.Fprintf(w, "A = %s\nB = %s\n\n", dirA, dirB)
	name := func(d Delta) string {
		if groupBy == "" {
			return d.Dataset
		}
		return d.Dataset + " " + groupBy + "=" + d.Group
	}
	fmt.Fprintf(w, "%-28s %9s %8s %8s %8s  %-18s %s\n", "dataset", "questions", "A", "B", "B−A", "95% CI (paired)", "")
	for _, d := range ds {
		fmt.Fprintf(w, "%-28s %9d %8.1f %8.1f %+8.1f  [%+.1f, %+.1f]  %s\n", name(d), d.Questions,
			100*d.A, 100*d.B, 100*d.Delta, 100*d.CI[0], 100*d.CI[1], betterMark(d.CI))
	}
	if len(ds) > 0 {
		fmt.Fprintf(w, "\nmetric: %s Avg@k, in points; questions present in both runs only.\n", ds[0].Metric)
	}
	fmt.Fprintf(w, "\nper trajectory, A → B (B−A [95%% CI, paired])\n")
	fmt.Fprintf(w, "%-28s %-34s %-34s %s\n", "dataset", "searches", "turns", "accesses")
	ch := func(c Change) string {
		return fmt.Sprintf("%.2f → %.2f (%+.2f [%+.2f, %+.2f])", c.A, c.B, c.Delta, c.CI[0], c.CI[1])
	}
	for _, d := range ds {
		fmt.Fprintf(w, "%-28s %-34s %-34s %s\n", name(d), ch(d.Searches), ch(d.Turns), ch(d.Accesses))
	}
}

func betterMark(ci [2]float64) string {
	switch {
	case ci[0] > 0:
		return "B better"
	case ci[1] < 0:
		return "A better"
	}
	return ""
}
