package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// model init → generate → bench engine through the commands, on the tiny
// preset.
func TestModelInitGenerateBenchCommands(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "corpus.txt")
	if err := os.WriteFile(text, []byte(strings.Repeat("the cat sat on the mat.\nParis is in France.\n", 30)), 0o644); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "model")
	out, err := runCLI(t, "model", "init", "--config", "tiny", "--out", model, "--train-text", text, "--vocab", "300", "--dtype", "bfloat16")
	if err != nil {
		t.Fatalf("model init: %v\n%s", err, out)
	}
	if !strings.Contains(out, "qwen3, 2 layers, hidden 64, vocab ") {
		t.Fatalf("model init printed %q", out)
	}
	if _, err := runCLI(t, "model", "init", "--config", "huge", "--out", model); err == nil {
		t.Fatal("unknown preset accepted")
	}
	gen := func(args ...string) string {
		t.Helper()
		out, err := runCLI(t, append([]string{"generate", "--model", model, "--seed", "3", "--max-new-tokens", "8"}, args...)...)
		if err != nil {
			t.Fatalf("generate %v: %v\n%s", args, err, out)
		}
		return out
	}
	// The text before the stats line (whose rate varies) is reproducible.
	a, b := gen("the cat"), gen("the cat")
	if i := strings.Index(a, "[2 prompt + 8 new tokens"); i < 0 || !strings.HasPrefix(b, a[:i]) {
		t.Fatalf("seeded generate not reproducible or no stats line:\n%s\n---\n%s", a, b)
	}
	if chat := gen("--chat", "--system", "Be brief.", "the cat"); !strings.Contains(chat, "prompt +") {
		t.Fatalf("chat generate printed %q", chat)
	}
	if _, err := runCLI(t, "generate", "hello"); err == nil {
		t.Fatal("generate without --model accepted")
	}
	out, err = runCLI(t, "bench", "engine", "--preset", "tiny", "--vocab", "64", "--seqs", "1", "--seq-len", "16",
		"--prompt", "4", "--new-tokens", "4", "--rounds", "1", "--json")
	if err != nil {
		t.Fatalf("bench engine: %v\n%s", err, out)
	}
	var r struct {
		Params          int     `json:"params"`
		PeakGFLOPS      float64 `json:"peak_gflops"`
		Train           float64 `json:"train_tokens_per_sec"`
		Sample1         float64 `json:"sample1_tokens_per_sec"`
		Sample32        float64 `json:"sample32_tokens_per_sec"`
		KVBytesPerToken int     `json:"kv_bytes_per_token"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &r); err != nil {
		t.Fatalf("bench engine JSON: %v\n%s", err, out)
	}
	// tiny: 2 layers × (k, v) × 2 kv heads × 16 dims × 4 bytes.
	if r.Params == 0 || r.PeakGFLOPS <= 0 || r.Train <= 0 || r.Sample1 <= 0 || r.Sample32 <= 0 || r.KVBytesPerToken != 512 {
		t.Fatalf("bench engine result %+v", r)
	}
}

// docs/engine.md lists every flag of model init, generate and bench engine
// with its default; keep the tables and the commands in step.
func TestEngineDocsListFlagDefaults(t *testing.T) {
	doc, err := os.ReadFile("../../docs/engine.md")
	if err != nil {
		t.Fatal(err)
	}
	// Rows look like "| `--flag` | default | meaning |" or, for two flags,
	// "| `--a`, `--b` | 2, 1024 | meaning |".
	// Tables sit under the heading that names their command.
	documented := map[string]map[string]string{}
	section := ""
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(line, "#") {
			section = ""
			for _, name := range []string{"model init", "model import", "generate", "Performance"} {
				if strings.Contains(line, name) {
					section = name
				}
			}
			if section == "Performance" {
				section = "bench engine"
			}
			documented[section] = map[string]string{}
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`--") {
			continue
		}
		names := strings.Split(strings.TrimSpace(cells[1]), ", ")
		defs := strings.Split(strings.TrimSpace(cells[2]), ", ")
		for i, n := range names {
			def := defs[min(i, len(defs)-1)]
			documented[section][strings.Trim(n, "`")] = strings.Trim(def, "`")
		}
	}
	for _, c := range []*struct {
		name  string
		flags func() map[string]string
	}{
		{"model init", func() map[string]string { return flagDefaults(newModelInitCmd().Flags()) }},
		{"model import", func() map[string]string { return flagDefaults(newModelImportCmd().Flags()) }},
		{"generate", func() map[string]string { return flagDefaults(newGenerateCmd().Flags()) }},
		{"bench engine", func() map[string]string { return flagDefaults(newBenchEngineCmd().Flags()) }},
	} {
		for name, def := range c.flags() {
			doc, ok := documented[c.name]["--"+name]
			switch {
			case !ok:
				t.Errorf("%s: flag --%s is not in its table in docs/engine.md", c.name, name)
			case doc == "required" || doc == "—" || doc == "random" || doc == "GOMAXPROCS":
				if def != "" && def != "0" && def != "[]" {
					t.Errorf("%s: --%s documented as %q but defaults to %q", c.name, name, doc, def)
				}
			case doc != def:
				t.Errorf("%s: --%s documented default %q, flag default %q", c.name, name, doc, def)
			}
		}
	}
}

func flagDefaults(fs *pflag.FlagSet) map[string]string {
	out := map[string]string{}
	fs.VisitAll(func(f *pflag.Flag) { out[f.Name] = f.DefValue })
	return out
}
