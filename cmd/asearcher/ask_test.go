package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestAskEmbeddedModel: ask --model embedded:DIR runs a model directory in
// process through the shared backend registry (ask used to refuse the
// prefix as unknown; only eval had it).
func TestAskEmbeddedModel(t *testing.T) {
	model := filepath.Join(t.TempDir(), "tiny")
	if out, err := runCLI(t, "model", "init", "--config", "tiny", "--out", model); err != nil {
		t.Fatalf("model init: %v\n%s", err, out)
	}
	out, err := runCLI(t, "ask", "--model", "embedded:"+model, "--agent", "tiny", "--max-turns", "1",
		"--max-call-tokens", "8", "--temperature", "0", "--json", "Who wrote Dune?")
	if err != nil {
		t.Fatalf("ask: %v\n%s", err, out)
	}
	// The tiny preset's context is shorter than the prompt, so the run
	// ends at once; token mode shows the engine and the model directory's
	// own tokenizer were opened.
	var rec struct {
		Mode  string `json:"mode"`
		Agent string `json:"agent"`
	}
	line := out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Mode != "tokens" || rec.Agent != "tiny" {
		t.Fatalf("ask --json printed %q (%v)", out, err)
	}
	if _, err := runCLI(t, "ask", "--model", "nosuch:"+model, "q"); err == nil || !strings.Contains(err.Error(), `unknown prefix "nosuch"`) {
		t.Fatalf("unknown backend: %v", err)
	}
}
