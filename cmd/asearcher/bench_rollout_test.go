package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	rolloutbench "github.com/asearcher/asearcher/bench/rollout"
)

// TestBenchRolloutJSON runs a tiny simulation through the command and
// checks that --json prints one parseable report.
func TestBenchRolloutJSON(t *testing.T) {
	root := newRootCmd()
	var out, logs bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&logs) // log lines go to stderr, the report alone to stdout
	root.SetArgs([]string{"bench", "rollout", "--json", "--runs", "1", "--steps", "3", "--warmup", "1",
		"--batch-groups", "2", "--group-size", "2", "--scale", "0", "--speedup", "2000"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("bench rollout: %v\n%s", err, logs.String())
	}
	var rep rolloutbench.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, out.String())
	}
	if len(rep.Sync) != 1 || len(rep.Async) != 1 || rep.Median.Speedup <= 0 {
		t.Fatalf("report %+v", rep.Median)
	}
	if rep.Async[0].MaxStaleness > rep.Options.AsyncEta {
		t.Errorf("async trained staleness %d > η %d", rep.Async[0].MaxStaleness, rep.Options.AsyncEta)
	}
}
