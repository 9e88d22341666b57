package eval

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/internal/testindex"
)

// TestEndToEndOfficialMetrics: the scripted model answers every question
// of a dataset built from the official-script reference vectors, some
// right and some wrong, after searching our retrieval server over the
// shipped HotpotQA-HippoRAG corpus. Every sample's EM, F1, set-F1 (the
// F1 of ASearcher's evaluate.py) and CEM equal what the official scripts
// gave for that prediction, and Avg@k / Pass@k equal the mean and max of
// those values, for k = 1 and k = 4.
func TestEndToEndOfficialMetrics(t *testing.T) {
	search := testindex.Serve(t)
	qs := loadRefQuestions(t)
	for _, k := range []int{1, 4} {
		t.Run(map[int]string{1: "k1", 4: "k4"}[k], func(t *testing.T) {
			dir := t.TempDir()
			data := writeRefDataset(t, dir, qs)
			model := newRefModel(t, qs, 17, k, 0)
			cfg := refConfig(data, filepath.Join(dir, "run"), model.srv.OpenAIURL(), search, k)
			rep, err := Run(context.Background(), cfg, Options{Progress: ProgressOff})
			if err != nil {
				t.Fatal(err)
			}
			recs, err := ReadResults(filepath.Join(cfg.Out, ResultsFile))
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != len(qs)*k {
				t.Fatalf("%d records, want %d", len(recs), len(qs)*k)
			}
			if model.sawInfo != len(qs)*k {
				t.Errorf("model saw search results in %d prompts, want %d", model.sawInfo, len(qs)*k)
			}
			byID := map[string]refQuestion{}
			for _, q := range qs {
				byID[q.ID] = q
			}
			var wantAvg, wantPass [4]float64 // em, f1 (ASearcher's F1), cem, squad_f1
			for _, q := range qs {
				var sum, mx [4]float64
				for s := range k {
					v := q.Vectors[s%len(q.Vectors)]
					vals := [4]float64{v.Eval.EM, v.Eval.F1, v.Eval.CEM, v.SQuAD.F1}
					for i := range vals {
						sum[i] += vals[i]
						mx[i] = math.Max(mx[i], vals[i])
					}
				}
				for i := range sum {
					wantAvg[i] += sum[i] / float64(k) / float64(len(qs))
					wantPass[i] += mx[i] / float64(len(qs))
				}
			}
			for _, r := range recs {
				q := byID[r.ID]
				v := q.Vectors[r.Sample%len(q.Vectors)]
				if r.Prediction != v.Prediction {
					t.Fatalf("%s#%d prediction %q, want %q", r.ID, r.Sample, r.Prediction, v.Prediction)
				}
				if r.Stats.Searches != 1 || r.End != "answer" {
					t.Errorf("%s#%d: %d searches, end %s", r.ID, r.Sample, r.Stats.Searches, r.End)
				}
				if r.Meta["level"] != "easy" {
					t.Errorf("%s#%d: meta %v lost the dataset's extra field", r.ID, r.Sample, r.Meta)
				}
				got := [4]float64{r.Scores["em"], r.Scores["f1"], r.Scores["cem"], r.Scores["squad_f1"]}
				want := [4]float64{v.Eval.EM, v.Eval.F1, v.Eval.CEM, v.SQuAD.F1}
				for i := range got {
					if math.Abs(got[i]-want[i]) > 1e-9 {
						t.Errorf("%s#%d %q vs %q: metric %d = %v, official %v", r.ID, r.Sample, r.Prediction, q.Golds, i, got[i], want[i])
					}
				}
			}
			ds := rep.Datasets[0]
			names := []string{"em", "f1", "cem", "squad_f1"}
			for i, m := range names {
				s := ds.Metrics[m]
				if math.Abs(s.Avg-wantAvg[i]) > 1e-9 || math.Abs(s.Pass-wantPass[i]) > 1e-9 {
					t.Errorf("%s: Avg@%d %v Pass@%d %v, official %v %v", m, k, s.Avg, k, s.Pass, wantAvg[i], wantPass[i])
				}
				if !(s.AvgCI[0] <= s.Avg && s.Avg <= s.AvgCI[1]) {
					t.Errorf("%s: Avg %v outside its interval %v", m, s.Avg, s.AvgCI)
				}
			}
			if k == 4 && ds.Metrics[metricEM].Pass <= ds.Metrics[metricEM].Avg {
				t.Errorf("k=4: Pass@4 %v not above Avg@4 %v; the script should vary answers", ds.Metrics[metricEM].Pass, ds.Metrics[metricEM].Avg)
			}
			if wantAvg[0] <= 0.2 || wantAvg[0] >= 0.9 {
				t.Errorf("EM %v: the script should be right on some questions and wrong on others", wantAvg[0])
			}
			for _, f := range []string{ReportJSONFile, ReportMDFile, ReportHTMLFile, TrajectoriesFile, ManifestFile} {
				if st, err := os.Stat(filepath.Join(cfg.Out, f)); err != nil || st.Size() == 0 {
					t.Errorf("%s missing or empty: %v", f, err)
				}
			}
			md, _ := os.ReadFile(filepath.Join(cfg.Out, ReportMDFile))
			if !strings.Contains(string(md), "| refvec | ") {
				t.Errorf("report.md lacks the dataset row:\n%s", md)
			}
		})
	}
}
