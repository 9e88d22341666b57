package eval

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/reward"
)

// Child-process mode for the kill test: the test binary re-executes itself
// with EVAL_CHILD_CONFIG set and runs one eval, which the parent kills.
func TestMain(m *testing.M) {
	if path := os.Getenv("EVAL_CHILD_CONFIG"); path != "" {
		os.Exit(runChild(path))
	}
	os.Exit(m.Run())
}

func runChild(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var cfg Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if _, err := Run(context.Background(), cfg, Options{Progress: ProgressOff}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// refVector is the part of an official-script reference vector the e2e
// test uses: a prediction, its golds, and what ASearcher's evaluate.py and
// SQuAD v1.1 gave for them.
type refVector struct {
	ID         json.RawMessage `json:"id"`
	Prediction string          `json:"prediction"`
	Golds      []string        `json:"golds"`
	Eval       *struct {
		EM    float64 `json:"EM"`
		F1    float64 `json:"F1"`
		CEM   float64 `json:"CEM"`
		SubEM float64 `json:"subem"`
	} `json:"asearcher_eval"`
	SQuAD *struct{ EM, F1 float64 } `json:"squad_v1_1"`
}

// refQuestion is one question of the test dataset: the golds shared by
// one or more reference vectors, whose predictions the fake model gives
// in turn (sample s answers with vectors[s % len]).
type refQuestion struct {
	ID      string
	Golds   []string
	Vectors []refVector
}

// loadRefQuestions groups the reference vectors whose prediction an agent
// can return verbatim (one line, no tags, no surrounding space).
func loadRefQuestions(t testing.TB) []refQuestion {
	t.Helper()
	f, err := os.Open("../dataset/data/eval-scripts/reference-vectors.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []refQuestion
	byGolds := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var v refVector
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
		p := v.Prediction
		if v.Eval == nil || v.SQuAD == nil || p == "" || p != strings.TrimSpace(p) || strings.ContainsAny(p, "<>\n") || len(v.Golds) == 0 {
			continue
		}
		if slices.ContainsFunc(v.Golds, func(g string) bool { return strings.TrimSpace(g) == "" }) {
			continue
		}
		gk, _ := json.Marshal(v.Golds)
		i, ok := byGolds[string(gk)]
		if !ok {
			i = len(out)
			byGolds[string(gk)] = i
			out = append(out, refQuestion{ID: fmt.Sprintf("rv%03d", i), Golds: v.Golds})
		}
		out[i].Vectors = append(out[i].Vectors, v)
	}
	if len(out) < 20 {
		t.Fatalf("only %d usable reference questions", len(out))
	}
	return out
}

// writeRefDataset writes the questions as a JSONL dataset named refvec,
// with an extra field that must be carried into the results.
func writeRefDataset(t testing.TB, dir string, qs []refQuestion) string {
	t.Helper()
	path := filepath.Join(dir, "refvec.jsonl")
	var b strings.Builder
	for _, q := range qs {
		line, _ := json.Marshal(map[string]any{"id": q.ID, "question": "Which answer is expected for " + q.ID + "?", "answer": q.Golds, "level": "easy"})
		b.Write(line)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// refModel is a scripted model for the search-r1 agent in text mode: the
// first turn searches for the question, the turn after the search results
// answers with the prediction chosen for (question, sample), identified by
// the seed eval derives.
type refModel struct {
	srv     *fakellm.Server
	answers map[int64]string // seed → prediction
	delay   time.Duration
	mu      sync.Mutex
	sawInfo int
}

func newRefModel(t testing.TB, qs []refQuestion, base int64, k int, delay time.Duration) *refModel {
	m := &refModel{answers: map[int64]string{}, delay: delay}
	for _, q := range qs {
		for s := range k {
			seed := sampleSeed(base, "refvec", q.ID, s)
			if _, dup := m.answers[seed]; dup {
				t.Fatalf("seed collision for %s#%d", q.ID, s)
			}
			m.answers[seed] = q.Vectors[s%len(q.Vectors)].Prediction
		}
	}
	m.srv = fakellm.New(fakellm.Options{Handler: m.reply})
	t.Cleanup(m.srv.Close)
	return m
}

func (m *refModel) reply(c fakellm.Call) fakellm.Reply {
	if c.Params.Seed == nil {
		return fakellm.Reply{Status: 400, Body: `{"error":{"message":"no seed"}}`}
	}
	ans, ok := m.answers[*c.Params.Seed]
	if !ok {
		return fakellm.Reply{Status: 400, Body: `{"error":{"message":"unknown seed"}}`}
	}
	if strings.Count(c.Prompt, "<information>") >= 2 { // the prompt itself names the tag once
		m.mu.Lock()
		m.sawInfo++
		m.mu.Unlock()
		return fakellm.Reply{Text: "<think>found it</think>\n<answer> " + ans + " </answer>", Delay: m.delay}
	}
	return fakellm.Reply{Text: "<think>look it up</think>\n<search> Which answer is expected </search>", Delay: m.delay}
}

// refConfig is an eval of the reference dataset on the scripted model.
func refConfig(data, out, model, search string, k int) Config {
	cfg := DefaultConfig()
	cfg.Data = []string{data}
	cfg.Out = out
	cfg.K = k
	cfg.Model = model
	cfg.Search = search
	cfg.Agent = agent.AgentSearchR1
	cfg.Concurrency = 8
	cfg.Seed = 17
	cfg.MaxAttempts = 1
	cfg.Bootstrap = 200
	return cfg
}

// comparable strips what differs between identical runs (timings).
func comparable(recs []Record) []Record {
	out := slices.Clone(recs)
	for i := range out {
		out[i].WallNS = 0
		out[i].Stats.ModelTime = 0
		out[i].Stats.ToolTime = 0
	}
	slices.SortFunc(out, func(a, b Record) int {
		return strings.Compare(fmt.Sprintf("%s\x00%s\x00%06d", a.Dataset, a.ID, a.Sample), fmt.Sprintf("%s\x00%s\x00%06d", b.Dataset, b.ID, b.Sample))
	})
	return out
}

func countLines(t testing.TB, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

// countTrajectories counts the records of a trajectory file, failing on
// anything unreadable.
func countTrajectories(t testing.TB, path string) int {
	t.Helper()
	r, err := agent.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	for {
		_, err := r.Next()
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatalf("trajectory %d: %v", n, err)
		}
		n++
	}
}

// metricEM is the registry's exact match, as report columns name it.
const metricEM = string(reward.MetricEM)
