package recipe

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/launch"
)

// TestClusterLaunchBlock: a launch: block decodes strictly over its
// defaults, stands in for the cluster: URLs of the servers it starts, and
// refuses a URL given twice; RunCluster alone refuses a file whose
// servers nobody launched.
func TestClusterLaunchBlock(t *testing.T) {
	base := `cluster:
  data: d
  tokenizer: t
  trainer: {base_model: m}
launch:
  model: /m
  search: {index: /ix}
  samplers: {count: 2}
  trainer: {}
`
	f, err := DecodeClusterFile([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if f.Launch == nil || f.Launch.Host != "127.0.0.1" || f.Launch.HealthTimeoutS != 120 || f.Launch.Trainer == nil || f.Launch.Samplers.Count != 2 {
		t.Fatalf("launch block %+v", f.Launch)
	}
	if _, err := RunCluster(context.Background(), ClusterOptions{File: f, Out: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "run it with asearcher train --config") {
		t.Fatalf("RunCluster without endpoints: %v", err)
	}
	// A launched vLLM fleet is spoken to as vLLM, with the publisher's
	// bound as --max-loras.
	vf, err := DecodeClusterFile([]byte(strings.Replace(strings.Replace(base, "{count: 2}", "{count: 2, kind: vllm}", 1),
		"  trainer: {base_model: m}\n", "  trainer: {base_model: m}\n  publish: {kind: vllm-lora, dir: /a}\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := withEndpoints(vf, &launch.Endpoints{Search: "http://s", Trainer: "http://t", Samplers: []string{"http://a", "http://b"}, SamplerKind: launch.KindVLLM})
	if err != nil || c.Sampler != "vllm:http://a/v1,http://b/v1" {
		t.Fatalf("launched vLLM fleet: sampler %q, %v", c.Sampler, err)
	}
	if v := launchVars(vf, "/run"); v.LoraRank != DefaultLoraRank || v.MaxLoRAs != vf.RL.MaxStaleness+2 {
		t.Errorf("launch vars %+v", v)
	}
	for _, tc := range []struct{ from, to, want string }{
		{"  data: d\n", "  data: d\n  search: http://s\n", `cluster.search is "http://s" but launch: starts that server`},
		{"  data: d\n", "  data: d\n  sampler: tinker\n", "leave cluster.sampler out"},
		{"{base_model: m}", "{base_model: m, base_url: http://t}", "leave cluster.trainer.base_url out"},
		{"{count: 2}", "{count: 2, bogus: 1}", "field bogus not found"},
		// Without launch.trainer, the trainer's URL is required again.
		{"  trainer: {}\n", "", "cluster.trainer.base_url is empty"},
		{"{count: 2}", "{count: 2, kind: vllm}", "set cluster.publish.kind: vllm-lora"},
		{"  trainer: {base_model: m}\n", "  trainer: {base_model: m}\n  publish: {kind: vllm-lora, dir: /a}\n", "set launch.samplers.kind: vllm"},
	} {
		y := strings.Replace(base, tc.from, tc.to, 1)
		if _, err := DecodeClusterFile([]byte(y)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", y, err, tc.want)
		}
	}
}

// TestLaunchDocYAML: every cluster.yaml in docs/cluster.md with a launch:
// block decodes strictly, validates and plans (commands, ports, URLs).
func TestLaunchDocYAML(t *testing.T) {
	raw, err := os.ReadFile("../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(raw), "```yaml\ncluster:\n")[1:]
	n := 0
	for _, b := range blocks {
		b, _, _ = strings.Cut(b, "```")
		if !strings.Contains(b, "\nlaunch:\n") {
			continue
		}
		n++
		f, err := DecodeClusterFile([]byte("cluster:\n" + b))
		if err != nil {
			t.Fatalf("docs/cluster.md launch example %d: %v", n, err)
		}
		run := t.TempDir()
		p, err := f.Launch.Plan(launch.Vars{RunDir: run, BaseModel: f.Cluster.Trainer.BaseModel})
		if err != nil {
			t.Fatalf("example %d: %v", n, err)
		}
		if len(p.Specs) < 2 || p.Endpoints.Search == "" || p.Endpoints.Trainer == "" {
			t.Errorf("example %d plans %+v", n, p)
		}
		for _, s := range p.Specs {
			if strings.Contains(strings.Join(s.Argv, " "), "{") && !strings.Contains(strings.Join(s.Argv, " "), `{"`) {
				t.Errorf("example %d: %s has an unfilled placeholder: %q", n, s.Name, s.Argv)
			}
		}
	}
	if n != 3 {
		t.Fatalf("found %d cluster.yaml examples with a launch: block in docs/cluster.md, want 3 (two launcher examples and the SkyRL one)", n)
	}
}
