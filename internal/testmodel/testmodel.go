// Package testmodel makes the tiny random models that tests across packages
// serve or sample from (the same few lines of preset, init and open were
// copied into every such test).
package testmodel

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/tokenizer"
)

// TinyDir writes a random "tiny" preset model (vocabulary 16, float32,
// initialised from seed) into a fresh directory under t.TempDir and returns
// the directory. Different seeds give different weights.
func TinyDir(t testing.TB, seed uint64) string {
	t.Helper()
	cfg, err := engine.Preset("tiny", 16)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "tiny")
	if _, err := engine.InitModelDir(context.Background(), dir, engine.InitOptions{Config: cfg, Seed: seed, DType: engine.F32}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Tiny is TinyDir plus the opened weights and tokenizer, as a server or an
// in-process sampler takes them.
func Tiny(t testing.TB, seed uint64) (string, *engine.Weights, *tokenizer.Tokenizer) {
	t.Helper()
	dir := TinyDir(t, seed)
	w, tok, err := engine.OpenModelDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, w, tok
}
