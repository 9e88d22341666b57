package recipe

import (
	"context"
	"strings"
	"testing"
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
	for _, tc := range []struct{ from, to, want string }{
		{"  data: d\n", "  data: d\n  search: http://s\n", `cluster.search is "http://s" but launch: starts that server`},
		{"  data: d\n", "  data: d\n  sampler: tinker\n", "leave cluster.sampler out"},
		{"{base_model: m}", "{base_model: m, base_url: http://t}", "leave cluster.trainer.base_url out"},
		{"{count: 2}", "{count: 2, bogus: 1}", "field bogus not found"},
		// Without launch.trainer, the trainer's URL is required again.
		{"  trainer: {}\n", "", "cluster.trainer.base_url is empty"},
	} {
		y := strings.Replace(base, tc.from, tc.to, 1)
		if _, err := DecodeClusterFile([]byte(y)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", y, err, tc.want)
		}
	}
}
