package main

import (
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTrainClusterRouting: a config with a cluster: block goes to
// recipe.RunCluster (which checks its servers first and names the dead one),
// and --resume of a cluster run takes no --config; the full cluster run is
// rl.TestRunClusterEndToEnd.
func TestTrainClusterRouting(t *testing.T) {
	dead := httptest.NewServer(nil)
	deadURL := dead.URL
	dead.Close()
	dir := t.TempDir()
	data := filepath.Join(dir, "train.jsonl")
	if err := os.WriteFile(data, []byte(`{"id":"a","question":"q?","answers":["x"]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "cluster.yaml")
	y := fmt.Sprintf(`cluster:
  data: %s
  search: %s
  agent: tiny
  tokenizer: ../../tokenizer/testdata/qwen3/tokenizer.json.zst
  sampler: sglang:%s
  trainer: {base_url: %s, base_model: tiny}
  health_timeout_s: 2
rl: {steps: 1}
`, data, deadURL, deadURL, deadURL)
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "run")
	out, err := runCLI(t, "train", "--config", cfg, "--out", run, "--no-progress")
	if err == nil || !strings.Contains(err.Error(), "retrieval server "+deadURL+" does not answer") {
		t.Fatalf("train with dead servers: %v\n%s", err, out)
	}
	if _, serr := os.Stat(run); serr == nil {
		t.Errorf("a failed cluster start left %s behind", run)
	}
	if err := os.WriteFile(cfg, []byte(strings.Replace(y, "cluster:\n", "cluster:\n  bogus: 1\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "train", "--config", cfg, "--out", run); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown field: %v", err)
	}
}
