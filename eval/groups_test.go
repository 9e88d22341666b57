package eval

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/internal/testindex"
	"github.com/asearcher/asearcher/reward"
)

// groupedData is a HotpotQA-like set: a type and a level per question
// (question d has no type). Each question names its answer and how many
// searches the scripted model makes before answering: Q:<answer>:<n>.
const groupedData = `{"id": "a", "question": "Which answer is expected, Q:Paris:0?", "answer": "Paris", "type": "comparison", "level": "easy"}
{"id": "b", "question": "Which answer is expected, Q:Rome:2?", "answer": "Milan", "type": "bridge", "level": "hard"}
{"id": "c", "question": "Which answer is expected, Q:Oslo:1?", "answer": "Oslo", "type": "bridge", "level": "easy"}
{"id": "d", "question": "Which answer is expected, Q:Bern:1?", "answer": "Bern", "level": "hard"}
`

var scriptedQuestion = regexp.MustCompile(`Q:(\w+):(\d)`)

// searchingModel searches as many times as the question says, then
// answers with the name it gives.
func searchingModel(t *testing.T) *fakellm.Server {
	srv := fakellm.New(fakellm.Options{Handler: func(c fakellm.Call) fakellm.Reply {
		m := scriptedQuestion.FindStringSubmatch(c.Prompt)
		if m == nil {
			return fakellm.Reply{Status: 400, Body: `{"error":{"message":"no scripted question"}}`}
		}
		n, _ := strconv.Atoi(m[2])
		// The prompt names the tag once; each search result adds one.
		if strings.Count(c.Prompt, "<information>")-1 < n {
			return fakellm.Reply{Text: "<think>look</think>\n<search> capital city </search>"}
		}
		return fakellm.Reply{Text: "<think>found</think>\n<answer> " + m[1] + " </answer>"}
	}})
	t.Cleanup(srv.Close)
	return srv
}

func groupedConfig(t *testing.T, model string) Config {
	cfg := smallConfig(t, model)
	cfg.Data = []string{writeFile(t, filepath.Join(t.TempDir(), "hotpot.jsonl"), groupedData)}
	cfg.Search = testindex.Serve(t)
	return cfg
}

func breakdownRow(t *testing.T, b Breakdown, ds, group string) DatasetReport {
	t.Helper()
	for _, r := range b.Rows {
		if r.Name == ds && r.Group == group {
			return r
		}
	}
	t.Fatalf("breakdown by %s has no row %s/%s: %+v", b.Field, ds, group, b.Rows)
	return DatasetReport{}
}

// TestGroupByThroughRun evaluates a HotpotQA-like set with --group-by
// type,level on a scripted model and checks the breakdowns against values
// computed by hand: every metric's Avg@k, and turns and searches per
// trajectory as the trajectories recorded them.
func TestGroupByThroughRun(t *testing.T) {
	model := searchingModel(t)
	cfg := groupedConfig(t, model.OpenAIURL())
	cfg.GroupBy = []string{"type", "level"}
	rep, err := Run(context.Background(), cfg, Options{Progress: ProgressOff})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Breakdowns) != 2 || rep.Breakdowns[0].Field != "type" || rep.Breakdowns[1].Field != "level" {
		t.Fatalf("breakdowns %+v", rep.Breakdowns)
	}
	byType, byLevel := rep.Breakdowns[0], rep.Breakdowns[1]
	if len(byType.Rows) != 3 || len(byLevel.Rows) != 2 {
		t.Fatalf("%d type rows, %d level rows; want 3 (bridge, comparison, none) and 2", len(byType.Rows), len(byLevel.Rows))
	}
	// Both samples of a question behave alike: a answers at once (right),
	// b searches twice (wrong: gold Milan), c and d search once (right).
	// Turns are model calls: searches + 1.
	for _, tc := range []struct {
		b                          Breakdown
		group                      string
		questions                  int
		em, f1, turns, searches    float64
		wantAccesses, wantAnswered float64
	}{
		{byType, "bridge", 2, 0.5, 0.5, 2.5, 1.5, 0, 1},
		{byType, "comparison", 1, 1, 1, 1, 0, 0, 1},
		{byType, NoGroup, 1, 1, 1, 2, 1, 0, 1},
		{byLevel, "easy", 2, 1, 1, 1.5, 0.5, 0, 1},
		{byLevel, "hard", 2, 0.5, 0.5, 2.5, 1.5, 0, 1},
	} {
		r := breakdownRow(t, tc.b, "hotpot", tc.group)
		got := []float64{float64(r.Questions), float64(r.Samples), r.Metrics[metricEM].Avg, r.Metrics[MetricF1].Avg,
			r.Means.Turns, r.Means.Searches, r.Means.Accesses, r.Answered}
		want := []float64{float64(tc.questions), float64(2 * tc.questions), tc.em, tc.f1, tc.turns, tc.searches, tc.wantAccesses, tc.wantAnswered}
		for i := range got {
			if math.Abs(got[i]-want[i]) > 1e-9 {
				t.Errorf("%s=%s: [questions samples em f1 turns searches accesses answered] = %v, want %v", tc.b.Field, tc.group, got, want)
				break
			}
		}
		// Every registered report metric is there, with an interval
		// around its value.
		for _, m := range reward.ReportMetrics() {
			s, ok := r.Metrics[m]
			if !ok || s.AvgCI[0] > s.Avg+1e-12 || s.AvgCI[1] < s.Avg-1e-12 {
				t.Errorf("%s=%s: metric %s %+v", tc.b.Field, tc.group, m, s)
			}
		}
	}
	// The values come in grouporder and the file agrees with the return.
	var groups []string
	for _, r := range byType.Rows {
		groups = append(groups, r.Group)
	}
	if !slices.Equal(groups, []string{NoGroup, "bridge", "comparison"}) {
		t.Errorf("type rows in order %q", groups)
	}
	raw, err := os.ReadFile(filepath.Join(cfg.Out, ReportJSONFile))
	if err != nil {
		t.Fatal(err)
	}
	var fromFile Report
	if err := json.Unmarshal(raw, &fromFile); err != nil || len(fromFile.Breakdowns) != 2 ||
		fromFile.Breakdowns[0].Rows[1].Means.Searches != byType.Rows[1].Means.Searches {
		t.Fatalf("report.json breakdowns: %v %+v", err, fromFile.Breakdowns)
	}
	md, _ := os.ReadFile(filepath.Join(cfg.Out, ReportMDFile))
	for _, want := range []string{"## By type", "## By level", "| hotpot | bridge | 2 | 4 | 50.0 [", " | 2.50 | 1.50 | 0.00 | 100.0% |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	page, _ := os.ReadFile(filepath.Join(cfg.Out, ReportHTMLFile))
	if !strings.Contains(string(page), `"breakdowns":[{"field":"type"`) || !strings.Contains(string(page), "rep.breakdowns") {
		t.Error("report.html lacks the breakdowns")
	}

	// eval report DIR redoes them from the run's own group_by, or from
	// another field, or none.
	again, err := WriteReports(cfg.Out)
	if err != nil || len(again.Breakdowns) != 2 {
		t.Fatalf("WriteReports: %v, %d breakdowns", err, len(again.Breakdowns))
	}
	if r, err := WriteReportsGroupedBy(cfg.Out, []string{"level"}); err != nil || len(r.Breakdowns) != 1 {
		t.Fatalf("WriteReportsGroupedBy(level): %v", err)
	}
	if r, err := WriteReportsGroupedBy(cfg.Out, nil); err != nil || len(r.Breakdowns) != 0 {
		t.Fatalf("WriteReportsGroupedBy(nil): %v", err)
	}
	if _, err := WriteReportsGroupedBy(cfg.Out, []string{"hops"}); err == nil || !strings.Contains(err.Error(), "level, type") {
		t.Fatalf("a field no result has: %v", err)
	}
}

// TestGroupByUnknownField: a field that no question has stops eval before
// any model call, naming the fields there are.
func TestGroupByUnknownField(t *testing.T) {
	model := searchingModel(t)
	cfg := groupedConfig(t, model.OpenAIURL())
	cfg.GroupBy = []string{"type", "hops"}
	_, err := Run(context.Background(), cfg, Options{Progress: ProgressOff})
	if err == nil || !strings.Contains(err.Error(), `"hops"`) || !strings.Contains(err.Error(), "fields present: level, type") {
		t.Fatalf("err = %v", err)
	}
	if n := len(model.Calls()); n != 0 {
		t.Fatalf("%d model calls before the refusal", n)
	}
	cfg.GroupBy = []string{"type"}
	cfg.Data = []string{writeFile(t, filepath.Join(t.TempDir(), "plain.jsonl"), smallData)}
	_, err = Run(context.Background(), cfg, Options{Progress: ProgressOff})
	if err == nil || !strings.Contains(err.Error(), "no fields beyond id, question and answers") {
		t.Fatalf("err = %v", err)
	}
}

// TestBuildBreakdowns: values of any JSON type group by their text (2, 2.0
// as read back and json.Number "2" alike), dotted fields reach nested
// objects, and with two data sets the overall row of a value is the mean
// over the data sets that have it.
func TestBuildBreakdowns(t *testing.T) {
	withMeta := func(r Record, meta map[string]any) Record { r.Meta = meta; return r }
	recs := []Record{
		withMeta(rec("a", "1", 0, 1, 2), map[string]any{"hops": 2.0, "m": map[string]any{"p": "x"}}),
		withMeta(rec("a", "1", 1, 0, 2), map[string]any{"hops": 2.0, "m": map[string]any{"p": "x"}}),
		withMeta(rec("a", "2", 0, 1, 1), map[string]any{"hops": json.Number("1"), "m": map[string]any{"p": "y"}}),
		withMeta(rec("a", "3", 0, 0, 3), map[string]any{"hops": 2}),
		withMeta(rec("b", "x", 0, 1, 5), map[string]any{"hops": json.Number("2")}),
	}
	bs, err := BuildBreakdowns(recs, []string{"hops", "m.p"}, 200)
	if err != nil {
		t.Fatal(err)
	}
	hops := bs[0]
	type row struct {
		ds, group string
		questions int
		em, turns float64
	}
	var got []row
	for _, r := range hops.Rows {
		got = append(got, row{r.Name, r.Group, r.Questions, r.Metrics[metricEM].Avg, r.Means.Turns})
	}
	want := []row{
		{"a", "1", 1, 1, 1},
		{"a", "2", 2, 0.25, 7.0 / 3}, // questions 1 (0.5) and 3 (0); turns 2, 2, 3 per sample
		{"b", "2", 1, 1, 5},
		{"overall", "1", 1, 1, 1},
		{"overall", "2", 3, 0.625, 3}, // (0.25 + 1) / 2; turns 2, 2, 3 and 5 per sample
	}
	if len(got) != len(want) {
		t.Fatalf("rows %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].ds != want[i].ds || got[i].group != want[i].group || got[i].questions != want[i].questions ||
			math.Abs(got[i].em-want[i].em) > 1e-9 || math.Abs(got[i].turns-want[i].turns) > 1e-9 {
			t.Errorf("row %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	var nested []string
	for _, r := range bs[1].Rows {
		nested = append(nested, r.Name+"/"+r.Group)
	}
	if !slices.Equal(nested, []string{"a/" + NoGroup, "a/x", "a/y", "b/" + NoGroup, "overall/" + NoGroup, "overall/x", "overall/y"}) {
		t.Errorf("m.p rows %q", nested)
	}
	if _, err := BuildBreakdowns(recs, []string{"m.q"}, 10); err == nil || !strings.Contains(err.Error(), "fields present: hops, m, m.p") {
		t.Errorf("unknown nested field: %v", err)
	}
	for _, tc := range []struct {
		v    any
		want string
		ok   bool
	}{
		{"bridge", "bridge", true}, {2.0, "2", true}, {2.5, "2.5", true}, {json.Number("3"), "3", true},
		{7, "7", true}, {int64(7), "7", true}, {true, "true", true}, {nil, "", false},
		{[]any{"a", 1.0}, `["a",1]`, true},
	} {
		got, ok := MetaValue(map[string]any{"f": tc.v}, "f")
		if got != tc.want || ok != tc.ok {
			t.Errorf("MetaValue(%#v) = %q, %v; want %q, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := MetaValue(map[string]any{"f": "x"}, "f.g"); ok {
		t.Error("a field inside a string")
	}
}

// TestCompareByGroup compares two runs of the grouped set per type: the
// gold agent against the scripted model, with paired intervals per group
// and the behaviour changes (the gold agent never searches).
func TestCompareByGroup(t *testing.T) {
	model := searchingModel(t)
	a := groupedConfig(t, model.OpenAIURL())
	if _, err := Run(context.Background(), a, Options{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	b := a
	b.Out = filepath.Join(t.TempDir(), "gold")
	b.Agent = "gold"
	reg := agent.NewRegistry()
	reg.Register("gold", func(agent.Options) (agent.Workflow, error) { return goldAgent{}, nil })
	if _, err := Run(context.Background(), b, Options{Progress: ProgressOff, Registry: reg}); err != nil {
		t.Fatal(err)
	}
	ds, err := CompareBy(a.Out, b.Out, metricEM, "type", 300)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 3 {
		t.Fatalf("deltas %+v", ds)
	}
	byGroup := map[string]Delta{}
	for _, d := range ds {
		byGroup[d.Group] = d
	}
	bridge := byGroup["bridge"]
	// A: b wrong, c right; B: both right. Searches A: 2 and 1, B: 0.
	if bridge.Questions != 2 || bridge.A != 0.5 || bridge.B != 1 || bridge.Delta != 0.5 ||
		bridge.CI[0] < 0 || bridge.CI[1] > 1 || bridge.Searches.A != 1.5 || bridge.Searches.B != 0 ||
		bridge.Searches.Delta != -1.5 || bridge.Searches.CI[0] < -2 || bridge.Searches.CI[1] > -1 {
		t.Errorf("bridge %+v", bridge)
	}
	if c := byGroup["comparison"]; c.Questions != 1 || c.Delta != 0 || c.CI != [2]float64{0, 0} || c.Turns.A != 1 {
		t.Errorf("comparison %+v", c)
	}
	if _, ok := byGroup[NoGroup]; !ok {
		t.Errorf("no delta for questions without a type: %+v", ds)
	}
	var out strings.Builder
	WriteCompare(&out, a.Out, b.Out, "type", ds)
	for _, want := range []string{"hotpot type=bridge", "+50.0", "1.50 → 0.00 (-1.50 ["} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("compare table lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := CompareBy(a.Out, b.Out, metricEM, "hops", 10); err == nil || !strings.Contains(err.Error(), "level, type") {
		t.Errorf("compare by a field no record has: %v", err)
	}
	// Ungrouped, the same runs give one delta over all four questions.
	all, err := Compare(a.Out, b.Out, metricEM, 300)
	if err != nil || len(all) != 1 || all[0].Questions != 4 || all[0].Group != "" || all[0].Delta != 0.25 {
		t.Fatalf("ungrouped %+v %v", all, err)
	}
}
