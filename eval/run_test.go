package eval

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/dataset"
	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/engine/embedded"
	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/reward"
)

// deadURL is a loopback address nothing listens on.
func deadURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// answerModel answers every question at once with "<answer> A </answer>",
// A being the question's first word after "for ".
func answerModel(t *testing.T) *fakellm.Server {
	srv := fakellm.New(fakellm.Options{Handler: func(c fakellm.Call) fakellm.Reply {
		q := c.Prompt[strings.LastIndex(c.Prompt, "for ")+4:]
		q = q[:strings.IndexAny(q, "?")]
		return fakellm.Reply{Text: "<answer> " + q + " </answer>"}
	}})
	t.Cleanup(srv.Close)
	return srv
}

func writeFile(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const smallData = `{"id": "a", "question": "Which answer is expected for Paris?", "answer": "Paris"}
{"id": "b", "question": "Which answer is expected for Rome?", "answer": ["Milan", "Milano"]}
{"id": "c", "question": "Which answer is expected for Oslo?", "golden_answers": ["Oslo"]}
`

func smallConfig(t *testing.T, model string) Config {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Data = []string{writeFile(t, filepath.Join(dir, "small.jsonl"), smallData)}
	cfg.Out = filepath.Join(dir, "run")
	cfg.Model = model
	cfg.Agent = agent.AgentSearchR1
	cfg.K = 2
	cfg.Concurrency = 3
	cfg.MaxAttempts = 1
	cfg.Bootstrap = 100
	return cfg
}

func TestRunErrors(t *testing.T) {
	model := answerModel(t)
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no data", func(c *Config) { c.Data = nil }, "no datasets"},
		{"no out", func(c *Config) { c.Out = "" }, "--out"},
		{"no model", func(c *Config) { c.Model = "" }, "--model"},
		{"bad k", func(c *Config) { c.K = 0 }, "--k"},
		{"unknown dataset", func(c *Config) { c.Data = []string{"no-such-set"} }, "--data no-such-set"},
		{"bad file", func(c *Config) {
			c.Data = []string{writeFile(t, filepath.Join(t.TempDir(), "bad.jsonl"), "{\"question\": \"x\", \"answer\": \n")}
		}, "--data"},
		{"unknown agent", func(c *Config) { c.Agent = "nope" }, "unknown agent"},
		{"dead model", func(c *Config) { c.Model = deadURL(t) + "/v1" }, "does not answer: start it or fix the model setting"},
		{"dead search", func(c *Config) { c.Search = deadURL(t) }, "retrieval server"},
		{"judge without model", func(c *Config) { c.Judge = deadURL(t) + "/v1" }, "--judge-model"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := smallConfig(t, model.OpenAIURL())
			tc.edit(&cfg)
			_, err := Run(context.Background(), cfg, Options{Progress: ProgressOff})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

// TestModelDiesMidRun: when the model server fails for good during a run,
// eval stops with an error saying how to resume, and keeps what finished.
func TestModelDiesMidRun(t *testing.T) {
	var calls atomic.Int32
	srv := fakellm.New(fakellm.Options{Handler: func(c fakellm.Call) fakellm.Reply {
		if calls.Add(1) > 2 {
			return fakellm.Reply{Status: 400, Body: `{"error":{"message":"model unloaded"}}`}
		}
		return fakellm.Reply{Text: "<answer> x </answer>"}
	}})
	defer srv.Close()
	cfg := smallConfig(t, srv.OpenAIURL())
	cfg.Concurrency = 1
	_, err := Run(context.Background(), cfg, Options{Progress: ProgressOff})
	if err == nil || !strings.Contains(err.Error(), "rerun to resume") {
		t.Fatalf("err = %v", err)
	}
	recs, err := ReadResults(filepath.Join(cfg.Out, ResultsFile))
	if err != nil || len(recs) != 2 {
		t.Fatalf("%d results kept (%v), want 2", len(recs), err)
	}
}

func TestResumeRefusesChangedConfig(t *testing.T) {
	model := answerModel(t)
	cfg := smallConfig(t, model.OpenAIURL())
	rep, err := Run(context.Background(), cfg, Options{Progress: ProgressOff})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Datasets[0].Samples != 6 {
		t.Fatalf("samples %d", rep.Datasets[0].Samples)
	}
	// Same config: nothing runs again (the model is gone).
	model.Close()
	if _, err := Run(context.Background(), cfg, Options{Progress: ProgressOff}); err != nil {
		t.Fatalf("resume of a finished run: %v", err)
	}
	changed := cfg
	changed.Temperature = 0.1
	changed.K = 3
	_, err = Run(context.Background(), changed, Options{Progress: ProgressOff})
	if err == nil || !strings.Contains(err.Error(), "changed: k, temperature") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("err = %v", err)
	}
	// Concurrency is not part of the identity.
	more := cfg
	more.Concurrency = 7
	if _, err := Run(context.Background(), more, Options{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
}

func TestResultsTornLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ResultsFile)
	good := `{"dataset":"d","id":"1","sample":0,"prediction":"x","scores":{"em":1}}` + "\n" +
		`{"dataset":"d","id":"2","sample":0,"prediction":"y","scores":{"em":0}}` + "\n"
	writeFile(t, path, good+`{"dataset":"d","id":"3","sam`)
	w, recs, _, err := openResults(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	if err := w.write(&Record{Dataset: "d", ID: "3", Prediction: "z"}); err != nil {
		t.Fatal(err)
	}
	w.close()
	recs, err = ReadResults(path)
	if err != nil || len(recs) != 3 || recs[2].ID != "3" {
		t.Fatalf("after append: %v %+v", err, recs)
	}
	// A broken line in the middle is an edit, not a kill: refuse.
	writeFile(t, path, `{"dataset":"d","id":"1"`+"\n"+good)
	if _, _, _, err := openResults(path, false); err == nil || !strings.Contains(err.Error(), "line 1 (byte offset 0)") {
		t.Fatalf("err = %v", err)
	}
}

// TestTornTrajectory: a trajectory file cut mid-record (a kill during the
// write) is repaired on resume and stays readable.
func TestTornTrajectory(t *testing.T) {
	model := answerModel(t)
	cfg := smallConfig(t, model.OpenAIURL())
	// One sample at a time, so the last trajectory and the last result are
	// the same sample's, as after a real kill (the result is written after
	// its trajectory). Concurrent samples interleave the two files, and
	// the test below would tear one sample's trajectory and drop another's
	// result.
	cfg.Concurrency = 1
	if _, err := Run(context.Background(), cfg, Options{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	tp := filepath.Join(cfg.Out, TrajectoriesFile)
	data, _ := os.ReadFile(tp)
	writeFile(t, tp, string(data[:len(data)-7]))
	// Drop the last result too, so that sample runs again.
	rp := filepath.Join(cfg.Out, ResultsFile)
	res, _ := os.ReadFile(rp)
	lines := strings.SplitAfter(string(res), "\n")
	writeFile(t, rp, strings.Join(lines[:len(lines)-2], ""))
	if _, err := Run(context.Background(), cfg, Options{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	if n := countTrajectories(t, tp); n != 6 {
		t.Fatalf("%d trajectories, want 6", n)
	}
	if n := countLines(t, rp); n != 6 {
		t.Fatalf("%d results, want 6", n)
	}
}

// goldAgent is a custom workflow: it answers with the first gold answer
// without calling any model, and adds its own field to the trajectory.
type goldAgent struct{}

func (goldAgent) Name() string { return "gold" }
func (goldAgent) Run(ctx context.Context, env *agent.Env, task agent.Task) (*agent.Trajectory, error) {
	ans := ""
	if len(task.Answers) > 0 {
		ans = task.Answers[0]
	}
	return &agent.Trajectory{Question: task.Question, Agent: "gold", Answer: ans, Answered: true, End: agent.EndAnswer}, nil
}

// Reward implements agent.Rewarder: 0.5 for every answer, so the test can
// tell the workflow's reward from the string metrics.
func (goldAgent) Reward(ctx context.Context, task agent.Task, traj *agent.Trajectory) (float64, error) {
	return 0.5, nil
}

func TestCustomWorkflow(t *testing.T) {
	cfg := smallConfig(t, "")
	cfg.Agent = "gold"
	reg := agent.NewRegistry()
	reg.Register("gold", func(agent.Options) (agent.Workflow, error) { return goldAgent{}, nil })
	// The Env comes from code: no --model is needed.
	rep, err := Run(context.Background(), cfg, Options{Progress: ProgressOff, Registry: reg, Env: &agent.Env{}})
	if err != nil {
		t.Fatal(err)
	}
	if em := rep.Overall.Metrics[metricEM]; em.Avg != 1 || em.Pass != 1 {
		t.Fatalf("gold agent EM %+v", em)
	}
	if rw, ok := rep.Overall.Metrics[MetricReward]; !ok || rw.Avg != 0.5 || !slices.Contains(rep.Metrics, MetricReward) {
		t.Fatalf("workflow reward %+v in %v", rw, rep.Metrics)
	}
	if n := countTrajectories(t, filepath.Join(cfg.Out, TrajectoriesFile)); n != 6 {
		t.Fatalf("%d trajectories", n)
	}
}

// TestJudge: a judge model grades each answer; the verdicts are stored in
// the results and the cache, and a rerun asks the judge nothing.
func TestJudge(t *testing.T) {
	model := answerModel(t)
	var judgeCalls atomic.Int32
	judge := fakellm.New(fakellm.Options{Handler: func(c fakellm.Call) fakellm.Reply {
		judgeCalls.Add(1)
		text := c.Prompt
		for _, m := range c.Messages {
			text += m.Content
		}
		switch {
		case strings.Contains(text, "Oslo"):
			return fakellm.Reply{Text: "I am not sure."} // unparsable every time
		case strings.Contains(text, "Paris"):
			return fakellm.Reply{Text: "The answer matches.\nVerdict: CORRECT"}
		}
		return fakellm.Reply{Text: "Different city.\nVerdict: INCORRECT"}
	}})
	defer judge.Close()
	cfg := smallConfig(t, model.OpenAIURL())
	cfg.Judge = judge.OpenAIURL()
	cfg.JudgeModel = "fake-model" // the name the server serves
	cfg.JudgeTries = 2
	rep, err := Run(context.Background(), cfg, Options{Progress: ProgressOff})
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Datasets[0].Metrics[MetricJudge]
	if recs, _ := ReadResults(filepath.Join(cfg.Out, ResultsFile)); testing.Verbose() {
		for _, r := range recs {
			t.Logf("%s %q %+v", r.ID, r.Prediction, r.Judge)
		}
	}
	if math.Abs(s.Avg-1.0/3) > 1e-9 || rep.Primary != MetricJudge {
		t.Fatalf("judge Avg %v primary %s, want 1/3 judge", s.Avg, rep.Primary)
	}
	recs, _ := ReadResults(filepath.Join(cfg.Out, ResultsFile))
	for _, r := range recs {
		if r.Judge == nil {
			t.Fatalf("%s has no judgement", r.ID)
		}
		if r.ID == "c" && (r.Judge.Verdict == reward.Correct || r.Judge.Attempts > 2) {
			t.Errorf("unparsable judge: %+v", r.Judge)
		}
	}
	if rep.Datasets[0].Unjudged != 2 {
		t.Errorf("unjudged %d, want 2 (Oslo, twice)", rep.Datasets[0].Unjudged)
	}
	if _, err := os.Stat(filepath.Join(cfg.Out, JudgeCacheFile)); err != nil {
		t.Fatal(err)
	}
	// Remove the results of one question: its rerun is judged from the cache.
	before := judgeCalls.Load()
	rp := filepath.Join(cfg.Out, ResultsFile)
	var keep []string
	for _, l := range strings.SplitAfter(string(must(os.ReadFile(rp))), "\n") {
		if l != "" && !strings.Contains(l, `"id":"a"`) {
			keep = append(keep, l)
		}
	}
	writeFile(t, rp, strings.Join(keep, ""))
	if _, err := Run(context.Background(), cfg, Options{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	if judgeCalls.Load() != before {
		t.Errorf("judge called %d more times; cached verdicts should answer", judgeCalls.Load()-before)
	}
}

// TestJudgeMisconfigured: a judge that never replies (wrong model name)
// stops the run instead of scoring everything 0.
func TestJudgeMisconfigured(t *testing.T) {
	model := answerModel(t)
	cfg := smallConfig(t, model.OpenAIURL())
	cfg.Judge = model.OpenAIURL()
	cfg.JudgeModel = "no-such-model"
	cfg.JudgeTries = 1
	_, err := Run(context.Background(), cfg, Options{Progress: ProgressOff})
	if err == nil || !strings.Contains(err.Error(), "fix --judge") {
		t.Fatalf("err = %v", err)
	}
	if n := countLines(t, filepath.Join(cfg.Out, ResultsFile)); n != 0 {
		t.Fatalf("%d results recorded with a broken judge", n)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestCompare(t *testing.T) {
	model := answerModel(t)
	a := smallConfig(t, model.OpenAIURL())
	if _, err := Run(context.Background(), a, Options{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	b := smallConfig(t, model.OpenAIURL())
	b.Agent = "gold"
	reg := agent.NewRegistry()
	reg.Register("gold", func(agent.Options) (agent.Workflow, error) { return goldAgent{}, nil })
	if _, err := Run(context.Background(), b, Options{Progress: ProgressOff, Registry: reg}); err != nil {
		t.Fatal(err)
	}
	ds, err := Compare(a.Out, b.Out, metricEM, 200)
	if err != nil {
		t.Fatal(err)
	}
	// Run A gets Paris and Oslo right and Rome wrong; the gold agent all.
	if len(ds) != 1 || math.Abs(ds[0].A-2.0/3) > 1e-9 || ds[0].B != 1 || math.Abs(ds[0].Delta-1.0/3) > 1e-9 {
		t.Fatalf("deltas %+v", ds)
	}
	if ds[0].CI[0] > ds[0].Delta || ds[0].CI[1] < ds[0].Delta {
		t.Errorf("delta %v outside its interval %v", ds[0].Delta, ds[0].CI)
	}
	var out strings.Builder
	WriteCompare(&out, a.Out, b.Out, "", ds)
	if !strings.Contains(out.String(), "+33.3") {
		t.Errorf("compare table:\n%s", out.String())
	}
	if _, err := Compare(a.Out, filepath.Join(t.TempDir(), "none"), "", 10); err == nil {
		t.Error("compare with a missing run succeeded")
	}
	if _, err := Compare(a.Out, b.Out, "bleu", 10); err == nil {
		t.Error("unknown metric accepted")
	}
}

func TestBootstrapCI(t *testing.T) {
	tests := []struct {
		xs     []float64
		lo, hi float64
	}{
		{[]float64{1, 1, 1, 1}, 1, 1},
		{[]float64{0, 0, 0}, 0, 0},
		{[]float64{0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1}, 0.25, 0.75},
	}
	for i, tc := range tests {
		ci := bootstrapCI([][]float64{tc.xs}, 2000, 1)
		m := mean(tc.xs)
		if ci[0] > m || ci[1] < m || ci[0] < tc.lo-1e-9 || ci[1] > tc.hi+1e-9 {
			t.Errorf("case %d: CI %v for mean %v, want within [%v, %v]", i, ci, m, tc.lo, tc.hi)
		}
	}
	if ci := bootstrapCI([][]float64{{0, 1, 0, 1}}, 500, 3); ci != bootstrapCI([][]float64{{0, 1, 0, 1}}, 500, 3) {
		t.Error("bootstrap is not reproducible")
	}
}

func TestLoadConfigFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, text, want string
		check            func(Config) error
	}{
		{"top level", "k: 4\ndata: [bamboogle, frames]\nlimits:\n  max_turns: 9\n", "", func(c Config) error {
			if c.K != 4 || len(c.Data) != 2 || c.Limits.MaxTurns != 9 || c.Temperature != 0.6 {
				return fmt.Errorf("%+v", c)
			}
			return nil
		}},
		{"eval block", "eval:\n  k: 3\n  judge_model: j\n", "", func(c Config) error {
			if c.K != 3 || c.JudgeModel != "j" {
				return fmt.Errorf("%+v", c)
			}
			return nil
		}},
		{"empty", "", "", func(c Config) error { return nil }},
		{"unknown field", "kk: 4\n", "field kk not found", nil},
		{"bad yaml", "k: [\n", "--config", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, filepath.Join(dir, strconv.Itoa(len(tc.name))+tc.name+".yaml"), tc.text)
			c := DefaultConfig()
			err := LoadConfigFile(p, &c)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.check(c); err != nil {
				t.Fatal(err)
			}
		})
	}
	if err := LoadConfigFile(filepath.Join(dir, "missing.yaml"), &Config{}); err == nil || errors.Is(err, nil) {
		t.Fatal("missing file accepted")
	}
}

// TestEmbeddedModel: --model embedded:DIR runs the in-process CPU engine
// on a (random, tiny) model directory with its own tokenizer: no server.
func TestEmbeddedModel(t *testing.T) {
	pc, err := engine.Preset("tiny", 16)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "tiny")
	if _, err := engine.InitModelDir(context.Background(), dir, engine.InitOptions{Config: pc, Seed: 1, DType: engine.F32}); err != nil {
		t.Fatal(err)
	}
	backends := llm.NewBackends()
	if err := embedded.Register(backends); err != nil {
		t.Fatal(err)
	}
	cfg := smallConfig(t, "embedded:"+dir)
	cfg.Agent = agent.AgentTiny
	cfg.K = 1
	cfg.Limits.MaxTurns = 2
	cfg.Limits.MaxCallTokens = 16
	cfg.Limits.MinCallTokens = 4
	rep, err := Run(context.Background(), cfg, Options{Progress: ProgressOff, Backends: backends})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Overall.Samples != 3 || rep.Overall.Means.GeneratedTokens == 0 {
		t.Fatalf("embedded run: %+v", rep.Overall)
	}
	recs, _ := ReadResults(filepath.Join(cfg.Out, ResultsFile))
	for _, r := range recs {
		if r.Stats.Turns == 0 || r.Stats.Turns > 2 {
			t.Errorf("%s: %d turns", r.ID, r.Stats.Turns)
		}
	}
	cfg.Model = "embedded:" + filepath.Join(t.TempDir(), "missing")
	cfg.Out = filepath.Join(t.TempDir(), "run2")
	if _, err := Run(context.Background(), cfg, Options{Progress: ProgressOff, Backends: backends}); err == nil {
		t.Fatal("a missing model directory was accepted")
	}
	// Without the embedded backend registered the spec is refused by name.
	cfg.Model = "embedded:" + dir
	cfg.Out = filepath.Join(t.TempDir(), "run3")
	if _, err := Run(context.Background(), cfg, Options{Progress: ProgressOff}); err == nil || !strings.Contains(err.Error(), `unknown prefix "embedded"`) {
		t.Fatalf("embedded: without its backend: %v", err)
	}
}

// TestXBenchStaysEncrypted: questions and gold answers of the encrypted
// xBench-DeepSearch set reach the model but never the run directory.
func TestXBenchStaysEncrypted(t *testing.T) {
	srv := fakellm.New(fakellm.Options{Handler: func(c fakellm.Call) fakellm.Reply {
		return fakellm.Reply{Text: "<answer> none </answer>"}
	}})
	defer srv.Close()
	cfg := smallConfig(t, srv.OpenAIURL())
	cfg.Data = []string{"xbench-deepsearch-2505"}
	cfg.Limit = 3
	cfg.K = 1
	set, err := dataset.Load("xbench-deepsearch-2505", dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), cfg, Options{Progress: ProgressOff})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Overall.Samples != 3 {
		t.Fatalf("%d samples", rep.Overall.Samples)
	}
	prompts := ""
	for _, c := range srv.Calls() {
		prompts += c.Prompt
	}
	entries, _ := os.ReadDir(cfg.Out)
	for _, it := range set.Items[:3] {
		if !strings.Contains(prompts, it.Question) {
			t.Fatalf("question %s not sent to the model", it.ID)
		}
		for _, e := range entries {
			data, _ := os.ReadFile(filepath.Join(cfg.Out, e.Name()))
			if strings.Contains(string(data), it.Question) || (len(it.Answers[0]) > 3 && strings.Contains(string(data), it.Answers[0])) {
				t.Errorf("%s holds the plain text of question %s", e.Name(), it.ID)
			}
		}
	}
}

// TestInterruptAndProgressLog: cancelling the context (Ctrl-C) stops the
// run with an error that says how to resume, keeps what finished, and the
// next run completes; without a terminal, progress is logged with the
// running Avg@1.
func TestInterruptAndProgressLog(t *testing.T) {
	srv := fakellm.New(fakellm.Options{Handler: func(c fakellm.Call) fakellm.Reply {
		return fakellm.Reply{Text: "<answer> Paris </answer>", Delay: 30 * time.Millisecond}
	}})
	defer srv.Close()
	cfg := smallConfig(t, srv.OpenAIURL())
	cfg.Concurrency = 1
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Millisecond)
	defer cancel()
	_, err := Run(ctx, cfg, Options{Progress: ProgressOff})
	if err == nil || !strings.Contains(err.Error(), "rerun the same command to resume") {
		t.Fatalf("err = %v", err)
	}
	n := countLines(t, filepath.Join(cfg.Out, ResultsFile))
	if n >= 6 {
		t.Fatalf("%d results before the interrupt; the run was not cut", n)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if _, err := Run(context.Background(), cfg, Options{Progress: ProgressLog, Log: log}); err != nil {
		t.Fatal(err)
	}
	if got := countLines(t, filepath.Join(cfg.Out, ResultsFile)); got != 6 {
		t.Fatalf("%d results after resuming, want 6", got)
	}
	// Paris is right for question a only: Avg@1 over all 6 samples is 1/3.
	if !strings.Contains(logs.String(), "samples=6/6") || !strings.Contains(logs.String(), "avg@1=0.333") {
		t.Errorf("progress log:\n%s", logs.String())
	}
}

// TestRunDirLocked: a second eval on a run directory in use is refused.
func TestRunDirLocked(t *testing.T) {
	srv := fakellm.New(fakellm.Options{Handler: func(c fakellm.Call) fakellm.Reply {
		return fakellm.Reply{Text: "<answer> x </answer>", Delay: 50 * time.Millisecond}
	}})
	defer srv.Close()
	cfg := smallConfig(t, srv.OpenAIURL())
	cfg.Concurrency = 1
	first := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), cfg, Options{Progress: ProgressOff})
		first <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for srv.InFlight() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	_, err := Run(context.Background(), cfg, Options{Progress: ProgressOff})
	if err == nil || !strings.Contains(err.Error(), "another eval is running on") {
		t.Fatalf("second run: %v", err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), cfg, Options{Progress: ProgressOff}); err != nil {
		t.Fatalf("after the first run ended: %v", err)
	}
}
