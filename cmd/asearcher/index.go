package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/asearcher/asearcher/corpus"
	"github.com/asearcher/asearcher/dataset"
	"github.com/asearcher/asearcher/retrieval"
)

// denseFlags are shared by `index build` and `index dense`.
type denseFlags struct {
	endpoint, model           string
	queryPrefix, passagePrefx string
	noPrefixes                bool
	batch, concurrency        int
	ivfLists                  int
}

func (d *denseFlags) register(f *pflag.FlagSet) {
	f.StringVar(&d.endpoint, "dense-endpoint", "", "OpenAI-compatible embeddings server (TEI, vLLM, SGLang), e.g. http://127.0.0.1:8080; enables dense retrieval")
	f.StringVar(&d.model, "dense-model", "", "embedding model name served by --dense-endpoint, e.g. intfloat/e5-base-v2")
	f.StringVar(&d.queryPrefix, "dense-query-prefix", "query: ", "prefix added to queries before embedding (E5 style)")
	f.StringVar(&d.passagePrefx, "dense-passage-prefix", "passage: ", "prefix added to passages before embedding (E5 style)")
	f.BoolVar(&d.noPrefixes, "dense-no-prefixes", false, "embed queries and passages without prefixes (non-E5 models)")
	f.IntVar(&d.batch, "dense-batch", 64, "passages per embeddings request")
	f.IntVar(&d.concurrency, "dense-concurrency", 2, "embeddings requests in flight")
	f.IntVar(&d.ivfLists, "ivf-lists", 0, "IVF lists for dense search: 0 = flat below 100k passages, about 4·√n above; -1 = always flat")
}

func (d *denseFlags) options() *retrieval.DenseBuildOptions {
	if d.endpoint == "" {
		return nil
	}
	return &retrieval.DenseBuildOptions{
		Endpoint: d.endpoint, Model: d.model, APIKey: os.Getenv("ASEARCHER_EMBEDDINGS_API_KEY"),
		QueryPrefix: d.queryPrefix, PassagePrefix: d.passagePrefx, NoPrefixes: d.noPrefixes || (d.queryPrefix == "" && d.passagePrefx == ""),
		BatchSize: d.batch, Concurrency: d.concurrency, IVFLists: d.ivfLists,
	}
}

func newIndexBuildCmd() *cobra.Command {
	var o retrieval.BuildOptions
	var format string
	var dense denseFlags
	c := &cobra.Command{
		Use:   "build --corpus FILE --out DIR",
		Short: "Build a search index (passage store + BM25, optionally dense) of a corpus",
		Long: `Builds an index directory from a corpus file: a passage store with O(1)
lookup by id and url, a BM25 inverted index and, with --dense-endpoint, a
dense index embedded through an OpenAI-compatible /v1/embeddings server.

Corpus formats: JSONL or JSONL.zst with rows {"id","contents"} (the title in
quotes on the first line of contents, as ASearcher's wiki corpus) or
{"id","title","text"} (url optional, other columns kept); or a JSON array of
such rows, or a JSON object mapping title to a list of sentences.

` + dataset.CorpusHelp() + `
The build streams: memory stays near --memory-mb plus 8 bytes per passage.
The new index replaces DIR only once complete. Serve it with
'asearcher serve search --index DIR'.`,
		Example: `  asearcher index build --corpus builtin:hotpotqa --out /tmp/hotpot-index
  asearcher index build --corpus dataset/data/hotpotqa-hipporag-100/corpus.json --out /tmp/hotpot-index
  asearcher index build --corpus wiki_corpus.jsonl.zst --pages wiki_webpages.jsonl --out wiki-index --memory-mb 2048`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Format = corpus.Format(format)
			o.Logger = slog.Default()
			if cmd.Flags().Changed("k1") || cmd.Flags().Changed("b") {
				if o.K1 == 0 && o.B == 0 {
					return fmt.Errorf("--k1 0 --b 0 is not a useful BM25; pick other values")
				}
			}
			o.Dense = dense.options()
			if name, ok := strings.CutPrefix(o.Corpus, "builtin:"); ok {
				path, cleanup, err := builtinCorpusFile(cmd.Context(), name)
				if err != nil {
					return fmt.Errorf("--corpus %s: %w", o.Corpus, err)
				}
				defer cleanup()
				o.Corpus = path
			}
			st, err := retrieval.Build(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "indexed %d passages (%d skipped) into %s: %d terms, %.1f MB, %s\n",
				st.Passages, st.Skipped, o.Out, st.Terms, float64(st.IndexBytes)/(1<<20), st.Duration.Round(1e6))
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&o.Corpus, "corpus", "", "corpus file (.jsonl, .jsonl.zst, .json) or builtin:NAME (a corpus shipped in the binary)")
	f.StringVar(&o.Out, "out", "", "index directory to create or replace")
	f.StringVar(&format, "format", "auto", "corpus format: auto, jsonl or json")
	f.BoolVar(&o.SkipBad, "skip-bad", false, "skip malformed rows (counted and logged) instead of stopping at the first")
	f.StringVar(&o.URLTemplate, "url-template", corpus.DefaultURLTemplate, `url for rows without one; {title} is replaced by the escaped title; "none" leaves them without`)
	f.StringVar(&o.Analyzer.Stemmer, "stemmer", "porter", "stemmer: porter or none")
	f.StringVar(&o.Analyzer.Stopwords, "stopwords", "english", "stopword list: english or none")
	f.Float64Var(&o.K1, "k1", 0.9, "BM25 k1 (term-frequency saturation)")
	f.Float64Var(&o.B, "b", 0.4, "BM25 b (length normalisation)")
	f.IntVar(&o.MemoryMB, "memory-mb", 512, "postings held in memory before spilling a sorted run to disk")
	f.IntVar(&o.Workers, "workers", 0, "parsing and tokenising goroutines (0 = one per CPU)")
	f.StringVar(&o.Pages, "pages", "", "optional corpus of whole pages (e.g. wiki_webpages.jsonl) served by /access")
	dense.register(f)
	c.MarkFlagRequired("corpus")
	c.MarkFlagRequired("out")
	return c
}

func newIndexDenseCmd() *cobra.Command {
	var dir string
	var dense denseFlags
	c := &cobra.Command{
		Use:   "dense --index DIR --dense-endpoint URL --dense-model NAME",
		Short: "Add (or finish) a dense index to an existing index; resumes after interruption",
		Long: `Embeds every passage of an index through an OpenAI-compatible /v1/embeddings
server and adds exact and IVF dense search to it. Vectors are appended to
DIR/dense/vectors.f32 as they arrive, so rerunning the same command after a
failure or Ctrl-C continues where it stopped. The API key, if the server
needs one, is read from $ASEARCHER_EMBEDDINGS_API_KEY.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := dense.options()
			if opts == nil {
				return fmt.Errorf("--dense-endpoint is required")
			}
			meta, err := retrieval.AddDense(cmd.Context(), dir, *opts, retrieval.ProgressAuto, slog.Default())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "embedded %d passages (%d-d, %s) into %s/dense (IVF lists: %d)\n", meta.Count, meta.Dim, meta.Model, dir, meta.IVFLists)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "index", "", "index directory built by 'asearcher index build'")
	dense.register(c.Flags())
	c.MarkFlagRequired("index")
	return c
}

// builtinCorpusFile writes a corpus shipped in the binary (dataset.Corpora)
// to a temporary JSONL file for the index builder; cleanup removes it.
func builtinCorpusFile(ctx context.Context, name string) (string, func(), error) {
	rc, err := dataset.OpenCorpus(ctx, name)
	if err != nil {
		return "", nil, err
	}
	defer rc.Close()
	dir, err := os.MkdirTemp("", "asearcher-corpus-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	c, _ := dataset.LookupCorpus(name)
	path := filepath.Join(dir, c.Name+".jsonl")
	f, err := os.Create(path)
	if err == nil {
		_, err = io.Copy(f, rc)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return path, cleanup, nil
}
