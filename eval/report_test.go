package eval

import (
	"math"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/reward"
)

func rec(ds, id string, sample int, em float64, turns int) Record {
	return Record{Dataset: ds, ID: id, Sample: sample, Scores: reward.Scores{EM: em, F1: em},
		Stats: agent.Stats{Turns: turns, Searches: turns}, End: "answer", Answered: true, WallNS: 2e9}
}

// TestBuildReport: Avg@k and Pass@k per question and dataset, overall as
// the mean over datasets (not over questions), behaviour means and the
// unfinished-run note.
func TestBuildReport(t *testing.T) {
	recs := []Record{
		// dataset a: q1 right 1 of 2 samples, q2 never → Avg 0.25, Pass 0.5
		rec("a", "1", 0, 1, 2), rec("a", "1", 1, 0, 4), rec("a", "2", 0, 0, 20), rec("a", "2", 1, 0, 2),
		// dataset b: one question, right once, only one sample so far
		rec("b", "x", 0, 1, 1),
	}
	rep := BuildReport(recs, 2, 300)
	tests := []struct {
		name      string
		got, want float64
	}{
		{"a avg", rep.Datasets[0].Metrics[MetricEM].Avg, 0.25},
		{"a pass", rep.Datasets[0].Metrics[MetricEM].Pass, 0.5},
		{"b avg", rep.Datasets[1].Metrics[MetricEM].Avg, 1},
		{"overall avg = mean of datasets", rep.Overall.Metrics[MetricEM].Avg, 0.625},
		{"overall pass", rep.Overall.Metrics[MetricEM].Pass, 0.75},
		{"a turns", rep.Datasets[0].Means.Turns, 7},
		{"overall turns (per sample)", rep.Overall.Means.Turns, 29.0 / 5},
		{"overall seconds", rep.Overall.Means.WallSeconds, 2},
		{"a min samples", float64(rep.Datasets[0].MinSamples), 2},
		{"b min samples", float64(rep.Datasets[1].MinSamples), 1},
		{"a turns ≥ 15 bucket", float64(rep.Datasets[0].TurnsHist[histBuckets-1]), 1},
	}
	for _, tc := range tests {
		if math.Abs(tc.got-tc.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if _, ok := rep.Overall.Metrics[MetricJudge]; ok || rep.Primary != MetricF1 {
		t.Errorf("judge metric without judgements: %v, primary %s", rep.Metrics, rep.Primary)
	}
	single := BuildReport(recs[:4], 2, 300)
	if single.Datasets[0].Metrics[MetricEM] != single.Overall.Metrics[MetricEM] {
		t.Errorf("one dataset: dataset %+v and overall %+v differ", single.Datasets[0].Metrics[MetricEM], single.Overall.Metrics[MetricEM])
	}
	var md strings.Builder
	WriteMarkdown(&md, rep)
	for _, want := range []string{"| a | 2 | 4 |", "| overall | 3 | 5 |", "Unfinished: b has questions with 1 of 2 samples"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	if strings.Contains(md.String(), "Unfinished: a") {
		t.Error("dataset a is finished")
	}
}
