package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/asearcher/asearcher/eval"
	"github.com/asearcher/asearcher/recipe"
	"github.com/asearcher/asearcher/reward"
	"github.com/asearcher/asearcher/rl"
	"github.com/asearcher/asearcher/synth"
)

// TestDocsYAMLBlocks: every ```yaml block of README.md and docs/*.md
// decodes strictly (unknown fields are errors) with the loader that reads
// that kind of file, so a documented key cannot drift from its schema.
// The kind is the block's first top-level key.
func TestDocsYAMLBlocks(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../../README.md")
	n := 0
	for _, path := range files {
		blocks, err := yamlBlocks(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range blocks {
			n++
			if err := decodeDocBlock(t, b.text); err != nil {
				t.Errorf("%s:%d: %v", filepath.Base(path), b.line, err)
			}
		}
	}
	if n < 5 {
		t.Fatalf("found only %d yaml blocks; the extractor is broken", n)
	}
}

type yamlBlock struct {
	line int
	text string
}

func yamlBlocks(path string) ([]yamlBlock, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []yamlBlock
	var cur *yamlBlock
	var sb strings.Builder
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```yaml":
			cur = &yamlBlock{line: n + 1}
			sb.Reset()
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.text = sb.String()
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			sb.WriteString(line)
			sb.WriteByte('\n')
		}
	}
	return out, sc.Err()
}

// decodeDocBlock decodes one documented block with its loader.
func decodeDocBlock(t *testing.T, text string) error {
	var top yaml.Node
	if err := yaml.Unmarshal([]byte(text), &top); err != nil {
		return err
	}
	if len(top.Content) == 0 || top.Content[0].Kind != yaml.MappingNode || len(top.Content[0].Content) == 0 {
		return fmt.Errorf("not a YAML mapping")
	}
	first := top.Content[0].Content[0].Value
	path := filepath.Join(t.TempDir(), "block.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return err
	}
	switch first {
	case "eval":
		cfg := eval.DefaultConfig()
		return eval.LoadConfigFile(path, &cfg)
	case "synth":
		var o synth.Options
		return loadSynthConfig(pflag.NewFlagSet("synth", pflag.ContinueOnError), path, &o)
	case "cluster", "launch", "seed", "world", "model", "agent", "warmup", "real":
		_, err := recipe.LoadTrainConfig(path)
		return err
	case "rl":
		var f struct {
			RL rl.Config `yaml:"rl"`
		}
		f.RL = rl.DefaultConfig()
		return rl.DecodeYAML(strings.NewReader(text), &f)
	case "reward":
		var f struct {
			Reward reward.Config `yaml:"reward"`
		}
		return rl.DecodeYAML(strings.NewReader(text), &f)
	case "judge":
		var f struct {
			Judge reward.JudgeConfig `yaml:"judge"`
		}
		return rl.DecodeYAML(strings.NewReader(text), &f)
	}
	return fmt.Errorf("no loader reads a file whose first key is %q; fence reference material as text, not yaml", first)
}

// TestDecodeDocBlockRejects: the decoder behind TestDocsYAMLBlocks refuses
// an unknown key of every kind of block.
func TestDecodeDocBlockRejects(t *testing.T) {
	for _, text := range []string{
		"eval:\n  k: 4\n  no_such_key: 1\n",
		"synth:\n  n: 3\n  no_such_key: 1\n",
		"rl:\n  steps: 3\n  no_such_key: 1\n",
		"seed: 1\nno_such_key: 1\n",
		"cluster:\n  data: q.jsonl\nseed: 1\n",
		"reward:\n  aug_weight: 0.3\n  no_such_key: 1\n",
		"judge:\n  model: x\n  no_such_key: 1\n",
		"max_attempts: 3\n",
	} {
		if err := decodeDocBlock(t, text); err == nil {
			t.Errorf("accepted:\n%s", text)
		}
	}
}
