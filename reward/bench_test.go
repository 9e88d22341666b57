package reward

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// benchPairs are realistic (prediction, golds) pairs: short entity answers,
// a sentence-long answer, a TriviaQA-style alias list and a Chinese answer.
var benchPairs = []struct {
	pred  string
	golds []string
}{
	{"Wilhelm Conrad Röntgen", []string{"Wilhelm Conrad Röntgen"}},
	{"The answer is David Dinkins, mayor of NYC", []string{"David Dinkins"}},
	{"May 18, 2018", []string{"May 18, 2018", "18 May 2018"}},
	{"Mark Twain", []string{"Mark Twain", "Samuel Clemens", "Samuel Langhorne Clemens", "Twain, Mark", "Sergeant Fathom", "Samuel L. Clemens", "Thomas Jefferson Snodgrass", "Sam Clemens"}},
	{"北京市，中国", []string{"北京市"}},
}

func BenchmarkNormalizeAnswer(b *testing.B) {
	for b.Loop() {
		for _, p := range benchPairs {
			NormalizeAnswer(p.pred)
		}
	}
}

func BenchmarkNormalizeText(b *testing.B) {
	for b.Loop() {
		for _, p := range benchPairs {
			NormalizeText(p.pred)
		}
	}
}

// BenchmarkScore is all six string metrics of one prediction, what eval
// computes per sample; reported per pair.
func BenchmarkScore(b *testing.B) {
	for b.Loop() {
		for _, p := range benchPairs {
			Score(p.pred, p.golds)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(benchPairs)), "ns/pair")
}

func BenchmarkTokenF1(b *testing.B) {
	for b.Loop() {
		for _, p := range benchPairs {
			MaxTokenF1(p.pred, p.golds, SQuADv1)
		}
	}
}

func BenchmarkSetF1Reward(b *testing.B) {
	for b.Loop() {
		for _, p := range benchPairs {
			MaxSetF1(p.pred, p.golds, RewardSetF1)
		}
	}
}

// BenchmarkRewardTrajectory scores a 64-generation trajectory of ~100 kB:
// the format gate over every generation plus extraction and F1.
func BenchmarkRewardTrajectory(b *testing.B) {
	gens := make([]string, 64)
	for i := range gens {
		gens[i] = "<think>" + strings.Repeat("reasoning about the search results ", 40) + "</think>\n<search> query </search>"
	}
	gens[len(gens)-1] = "<think>done</think>\n<answer> David Dinkins </answer>"
	s := Sample{Generations: gens, Golds: []string{"David Dinkins"}, AugAnswers: []string{"Dinkins"}, ValidInstruction: true}
	cfg := DefaultConfig()
	size := 0
	for _, g := range gens {
		size += len(g)
	}
	b.SetBytes(int64(size))
	for b.Loop() {
		cfg.Score(s)
	}
}

func BenchmarkExtractAnswerLong(b *testing.B) {
	s := strings.Repeat("<answer>draft</answer> more thinking ", 2000) + "<answer> final </answer>"
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		ExtractAnswer(s)
	}
}

func BenchmarkParseVerdict(b *testing.B) {
	raw := "<think>" + strings.Repeat("Let me compare. ", 50) + "</think>\nRationale: Both name the same person.\nVerdict: CORRECT"
	for b.Loop() {
		if _, _, err := ParseVerdict(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJudgeCached is a judge call answered from the in-memory cache,
// the common case when k samples repeat an answer or a run is resumed.
func BenchmarkJudgeCached(b *testing.B) {
	s := &scriptedSampler{replies: []any{"Verdict: CORRECT"}}
	j, err := NewJudge(s, JudgeConfig{Model: "bench"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := j.Judge(ctx, paris); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := j.Judge(ctx, paris); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScoreConformance runs Score over the 1,500 conformance pairs,
// the Go half of testdata/bench_vs_python.sh.
func BenchmarkScoreConformance(b *testing.B) {
	type pair struct {
		P string   `json:"p"`
		G []string `json:"g"`
	}
	raw, err := os.ReadFile("testdata/conformance.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	var pairs []pair
	for _, line := range bytes.Split(raw, []byte("\n")) {
		var p pair
		if json.Unmarshal(line, &p) == nil && p.G != nil {
			pairs = append(pairs, p)
		}
	}
	for b.Loop() {
		for _, p := range pairs {
			Score(p.P, p.G)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pairs)), "ns/pair")
}
