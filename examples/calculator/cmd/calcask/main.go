// Command calcask is `asearcher ask` with the calculator agent registered:
// the whole of what a program needs to run a custom agent through the
// same code path as the built-in ones.
//
//	go run ./examples/calculator/cmd/calcask --model http://127.0.0.1:8000/v1 \
//	    --search http://127.0.0.1:5005 "How many years passed between the births of Newton and Einstein?"
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/asearcher/asearcher/agent"
	"github.com/asearcher/asearcher/examples/calculator"
)

func main() {
	var cfg agent.AskConfig
	flag.StringVar(&cfg.Env.Model, "model", "", "model server: http://host:port/v1 or sglang:http://host:port")
	flag.StringVar(&cfg.Env.Tokenizer, "tokenizer", "", "tokenizer.json for token mode")
	flag.StringVar(&cfg.Env.Search, "search", "", "retrieval server URL or serper")
	flag.StringVar(&cfg.Agent, "agent", calculator.Name, "agent name")
	flag.BoolVar(&cfg.JSON, "json", false, "print the full trajectory record")
	flag.Parse()
	cfg.Question = strings.Join(flag.Args(), " ")

	reg := agent.NewRegistry()
	if err := calculator.Register(reg, nil); err != nil {
		fmt.Fprintln(os.Stderr, "calcask:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := agent.Ask(ctx, os.Stdout, reg, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "calcask:", err)
		os.Exit(1)
	}
}
