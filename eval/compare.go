package eval

import (
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"

	"github.com/asearcher/asearcher/reward"
)

// Delta is run B minus run A on one dataset's questions present in both,
// with a paired bootstrap 95% interval (question pairs resampled together).
type Delta struct {
	Dataset   string     `json:"dataset"`
	Metric    string     `json:"metric"`
	Questions int        `json:"questions"`
	A         float64    `json:"a"`
	B         float64    `json:"b"`
	Delta     float64    `json:"delta"`
	CI        [2]float64 `json:"ci95"`
}

// Compare reads two run directories and returns per-dataset deltas of the
// Avg@k of metric (empty: judge when both runs have it, else f1).
func Compare(dirA, dirB, metric string, bootstrap int) ([]Delta, error) {
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
	ga, gb := groupQuestions(a), groupQuestions(b)
	var order []string
	for i := range a {
		if !slices.Contains(order, a[i].Dataset) {
			order = append(order, a[i].Dataset)
		}
	}
	var out []Delta
	var allA, allB [][]float64
	for di, ds := range order {
		qb := map[string]*question{}
		for _, q := range gb[ds] {
			qb[q.id] = q
		}
		var xa, xb []float64
		for _, q := range ga[ds] {
			p := qb[q.id]
			if p == nil {
				continue
			}
			va, _ := perQuestion([]*question{q}, metric)
			vb, _ := perQuestion([]*question{p}, metric)
			if len(va) == 1 && len(vb) == 1 {
				xa = append(xa, va[0])
				xb = append(xb, vb[0])
			}
		}
		if len(xa) == 0 {
			continue
		}
		allA, allB = append(allA, xa), append(allB, xb)
		d := Delta{Dataset: ds, Metric: metric, Questions: len(xa), A: mean(xa), B: mean(xb)}
		d.Delta = d.B - d.A
		d.CI = PairedBootstrap([][]float64{xa}, [][]float64{xb}, bootstrap, uint64(di)+1)
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s and %s share no questions", dirA, dirB)
	}
	if len(out) > 1 {
		d := Delta{Dataset: "overall", Metric: metric}
		for i := range out {
			d.Questions += out[i].Questions
			d.A += out[i].A / float64(len(out))
			d.B += out[i].B / float64(len(out))
		}
		d.Delta = d.B - d.A
		d.CI = PairedBootstrap(allA, allB, bootstrap, 424242)
		out = append(out, d)
	}
	return out, nil
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

// WriteCompare prints the deltas as a table.
func WriteCompare(w io.Writer, dirA, dirB string, ds []Delta) {
	fmt.Fprintf(w, "A = %s\nB = %s\n\n", dirA, dirB)
	fmt.Fprintf(w, "%-28s %9s %8s %8s %8s  %-18s %s\n", "dataset", "questions", "A", "B", "B−A", "95% CI (paired)", "")
	for _, d := range ds {
		mark := ""
		if d.CI[0] > 0 {
			mark = "B better"
		} else if d.CI[1] < 0 {
			mark = "A better"
		}
		fmt.Fprintf(w, "%-28s %9d %8.1f %8.1f %+8.1f  [%+.1f, %+.1f]  %s\n", d.Dataset, d.Questions,
			100*d.A, 100*d.B, 100*d.Delta, 100*d.CI[0], 100*d.CI[1], mark)
	}
	if len(ds) > 0 {
		fmt.Fprintf(w, "\nmetric: %s Avg@k, in points; questions present in both runs only.\n", ds[0].Metric)
	}
}
