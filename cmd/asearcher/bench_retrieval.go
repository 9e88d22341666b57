package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	retrievalbench "github.com/asearcher/asearcher/bench/retrieval"
	"github.com/asearcher/asearcher/retrieval"
)

func newBenchRetrievalCmd() *cobra.Command {
	var o retrievalbench.Options
	var asJSON bool
	c := &cobra.Command{
		Use:   "retrieval",
		Short: "Search engine side by side with SQLite FTS5 and bleve (BM25): build, size, latency, QPS",
		Long: `Indexes the same corpus with asearcher's engine, SQLite FTS5 (modernc,
bm25()) and bleve v2 (BM25 scoring), runs the same queries through each and
prints build time, index size, single-query p50/p99 and QPS at each
concurrency, with asearcher both in process and through its HTTP server.
All engines use k1=1.2, b=0.75 (FTS5's fixed values) and no stemming or
stopwords unless told otherwise, so they do the same work; "overlap" is the
top-k agreement with asearcher on the first 200 queries.`,
		Example: `  asearcher bench retrieval --corpus dataset/data/hotpotqa-hipporag-100/corpus.json \
      --corpus dataset/data/2wikimultihopqa-hipporag-corpus/corpus.json \
      --queries dataset/data/hotpotqa-dev-qa/dev_7405.json
  asearcher bench retrieval --synthetic 1000000 --query-set zipf --query-set mid`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Logger = slog.Default()
			rep, err := retrievalbench.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			retrievalbench.WriteTable(cmd.OutOrStdout(), rep)
			return nil
		},
	}
	f := c.Flags()
	f.StringArrayVar(&o.Corpora, "corpus", nil, "corpus file; repeat to merge several")
	f.IntVar(&o.Synthetic, "synthetic", 0, "generate a Zipf corpus of this many passages instead")
	f.StringArrayVar(&o.QueryFiles, "queries", nil, `QA file whose "question" fields are the queries; repeatable`)
	f.StringArrayVar(&o.QuerySets, "query-set", nil, "synthetic query set: zipf (frequent words) or mid (content words); repeatable")
	f.IntVar(&o.NumQueries, "num-queries", 2000, "queries per set")
	f.StringSliceVar(&o.Engines, "engines", []string{"asearcher", "asearcher-http", "sqlite-fts5", "bleve-bm25"}, "engines to compare")
	f.IntSliceVar(&o.Concurrency, "concurrency", []int{1, 8, 64}, "client concurrency levels")
	f.DurationVar(&o.Duration, "duration", 5*time.Second, "length of each QPS measurement")
	f.IntVar(&o.Runs, "runs", 3, "repeat measurements, report medians")
	f.IntVarP(&o.K, "k", "k", 10, "top-k")
	f.Float64Var(&o.K1, "k1", 1.2, "BM25 k1 for asearcher and bleve (FTS5's is fixed at 1.2)")
	f.Float64Var(&o.B, "b", 0.75, "BM25 b for asearcher and bleve (FTS5's is fixed at 0.75)")
	f.StringVar(&o.Analyzer.Stemmer, "stemmer", "none", "asearcher stemmer: none (same work as the others) or porter")
	f.StringVar(&o.Analyzer.Stopwords, "stopwords", "none", "asearcher stopwords: none or english")
	f.StringVar(&o.WorkDir, "workdir", "", "keep indexes here (default: a temporary directory, removed)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newBenchRecallCmd() *cobra.Command {
	var corpusPath, questions, method, endpoint, model, dir string
	var ks []int
	var noPrefixes bool
	c := &cobra.Command{
		Use:   "recall --corpus FILE --questions FILE",
		Short: "Recall@k of gold supporting paragraphs (HotpotQA format) for bm25, dense or hybrid",
		Long: `Indexes a corpus (or opens --index), retrieves for every question of a
HotpotQA-format file and reports the mean fraction of its supporting
paragraphs (matched by title) in the top k. Dense and hybrid need an index
with a dense part: pass --dense-endpoint and --dense-model to build one.`,
		Example: `  asearcher bench recall --corpus dataset/data/hotpotqa-hipporag-100/corpus.json \
      --questions dataset/data/hotpotqa-hipporag-100/questions.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			qs, err := retrievalbench.LoadHotpotSupport(questions)
			if err != nil {
				return err
			}
			return withIndex(cmd, dir, corpusPath, endpoint, model, noPrefixes, func(ix *retrieval.Index) error {
				methods := []string{method}
				if method == "all" {
					methods = []string{"bm25"}
					if ix.Dense != nil {
						methods = append(methods, "dense", "hybrid")
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d questions, %d passages\n%-8s", len(qs), ix.Store.Len(), "method")
				for _, k := range ks {
					fmt.Fprintf(cmd.OutOrStdout(), " %9s", fmt.Sprintf("R@%d", k))
				}
				fmt.Fprintln(cmd.OutOrStdout())
				for _, m := range methods {
					r, err := ix.Retriever(m)
					if err != nil {
						return err
					}
					rec, err := retrievalbench.Recall(cmd.Context(), r, ix.Store, qs, ks)
					if err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%-8s", m)
					for _, k := range ks {
						fmt.Fprintf(cmd.OutOrStdout(), " %9.3f", rec[k])
					}
					fmt.Fprintln(cmd.OutOrStdout())
				}
				return nil
			})
		},
	}
	f := c.Flags()
	f.StringVar(&corpusPath, "corpus", "", "corpus to index (a temporary index is built)")
	f.StringVar(&dir, "index", "", "use this index instead of building one")
	f.StringVar(&questions, "questions", "", "HotpotQA-format questions with supporting_facts")
	f.StringVar(&method, "method", "all", "bm25, dense, hybrid or all")
	f.StringVar(&endpoint, "dense-endpoint", "", "embeddings server (builds a dense index with --dense-model)")
	f.StringVar(&model, "dense-model", "", "embedding model name")
	f.BoolVar(&noPrefixes, "dense-no-prefixes", false, "embed without the E5 query:/passage: prefixes (models not trained with them, e.g. MiniLM)")
	f.IntSliceVar(&ks, "k", []int{2, 5, 10}, "cut-offs")
	c.MarkFlagRequired("questions")
	c.PreRunE = func(cmd *cobra.Command, args []string) error {
		if (corpusPath == "") == (dir == "") {
			return fmt.Errorf("give exactly one of --corpus and --index")
		}
		return nil
	}
	return c
}

// withIndex opens dir, or builds a temporary index of corpusPath (with a
// dense part when endpoint is set), and runs fn on it.
func withIndex(cmd *cobra.Command, dir, corpusPath, endpoint, model string, noPrefixes bool, fn func(*retrieval.Index) error) error {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "asearcher-recall-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = filepath.Join(tmp, "index")
		opts := retrieval.BuildOptions{Corpus: corpusPath, Out: dir, Logger: slog.Default(), NoSync: true}
		if endpoint != "" {
			opts.Dense = &retrieval.DenseBuildOptions{Endpoint: endpoint, Model: model, NoPrefixes: noPrefixes}
		}
		if _, err := retrieval.Build(cmd.Context(), opts); err != nil {
			return err
		}
	}
	ix, err := retrieval.Open(dir, retrieval.OpenOptions{Dense: retrieval.DenseOptions{Endpoint: endpoint}})
	if err != nil {
		return err
	}
	defer ix.Close()
	return fn(ix)
}
