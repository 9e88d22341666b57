package eval

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/reward"
)

func rec(ds, id string, sample int, em float64, turns int) Record {
	return Record{Dataset: ds, ID: id, Sample: sample, Scores: reward.Scores{"em": em, "f1": em},
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
		{"a avg", rep.Datasets[0].Metrics[metricEM].Avg, 0.25},
		{"a pass", rep.Datasets[0].Metrics[metricEM].Pass, 0.5},
		{"b avg", rep.Datasets[1].Metrics[metricEM].Avg, 1},
		{"overall avg = mean of datasets", rep.Overall.Metrics[metricEM].Avg, 0.625},
		{"overall pass", rep.Overall.Metrics[metricEM].Pass, 0.75},
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
	if single.Datasets[0].Metrics[metricEM] != single.Overall.Metrics[metricEM] {
		t.Errorf("one dataset: dataset %+v and overall %+v differ", single.Datasets[0].Metrics[metricEM], single.Overall.Metrics[metricEM])
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

// A results line written before the metric registry used "f1" for SQuAD
// F1 and "set_f1" for ASearcher's F1. Read back (a resumed run, a report
// of an old directory, a comparison), it must report ASearcher's F1 as f1
// and the SQuAD one as squad_f1, never the old f1 under the new name.
func TestLegacyScoresKeepTheirMeaning(t *testing.T) {
	dir := t.TempDir()
	old := `{"dataset":"d","id":"q1","sample":0,"prediction":"The Beatles","answered":true,"end":"answer","scores":{"em":1,"subem":1,"f1":1,"set_f1":0.6666666666666666,"reward_f1":0.6666666666666666,"cem":1},"stats":{},"wall_ns":1,"attempts":1}
`
	cur := Record{Dataset: "d", ID: "q2", Prediction: "The Beatles", Answered: true, End: "answer", Attempts: 1,
		Scores: reward.Score("The Beatles", []string{"Beatles"})}
	line, err := json.Marshal(cur)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, ResultsFile)
	if err := os.WriteFile(path, []byte(old+string(line)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadResults(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Scores["f1"] != 2.0/3 || r.Scores["squad_f1"] != 1 {
			t.Errorf("%s: f1 %v squad_f1 %v, want 0.667 and 1", r.ID, r.Scores["f1"], r.Scores["squad_f1"])
		}
		if _, ok := r.Scores["set_f1"]; ok {
			t.Errorf("%s: the old set_f1 column survived", r.ID)
		}
	}
	rep := BuildReport(recs, 1, 10)
	if got := rep.Overall.Metrics["f1"].Avg; math.Abs(got-2.0/3) > 1e-12 {
		t.Errorf("report f1 %v", got)
	}
	if !slices.Contains(rep.Metrics, "reward_f1") || !slices.Contains(rep.Metrics, "squad_f1") {
		t.Errorf("report columns %v", rep.Metrics)
	}
	var md strings.Builder
	WriteMarkdown(&md, rep)
	if !strings.Contains(md.String(), "- `f1`: ASearcher evaluate.py F1") {
		t.Errorf("markdown lacks the metric legend:\n%s", md.String())
	}
}

// text_only drops questions with an attachment before Limit, and is part
// of the run identity only when set (old run directories keep their hash).
func TestTextOnlyFilter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gaia.json")
	rows := `[{"task_id":"a","Question":"q1?","Final answer":"x","file_name":"f.png"},
{"task_id":"b","Question":"q2?","Final answer":"y","file_name":""},
{"task_id":"c","Question":"q3?","Final answer":"z"}]`
	if err := os.WriteFile(path, []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Data = []string{path}
	sets, err := loadSets(cfg, nil)
	if err != nil || len(sets[0].Items) != 3 {
		t.Fatalf("all: %v %d", err, len(sets[0].Items))
	}
	plain := identityOf(cfg, sets).hash()
	cfg.TextOnly, cfg.Limit = true, 1
	sets, err = loadSets(cfg, nil)
	if err != nil || len(sets[0].Items) != 1 || sets[0].Items[0].ID != "b" {
		t.Fatalf("text only, limit 1: %v %+v", err, sets[0].Items)
	}
	if identityOf(cfg, sets).hash() == plain {
		t.Fatal("text_only does not change the run identity")
	}
	var id runIdentity
	if b, _ := json.Marshal(id); strings.Contains(string(b), "text_only") {
		t.Fatal("an unset text_only changes the identity of older runs")
	}
}
