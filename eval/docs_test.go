package eval

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConfigurationDocExample: the eval YAML example in
// docs/configuration.md decodes strictly into Config.
func TestConfigurationDocExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i := strings.Index(s, "## Evaluation (`asearcher eval`)")
	if i < 0 {
		t.Fatal("no eval section")
	}
	s = s[i:]
	start := strings.Index(s, "```yaml\n")
	end := strings.Index(s[start+8:], "```")
	if start < 0 || end < 0 {
		t.Fatal("no yaml block in the eval section")
	}
	path := filepath.Join(t.TempDir(), "eval.yaml")
	if err := os.WriteFile(path, []byte(s[start+8:start+8+end]), 0o644); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	if err := LoadConfigFile(path, &c); err != nil {
		t.Fatal(err)
	}
	d := DefaultConfig()
	if c.K != 4 || len(c.Data) != 2 || c.Limits.ToolTimeout != 60*time.Second || c.Limits.MaxTurns != d.Limits.MaxTurns ||
		c.Concurrency != d.Concurrency || c.Temperature != d.Temperature || c.Bootstrap != d.Bootstrap || c.MaxAttempts != d.MaxAttempts {
		t.Fatalf("decoded %+v", c)
	}
}
