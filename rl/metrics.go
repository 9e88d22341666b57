package rl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/asearcher/asearcher/internal/atomicfile"
	"github.com/asearcher/asearcher/internal/grouporder"
)

// StepRecord is one line of metrics.jsonl: everything about one training
// step. Rollout figures cover the window since the previous step.
type StepRecord struct {
	Step    int     `json:"step"`    // 0-based training step
	Version int     `json:"version"` // weight version after the step
	Time    float64 `json:"time_s"`  // seconds since the run (or resume) began

	// The trained batch.
	RewardMean float64 `json:"reward_mean"`
	RewardStd  float64 `json:"reward_std"`
	Accuracy   float64 `json:"accuracy"` // mean Score
	TurnsMean  float64 `json:"turns_mean"`
	TurnsMax   int     `json:"turns_max"`
	ToolsMean  float64 `json:"tool_calls_mean"`
	// SearchesMean counts the search calls per trajectory.
	SearchesMean float64 `json:"searches_mean"`
	// SampleStaleness counts samples by (step − oldest token version).
	SampleStaleness map[int]int `json:"sample_staleness"`
	Questions       []int64     `json:"questions"` // stream indices consumed

	// Rollout window.
	GenTokens     int     `json:"gen_tokens"`
	TokensPerSec  float64 `json:"tokens_per_s"`
	Finished      int     `json:"trajectories"`
	Admitted      int     `json:"groups_admitted"`
	Accepted      int     `json:"groups_accepted"`
	Filtered      int     `json:"groups_filtered"`
	Failed        int     `json:"groups_failed"`
	FilteredFrac  float64 `json:"filtered_fraction"`
	GeneratorIdle float64 `json:"generator_idle"`
	Running       int64   `json:"groups_running"`
	// TimedOut counts trajectories cut at rl.trajectory_timeout_s;
	// MissingLogprobs trajectories rejected for missing behaviour logprobs.
	TimedOut        int `json:"trajectories_timed_out"`
	MissingLogprobs int `json:"trajectories_missing_logprobs"`
	Waiting         int `json:"groups_waiting"` // finished, not yet consumed

	// Time split.
	WaitSec    float64 `json:"rollout_wait_s"` // trainer waiting for a batch
	TrainSec   float64 `json:"train_s"`
	PublishSec float64 `json:"publish_s"`
	// CheckpointSec is the duration of the last checkpoint written before
	// this record (records are written before their step's checkpoint).
	CheckpointSec float64 `json:"checkpoint_s"`
	StepSec       float64 `json:"step_s"`

	LR    float64     `json:"lr"`
	Train *TrainStats `json:"train"`

	// GroupBy names the attribute of a GroupedDataset ("hops"), and
	// ByGroup holds, per group value, the behaviour of every trajectory
	// finished in the rollout window: zero-variance groups that dynamic
	// filtering drops are included (the trained batch keeps only mixed
	// groups, whose accuracy sits near the middle whatever the policy
	// does), failed groups are not.
	GroupBy string                 `json:"group_by,omitempty"`
	ByGroup map[string]*GroupStats `json:"by_group,omitempty"`
}

// GroupStats is the behaviour of one group's trajectories in a window.
// Trajectories that explored (rl.explore) are counted apart: the other
// fields are the policy's own behaviour.
type GroupStats struct {
	Trajectories int     `json:"trajectories"`
	Accuracy     float64 `json:"accuracy"` // mean Score
	RewardMean   float64 `json:"reward_mean"`
	TurnsMean    float64 `json:"turns_mean"`
	SearchesMean float64 `json:"searches_mean"`
	ToolsMean    float64 `json:"tool_calls_mean"`
	// Explored counts the exploring trajectories, ExploredAccuracy is
	// their mean Score and ForcedSearchesMean their forced searches per
	// trajectory.
	Explored           int     `json:"explored,omitempty"`
	ExploredAccuracy   float64 `json:"explored_accuracy,omitempty"`
	ForcedSearchesMean float64 `json:"forced_searches_mean,omitempty"`
}

// groupSums accumulates GroupStats; mean turns the sums into means.
type groupSums map[string]*GroupStats

func (g groupSums) add(group string, s *Sample) {
	st := g[group]
	if st == nil {
		st = &GroupStats{}
		g[group] = st
	}
	if s.Explored {
		st.Explored++
		st.ExploredAccuracy += s.Score
		st.ForcedSearchesMean += float64(s.ForcedSearches)
		return
	}
	st.Trajectories++
	st.Accuracy += s.Score
	st.RewardMean += s.Reward
	st.TurnsMean += float64(s.Turns)
	st.SearchesMean += float64(s.Searches)
	st.ToolsMean += float64(s.ToolCalls)
}

func (g groupSums) means() map[string]*GroupStats {
	out := make(map[string]*GroupStats, len(g))
	for k, st := range g {
		n := float64(max(1, st.Trajectories))
		m := &GroupStats{Trajectories: st.Trajectories, Accuracy: st.Accuracy / n, RewardMean: st.RewardMean / n,
			TurnsMean: st.TurnsMean / n, SearchesMean: st.SearchesMean / n, ToolsMean: st.ToolsMean / n, Explored: st.Explored}
		if e := float64(st.Explored); e > 0 {
			m.ExploredAccuracy, m.ForcedSearchesMean = st.ExploredAccuracy/e, st.ForcedSearchesMean/e
		}
		out[k] = m
	}
	return out
}

// metricsSink writes step records to the run directory: metrics.jsonl
// (append), metrics.prom (Prometheus text format, rewritten atomically) and
// plots.html.
type metricsSink struct {
	dir     string
	records []*StepRecord
	reg     *prometheus.Registry
	gauges  map[string]prometheus.Gauge
	stale   *prometheus.HistogramVec
	// groups are the last step's ByGroup values, labelled by group_by and
	// group.
	groups map[string]*prometheus.GaugeVec
}

// newMetricsSink opens the run's metrics for a run that starts at step
// keepBefore. Records of earlier steps are kept; later ones (steps after
// the checkpoint resumed from) are dropped since those steps are redone.
// A torn last line is cut; a damaged line elsewhere is refused unless
// repair is set, which keeps a backup and reports the drop in notes.
func newMetricsSink(dir string, keepBefore int, repair bool) (m *metricsSink, notes []string, err error) {
	m = &metricsSink{dir: dir, reg: prometheus.NewRegistry(), gauges: map[string]prometheus.Gauge{}}
	for _, name := range []string{
		"step", "reward_mean", "accuracy", "turns_mean", "tool_calls_mean", "tokens_per_second",
		"generator_idle_fraction", "filtered_fraction", "groups_running", "groups_waiting",
		"rollout_wait_seconds", "train_seconds", "publish_seconds", "loss", "clip_fraction",
		"entropy", "imp_weight_mean", "imp_weight_max", "imp_capped_fraction", "learning_rate",
		"trajectories_timed_out", "trajectories_missing_logprobs",
	} {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "asearcher", Subsystem: "rl", Name: name})
		m.reg.MustRegister(g)
		m.gauges[name] = g
	}
	m.stale = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "asearcher", Subsystem: "rl", Name: "sample_staleness",
		Help:    "Training version minus the oldest token version of each trained sample.",
		Buckets: []float64{0, 1, 2, 3, 4, 6, 8, 16, 32},
	}, nil)
	m.reg.MustRegister(m.stale)
	m.groups = map[string]*prometheus.GaugeVec{}
	for name, help := range map[string]string{
		"group_accuracy":      "Accuracy of the step's rollouts of one question group (StepRecord.ByGroup).",
		"group_turns_mean":    "Turns per trajectory of the step's rollouts of one question group.",
		"group_searches_mean": "Searches per trajectory of the step's rollouts of one question group.",
		"group_trajectories":  "Rollouts of one question group finished in the step's window.",
	} {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "asearcher", Subsystem: "rl", Name: name, Help: help},
			[]string{"group_by", "group"})
		m.reg.MustRegister(g)
		m.groups[name] = g
	}
	path := filepath.Join(dir, metricsFile)
	old, damaged, err := readRecords(path)
	if err != nil {
		return nil, nil, err
	}
	if len(damaged) > 0 {
		d := damaged[0]
		if !repair {
			return nil, nil, fmt.Errorf("%s line %d (byte offset %d) is damaged (%v); nothing was changed. Resume with --repair to keep a backup and drop the damaged lines (their steps' metrics are lost; training state is not affected)", path, d.line, d.offset, d.err)
		}
		backup := path + ".bak-" + time.Now().UTC().Format("20060102T150405Z")
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, err
		}
		if err := atomicfile.WriteFile(backup, raw); err != nil {
			return nil, nil, fmt.Errorf("back up %s: %w", path, err)
		}
		for _, d := range damaged {
			notes = append(notes, fmt.Sprintf("dropped %s line %d (byte offset %d): %v", path, d.line, d.offset, d.err))
		}
		notes = append(notes, fmt.Sprintf("kept the damaged %s as %s", path, backup))
	}
	if raw, err := os.ReadFile(path); err == nil && len(raw) > 0 && raw[len(raw)-1] != '\n' {
		cut := bytes.LastIndexByte(raw, '\n') + 1
		notes = append(notes, fmt.Sprintf("cut the torn last line of %s at byte offset %d (a write cut short)", path, cut))
	}
	var buf bytes.Buffer
	for _, r := range old {
		if r.Step < keepBefore {
			m.records = append(m.records, r)
			line, _ := json.Marshal(r)
			buf.Write(line)
			buf.WriteByte('\n')
		}
	}
	if err := atomicfile.WriteFile(path, buf.Bytes()); err != nil {
		return nil, nil, err
	}
	return m, notes, nil
}

// metricsFile is the run directory's step log.
const metricsFile = "metrics.jsonl"

type damagedLine struct {
	line   int
	offset int64
	err    error
}

// readRecords reads metrics.jsonl. A last line that is cut short or does
// not parse is torn (a kill mid-write) and skipped; damaged lines before it
// are returned apart.
func readRecords(path string) ([]*StepRecord, []damagedLine, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var out []*StepRecord
	var bad []damagedLine
	var off int64
	for n := 1; len(data) > 0; n++ {
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 {
			break // torn last line
		}
		line := data[:nl]
		var r StepRecord
		if err := json.Unmarshal(line, &r); err != nil {
			if nl+1 < len(data) {
				bad = append(bad, damagedLine{line: n, offset: off, err: err})
			}
		} else {
			out = append(out, &r)
		}
		off += int64(nl + 1)
		data = data[nl+1:]
	}
	return out, bad, nil
}

func (m *metricsSink) add(r *StepRecord) error {
	m.records = append(m.records, r)
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(m.dir, metricsFile), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, werr := f.Write(append(line, '\n'))
	// Synced before the checkpoint that covers this step is written: a
	// power loss must not keep the checkpoint and lose the step's record.
	serr := f.Sync()
	if err := errors.Join(werr, serr, f.Close()); err != nil {
		return fmt.Errorf("append metrics: %w", err)
	}

	set := func(name string, v float64) { m.gauges[name].Set(v) }
	set("step", float64(r.Step))
	set("reward_mean", r.RewardMean)
	set("accuracy", r.Accuracy)
	set("turns_mean", r.TurnsMean)
	set("tool_calls_mean", r.ToolsMean)
	set("tokens_per_second", r.TokensPerSec)
	set("generator_idle_fraction", r.GeneratorIdle)
	set("filtered_fraction", r.FilteredFrac)
	set("groups_running", float64(r.Running))
	set("groups_waiting", float64(r.Waiting))
	set("rollout_wait_seconds", r.WaitSec)
	set("train_seconds", r.TrainSec)
	set("publish_seconds", r.PublishSec)
	set("learning_rate", r.LR)
	set("trajectories_timed_out", float64(r.TimedOut))
	set("trajectories_missing_logprobs", float64(r.MissingLogprobs))
	if t := r.Train; t != nil {
		loss := math.NaN() // a loss the trainer did not report is not 0
		if t.Loss != nil {
			loss = *t.Loss
		}
		set("loss", loss)
		set("clip_fraction", t.ClipFraction)
		set("entropy", t.Entropy)
		set("imp_weight_mean", t.ImpWeightMean)
		set("imp_weight_max", t.ImpWeightMax)
		set("imp_capped_fraction", t.ImpCapped)
	}
	// A group without rollouts in this window keeps its last values.
	for g, st := range r.ByGroup {
		m.groups["group_accuracy"].WithLabelValues(r.GroupBy, g).Set(st.Accuracy)
		m.groups["group_turns_mean"].WithLabelValues(r.GroupBy, g).Set(st.TurnsMean)
		m.groups["group_searches_mean"].WithLabelValues(r.GroupBy, g).Set(st.SearchesMean)
		m.groups["group_trajectories"].WithLabelValues(r.GroupBy, g).Set(float64(st.Trajectories))
	}
	for s, n := range r.SampleStaleness {
		for range n {
			m.stale.WithLabelValues().Observe(float64(s))
		}
	}
	if err := prometheus.WriteToTextfile(filepath.Join(m.dir, "metrics.prom"), m.reg); err != nil {
		return fmt.Errorf("write metrics.prom: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(m.dir, "plots.html"), RenderPlots("RL training", trainingSeries(m.records)))
}

// trainingSeries extracts the curves drawn in plots.html.
func trainingSeries(rs []*StepRecord) []Chart {
	pick := func(f func(*StepRecord) float64) []Point {
		var out []Point
		for _, r := range rs {
			v := f(r)
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				out = append(out, Point{X: float64(r.Step), Y: v})
			}
		}
		return out
	}
	train := func(f func(*TrainStats) float64) func(*StepRecord) float64 {
		return func(r *StepRecord) float64 {
			if r.Train == nil {
				return math.NaN()
			}
			return f(r.Train)
		}
	}
	staleMean := func(r *StepRecord) float64 {
		var n, s float64
		for k, c := range r.SampleStaleness {
			n += float64(c)
			s += float64(k * c)
		}
		if n == 0 {
			return math.NaN()
		}
		return s / n
	}
	staleMax := func(r *StepRecord) float64 {
		keys := make([]int, 0, len(r.SampleStaleness))
		for k := range r.SampleStaleness {
			keys = append(keys, k)
		}
		if len(keys) == 0 {
			return math.NaN()
		}
		sort.Ints(keys)
		return float64(keys[len(keys)-1])
	}
	charts := []Chart{
		{Title: "Reward and accuracy of the trained batch", Series: []Series{
			{Name: "reward", Points: pick(func(r *StepRecord) float64 { return r.RewardMean })},
			{Name: "accuracy", Points: pick(func(r *StepRecord) float64 { return r.Accuracy })},
		}},
		{Title: "Staleness (versions)", Series: []Series{
			{Name: "mean", Points: pick(staleMean)},
			{Name: "max", Points: pick(staleMax)},
		}},
		{Title: "Turns and tool calls per trajectory", Series: []Series{
			{Name: "turns", Points: pick(func(r *StepRecord) float64 { return r.TurnsMean })},
			{Name: "tool calls", Points: pick(func(r *StepRecord) float64 { return r.ToolsMean })},
			{Name: "searches", Points: pick(func(r *StepRecord) float64 { return r.SearchesMean })},
		}},
		{Title: "Seconds per step", Series: []Series{
			{Name: "waiting for rollouts", Points: pick(func(r *StepRecord) float64 { return r.WaitSec })},
			{Name: "training", Points: pick(func(r *StepRecord) float64 { return r.TrainSec })},
			{Name: "publishing weights", Points: pick(func(r *StepRecord) float64 { return r.PublishSec })},
		}},
		{Title: "Generation", Series: []Series{
			{Name: "tokens/s", Points: pick(func(r *StepRecord) float64 { return r.TokensPerSec })},
		}},
		{Title: "Fractions", Series: []Series{
			{Name: "generator idle", Points: pick(func(r *StepRecord) float64 { return r.GeneratorIdle })},
			{Name: "groups filtered", Points: pick(func(r *StepRecord) float64 { return r.FilteredFrac })},
			{Name: "tokens clipped", Points: pick(train(func(t *TrainStats) float64 { return t.ClipFraction }))},
			{Name: "weights capped", Points: pick(train(func(t *TrainStats) float64 { return t.ImpCapped }))},
		}},
		{Title: "Loss and entropy", Series: []Series{
			{Name: "loss", Points: pick(train(func(t *TrainStats) float64 {
				if t.Loss == nil {
					return math.NaN() // not reported: no point
				}
				return *t.Loss
			}))},
			{Name: "entropy (nats/token)", Points: pick(train(func(t *TrainStats) float64 { return t.Entropy }))},
		}},
		{Title: "Behaviour importance weight π_prox/π_behav", Series: []Series{
			{Name: "mean", Points: pick(train(func(t *TrainStats) float64 { return t.ImpWeightMean }))},
			{Name: "max", Points: pick(train(func(t *TrainStats) float64 { return t.ImpWeightMax }))},
		}},
	}
	return append(groupCharts(rs), charts...)
}

// groupCurveSteps is how many steps' rollouts each point of the per-group
// curves pools: one step's window holds a few groups of each kind (none at
// times), too few for a readable curve.
const groupCurveSteps = 5

// groupCharts draws the per-group curves of a GroupedDataset run (one
// series per group value, in grouporder): accuracy, searches and turns per
// trajectory, each point pooling the rollouts of the last groupCurveSteps
// steps (weighted by trajectories; metrics.jsonl keeps each step's own),
// first on the page since they show what the run learns. None without
// groups.
func groupCharts(rs []*StepRecord) []Chart {
	by, values := "", map[string]bool{}
	for _, r := range rs {
		if r.GroupBy != "" {
			by = r.GroupBy
		}
		for v := range r.ByGroup {
			values[v] = true
		}
	}
	if len(values) == 0 {
		return nil
	}
	order := grouporder.Keys(values)
	policy := func(s *GroupStats) int { return s.Trajectories }
	explored := func(s *GroupStats) int { return s.Explored }
	chart := func(title string, f func(*GroupStats) float64, weight func(*GroupStats) int) Chart {
		c := Chart{Title: fmt.Sprintf("%s by %s (rollouts, last %d steps pooled)", title, by, groupCurveSteps)}
		for _, v := range order {
			var pts []Point
			for i, r := range rs {
				var sum, n float64
				for _, p := range rs[max(0, i-groupCurveSteps+1) : i+1] {
					if st := p.ByGroup[v]; st != nil && weight(st) > 0 {
						sum += f(st) * float64(weight(st))
						n += float64(weight(st))
					}
				}
				if n > 0 { // no rollout of this group in the window: no point
					pts = append(pts, Point{X: float64(r.Step), Y: sum / n})
				}
			}
			c.Series = append(c.Series, Series{Name: by + " " + v, Points: pts})
		}
		return c
	}
	charts := []Chart{
		chart("Accuracy", func(s *GroupStats) float64 { return s.Accuracy }, policy),
		chart("Searches per trajectory", func(s *GroupStats) float64 { return s.SearchesMean }, policy),
		chart("Turns per trajectory", func(s *GroupStats) float64 { return s.TurnsMean }, policy),
	}
	for _, r := range rs {
		for _, st := range r.ByGroup {
			if st.Explored > 0 {
				// The exploring rollouts (rl.explore) apart: what the
				// policy would reach if it searched more.
				return append(charts, chart("Accuracy of exploring rollouts", func(s *GroupStats) float64 { return s.ExploredAccuracy }, explored))
			}
		}
	}
	return charts
}

// fmtFloat renders a number compactly for tables and plot labels.
func fmtFloat(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 1e5 || math.Abs(v) < 1e-3:
		return strconv.FormatFloat(v, 'g', 3, 64)
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}
