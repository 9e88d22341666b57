package main

import (
	"fmt"
	"io"
	"log/slog"

	"strings"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func newRootCmd() *cobra.Command {
	var logLevel string
	root := &cobra.Command{
		Use:   "asearcher",
		Short: "Train and evaluate long-horizon search agents with asynchronous RL",
		Long: `asearcher trains and evaluates LLM search agents: an agent that searches
(<search>), reads pages (<access>) and answers (<answer>) over many turns.

It bundles a local search engine (BM25 + dense) served over the
Search-R1/ASearcher /retrieve + /access API, an evaluation harness, a QA
synthesis agent, a fully asynchronous RL controller, and an embedded CPU
transformer so that everything runs on one machine without a GPU.

Start with:
  asearcher train            run the embedded end-to-end RL demo
  asearcher index build      build a BM25 index of a corpus
  asearcher serve search     serve an index over /retrieve and /access`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return setupLogging(cmd.ErrOrStderr(), logLevel)
		},
	}
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")

	root.AddCommand(
		newVersionCmd(),
		newIndexCmd(),
		newServeCmd(),
		newBenchCmd(),
		newModelCmd(),
		newAskCmd(),
		newSearchCmd(),
		newGenerateCmd(),
		newSynthCmd(),
		newEvalCmd(),
		newTrainCmd(),
		newExportCmd(),
	)
	return root
}

func setupLogging(w io.Writer, level string) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToLower(level))); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})))
	return nil
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the asearcher version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "asearcher", version)
		},
	}
}

// Parent commands. Each groups subcommands that live in their own files.

func newIndexCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "index",
		Short: "Build and inspect search indexes",
	}
	c.AddCommand(newIndexBuildCmd(), newIndexDenseCmd())
	return c
}

func newServeCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run HTTP servers: the search engine or a model",
	}
	c.AddCommand(newServeSearchCmd(), newServeModelCmd())
	return c
}

func newBenchCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "bench",
		Short: "Comparative benchmarks that print side-by-side tables",
	}
	c.AddCommand(newBenchEngineCmd(), newBenchRetrievalCmd(), newBenchRecallCmd(), newBenchRolloutCmd())
	return c
}

func newModelCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "model",
		Short: "Create and inspect embedded-engine model directories",
	}
	c.AddCommand(newModelInitCmd(), newModelImportCmd())
	return c
}
