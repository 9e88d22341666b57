package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/asearcher/asearcher/retrieval"
)

func newSearchCmd() *cobra.Command {
	var dir, method, endpoint string
	var k int
	var asJSON bool
	var verify string
	c := &cobra.Command{
		Use:   `search --index DIR "query"`,
		Short: "Search an index from the command line",
		Long: `Prints the top-k passages of an index for a query: rank, score, title, id
and the start of the text. --json prints one JSON object with the full rows.`,
		Example: `  asearcher search --index /tmp/hotpot-index "Who directed The Prestige?"
  asearcher search --index /tmp/hotpot-index -k 3 --json "Christopher Nolan"`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mode, err := retrieval.ParseVerifyMode(verify)
			if err != nil {
				return err
			}
			ix, err := retrieval.Open(dir, retrieval.OpenOptions{
				NoDense: method == "bm25", Dense: retrieval.DenseOptions{Endpoint: endpoint}, Verify: mode, Logger: slog.Default(),
			})
			if err != nil {
				return err
			}
			defer ix.Close()
			r, err := ix.Retriever(method)
			if err != nil {
				return err
			}
			query := strings.Join(args, " ")
			hits, err := r.Search(cmd.Context(), query, k, nil)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				type result struct {
					Rank  int             `json:"rank"`
					Score float32         `json:"score"`
					Row   json.RawMessage `json:"document"`
				}
				res := struct {
					Query   string   `json:"query"`
					Method  string   `json:"method"`
					Results []result `json:"results"`
				}{Query: query, Method: method, Results: []result{}}
				for i, h := range hits {
					res.Results = append(res.Results, result{Rank: i + 1, Score: h.Score, Row: ix.Store.Row(h.Doc)})
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			if len(hits) == 0 {
				fmt.Fprintln(out, "no results")
				return nil
			}
			for i, h := range hits {
				p, err := ix.Store.Passage(h.Doc)
				if err != nil {
					return err
				}
				text := strings.Join(strings.Fields(p.Text()), " ")
				if len(text) > 160 {
					text = strings.ToValidUTF8(text[:160], "") + "…"
				}
				fmt.Fprintf(out, "%2d. %8.4f  %s  (id %s)\n    %s\n", i+1, h.Score, p.Title, p.ID, text)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&dir, "index", "", "index directory")
	f.StringVar(&method, "method", "bm25", "bm25, dense or hybrid")
	f.StringVar(&verify, "verify", "sync", "when to check the index checksums: sync, or off for a huge index (file sizes and layout are still checked)")
	f.StringVar(&endpoint, "dense-endpoint", "", "embeddings server for queries (default: the one the index was built with)")
	f.IntVarP(&k, "k", "k", 10, "number of results")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	c.MarkFlagRequired("index")
	return c
}
