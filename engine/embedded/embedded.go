// Package embedded plugs the embedded CPU engine into the rest of
// asearcher through its interfaces: the "embedded:" model backend of
// llm.Backends. It sits beside the engine so that llm, agent, eval and rl
// never link the engine themselves; a program that wants the engine
// registers it (cmd/asearcher does).
package embedded

import (
	"context"
	"strings"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tokenizer"
)

// Prefix is the model spec prefix: embedded:DIR runs the model directory
// DIR (config.json, model.safetensors, tokenizer.json) in process.
const Prefix = "embedded"

// Backend is the embedded engine as an llm backend. Its tokenizer is the
// model directory's own, so runs are in token mode by default.
func Backend() llm.Backend {
	return llm.Backend{
		Usage:     "embedded:DIR (a model directory run in process on the CPU; no server)",
		Open:      open,
		Tokenizer: func(dir string) string { return strings.TrimSpace(dir) },
	}
}

// The agent caps its context budget to the model's through this interface.
var _ llm.ContextLengther = (*engine.Sampler)(nil)

// Register adds the embedded backend to b.
func Register(b *llm.Backends) error { return b.Register(Prefix, Backend()) }

func open(_ context.Context, dir string, o llm.OpenOptions) (llm.Sampler, func() error, error) {
	s, err := engine.NewSamplerForDir(strings.TrimSpace(dir), engine.SamplerOptions{MaxBatch: o.MaxInFlight, Logger: o.Logger}, tokenizer.ChatOptions{})
	if err != nil {
		return nil, nil, err
	}
	return s, func() error { s.Close(); return nil }, nil
}
