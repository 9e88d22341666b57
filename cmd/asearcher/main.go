// Command asearcher trains and evaluates long-horizon search agents.
//
// main only wires commands together; every command's logic lives in a
// domain package (corpus, retrieval, agent, eval, rl, ...).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "asearcher:", err)
		os.Exit(1)
	}
}
