package eval

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/asearcher/asearcher/corpus"
	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/reward"
)

// Report columns beyond the string metrics of the registry
// (reward.Metrics), whose names they share.
const (
	// MetricF1 is the default primary column: ASearcher's F1.
	MetricF1 = string(reward.MetricF1)
	// MetricJudge is the LLM judge's score.
	MetricJudge = "judge"
	// MetricReward is a custom workflow's own reward (agent.Rewarder).
	MetricReward = "reward"
)

// metricValue reads one per-sample metric; ok is false when the record
// has none (no judge, or a results file older than the metric).
func metricValue(r *Record, m string) (float64, bool) {
	switch m {
	case MetricJudge:
		if r.Judge == nil {
			return 0, false
		}
		return r.Judge.Score, true
	case MetricReward:
		if r.Reward == nil {
			return 0, false
		}
		return *r.Reward, true
	}
	v, ok := r.Scores[m]
	return v, ok
}

// ReportMetrics are the names a report or a comparison can show: the
// registry's report metrics, judge and reward.
func ReportMetrics() []string {
	return append(reward.ReportMetrics(), MetricJudge, MetricReward)
}

// Summary is Avg@k and Pass@k of one metric with bootstrap 95% intervals
// (resampling questions).
type Summary struct {
	Avg    float64    `json:"avg_at_k"`
	AvgCI  [2]float64 `json:"avg_at_k_ci95"`
	Pass   float64    `json:"pass_at_k"`
	PassCI [2]float64 `json:"pass_at_k_ci95"`
}

// Means are per-sample averages of the agent's behaviour.
type Means struct {
	Turns           float64 `json:"turns"`
	Searches        float64 `json:"searches"`
	Accesses        float64 `json:"accesses"`
	GeneratedTokens float64 `json:"generated_tokens"`
	ContextTokens   float64 `json:"context_tokens"`
	WallSeconds     float64 `json:"wall_seconds"`
}

// addScaled sets m to m·scale + o·w, field by field: sums of per-dataset
// means weighted by samples, and sums turned into means.
func (m *Means) addScaled(o Means, w, scale float64) {
	m.Turns = m.Turns*scale + o.Turns*w
	m.Searches = m.Searches*scale + o.Searches*w
	m.Accesses = m.Accesses*scale + o.Accesses*w
	m.GeneratedTokens = m.GeneratedTokens*scale + o.GeneratedTokens*w
	m.ContextTokens = m.ContextTokens*scale + o.ContextTokens*w
	m.WallSeconds = m.WallSeconds*scale + o.WallSeconds*w
}

// DatasetReport is the summary of one dataset (or of all, "overall").
type DatasetReport struct {
	Name string `json:"name"`
	// Group is the value of a breakdown's field (Breakdown rows only).
	Group     string `json:"group,omitempty"`
	Questions int    `json:"questions"`
	Samples   int    `json:"samples"`
	// MinSamples is the fewest samples any question has; below K the run
	// is unfinished and Avg@k / Pass@k cover what exists.
	MinSamples int                `json:"min_samples"`
	Metrics    map[string]Summary `json:"metrics"`
	Means      Means              `json:"means"`
	Answered   float64            `json:"answered"` // fraction of samples that gave an answer
	Errors     int                `json:"errors"`   // samples whose agent run failed
	ToolErrors int                `json:"tool_errors"`
	// Unjudged counts samples the judge gave no verdict on (scored 0).
	Unjudged int            `json:"unjudged"`
	Ends     map[string]int `json:"ends"` // why the agent stopped, counted
	// Histograms of turns and tool calls per sample (index = count, last
	// bucket = that many or more).
	TurnsHist []int `json:"turns_hist"`
	ToolsHist []int `json:"tools_hist"`
}

// Report is report.json.
type Report struct {
	Run      string          `json:"run"`
	K        int             `json:"k"`
	Agent    string          `json:"agent,omitempty"`
	Model    string          `json:"model,omitempty"`
	Primary  string          `json:"primary_metric"`
	Metrics  []string        `json:"metrics"`
	Datasets []DatasetReport `json:"datasets"`
	// Overall is the mean of the per-dataset values (each dataset weighs
	// the same, as ASearcher's tables average), with a stratified
	// bootstrap interval.
	Overall DatasetReport `json:"overall"`
	// Breakdowns split the numbers by question attributes (--group-by).
	Breakdowns []Breakdown `json:"breakdowns,omitempty"`
}

const histBuckets = 16

// question groups the samples of one question.
type question struct {
	dataset, id string
	recs        []*Record
}

func groupQuestions(recs []Record) map[string][]*question {
	byKey := map[[2]string]*question{}
	out := map[string][]*question{}
	for i := range recs {
		r := &recs[i]
		k := [2]string{r.Dataset, r.ID}
		q := byKey[k]
		if q == nil {
			q = &question{dataset: r.Dataset, id: r.ID}
			byKey[k] = q
			out[r.Dataset] = append(out[r.Dataset], q)
		}
		q.recs = append(q.recs, r)
	}
	for _, qs := range out {
		for _, q := range qs {
			sort.Slice(q.recs, func(a, b int) bool { return q.recs[a].Sample < q.recs[b].Sample })
		}
	}
	return out
}

// perQuestion returns each question's Avg and Pass of metric m (questions
// without the metric are left out).
func perQuestion(qs []*question, m string) (avg, pass []float64) {
	for _, q := range qs {
		var s, mx float64
		n := 0
		for _, r := range q.recs {
			v, ok := metricValue(r, m)
			if !ok {
				continue
			}
			s += v
			mx = max(mx, v)
			n++
		}
		if n == 0 {
			continue
		}
		avg = append(avg, s/float64(n))
		pass = append(pass, mx)
	}
	return avg, pass
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// bootstrapCI resamples each stratum's values with replacement and
// returns the 2.5% and 97.5% percentiles of the mean of stratum means.
// The generator is seeded, so reports are reproducible.
func bootstrapCI(strata [][]float64, b int, seed uint64) [2]float64 {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	stats := make([]float64, 0, b)
	for range b {
		total, used := 0.0, 0
		for _, xs := range strata {
			if len(xs) == 0 {
				continue
			}
			s := 0.0
			for range xs {
				s += xs[rng.IntN(len(xs))]
			}
			total += s / float64(len(xs))
			used++
		}
		if used > 0 {
			stats = append(stats, total/float64(used))
		}
	}
	if len(stats) == 0 {
		return [2]float64{}
	}
	slices.Sort(stats)
	return [2]float64{percentile(stats, 0.025), percentile(stats, 0.975)}
}

// percentile of sorted xs with linear interpolation.
func percentile(xs []float64, p float64) float64 {
	pos := p * float64(len(xs)-1)
	lo := int(pos)
	if lo+1 >= len(xs) {
		return xs[len(xs)-1]
	}
	f := pos - float64(lo)
	return xs[lo]*(1-f) + xs[lo+1]*f
}

// BuildReport summarises records. Datasets appear in order of first
// appearance in recs.
func BuildReport(recs []Record, k int, bootstrap int) *Report {
	if bootstrap <= 0 {
		bootstrap = 1000
	}
	groups := groupQuestions(recs)
	order := datasetOrder(recs)
	metrics, primary := reportMetrics(recs)
	rep := &Report{K: k, Primary: primary, Metrics: metrics}
	for _, name := range order {
		rep.Datasets = append(rep.Datasets, datasetReport(name, groups[name], metrics, bootstrap))
	}
	rep.Overall = overallReport(rep.Datasets, order, groups, metrics, bootstrap)
	return rep
}

// datasetOrder lists the data sets of recs in order of first appearance.
func datasetOrder(recs []Record) []string {
	var order []string
	seen := map[string]bool{}
	for i := range recs {
		if !seen[recs[i].Dataset] {
			seen[recs[i].Dataset] = true
			order = append(order, recs[i].Dataset)
		}
	}
	return order
}

// reportMetrics are the columns of a report of recs and its primary one:
// the registry's report metrics, then judge and reward when some record
// has them (judge is then primary).
func reportMetrics(recs []Record) (metrics []string, primary string) {
	hasJudge, hasReward := false, false
	for i := range recs {
		hasJudge = hasJudge || recs[i].Judge != nil
		hasReward = hasReward || recs[i].Reward != nil
	}
	metrics = reward.ReportMetrics()
	primary = MetricF1
	if hasJudge {
		metrics = append(metrics, MetricJudge)
		primary = MetricJudge
	}
	if hasReward {
		metrics = append(metrics, MetricReward)
	}
	return metrics, primary
}

// bootstrapSeed is the same for a metric everywhere, so a run with one
// dataset shows the same interval for the dataset and overall.
func bootstrapSeed(metric int) uint64 { return 1000 + uint64(metric) }

func datasetReport(name string, qs []*question, metrics []string, b int) DatasetReport {
	d := DatasetReport{Name: name, Questions: len(qs), Metrics: map[string]Summary{}, Ends: map[string]int{},
		TurnsHist: make([]int, histBuckets), ToolsHist: make([]int, histBuckets)}
	d.MinSamples = -1
	var answered int
	for _, q := range qs {
		if d.MinSamples < 0 || len(q.recs) < d.MinSamples {
			d.MinSamples = len(q.recs)
		}
		for _, r := range q.recs {
			d.Samples++
			st := r.Stats
			d.Means.Turns += float64(st.Turns)
			d.Means.Searches += float64(st.Searches)
			d.Means.Accesses += float64(st.Accesses)
			d.Means.GeneratedTokens += float64(st.GeneratedTokens)
			d.Means.ContextTokens += float64(st.ContextTokens)
			d.Means.WallSeconds += float64(r.WallNS) / 1e9
			d.ToolErrors += st.ToolErrors
			if r.Error != "" {
				d.Errors++
			}
			if r.Judge != nil && r.Judge.Verdict == reward.Unjudged {
				d.Unjudged++
			}
			if r.Answered {
				answered++
			}
			d.Ends[r.End]++
			d.TurnsHist[min(st.Turns, histBuckets-1)]++
			d.ToolsHist[min(st.Searches+st.Accesses+st.OtherTools, histBuckets-1)]++
		}
	}
	if d.MinSamples < 0 {
		d.MinSamples = 0
	}
	if d.Samples > 0 {
		d.Means.addScaled(Means{}, 0, 1/float64(d.Samples))
		d.Answered = float64(answered) / float64(d.Samples)
	}
	for mi, m := range metrics {
		avg, pass := perQuestion(qs, m)
		if len(avg) == 0 {
			continue
		}
		s := bootstrapSeed(mi)
		d.Metrics[m] = Summary{
			Avg: mean(avg), AvgCI: bootstrapCI([][]float64{avg}, b, s),
			Pass: mean(pass), PassCI: bootstrapCI([][]float64{pass}, b, s+500),
		}
	}
	return d
}

func overallReport(ds []DatasetReport, order []string, groups map[string][]*question, metrics []string, b int) DatasetReport {
	o := DatasetReport{Name: "overall", Metrics: map[string]Summary{}, Ends: map[string]int{},
		TurnsHist: make([]int, histBuckets), ToolsHist: make([]int, histBuckets)}
	o.MinSamples = -1
	for _, d := range ds {
		o.Questions += d.Questions
		o.Samples += d.Samples
		o.Errors += d.Errors
		o.ToolErrors += d.ToolErrors
		o.Unjudged += d.Unjudged
		if o.MinSamples < 0 || d.MinSamples < o.MinSamples {
			o.MinSamples = d.MinSamples
		}
		for e, c := range d.Ends {
			o.Ends[e] += c
		}
		for i := range histBuckets {
			o.TurnsHist[i] += d.TurnsHist[i]
			o.ToolsHist[i] += d.ToolsHist[i]
		}
		w := float64(d.Samples)
		o.Means.addScaled(d.Means, w, 1)
		o.Answered += d.Answered * w
	}
	if o.MinSamples < 0 {
		o.MinSamples = 0
	}
	if o.Samples > 0 {
		o.Means.addScaled(Means{}, 0, 1/float64(o.Samples))
		o.Answered /= float64(o.Samples)
	}
	for mi, m := range metrics {
		var avgs, passes [][]float64
		var sa, sp float64
		for _, name := range order {
			avg, pass := perQuestion(groups[name], m)
			if len(avg) == 0 {
				continue
			}
			avgs = append(avgs, avg)
			passes = append(passes, pass)
			sa += mean(avg)
			sp += mean(pass)
		}
		if len(avgs) == 0 {
			continue
		}
		n := float64(len(avgs))
		s := bootstrapSeed(mi)
		o.Metrics[m] = Summary{Avg: sa / n, AvgCI: bootstrapCI(avgs, b, s), Pass: sp / n, PassCI: bootstrapCI(passes, b, s+500)}
	}
	return o
}

// WriteReports reads a run directory's results and writes report.json,
// report.md and report.html atomically, split by the run's group_by
// fields. It is what eval does at the end and what `asearcher eval report
// DIR` redoes.
func WriteReports(dir string) (*Report, error) { return writeReports(dir, nil) }

// WriteReportsGroupedBy is WriteReports with breakdowns by groupBy
// instead of the run's own group_by.
func WriteReportsGroupedBy(dir string, groupBy []string) (*Report, error) {
	if groupBy == nil {
		groupBy = []string{}
	}
	return writeReports(dir, groupBy)
}

// writeReports writes the reports; a nil groupBy takes the run's.
func writeReports(dir string, groupBy []string) (*Report, error) {
	recs, err := ReadResults(filepath.Join(dir, ResultsFile))
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	var m runManifest
	if data, err := os.ReadFile(filepath.Join(dir, ManifestFile)); err == nil {
		_ = json.Unmarshal(data, &m)
	}
	if groupBy == nil {
		groupBy = m.Config.GroupBy
	}
	k := m.Config.K
	if k == 0 {
		for i := range recs {
			k = max(k, recs[i].Sample+1)
		}
	}
	rep := BuildReport(recs, k, m.Config.Bootstrap)
	rep.Run = dir
	rep.Agent = m.Config.Agent
	rep.Model = m.Config.Model
	if rep.Breakdowns, err = BuildBreakdowns(recs, groupBy, m.Config.Bootstrap); err != nil {
		return nil, err
	}
	if err := corpus.WriteJSONFile(filepath.Join(dir, ReportJSONFile), rep); err != nil {
		return nil, fmt.Errorf("write report.json: %w", err)
	}
	var md strings.Builder
	WriteMarkdown(&md, rep)
	if err := atomicfile.WriteFile(filepath.Join(dir, ReportMDFile), []byte(md.String())); err != nil {
		return nil, err
	}
	html, err := renderHTML(dir, rep, recs)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ReportHTMLFile), html); err != nil {
		return nil, err
	}
	return rep, nil
}

// WriteMarkdown writes the report as markdown tables: the headline table
// (Avg@k and Pass@k of every metric per dataset) and the behaviour table.
func WriteMarkdown(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "# Evaluation report\n\n")
	if rep.Model != "" || rep.Agent != "" {
		fmt.Fprintf(w, "Agent `%s`, model `%s`, k = %d. Values are Avg@%d / Pass@%d with bootstrap 95%% intervals over questions; overall is the mean over datasets.\n\n",
			rep.Agent, rep.Model, rep.K, rep.K, rep.K)
	}
	rows := append(slices.Clone(rep.Datasets), rep.Overall)
	fmt.Fprintf(w, "| dataset | questions | samples |")
	for _, m := range rep.Metrics {
		fmt.Fprintf(w, " %s Avg@%d | %s Pass@%d |", m, rep.K, m, rep.K)
	}
	fmt.Fprintf(w, "\n|---|---:|---:|%s\n", strings.Repeat("---:|---:|", len(rep.Metrics)))
	for _, d := range rows {
		fmt.Fprintf(w, "| %s | %d | %d |", d.Name, d.Questions, d.Samples)
		for _, m := range rep.Metrics {
			s, ok := d.Metrics[m]
			if !ok {
				fmt.Fprintf(w, " – | – |")
				continue
			}
			fmt.Fprintf(w, " %s | %s |", fmtCI(s.Avg, s.AvgCI), fmtCI(s.Pass, s.PassCI))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	for _, m := range rep.Metrics {
		if info, ok := reward.LookupMetric(m); ok {
			fmt.Fprintf(w, "- `%s`: %s\n", m, info.Description)
		}
	}
	fmt.Fprintf(w, "\n## Behaviour (means per sample)\n\n")
	fmt.Fprintf(w, "| dataset | turns | searches | accesses | generated tokens | context tokens | seconds | answered | errors | tool errors | unjudged | ends |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, d := range rows {
		fmt.Fprintf(w, "| %s | %.2f | %.2f | %.2f | %.0f | %.0f | %.2f | %.1f%% | %d | %d | %d | %s |\n", d.Name,
			d.Means.Turns, d.Means.Searches, d.Means.Accesses, d.Means.GeneratedTokens, d.Means.ContextTokens,
			d.Means.WallSeconds, 100*d.Answered, d.Errors, d.ToolErrors, d.Unjudged, fmtEnds(d.Ends))
	}
	writeBreakdowns(w, rep)
	for _, d := range rows {
		if d.MinSamples < rep.K && d.Name != "overall" {
			fmt.Fprintf(w, "\nUnfinished: %s has questions with %d of %d samples; rerun the same command to finish.\n", d.Name, d.MinSamples, rep.K)
		}
	}
}

func fmtCI(v float64, ci [2]float64) string {
	return fmt.Sprintf("%.1f [%.1f, %.1f]", 100*v, 100*ci[0], 100*ci[1])
}

func fmtEnds(ends map[string]int) string {
	keys := make([]string, 0, len(ends))
	for k := range ends {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, ends[k])
	}
	return strings.Join(parts, ", ")
}
