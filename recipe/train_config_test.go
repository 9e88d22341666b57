package recipe

import (
	"strings"
	"testing"
)

// TestDecodeTrainConfigMode: the mode follows from the blocks, each
// mode decodes over its own defaults, and demo settings beside a
// cluster: or launch: block are refused by name instead of ignored.
func TestDecodeTrainConfigMode(t *testing.T) {
	const cluster = "cluster:\n  data: q.jsonl\n  search: http://127.0.0.1:1\n  tokenizer: tok.json\n  sampler: tinker\n  trainer:\n    base_url: http://127.0.0.1:2\n    base_model: m\n"
	for _, tc := range []struct {
		name, yaml string
		mode       TrainMode
		err        string
	}{
		{"empty is the demo", "", ModeDemo, ""},
		{"demo", "seed: 3\nrl: {steps: 2}\n", ModeDemo, ""},
		{"cluster", cluster + "rl: {steps: 2}\n", ModeCluster, ""},
		{"demo keys with cluster", cluster + "seed: 3\nwarmup: {steps: 1}\n", ModeCluster, "seed, warmup: demo settings"},
		{"demo key with launch only", "launch: {}\nworld: {people: 3}\n", ModeCluster, "world: demo settings"},
		{"launch without cluster", "launch: {}\n", ModeCluster, "no cluster: block"},
		{"unknown top key", "sede: 3\n", ModeDemo, "sede"},
		{"unknown key in cluster run", cluster + "sede: 3\n", ModeCluster, "sede"},
		{"not a mapping", "- a\n", "", "cannot unmarshal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeTrainConfig([]byte(tc.yaml))
			if c.Mode != tc.mode {
				t.Errorf("mode %q, want %q", c.Mode, tc.mode)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want it to mention %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			switch tc.mode {
			case ModeDemo:
				if tc.yaml != "" && (c.Demo.Seed != 3 || c.Demo.RL.Steps != 2) {
					t.Errorf("demo not decoded: %+v", c.Demo)
				}
				if c.Demo.World.People != DefaultDemoConfig().World.People {
					t.Errorf("demo defaults lost: %+v", c.Demo.World)
				}
			case ModeCluster:
				if c.Cluster.Cluster == nil || c.Cluster.RL.Steps != 2 || c.Cluster.RL.Optim.LR != DefaultClusterFile().RL.Optim.LR {
					t.Errorf("cluster not decoded over its defaults: %+v", c.Cluster)
				}
			}
		})
	}
}

// TestLoadPerModeRefusesOtherMode: the per-mode loaders (used on resume)
// refuse a file of the other mode rather than reading it as theirs.
func TestLoadPerModeRefusesOtherMode(t *testing.T) {
	demo := writeClusterYAML(t, "seed: 2\n")
	if _, err := LoadClusterFile(demo); err == nil || !strings.Contains(err.Error(), "no cluster: block") {
		t.Errorf("LoadClusterFile(demo) = %v", err)
	}
	if c, err := LoadDemoConfig(demo); err != nil || c.Seed != 2 {
		t.Errorf("LoadDemoConfig(demo) = %+v, %v", c.Seed, err)
	}
	cl := writeClusterYAML(t, "launch: {}\n")
	if _, err := LoadDemoConfig(cl); err == nil {
		t.Error("LoadDemoConfig accepted a launch: file")
	}
}
