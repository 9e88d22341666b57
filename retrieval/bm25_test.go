package retrieval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeCorpus writes rows {"id": "d<i>", "contents": text} (no title line).
func writeCorpus(t testing.TB, texts []string) string {
	t.Helper()
	var b bytes.Buffer
	for i, text := range texts {
		row, _ := json.Marshal(map[string]string{"id": fmt.Sprintf("d%d", i), "contents": text})
		b.Write(row)
		b.WriteByte('\n')
	}
	path := filepath.Join(t.TempDir(), "corpus.jsonl")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func buildIndex(t testing.TB, opts BuildOptions) *Index {
	t.Helper()
	if opts.Out == "" {
		opts.Out = filepath.Join(t.TempDir(), "index")
	}
	opts.Progress = ProgressOff
	opts.NoSync = true
	if _, err := Build(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	ix, err := Open(opts.Out, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix
}

var plainAnalyzer = AnalyzerConfig{Stemmer: "none", Stopwords: "none"}

// TestBM25Textbook checks scores against the formula worked by hand:
//
//	score(d, q) = Σ_t qtf · ln(1 + (N − df + 0.5)/(df + 0.5)) · tf·(k1+1) / (tf + k1·(1 − b + b·dl/avgdl))
//
// with N = 3, avgdl = (6+3+3)/3 = 4, k1 = 0.9, b = 0.4. For "cat" in d0
// (tf 1, dl 6, df 2): idf = ln 1.6 = 0.470004, tf-part = 1.9/2.08 = 0.913462,
// score 0.429330. In d2 (tf 2, dl 3): 3.8/2.81 = 1.352313, score 0.635592.
func TestBM25Textbook(t *testing.T) {
	ix := buildIndex(t, BuildOptions{
		Corpus:   writeCorpus(t, []string{"the cat sat on the mat", "the dog sat", "cat cat dog"}),
		Analyzer: plainAnalyzer,
	})
	type hit struct {
		id    string
		score float64
	}
	tests := []struct {
		query string
		want  []hit
	}{
		{"cat", []hit{{"d2", 0.635592}, {"d0", 0.429330}}},
		{"cat mat", []hit{{"d0", 1.325280}, {"d2", 0.635592}}},
		{"dog sat", []hit{{"d1", 0.986748}, {"d2", 0.493374}, {"d0", 0.429330}}},
		{"cat cat", []hit{{"d2", 1.271184}, {"d0", 0.858660}}},
		{"CAT, Mat!", []hit{{"d0", 1.325280}, {"d2", 0.635592}}},
		{"unicorn", nil},
		{"", nil},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			hits, err := ix.BM25.Search(context.Background(), tc.query, 10, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(hits) != len(tc.want) {
				t.Fatalf("got %d hits, want %d: %v", len(hits), len(tc.want), hits)
			}
			for i, h := range hits {
				p, _ := ix.Store.Passage(h.Doc)
				if p.ID != tc.want[i].id || math.Abs(float64(h.Score)-tc.want[i].score) > 2e-6 {
					t.Errorf("hit %d = %s %.6f, want %s %.6f", i, p.ID, h.Score, tc.want[i].id, tc.want[i].score)
				}
			}
		})
	}
}

// zipfCorpus makes n passages of Zipf-distributed words.
func zipfCorpus(n, vocab int, seed uint64) []string {
	rng := rand.New(rand.NewPCG(seed, 7))
	z := rand.NewZipf(rng, 1.1, 1, uint64(vocab-1))
	docs := make([]string, n)
	var b strings.Builder
	for i := range docs {
		b.Reset()
		l := 5 + rng.IntN(60)
		for j := 0; j < l; j++ {
			fmt.Fprintf(&b, "w%d ", z.Uint64())
		}
		docs[i] = b.String()
	}
	return docs
}

// exhaustive scores every document with the textbook formula in float64.
type exhaustive struct {
	tfs   []map[string]int
	dls   []int
	df    map[string]int
	avgdl float64
}

func newExhaustive(docs []string) *exhaustive {
	e := &exhaustive{df: map[string]int{}}
	total := 0
	for _, d := range docs {
		tf := map[string]int{}
		for _, w := range strings.Fields(d) {
			tf[w]++
		}
		for w := range tf {
			e.df[w]++
		}
		e.tfs = append(e.tfs, tf)
		e.dls = append(e.dls, len(strings.Fields(d)))
		total += len(strings.Fields(d))
	}
	e.avgdl = float64(total) / float64(len(docs))
	return e
}

func (e *exhaustive) scores(query string, k1, b float64) map[int]float64 {
	n := float64(len(e.tfs))
	qtf := map[string]int{}
	for _, w := range strings.Fields(query) {
		qtf[w]++
	}
	scores := map[int]float64{}
	for w, q := range qtf {
		df := float64(e.df[w])
		idf := math.Log(1 + (n-df+0.5)/(df+0.5))
		for i, tfs := range e.tfs {
			tf := float64(tfs[w])
			if tf == 0 {
				continue
			}
			scores[i] += float64(q) * idf * tf * (k1 + 1) / (tf + k1*(1-b+b*float64(e.dls[i])/e.avgdl))
		}
	}
	return scores
}

// TestBM25MatchesExhaustive checks that pruning never changes the top k:
// for many queries and k, the hits are those of exhaustive scoring, in
// order, with equal scores.
func TestBM25MatchesExhaustive(t *testing.T) {
	docs := zipfCorpus(2000, 2000, 1)
	path := writeCorpus(t, docs)
	ex := newExhaustive(docs)
	rng := rand.New(rand.NewPCG(9, 9))
	z := rand.NewZipf(rng, 1.1, 1, 1999)
	var queries []string
	for i := 0; i < 100; i++ {
		var q []string
		for j := 0; j < 1+rng.IntN(6); j++ {
			if rng.IntN(3) == 0 {
				q = append(q, fmt.Sprintf("w%d", 100+rng.IntN(1900)))
			} else {
				q = append(q, fmt.Sprintf("w%d", z.Uint64()))
			}
		}
		queries = append(queries, strings.Join(q, " "))
	}
	for _, kb := range [][2]float64{{0.9, 0.4}, {1.2, 0.75}} {
		for _, override := range []bool{kb[0] != 0.9} {
			name := fmt.Sprintf("k1=%g b=%g override=%v", kb[0], kb[1], override)
			t.Run(name, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "ix")
				opts := BuildOptions{Corpus: path, Out: dir, Analyzer: plainAnalyzer, K1: kb[0], B: kb[1], Progress: ProgressOff, NoSync: true}
				if override {
					opts.K1, opts.B = 2.0, 0.1 // built with other values: loose bounds
				}
				if _, err := Build(context.Background(), opts); err != nil {
					t.Fatal(err)
				}
				ix, err := Open(dir, OpenOptions{BM25: BM25Options{K1: &kb[0], B: &kb[1]}})
				if err != nil {
					t.Fatal(err)
				}
				defer ix.Close()
				for qi, q := range queries {
					exact := ex.scores(q, kb[0], kb[1])
					type ds struct {
						doc   int
						score float64
					}
					var all []ds
					for d, s := range exact {
						all = append(all, ds{d, s})
					}
					slices.SortFunc(all, func(a, b ds) int {
						if a.score != b.score {
							if a.score > b.score {
								return -1
							}
							return 1
						}
						return a.doc - b.doc
					})
					for _, k := range []int{1, 3, 10, 100} {
						hits, err := ix.BM25.Search(context.Background(), q, k, nil)
						if err != nil {
							t.Fatal(err)
						}
						want := all[:min(k, len(all))]
						if len(hits) != len(want) {
							t.Fatalf("query %d %q k=%d: %d hits, want %d", qi, q, k, len(hits), len(want))
						}
						for i, h := range hits {
							if math.Abs(float64(h.Score)-want[i].score) > 1e-4*want[i].score {
								t.Fatalf("query %q k=%d hit %d: doc %d score %.6f, want doc %d %.6f", q, k, i, h.Doc, h.Score, want[i].doc, want[i].score)
							}
							// Documents may swap only where exact scores tie within float32 precision.
							if int(h.Doc) != want[i].doc && math.Abs(exact[int(h.Doc)]-want[i].score) > 1e-5*want[i].score {
								t.Fatalf("query %q k=%d hit %d: doc %d (%.6f), want doc %d (%.6f)", q, k, i, h.Doc, exact[int(h.Doc)], want[i].doc, want[i].score)
							}
						}
					}
				}
			})
		}
	}
}

// TestBuildSpillMergeIdentical builds the same corpus in one run and in
// many spilled runs and compares the index files byte for byte.
func TestBuildSpillMergeIdentical(t *testing.T) {
	path := writeCorpus(t, zipfCorpus(4000, 3000, 2))
	one := filepath.Join(t.TempDir(), "one")
	many := filepath.Join(t.TempDir(), "many")
	if _, err := Build(context.Background(), BuildOptions{Corpus: path, Out: one, Progress: ProgressOff, NoSync: true}); err != nil {
		t.Fatal(err)
	}
	st, err := Build(context.Background(), BuildOptions{Corpus: path, Out: many, Progress: ProgressOff, NoSync: true, spillBytes: 32 << 10, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	if st.Runs < 5 {
		t.Fatalf("only %d runs; the spill path was not exercised", st.Runs)
	}
	for _, name := range []string{postingsFile, blocksFile, termInfoFile, termStrFile, termOffFile, termKeysFile, docLenFile} {
		a, _ := os.ReadFile(filepath.Join(one, bm25Dir, name))
		b, _ := os.ReadFile(filepath.Join(many, bm25Dir, name))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s differs between the one-run and the %d-run build", name, st.Runs)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(many, bm25Dir, "run-*"))
	if len(leftovers) > 0 {
		t.Errorf("run files left behind: %v", leftovers)
	}
}
