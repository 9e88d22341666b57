package reward

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// yamlBlock returns the first ```yaml block after heading in a markdown file.
func yamlBlock(t *testing.T, doc, heading string) []byte {
	t.Helper()
	i := strings.Index(doc, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("docs/configuration.md has no %q section", heading)
	}
	rest := doc[i:]
	start := strings.Index(rest, "```yaml\n")
	end := strings.Index(rest[start+8:], "```")
	if start < 0 || end < 0 {
		t.Fatalf("section %q has no yaml block", heading)
	}
	return []byte(rest[start+8 : start+8+end])
}

func decodeStrict(t *testing.T, data []byte, v any) {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode documented YAML: %v", err)
	}
}

// TestConfigurationDocs decodes the documented reward and judge blocks with
// unknown fields rejected and checks they state the real defaults.
func TestConfigurationDocs(t *testing.T) {
	raw, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)

	var r struct {
		Reward Config `yaml:"reward"`
	}
	decodeStrict(t, yamlBlock(t, doc, "## reward"), &r)
	if !reflect.DeepEqual(r.Reward, DefaultConfig()) {
		t.Errorf("documented reward block %+v differs from DefaultConfig() %+v", r.Reward, DefaultConfig())
	}

	var j struct {
		Judge JudgeConfig `yaml:"judge"`
	}
	decodeStrict(t, yamlBlock(t, doc, "## judge"), &j)
	want := JudgeConfig{Model: j.Judge.Model}.withDefaults()
	if j.Judge != want {
		t.Errorf("documented judge block %+v differs from the defaults %+v", j.Judge, want)
	}

	partial := struct {
		Reward Config `yaml:"reward"`
	}{Reward: DefaultConfig()}
	decodeStrict(t, []byte("reward:\n  metric: em\n  invalid_question:\n    penalty: -1\n"), &partial)
	if partial.Reward.Metric != MetricEM || partial.Reward.AugWeight != 0.3 || partial.Reward.InvalidQuestion.Penalty != -1 || !partial.Reward.InvalidQuestion.Enabled {
		t.Errorf("a partial block should keep the other defaults: %+v", partial.Reward)
	}
}
