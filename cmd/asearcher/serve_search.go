package main

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/asearcher/asearcher/retrieval"
	"github.com/asearcher/asearcher/retrieval/server"
)

func newServeSearchCmd() *cobra.Command {
	var dir, addr, saveAddr, endpoint string
	var k1, b float64
	var nprobe int
	var bodyMB int
	var verify string
	var o server.Options
	c := &cobra.Command{
		Use:   "search --index DIR [--addr 127.0.0.1:8000]",
		Short: "Serve an index over the Search-R1/ASearcher /retrieve and /access API",
		Long: `Serves an index built by 'asearcher index build':

  POST /retrieve {"queries": [...], "topk": k, "return_scores": bool}
       → {"result": [[row, ...] per query]}  (rows as stored, with contents, id, url;
         with return_scores each item is {"document": row, "score": s})
  POST /access   {"urls": [...]} → {"result": [row | null, ...]}
  GET  /health, GET /metrics (Prometheus)

Existing ASearcher and Search-R1 clients work unchanged: whole GRPO batches
(--max-queries) in one request, topk up to --max-topk, and numeric strings
("topk": "3", "return_scores": "true") coerced as Search-R1's pydantic server
does. Up to --max-in-flight requests run in parallel with no global lock and
replies stream, so memory stays bounded. Ctrl-C stops accepting, finishes requests in
flight and exits. See docs/api.md.`,
		Example: `  asearcher serve search --index /tmp/hotpot-index --addr 127.0.0.1:8000
  curl -s 127.0.0.1:8000/retrieve -d '{"queries": ["Christopher Nolan"], "topk": 3}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var oo retrieval.OpenOptions
			var err error
			if cmd.Flags().Changed("k1") {
				oo.BM25.K1 = &k1
			}
			if cmd.Flags().Changed("b") {
				oo.BM25.B = &b
			}
			oo.NoDense = o.Method == "bm25"
			oo.Dense = retrieval.DenseOptions{Endpoint: endpoint, NProbe: nprobe}
			if oo.Verify, err = retrieval.ParseVerifyMode(verify); err != nil {
				return err
			}
			oo.Logger = slog.Default()
			ix, err := retrieval.Open(dir, oo)
			if err != nil {
				return err
			}
			defer ix.Close()
			o.Logger = slog.Default()
			o.MaxBodyBytes = int64(bodyMB) << 20
			s, err := server.New(ix, o)
			if err != nil {
				return err
			}
			return s.Serve(cmd.Context(), addr, func(a net.Addr) {
				slog.Info("serving", "addr", a.String(), "index", dir, "passages", ix.Store.Len(), "method", o.Method)
				fmt.Fprintf(cmd.OutOrStdout(), "serving %d passages on http://%s (Ctrl-C to stop)\n", ix.Store.Len(), a)
				if saveAddr != "" {
					if path, err := server.WriteAddressFile(saveAddr, a); err != nil {
						slog.Error("write address file", "err", err)
					} else {
						slog.Info("address file written", "path", path)
					}
				}
			})
		},
	}
	f := c.Flags()
	f.StringVar(&dir, "index", "", "index directory")
	f.StringVar(&addr, "addr", "127.0.0.1:8000", "listen address (loopback by default)")
	f.StringVar(&o.Method, "method", "bm25", "retrieval method: bm25, dense or hybrid")
	f.IntVar(&o.DefaultTopK, "default-topk", 3, "results per query when a request's topk is null or 0")
	f.IntVar(&o.MaxTopK, "max-topk", 1000, "largest topk accepted (at most 10000)")
	f.IntVar(&o.MaxQueries, "max-queries", 8192, "most queries per /retrieve request (Search-R1 sends train_batch_size × n_agent at once)")
	f.IntVar(&o.MaxResults, "max-results", 1_000_000, "most queries × topk per /retrieve request (413 past it)")
	f.IntVar(&o.MaxInFlight, "max-in-flight", 32, "requests served at once; others wait for a turn")
	f.DurationVar(&o.QueueTimeout, "queue-timeout", 30*time.Second, "longest wait for a turn before 429")
	f.IntVar(&o.MaxURLs, "max-urls", 256, "most urls per /access request")
	f.IntVar(&bodyMB, "max-body-mb", 4, "largest request body in MiB")
	f.DurationVar(&o.RequestTimeout, "timeout", 60*time.Second, "time limit for one request's work")
	f.Float64Var(&k1, "k1", 0.9, "override the index's BM25 k1")
	f.Float64Var(&b, "b", 0.4, "override the index's BM25 b")
	f.StringVar(&endpoint, "dense-endpoint", "", "embeddings server for queries (default: the one the index was built with)")
	f.IntVar(&nprobe, "nprobe", 0, "IVF lists scanned per dense query (0 = lists/16, at least 8)")
	f.StringVar(&verify, "verify", "background", "when to check the index checksums: background (serve at once; answer 503 if a file turns out damaged), sync (before serving) or off (file sizes and layout are still checked)")
	f.StringVar(&saveAddr, "save-address-to", "", "directory to write Host{ip}_IP{port}.txt in, for ASearcher's training clients ($RAG_SERVER_ADDR_DIR)")
	c.MarkFlagRequired("index")
	return c
}
