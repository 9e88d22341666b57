package recipe

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/dataset"
	"github.com/asearcher/asearcher/eval"
	"github.com/asearcher/asearcher/internal/testmodel"
	"github.com/asearcher/asearcher/reward"
	"github.com/asearcher/asearcher/rl"
	"github.com/asearcher/asearcher/tokenizer"
	"github.com/asearcher/asearcher/tools"
)

// miniDemoConfig is the train demo shrunk to seconds: a handful of people,
// a few warm-up steps and two RL steps.
func miniDemoConfig() DemoConfig {
	c := QuickDemoConfig()
	c.World = DemoWorldConfig{People: 6, TrainWorlds: 2, EvalWorlds: 1, Relations: []string{"city"}}
	c.Model.Vocab = 320
	c.Agent.MaxTurns = 2
	c.Warmup.Steps, c.Warmup.BatchSize = 12, 4
	c.Eval = DemoEvalConfig{Samples: 1, Temperature: 1, Bootstrap: 200, Concurrency: 4}
	c.RL.Steps, c.RL.BatchGroups, c.RL.GroupSize = 2, 2, 2
	// A barely trained model may give a whole group the same reward; the
	// test must not wait for a group with variance.
	c.RL.FilterZeroVariance = false
	c.RL.CheckpointEvery = 1
	return c
}

// TestTrainDemoEndToEnd runs the whole demo in miniature through RunDemo
// (worlds and their BM25 indexes, tokenizer and model init, warm-up on
// demonstrations, async RL with the real agent, held-out evaluation) and
// checks the run directory; then resumes the finished run, which redoes
// neither warm-up nor RL.
func TestTrainDemoEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "run")
	log := slog.New(slog.DiscardHandler)
	rep, err := RunDemo(ctx, DemoOptions{Config: miniDemoConfig(), Out: out, Progress: ProgressOff, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	var got DemoReport
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if got.HeldOutQuestions != 6 || got.RLSteps != 2 || got.Warmup == nil || got.Warmup.Demonstrations != 12 {
		t.Fatalf("report %+v", got)
	}
	for _, v := range []float64{got.Before, got.After, got.SearchRateBefore, got.SearchRateAfter} {
		if v < 0 || v > 1 {
			t.Fatalf("rate %v out of [0, 1] in %+v", v, got)
		}
	}
	if got.Lift != got.After-got.Before || got.LiftCI[0] > got.Lift || got.LiftCI[1] < got.Lift {
		t.Fatalf("lift %v outside its CI %v", got.Lift, got.LiftCI)
	}
	if rep.After != got.After {
		t.Fatalf("returned report %+v differs from report.json", rep)
	}
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil || !strings.Contains(string(md), "Lift:") {
		t.Fatalf("report.md: %v\n%s", err, md)
	}
	for _, f := range []string{"config.yaml", "metrics.jsonl", "plots.html", "eval_before.json", "eval_after.json",
		"eval-before/results.jsonl", "eval-after/results.jsonl", "eval-after/report.json", "checkpoints/latest", "warmup/model/model.safetensors", "model_init/tokenizer.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("run directory lacks %s", f)
		}
	}
	recs, err := rl.ReadStepRecords(filepath.Join(out, "metrics.jsonl"))
	if err != nil || len(recs) != 2 {
		t.Fatalf("%d metric records: %v", len(recs), err)
	}
	checkHopMetrics(t, out, &got, recs)

	// A second run into the same directory is refused; a resume finishes
	// without redoing the warm-up.
	if _, err := RunDemo(ctx, DemoOptions{Config: miniDemoConfig(), Out: out, Progress: ProgressOff, Logger: log}); err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("rerun into a finished run: %v", err)
	}
	warm := filepath.Join(out, "warmup", "warmup.json")
	st0, _ := os.Stat(warm)
	rep2, err := RunDemo(ctx, DemoOptions{Out: out, Resume: true, Progress: ProgressOff, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	st1, _ := os.Stat(warm)
	if !st1.ModTime().Equal(st0.ModTime()) || rep2.Before != got.Before || rep2.RLSteps != 2 {
		t.Fatalf("resume redid work: warm-up %v→%v, report %+v", st0.ModTime(), st1.ModTime(), rep2)
	}
}

func TestDemoConfigStrict(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, yaml, err string
	}{
		{"ok", "warmup: {steps: 5}\nrl: {steps: 3}\n", ""},
		{"unknown field", "warmup: {stepz: 5}\n", "stepz"},
		{"bad value", "world: {people: 1}\n", "world.people"},
		{"bad rl", "rl: {group_size: 0}\n", "rl.group_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := LoadDemoConfig(p)
			if tc.err == "" {
				if err != nil || c.Warmup.Steps != 5 || c.RL.Steps != 3 || c.World.People != DefaultDemoConfig().World.People {
					t.Fatalf("%v %+v", err, c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want it to mention %q", err, tc.err)
			}
		})
	}
}

func TestPairedBootstrapCI(t *testing.T) {
	for _, tc := range []struct {
		name          string
		before, after []float64
		lo, hi        float64 // bounds the interval must lie within
		err           bool
	}{
		{"no change", []float64{0, 1, 0.5}, []float64{0, 1, 0.5}, 0, 0, false},
		{"constant lift", []float64{0, 0, 0, 0}, []float64{1, 1, 1, 1}, 1, 1, false},
		{"mixed", []float64{0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, []float64{1, 1, 1, 1, 1, 0, 0, 0, 0, 0}, 0, 1, false},
		{"lengths differ", []float64{0}, []float64{0, 1}, 0, 0, true},
		{"empty", nil, nil, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ci, err := PairedBootstrapCI(tc.before, tc.after, 1000, 1)
			if tc.err {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil || ci[0] < tc.lo || ci[1] > tc.hi || ci[0] > ci[1] {
				t.Fatalf("ci %v err %v, want within [%v, %v]", ci, err, tc.lo, tc.hi)
			}
		})
	}
}

// TestTrainDemoInterruptedRL: a run cancelled in the middle of RL fails
// with its progress kept; resuming it skips warm-up and the first
// evaluation, continues RL from the checkpoint, and ends with every step's
// metrics written exactly once.
func TestTrainDemoInterruptedRL(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	log := slog.New(slog.DiscardHandler)
	cfg := miniDemoConfig()
	cfg.RL.Steps = 4
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := RunDemo(ctx, DemoOptions{Config: cfg, Out: out, Progress: ProgressOff, Logger: log,
		OnStep: func(r *rl.StepRecord) {
			if r.Step == 1 {
				cancel()
			}
		}})
	if err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("interrupted run: %v", err)
	}
	before, err := os.ReadFile(filepath.Join(out, "eval_before.json"))
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel2()
	var resumedAt = -1
	rep, err := RunDemo(ctx2, DemoOptions{Out: out, Resume: true, Progress: ProgressOff, Logger: log,
		OnStep: func(r *rl.StepRecord) {
			if resumedAt < 0 {
				resumedAt = r.Step
			}
			// Tokens carry the controller's versions after a resume too.
			for st := range r.SampleStaleness {
				if st < 0 || st > cfg.RL.MaxStaleness {
					t.Errorf("step %d trained a sample of staleness %d (η = %d)", r.Step, st, cfg.RL.MaxStaleness)
				}
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(filepath.Join(out, "eval_before.json"))
	if string(again) != string(before) {
		t.Fatal("resume re-ran the before-RL evaluation")
	}
	if resumedAt != 2 || rep.RLSteps != 4 {
		t.Fatalf("resumed at step %d, %d steps in all; want step 2 (checkpoint after step 1) and 4", resumedAt, rep.RLSteps)
	}
	recs, err := rl.ReadStepRecords(filepath.Join(out, "metrics.jsonl"))
	if err != nil || len(recs) != 4 {
		t.Fatalf("%d records: %v", len(recs), err)
	}
	for i, r := range recs {
		if r.Step != i {
			t.Fatalf("record %d is step %d", i, r.Step)
		}
	}
}

// TestDemoConfigDocumented: the YAML block of docs/configuration.md's
// training section decodes strictly and is exactly the default.
func TestDemoConfigDocumented(t *testing.T) {
	raw, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i := strings.Index(doc, "## Training demo (`asearcher train")
	if i < 0 {
		t.Fatal("docs/configuration.md has no training demo section")
	}
	doc = doc[i:]
	start := strings.Index(doc, "```yaml\n")
	end := strings.Index(doc[start+8:], "```")
	if start < 0 || end < 0 {
		t.Fatal("no yaml block in the training demo section")
	}
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(doc[start+8:start+8+end]), 0o644); err != nil {
		t.Fatal(err)
	}
	raw, err = os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// Decoded over the zero config, so every field must be in the block
	// (rl: only what differs from ASearcher's recipe).
	got := DemoConfig{RL: rl.DefaultConfig()}
	if err := rl.DecodeYAML(strings.NewReader(string(raw)), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, QuickDemoConfig()) {
		t.Fatalf("documented config\n%+v\ndiffers from the quick preset\n%+v", got, QuickDemoConfig())
	}
}

// TestTrainDemoLearns runs a full preset and checks its learning goal.
// ASEARCHER_TRAIN_LEARN=1 runs the default preset (multihop), =quick or
// =multihop that one. The quick preset (about two minutes on 2 cores) must meet issue 8's
// goal: held-out accuracy up ≥ 0.10 with a CI above zero. The multihop one
// (up to 15 minutes) must meet issue 16's: held-out 2-hop accuracy up
// ≥ 0.25 with its CI above zero, searches on 2-hop questions up ≥ 0.8,
// 1-hop accuracy not worse; it does not yet (docs/benchmarks.md, issue 16),
// and this test says so by failing.
func TestTrainDemoLearns(t *testing.T) {
	which := os.Getenv("ASEARCHER_TRAIN_LEARN")
	if which == "" {
		t.Skip("set ASEARCHER_TRAIN_LEARN=1 (the default preset), quick or multihop to run a full demo")
	}
	if which == "1" {
		which = DefaultPreset
	}
	for _, preset := range DemoPresets() {
		if which != preset {
			continue
		}
		t.Run(preset, func(t *testing.T) {
			cfg, err := DemoPreset(preset)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := RunDemo(context.Background(), DemoOptions{Config: cfg, Out: filepath.Join(t.TempDir(), "run"),
				Progress: ProgressOff, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("held-out %.3f → %.3f, lift %+.3f, CI %v, wall %.0f s", rep.Before, rep.After, rep.Lift, rep.LiftCI, rep.WallSeconds)
			for _, h := range rep.ByHops {
				t.Logf("%d-hop: accuracy %.3f → %.3f CI %v, searches %.2f → %.2f", h.Hops,
					h.Accuracy.Before, h.Accuracy.After, h.Accuracy.CI, h.Searches.Before, h.Searches.After)
			}
			if rep.Goal == GoalLift {
				if !rep.GoalMet {
					t.Fatalf("lift %+.3f with CI %v does not meet lift ≥ 0.10 with a CI above zero", rep.Lift, rep.LiftCI)
				}
				return
			}
			if g := rep.MultiHopGoal; g == nil || !g.Met || rep.Goal != GoalMultiHop || !rep.GoalMet {
				t.Fatalf("issue 16's goal not met: %+v", g)
			}
		})
	}
}

// TestTrainDemoNoVarianceStops: a model that never succeeds (no warm-up)
// gives every group the same reward; with filtering on, the run stops with
// an error that says what to change instead of waiting forever.
func TestTrainDemoNoVarianceStops(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := miniDemoConfig()
	cfg.Warmup.Steps = 0
	cfg.RL.FilterZeroVariance = true
	cfg.RL.BatchGroups = 1
	_, err := RunDemo(ctx, DemoOptions{Config: cfg, Out: filepath.Join(t.TempDir(), "run"), Progress: ProgressOff,
		Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "warmup.steps") || ctx.Err() != nil {
		t.Fatalf("run with no reward variance: %v (ctx %v)", err, ctx.Err())
	}
}

// TestEvalResultFromRecords: the demo's summary of eval records scores an
// unanswered trajectory 0 whatever its text (rl.ExactMatch), averages per
// question in question order, and refuses missing or stray records.
func TestEvalResultFromRecords(t *testing.T) {
	qs := []demoQuestion{{q: dataset.WorldQuestion{ID: "a", Hops: 1}}, {q: dataset.WorldQuestion{ID: "b", Hops: 2}}}
	rec := func(id string, sample int, answered bool, em float64, searches int) eval.Record {
		return eval.Record{ID: id, Sample: sample, Answered: answered, Scores: reward.Scores{"em": em},
			Stats: agent.Stats{Searches: searches, Turns: searches + 1}}
	}
	recs := []eval.Record{ // out of order, as concurrent workers write them
		rec("b", 1, true, 1, 2), rec("a", 0, true, 1, 0), rec("b", 0, false, 1, 1), rec("a", 1, true, 0, 0),
	}
	r, err := evalResult(qs, 2, recs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Questions, []string{"a", "b"}) || !slices.Equal(r.Scores, []float64{0.5, 0.5}) || r.Accuracy != 0.5 {
		t.Fatalf("scores %v %v accuracy %v; want [a b] [0.5 0.5] 0.5 (b's unanswered sample scores 0)", r.Questions, r.Scores, r.Accuracy)
	}
	if r.SearchRate != 0.5 || r.AnsweredRate != 0.75 || r.ToolCalls != 0.75 {
		t.Fatalf("rates %+v", r)
	}
	// Per question, in question order: a searched 0 and 0 times, b 2 and 1.
	if !slices.Equal(r.Hops, []int{1, 2}) || !slices.Equal(r.Searches, []float64{0, 1.5}) || !slices.Equal(r.Turns, []float64{1, 2.5}) {
		t.Fatalf("per question: hops %v searches %v turns %v; want [1 2] [0 1.5] [1 2.5]", r.Hops, r.Searches, r.Turns)
	}
	for name, bad := range map[string][]eval.Record{
		"missing":   recs[:3],
		"duplicate": append(slices.Clone(recs), recs[0]),
		"stray":     append(slices.Clone(recs[:3]), rec("c", 0, true, 1, 0)),
		"sample":    append(slices.Clone(recs[:3]), rec("a", 2, true, 1, 0)),
	} {
		if _, err := evalResult(qs, 2, bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// checkHopMetrics checks the per-hop measurements of a finished demo run:
// report.json's by_hops covers every held-out question once and agrees
// with the per-question results in eval_before.json and eval_after.json;
// every metrics.jsonl row is grouped by hops and together they count every
// rollout; plots.html draws the per-hop series; the eval records carry the
// hop count so that eval-after/ reports by hops.
func checkHopMetrics(t *testing.T, out string, rep *DemoReport, recs []*rl.StepRecord) {
	t.Helper()
	var before, after EvalResult
	if err := readJSON(filepath.Join(out, demoBeforeFile), &before); err != nil {
		t.Fatal(err)
	}
	if err := readJSON(filepath.Join(out, demoAfterFile), &after); err != nil {
		t.Fatal(err)
	}
	if len(rep.ByHops) == 0 {
		t.Fatal("report.json has no by_hops")
	}
	n := 0
	for _, h := range rep.ByHops {
		var acc, searches []float64
		for i, hq := range after.Hops {
			if hq == h.Hops {
				acc = append(acc, after.Scores[i])
				searches = append(searches, after.Searches[i])
			}
		}
		if h.Questions != len(acc) || h.Accuracy.After != mean(acc) || h.Searches.After != mean(searches) {
			t.Errorf("hops %d: %+v; want %d questions, accuracy after %v, searches after %v", h.Hops, h, len(acc), mean(acc), mean(searches))
		}
		if c := h.Accuracy; c.CI[0] > c.Change || c.CI[1] < c.Change || c.Change != c.After-c.Before {
			t.Errorf("hops %d: accuracy change %v outside its CI %v", h.Hops, c.Change, c.CI)
		}
		n += h.Questions
	}
	if n != rep.HeldOutQuestions {
		t.Errorf("by_hops covers %d questions of %d", n, rep.HeldOutQuestions)
	}
	finished, grouped := 0, 0
	for _, r := range recs {
		if r.GroupBy != "hops" {
			t.Errorf("step %d: group_by %q, want hops", r.Step, r.GroupBy)
		}
		finished += r.Finished
		for g, st := range r.ByGroup {
			if h, err := strconv.Atoi(g); err != nil || h < 1 || h > 3 {
				t.Errorf("step %d: group %q is no hop count", r.Step, g)
			}
			grouped += st.Trajectories
		}
	}
	if finished == 0 || grouped != finished {
		t.Errorf("by_group counts %d trajectories, the windows %d", grouped, finished)
	}
	html, err := os.ReadFile(filepath.Join(out, "plots.html"))
	if err != nil || !strings.Contains(string(html), "Searches per trajectory by hops") || !strings.Contains(string(html), "hops 1") {
		t.Errorf("plots.html lacks the per-hop curves (err %v)", err)
	}
	er, err := eval.ReadResults(filepath.Join(out, "eval-after", eval.ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	for i := range er {
		if _, ok := er[i].Meta["hops"]; !ok {
			t.Fatalf("eval record %s has no meta.hops", er[i].ID)
		}
	}
	var evalRep eval.Report
	if err := readJSON(filepath.Join(out, "eval-after", eval.ReportJSONFile), &evalRep); err != nil {
		t.Fatal(err)
	}
	if len(evalRep.Breakdowns) != 1 || evalRep.Breakdowns[0].Field != "hops" || len(evalRep.Breakdowns[0].Rows) != len(rep.ByHops) {
		t.Errorf("eval-after/report.json breakdowns %+v; want one by hops with %d rows", evalRep.Breakdowns, len(rep.ByHops))
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	if !strings.Contains(string(md), "By hop count") {
		t.Errorf("report.md lacks the hop table:\n%s", md)
	}
}

// TestByHops checks the per-hop comparison on hand-made results: the
// means per hop count, the paired interval (a constant change has a
// zero-width interval at that change) and issue 16's goal.
func TestByHops(t *testing.T) {
	before := &EvalResult{Questions: []string{"a", "b", "c", "d"}, Hops: []int{2, 1, 2, 1},
		Scores: []float64{0, 1, 0.5, 1}, Searches: []float64{1, 1, 1, 1}, Turns: []float64{2, 2, 2, 2}}
	after := &EvalResult{Questions: before.Questions, Hops: before.Hops,
		Scores: []float64{1, 1, 1, 0.5}, Searches: []float64{2, 1, 2, 1}, Turns: []float64{3, 2, 3.5, 2}}
	hs := byHops(before, after, 500, 7)
	if len(hs) != 2 || hs[0].Hops != 1 || hs[1].Hops != 2 || hs[0].Questions != 2 || hs[1].Questions != 2 {
		t.Fatalf("groups %+v", hs)
	}
	one, two := hs[0], hs[1]
	if one.Accuracy.Before != 1 || one.Accuracy.After != 0.75 || one.Accuracy.Change != -0.25 {
		t.Errorf("1-hop accuracy %+v", one.Accuracy)
	}
	if two.Accuracy.Before != 0.25 || two.Accuracy.After != 1 || two.Accuracy.Change != 0.75 {
		t.Errorf("2-hop accuracy %+v", two.Accuracy)
	}
	if two.Searches.Change != 1 || two.Searches.CI != [2]float64{1, 1} {
		t.Errorf("2-hop searches %+v; every question +1, so the CI is [1, 1]", two.Searches)
	}
	if two.Turns.Before != 2 || two.Turns.After != 3.25 {
		t.Errorf("2-hop turns %+v", two.Turns)
	}
	// 2-hop changes are 1 and 0.5: every resample lies in [0.5, 1].
	if ci := two.Accuracy.CI; ci[0] < 0.5 || ci[1] > 1 {
		t.Errorf("2-hop accuracy CI %v outside [0.5, 1]", ci)
	}
	lines := (&DemoReport{ByHops: hs}).HopLines()
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "2-hop (2 questions): accuracy 0.250 → 1.000 (+0.750, 95% CI [+0.") ||
		!strings.Contains(lines[1], "searches per trajectory 1.00 → 2.00 (+1.00 [+1.00, +1.00])") {
		t.Errorf("hop lines %q", lines)
	}
	g := multiHopGoal(hs)
	// 1-hop changes are 0 and −0.5: the CI reaches 0, so not shown worse.
	if g == nil || !g.TwoHopLift || !g.TwoHopSearches || !g.OneHopNotWorse || !g.Met {
		t.Errorf("goal %+v, want all met", g)
	}
	after.Scores[1] = 0 // 1-hop changes −1 and −0.5: worse for sure
	if g := multiHopGoal(byHops(before, after, 500, 7)); g.OneHopNotWorse || g.Met {
		t.Errorf("goal %+v with 1-hop accuracy down on every question", g)
	}
	// Results without per-question hops (written before they existed).
	if hs := byHops(&EvalResult{Questions: before.Questions, Scores: before.Scores}, after, 500, 7); hs != nil {
		t.Errorf("by_hops from a result without hops: %+v", hs)
	}
	if g := multiHopGoal(hs[1:]); g != nil {
		t.Errorf("goal without 1-hop questions: %+v", g)
	}
}

// TestWarmupNeverChainsSearches: no warm-up demonstration of the multihop
// preset contains a search whose query was read from an earlier
// observation (a name the question does not contain): chaining searches is
// what RL has to discover. Multi-hop questions are demonstrated only as
// bridged 1-search questions (their first hop stated in the question) or
// not at all, and retries (a second search after an observation) do occur,
// with the question's name as their query.
func TestWarmupNeverChainsSearches(t *testing.T) {
	ctx := context.Background()
	for _, retry := range []float64{MultiHopDemoConfig().Warmup.RetryFraction, 1} {
		cfg := MultiHopDemoConfig()
		cfg.World.TrainWorlds = 4
		cfg.Warmup.RetryFraction = retry
		// The test's tokenizer is byte-level: a reply takes more tokens
		// than with the demo's own BPE.
		cfg.Agent.MaxCallToken = 64
		ws, err := buildWorlds(ctx, t.TempDir(), &cfg, setTrain, cfg.World.TrainWorlds)
		if err != nil {
			t.Fatal(err)
		}
		defer closeWorlds(ws)
		_, _, tok := testmodel.Tiny(t, 1)
		da, err := newDemoAgent(&cfg, tok, nil)
		if err != nil {
			t.Fatal(err)
		}
		trajs, st, err := warmupDemonstrations(ctx, &cfg, da, ws, rand.New(rand.NewPCG(1, 2)))
		if err != nil {
			t.Fatal(err)
		}
		multi := 0
		for _, dq := range worldQuestions(ws) {
			if dq.q.Hops > 1 {
				multi++
			}
		}
		if multi == 0 || st.MultiHopSkipped+st.Bridged != multi || st.Demonstrations+st.MultiHopSkipped != len(worldQuestions(ws)) {
			t.Fatalf("retry %g: %d multi-hop questions, %d skipped, %d bridged, %d demonstrations", retry, multi, st.MultiHopSkipped,
				st.Bridged, st.Demonstrations)
		}
		if st.Retries == 0 || st.Bridged == 0 {
			t.Fatalf("retry %g: %d retries and %d bridged demonstrations; want some of each", retry, st.Retries, st.Bridged)
		}
		seconds := 0
		for _, tr := range trajs {
			var seen []string
			for i, tc := range tr.Tools {
				if tc.Name != "search" {
					t.Fatalf("%s: tool %s", tr.TaskID, tc.Name)
				}
				for _, obs := range seen {
					if strings.Contains(obs, tc.Arg) && !strings.Contains(tr.Question, tc.Arg) {
						t.Fatalf("%s: search %d %q comes from an earlier observation %q", tr.TaskID, i, tc.Arg, obs)
					}
				}
				if i > 0 {
					seconds++
					if !strings.Contains(tr.Question, tc.Arg) {
						t.Fatalf("%s: search %d %q is not the question's name (%q)", tr.TaskID, i, tc.Arg, tr.Question)
					}
				}
				seen = append(seen, tc.Observation)
			}
		}
		if seconds != st.Retries {
			t.Fatalf("retry %g: %d second searches, %d retries", retry, seconds, st.Retries)
		}
	}
}

// TestHeldOutWorldsShareNothing: with world.split_names the held-out
// worlds of a run come from other seeds and the other half of the names,
// so no person, passage or question of a held-out world occurs in any
// training world.
func TestHeldOutWorldsShareNothing(t *testing.T) {
	ctx := context.Background()
	cfg := MultiHopDemoConfig()
	cfg.World.TrainWorlds, cfg.World.EvalWorlds = 12, 4
	cfg.World.SplitNames = true
	dir := t.TempDir()
	train, err := buildWorlds(ctx, dir, &cfg, setTrain, cfg.World.TrainWorlds)
	if err != nil {
		t.Fatal(err)
	}
	defer closeWorlds(train)
	held, err := buildWorlds(ctx, dir, &cfg, setHeldOut, cfg.World.EvalWorlds)
	if err != nil {
		t.Fatal(err)
	}
	defer closeWorlds(held)
	names, passages, questions := map[string]bool{}, map[string]bool{}, map[string]bool{}
	seeds := map[uint64]bool{}
	for _, w := range train {
		seeds[w.world.Seed] = true
		for _, p := range w.world.People {
			names[p.Name] = true
		}
		for _, p := range w.world.Passages {
			passages[p.Text] = true
		}
		for _, q := range w.world.Questions {
			questions[q.Question] = true
		}
	}
	for _, w := range held {
		if seeds[w.world.Seed] {
			t.Fatalf("seed %d is a training world's", w.world.Seed)
		}
		for _, p := range w.world.Passages {
			for name := range names {
				if strings.Contains(p.Text, name) {
					t.Fatalf("held-out passage %q names training person %s", p.Text, name)
				}
			}
			if passages[p.Text] {
				t.Fatalf("held-out passage %q is a training passage", p.Text)
			}
		}
		for _, q := range w.world.Questions {
			if questions[q.Question] {
				t.Fatalf("held-out question %q is a training question", q.Question)
			}
		}
	}
}

// TestDemoPresets: every listed preset resolves and validates, the default
// is the first, and an unknown name is an error naming the presets.
func TestDemoPresets(t *testing.T) {
	if DemoPresets()[0] != DefaultPreset {
		t.Fatalf("presets %v do not start with the default %s", DemoPresets(), DefaultPreset)
	}
	for _, name := range DemoPresets() {
		c, err := DemoPreset(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if q, _ := DemoPreset(PresetQuick); q.World.TwoHopFraction != 0 || q.Warmup.Worlds != 0 {
		t.Fatalf("quick preset changed: %+v", q.World)
	}
	if _, err := DemoPreset("huge"); err == nil || !strings.Contains(err.Error(), PresetQuick) {
		t.Fatalf("unknown preset: %v", err)
	}
}

// TestMultiHopPresetDocumented: the multihop preset is the quick one with
// exactly the differences docs/configuration.md lists.
func TestMultiHopPresetDocumented(t *testing.T) {
	const diff = `world: {eval_worlds: 8, two_hop_fraction: 0.5, relations: [city, mentor]}
agent: {max_turns: 4}
warmup: {steps: 4000, guess_fraction: 0.2, retry_fraction: 0.2, mask_retry_query: true, bridge_fraction: 0.5, worlds: 300}
rl: {steps: 160, checkpoint_every: 20, explore: {fraction: 1, min_searches: 2, until_step: 20, fraction_after: 0.5}}
`
	raw, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(strings.Fields(string(raw)), " "),
		"`--preset multihop` (the default) differs in: `world: {eval_worlds: 8, two_hop_fraction: 0.5, relations: [city, mentor]}`, `agent.max_turns: 4`, `warmup: {steps: 4000, guess_fraction: 0.2, retry_fraction: 0.2, mask_retry_query: true, bridge_fraction: 0.5, worlds: 300}`, `rl: {steps: 160, checkpoint_every: 20, explore: {fraction: 1, min_searches: 2, until_step: 20, fraction_after: 0.5}}`") {
		t.Fatal("docs/configuration.md does not list the multihop preset's differences as this test does")
	}
	got := QuickDemoConfig()
	if err := rl.DecodeYAML(strings.NewReader(diff), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, MultiHopDemoConfig()) {
		t.Fatalf("quick + documented differences\n%+v\n≠ multihop\n%+v", got, MultiHopDemoConfig())
	}
}

// TestDemoReportGoal: report.json names the one goal a run is judged by.
// A multi-hop run whose overall lift clears 0.10 but whose 2-hop goal is
// missed is not met (the old meets_goal said yes beside multi_hop_goal's
// no), and a 1-hop run is judged by its lift.
func TestDemoReportGoal(t *testing.T) {
	cfg := QuickDemoConfig()
	cfg.Eval.Bootstrap = 500
	sum := &rl.Summary{}
	before := &EvalResult{Questions: []string{"a", "b", "c", "d"}, Hops: []int{1, 1, 2, 2}, Accuracy: 0,
		Scores: []float64{0, 0, 0, 0}, Searches: []float64{1, 1, 1, 1}, Turns: []float64{2, 2, 2, 2}}
	// 1-hop up by 1, 2-hop by 0.1: overall +0.55, every resample > 0.
	after := &EvalResult{Questions: before.Questions, Hops: before.Hops, Accuracy: 0.55,
		Scores: []float64{1, 1, 0.1, 0.1}, Searches: []float64{1, 1, 1, 1}, Turns: []float64{2, 2, 2, 2}}
	r := newDemoReport(&cfg, nil, before, after, sum, time.Second)
	if r.Goal != GoalMultiHop || r.GoalMet || !r.LiftGoalMet {
		t.Errorf("multi-hop run: goal %q met %v, lift goal met %v; want multi_hop, false, true", r.Goal, r.GoalMet, r.LiftGoalMet)
	}
	oneHop := func(e *EvalResult) *EvalResult {
		c := *e
		c.Hops = []int{1, 1, 1, 1}
		return &c
	}
	r = newDemoReport(&cfg, nil, oneHop(before), oneHop(after), sum, time.Second)
	if r.Goal != GoalLift || !r.GoalMet || r.MultiHopGoal != nil {
		t.Errorf("1-hop run: goal %q met %v, multi-hop goal %+v; want lift, true, none", r.Goal, r.GoalMet, r.MultiHopGoal)
	}
}

// staticSearch answers every query with one passage.
type staticSearch struct{ text string }

func (s staticSearch) Search(context.Context, string, int) ([]tools.SearchResult, error) {
	return []tools.SearchResult{{Title: "Favok", Text: s.text}}, nil
}

// TestMaskRetryQuery: warmup.mask_retry_query trains a retry's second
// search tag but not its query; the first search stays trained whole.
func TestMaskRetryQuery(t *testing.T) {
	tok, err := tokenizer.Train([]string{"Q: Where does Favok live?\n<search> Favok </search>\n<information>Favok lives in Mipa.</information>\n<answer> Mipa </answer>"},
		tokenizer.TrainOptions{VocabSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	wf, err := agent.NewSearchAgent(agent.TinyConfig())
	if err != nil {
		t.Fatal(err)
	}
	env := &agent.Env{Tokenizer: tok, StopTokenIDs: agent.DefaultStopTokenIDs(tok), Search: staticSearch{"Favok lives in Mipa."}}
	traj, err := agent.Demonstrate(context.Background(), wf, env, agent.Task{ID: "q", Question: "Where does Favok live?"},
		[]string{"<search> Favok </search>", "<search> Favok </search>", "<answer> Mipa </answer>"})
	if err != nil {
		t.Fatal(err)
	}
	seqs, err := traj.Sequences()
	if err != nil || len(seqs) != 1 {
		t.Fatalf("%d sequences, %v", len(seqs), err)
	}
	trained := func() string {
		var ids []int
		for k, m := range seqs[0].LossMask {
			if m == 1 {
				ids = append(ids, seqs[0].Tokens[k])
			}
		}
		return tok.Decode(ids)
	}
	if got := trained(); strings.Count(got, "Favok") != 2 {
		t.Fatalf("before masking the trained text is %q", got)
	}
	maskQuery(seqs, traj, traj.Tools[1].Call, tok)
	if got := trained(); !strings.HasPrefix(got, "<search> Favok </search><search><answer> Mipa </answer>") {
		t.Errorf("trained text %q: want the first search whole, the second's tag only, and the answer", got)
	}
}
