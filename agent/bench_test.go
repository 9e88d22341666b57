package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tools"
)

// benchPassages are real passages (the shipped HotpotQA corpus), so search
// observations have realistic text and token counts.
func benchPassages(tb testing.TB, n int) []tools.SearchResult {
	tb.Helper()
	data, err := os.ReadFile("../dataset/data/hotpotqa-hipporag-100/corpus.json")
	if err != nil {
		tb.Fatal(err)
	}
	var corpus map[string][]string
	if err := json.Unmarshal(data, &corpus); err != nil {
		tb.Fatal(err)
	}
	titles := make([]string, 0, len(corpus))
	for t := range corpus {
		titles = append(titles, t)
	}
	slices.Sort(titles)
	var out []tools.SearchResult
	for _, t := range titles[:n] {
		out = append(out, tools.SearchResult{Title: t, URL: "https://en.wikipedia.org/wiki/" + strings.ReplaceAll(t, " ", "_"), Text: strings.Join(corpus[t], "")})
	}
	return out
}

// instantSampler answers at once from precomputed responses: an act with a
// search for the first Acts acts of a trajectory, then an answer; a note
// for every read call. Its own cost is a map lookup, so what a benchmark
// measures is the agent.
type instantSampler struct {
	act, note, answer *llm.Response
	acts              int

	mu    sync.Mutex
	count map[string]int
	// wait, when set, is called on act number waitAt of every trajectory.
	waitAt int
	wait   func(*llm.Request)
}

func newInstantSampler(tok Tokenizer, acts int) *instantSampler {
	resp := func(text string) *llm.Response {
		ids := tok.Encode(text)
		r := &llm.Response{OutputIDs: ids, Text: text, Finish: llm.FinishStop}
		for k := range ids {
			r.Logprobs = append(r.Logprobs, -0.25-float32(k%5)/10)
			r.Versions = append(r.Versions, 1)
		}
		return r
	}
	return &instantSampler{
		act:    resp("The passages do not settle it yet, so I will look for the missing fact.</think>\n<search> birthplace of the director of the film </search>"),
		note:   resp("The second result names the director and says where he was born; the others are about unrelated people.</think>"),
		answer: resp("\n<answer> Lyon </answer>"),
		acts:   acts,
		count:  map[string]int{},
	}
}

func (s *instantSampler) Sample(_ context.Context, req *llm.Request) (*llm.Response, error) {
	if slices.Contains(req.Params.Stop, noteClose) {
		return s.note, nil
	}
	s.mu.Lock()
	n := s.count[req.ID]
	s.count[req.ID] = n + 1
	s.mu.Unlock()
	if s.wait != nil && n == s.waitAt {
		s.wait(req)
	}
	if n >= s.acts {
		return s.answer, nil
	}
	return s.act, nil
}

type instantSearch struct{ docs []tools.SearchResult }

func (s instantSearch) Search(_ context.Context, _ string, k int) ([]tools.SearchResult, error) {
	return s.docs[:min(k, len(s.docs))], nil
}

// BenchmarkTurnOverhead is the agent's own cost per turn with a
// zero-latency model and search: the act call, parsing, the search, its
// observation, the note call, and the recording of both calls, on a
// context of 100k-115k tokens. One op is a fresh session (its 100k-token
// prompt appended pre-encoded) plus 16 turns; ns/turn is ns/op / 16.
// tok=qwen3 includes encoding each observation with the real tokenizer;
// tok=bytes (one token per byte, ~4x the tokens) isolates the loop.
// reencode-history is what a text-based agent pays instead, per call:
// tokenising the 100k-token history again.
func BenchmarkTurnOverhead(b *testing.B) {
	const turnsPerOp = 16
	qwen := qwenTokenizer(b)
	question := benchQuestion(b, qwen, 100_000)
	a, err := NewSearchAgent(ASearcherConfig())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		tok      Tokenizer
		question string
	}{{"qwen3", qwen, question}, {"bytes", byteTok{}, question[:100_000]}} {
		env := &Env{
			Sampler: newInstantSampler(tc.tok, 1<<30), Tokenizer: tc.tok, Search: instantSearch{benchPassages(b, 5)},
			Limits: Limits{MaxContextTokens: 1 << 20},
		}
		task := Task{Question: tc.question}
		prompt := NewSession(env, task, "", "").Encode(a.prompt.Render(promptVars(task)))
		b.Run("turn/tok="+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s := NewSession(env, task, a.Name(), a.cfg.Prompt)
				s.AppendPiece(prompt)
				for turn := range turnsPerOp {
					s.SetTurn(turn)
					rep, err := s.Generate(ctx, Gen{Purpose: PurposeAct, Stop: a.stops, Tool: -1})
					if err != nil {
						b.Fatal(err)
					}
					act := a.parser.Parse(rep.Text).Action
					if act.Kind != KindSearch {
						b.Fatalf("action %q", act.Kind)
					}
					if err := a.search(ctx, s, act.Arg); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*turnsPerOp), "ns/turn")
		})
	}
	b.Run("reencode-history/tok=qwen3", func(b *testing.B) {
		for b.Loop() {
			qwen.Encode(question)
		}
	})
}

// BenchmarkConcurrentAgents runs 1,000 agents at once against a
// zero-latency model and search (Qwen3 tokenizer, token mode, notes on),
// 24 search turns each. It reports turns per second over the whole run and
// the live heap per agent, measured when every agent is about to make its
// 17th act (snapshot-context-tokens is the mean context at that moment).
func BenchmarkConcurrentAgents(b *testing.B) {
	const agents, turns, snapshotAt = 1000, 24, 16
	tok := qwenTokenizer(b)
	docs := benchPassages(b, 5)
	a, err := NewSearchAgent(ASearcherConfig())
	if err != nil {
		b.Fatal(err)
	}
	var perAgent, turnsPerSec, callsPerSec, ctxTokens, snapCtx float64
	for b.Loop() {
		sampler := newInstantSampler(tok, turns)
		env := &Env{Sampler: sampler, Tokenizer: tok, Search: instantSearch{docs}}
		var arrived atomic.Int64
		release := make(chan struct{})
		var base runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&base)
		var snapshot runtime.MemStats
		var snapTokens atomic.Int64
		sampler.waitAt = snapshotAt
		sampler.wait = func(req *llm.Request) {
			snapTokens.Add(int64(len(req.InputIDs)))
			if arrived.Add(1) == agents {
				runtime.GC()
				runtime.ReadMemStats(&snapshot)
				close(release)
			}
			<-release
		}
		var wg sync.WaitGroup
		var totalTurns, totalCalls, maxCtx atomic.Int64
		t0 := time.Now()
		for i := range agents {
			wg.Go(func() {
				traj, err := a.Run(context.Background(), env, Task{ID: fmt.Sprint(i), Question: "Where was the director of the film born?"})
				if err != nil || traj.End != EndAnswer {
					panic(fmt.Sprintf("agent %d: %v %s", i, err, traj.End))
				}
				st := traj.Stats()
				totalTurns.Add(int64(st.Turns))
				totalCalls.Add(int64(st.Calls))
				if c := int64(st.ContextTokens); c > maxCtx.Load() {
					maxCtx.Store(c)
				}
			})
		}
		wg.Wait()
		el := time.Since(t0).Seconds()
		perAgent = float64(snapshot.HeapAlloc-base.HeapAlloc) / agents
		turnsPerSec = float64(totalTurns.Load()) / el
		callsPerSec = float64(totalCalls.Load()) / el
		ctxTokens = float64(maxCtx.Load())
		snapCtx = float64(snapTokens.Load()) / agents
	}
	b.ReportMetric(turnsPerSec, "turns/s")
	b.ReportMetric(callsPerSec, "calls/s")
	b.ReportMetric(perAgent/1024, "KiB/agent")
	b.ReportMetric(snapCtx, "snapshot-context-tokens")
	b.ReportMetric(ctxTokens, "final-context-tokens")
}

// benchQuestion is corpus text of about n tokens: a question that puts
// the context at n tokens from the first call.
func benchQuestion(b *testing.B, tok Tokenizer, n int) string {
	var sb strings.Builder
	total := 0
	for _, d := range benchPassages(b, 994) {
		line := d.Title + ": " + d.Text + "\n"
		sb.WriteString(line)
		if total += len(tok.Encode(line)); total > n {
			break
		}
	}
	q := sb.String()
	for len(tok.Encode(q)) > n {
		q = q[:len(q)*99/100]
	}
	return q
}

// benchTrajectory is a 32-turn trajectory on a ~100k-token context.
func benchTrajectory(b *testing.B) *Trajectory {
	tok := qwenTokenizer(b)
	env := &Env{
		Sampler: newInstantSampler(tok, 32), Tokenizer: tok, Search: instantSearch{benchPassages(b, 5)},
		Limits: Limits{MaxContextTokens: 1 << 20},
	}
	a, _ := NewSearchAgent(ASearcherConfig())
	traj, err := a.Run(context.Background(), env, Task{Question: benchQuestion(b, tok, 100_000)})
	if err != nil {
		b.Fatal(err)
	}
	return traj
}

// BenchmarkSequences builds the training sequences of a 65-call,
// 100k-token trajectory.
func BenchmarkSequences(b *testing.B) {
	traj := benchTrajectory(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := traj.Sequences(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteTrajectory serialises the same trajectory as one
// compressed JSON line.
func BenchmarkWriteTrajectory(b *testing.B) {
	traj := benchTrajectory(b)
	var n int64
	w, err := NewWriter(countWriter{&n}, true)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Write(traj); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/float64(b.N), "bytes/record")
}

type countWriter struct{ n *int64 }

func (c countWriter) Write(p []byte) (int, error) { *c.n += int64(len(p)); return len(p), nil }
