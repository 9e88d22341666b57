package rl

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/llm"
)

// hopDataset is a GroupedDataset: question i has i%3+1 hops.
type hopDataset struct{ sliceDataset }

func (hopDataset) GroupBy() string    { return "hops" }
func (hopDataset) Group(i int) string { return strconv.Itoa(i%3 + 1) }
func hopsOf(q Question) int           { return q.Payload.(int)%3 + 1 }
func (d hopDataset) check(q Question) error {
	if want := d.Group(q.Payload.(int)); q.Group != want {
		return fmt.Errorf("question %s: group %q, want %q", q.ID, q.Group, want)
	}
	return nil
}

// TestStepRecordsByGroup runs the controller on a grouped dataset whose
// rollouts behave by group: an h-hop question makes h searches in h+1
// turns and scores 1 only with 2 hops; 3-hop questions all get reward 0,
// so dynamic filtering drops every one of their groups. Each step's
// by_group must hold exactly those numbers, count the filtered 3-hop
// rollouts too, add up to the window's trajectories, reach metrics.jsonl,
// and plots.html must draw one series per hop count.
func TestStepRecordsByGroup(t *testing.T) {
	cfg := testConfig()
	cfg.Steps, cfg.BatchGroups, cfg.GroupSize, cfg.MaxStaleness = 4, 2, 4, 1
	cfg.FilterZeroVariance = true
	ds := hopDataset{banditDataset(30)}
	bandit := banditRollout(4, 3)
	rollout := RolloutFunc(func(ctx context.Context, q Question, s llm.Sampler, sample int, seed int64) (*Sample, error) {
		if err := ds.check(q); err != nil {
			return nil, err
		}
		out, err := bandit(ctx, q, s, sample, seed)
		if err != nil {
			return nil, err
		}
		h := hopsOf(q)
		out.Searches, out.ToolCalls, out.Turns = h, h+1, h+1
		out.Score = 0
		if h == 2 {
			out.Score = 1
		}
		switch {
		case h == 3:
			out.Reward = 0
		case sample == 0:
			out.Reward = 1 // never zero variance: 1- and 2-hop groups are trained
		default:
			out.Reward = 0
		}
		return out, nil
	})
	tr := newUnigramTrainer(8)
	sm := &unigramSampler{}
	sm.load(tr.theta, 0)
	pub := SwapPublisher{Load: func(_ context.Context, path string, v int) error {
		w, _ := tr.weights(path)
		sm.load(w, v)
		return nil
	}}
	dir := t.TempDir()
	c, err := New(Options{Config: cfg, Dataset: ds, Rollout: rollout, Sampler: sm, Trainer: tr, Publisher: pub,
		RunDir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := c.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err := readRecords(filepath.Join(dir, metricsFile))
	if err != nil || len(recs) != cfg.Steps {
		t.Fatalf("metrics.jsonl: %d records, err %v", len(recs), err)
	}
	filtered, seen3 := 0, 0
	for i, r := range recs {
		if r.GroupBy != "hops" {
			t.Fatalf("step %d: group_by %q", r.Step, r.GroupBy)
		}
		if sum.Records[i].Step != r.Step {
			t.Fatalf("summary and metrics.jsonl disagree at %d", i)
		}
		n := 0
		for g, st := range r.ByGroup {
			h, err := strconv.Atoi(g)
			if err != nil || h < 1 || h > 3 {
				t.Fatalf("step %d: group %q", r.Step, g)
			}
			if st.Trajectories%cfg.GroupSize != 0 || st.Trajectories == 0 {
				t.Errorf("step %d hops %s: %d trajectories, want whole groups of %d", r.Step, g, st.Trajectories, cfg.GroupSize)
			}
			n += st.Trajectories
			wantAcc := 0.0
			if h == 2 {
				wantAcc = 1
			}
			wantRew := 1 / float64(cfg.GroupSize)
			if h == 3 {
				wantRew = 0
				seen3 += st.Trajectories
			}
			if st.SearchesMean != float64(h) || st.TurnsMean != float64(h+1) || st.ToolsMean != float64(h+1) ||
				st.Accuracy != wantAcc || st.RewardMean != wantRew {
				t.Errorf("step %d hops %s: %+v; want searches %d, turns and tools %d, accuracy %v, reward %v",
					r.Step, g, *st, h, h+1, wantAcc, wantRew)
			}
		}
		if n != r.Finished {
			t.Errorf("step %d: by_group counts %d trajectories, the window %d", r.Step, n, r.Finished)
		}
		filtered += r.Filtered
		// The trained batch never holds a 3-hop group, so its own means
		// stay within the 1- and 2-hop values.
		if r.SearchesMean < 1 || r.SearchesMean > 2 {
			t.Errorf("step %d: trained batch searches_mean %v, want within [1, 2]", r.Step, r.SearchesMean)
		}
	}
	if filtered == 0 || seen3 != filtered*cfg.GroupSize {
		t.Errorf("3-hop rollouts in by_group: %d; filtered groups %d × %d", seen3, filtered, cfg.GroupSize)
	}
	html, err := os.ReadFile(filepath.Join(dir, "plots.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Accuracy by hops", "Searches per trajectory by hops", "Turns per trajectory by hops",
		"hops 1", "hops 2", "hops 3"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("plots.html lacks %q", want)
		}
	}
	prom, err := os.ReadFile(filepath.Join(dir, "metrics.prom"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`asearcher_rl_group_searches_mean{group="2",group_by="hops"} 2`,
		`asearcher_rl_group_accuracy{group="2",group_by="hops"} 1`, `asearcher_rl_group_turns_mean{group="1",group_by="hops"} 2`} {
		if !strings.Contains(string(prom), want) {
			t.Errorf("metrics.prom lacks %s:\n%s", want, prom)
		}
	}
	for _, ext := range []string{"<script", "src=", "href="} {
		if strings.Contains(string(html), ext) {
			t.Errorf("plots.html is not self-contained: it has %q", ext)
		}
	}
}

// TestStepRecordsWithoutGroups: a plain Dataset leaves by_group out of the
// records and the group charts out of plots.html.
func TestStepRecordsWithoutGroups(t *testing.T) {
	cfg := testConfig()
	cfg.Steps = 2
	dir := t.TempDir()
	c, _, _ := newBanditController(t, cfg, dir, false)
	if _, err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, metricsFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "by_group") || strings.Contains(string(raw), "group_by") {
		t.Errorf("metrics.jsonl of an ungrouped run has group fields:\n%s", raw)
	}
	html, _ := os.ReadFile(filepath.Join(dir, "plots.html"))
	if strings.Contains(string(html), "steps pooled)") {
		t.Error("plots.html of an ungrouped run has group charts")
	}
}

// TestGroupChartsPool: each point of a per-group curve pools that group's
// rollouts over the last groupCurveSteps steps, weighted by trajectories;
// a group with no rollout in the pooled steps has no point.
func TestGroupChartsPool(t *testing.T) {
	g := func(n int, acc float64) *GroupStats { return &GroupStats{Trajectories: n, Accuracy: acc} }
	rs := []*StepRecord{
		{Step: 0, GroupBy: "hops", ByGroup: map[string]*GroupStats{"1": g(2, 1)}},
		{Step: 1, GroupBy: "hops", ByGroup: map[string]*GroupStats{"1": g(6, 0)}},
		{Step: 2, GroupBy: "hops", ByGroup: map[string]*GroupStats{"10": g(4, 0.5)}},
		{Step: 3, GroupBy: "hops"},
		{Step: 4, GroupBy: "hops"},
		{Step: 5, GroupBy: "hops"}, // step 0 leaves the pool
		{Step: 6, GroupBy: "hops"}, // and step 1
		{Step: 7, GroupBy: "hops"},
	}
	acc := groupCharts(rs)[0]
	if len(acc.Series) != 2 || acc.Series[0].Name != "hops 1" || acc.Series[1].Name != "hops 10" {
		t.Fatalf("series %+v", acc.Series)
	}
	want1 := []Point{{0, 1}, {1, 0.25}, {2, 0.25}, {3, 0.25}, {4, 0.25}, {5, 0}}
	want10 := []Point{{2, 0.5}, {3, 0.5}, {4, 0.5}, {5, 0.5}, {6, 0.5}}
	if !slices.Equal(acc.Series[0].Points, want1) || !slices.Equal(acc.Series[1].Points, want10) {
		t.Errorf("points\n%v\n%v\nwant\n%v\n%v", acc.Series[0].Points, acc.Series[1].Points, want1, want10)
	}
	if groupCharts([]*StepRecord{{Step: 0}}) != nil {
		t.Error("charts without groups")
	}
}

// TestGroupSumsExplored: exploring rollouts (rl.explore) are counted apart,
// so a group's accuracy, searches and turns are the policy's own, and get
// a chart of their own.
func TestGroupSumsExplored(t *testing.T) {
	g := groupSums{}
	g.add("2", &Sample{Score: 0, Searches: 1, Turns: 2})
	g.add("2", &Sample{Score: 0, Searches: 1, Turns: 2})
	g.add("2", &Sample{Score: 1, Searches: 2, Turns: 3, Explored: true, ForcedSearches: 1})
	g.add("1", &Sample{Score: 1, Searches: 1, Turns: 2, Explored: true})
	m := g.means()
	two := m["2"]
	if two.Trajectories != 2 || two.Accuracy != 0 || two.SearchesMean != 1 || two.Explored != 1 || two.ExploredAccuracy != 1 || two.ForcedSearchesMean != 1 {
		t.Errorf("2-hop stats %+v", two)
	}
	if one := m["1"]; one.Trajectories != 0 || one.Accuracy != 0 || one.Explored != 1 {
		t.Errorf("1-hop stats %+v (only an exploring rollout)", one)
	}
	charts := groupCharts([]*StepRecord{{Step: 0, GroupBy: "hops", ByGroup: m}})
	if len(charts) != 4 || !strings.Contains(charts[3].Title, "exploring") {
		t.Fatalf("%d charts, want 4 with the exploring rollouts' accuracy last", len(charts))
	}
	// The policy's accuracy curve has no point for hops 1 (no rollout of
	// its own), the exploring one has.
	if pts := charts[0].Series[0].Points; len(pts) != 0 {
		t.Errorf("hops 1 policy accuracy points %v, want none", pts)
	}
	if pts := charts[3].Series[0].Points; len(pts) != 1 || pts[0].Y != 1 {
		t.Errorf("hops 1 exploring accuracy points %v, want one at 1", pts)
	}
}
