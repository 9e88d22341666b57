package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/internal/fakellm"
)

func TestEvalCommand(t *testing.T) {
	srv := fakellm.New(fakellm.Options{Handler: func(c fakellm.Call) fakellm.Reply {
		return fakellm.Reply{Text: "<think>I know this</think>\n<answer> Hollywood </answer>"}
	}})
	defer srv.Close()
	dir := t.TempDir()
	out := filepath.Join(dir, "run")

	help, err := runCLI(t, "eval", "--help")
	if err != nil || !strings.Contains(help, "hotpotqa-hipporag-100") || !strings.Contains(help, "--judge") {
		t.Fatalf("eval --help: %v\n%s", err, help)
	}

	// The config file sets k = 3 and the agent; the --k flag wins.
	cfgPath := filepath.Join(dir, "eval.yaml")
	if err := os.WriteFile(cfgPath, []byte("eval:\n  k: 3\n  agent: search-r1\n  limit: 4\n  concurrency: 2\n  max_attempts: 1\n  group_by: [type]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"eval", "--config", cfgPath, "--data", "hotpotqa-hipporag-100", "--model", srv.OpenAIURL(),
		"--k", "2", "--out", out, "--no-progress", "--log-level", "warn"}
	stdout, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, stdout)
	}
	if !strings.Contains(stdout, "| hotpotqa-hipporag-100 | 4 | 8 |") || !strings.Contains(stdout, "report.html") {
		t.Fatalf("eval output:\n%s", stdout)
	}
	// group_by from the file: HotpotQA's type, 3 bridge and 1 comparison
	// question among the first 4.
	if !strings.Contains(stdout, "## By type") || !strings.Contains(stdout, "| hotpotqa-hipporag-100 | bridge | 3 | 6 |") ||
		!strings.Contains(stdout, "| hotpotqa-hipporag-100 | comparison | 1 | 2 |") {
		t.Fatalf("eval output has no breakdown by type:\n%s", stdout)
	}
	var manifest struct {
		Config struct {
			K     int    `json:"k"`
			Agent string `json:"agent"`
		} `json:"config"`
	}
	data, err := os.ReadFile(filepath.Join(out, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &manifest); err != nil || manifest.Config.K != 2 || manifest.Config.Agent != "search-r1" {
		t.Fatalf("run.json: %v %+v", err, manifest)
	}

	// Rerunning resumes (nothing left to do); a changed flag is refused.
	if _, err := runCLI(t, args...); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if _, err := runCLI(t, append(args, "--temperature", "0.1")...); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("changed config: %v", err)
	}

	cmp, err := runCLI(t, "eval", "compare", out, out)
	if err != nil || !strings.Contains(cmp, "+0.0") {
		t.Fatalf("compare: %v\n%s", err, cmp)
	}
	if rep, err := runCLI(t, "eval", "report", out); err != nil || !strings.Contains(rep, "Avg@2") || !strings.Contains(rep, "## By type") {
		t.Fatalf("report: %v\n%s", err, rep)
	}
	// --group-by overrides the run's own, on a resume and on a report.
	if rep, err := runCLI(t, append(args, "--group-by", "level")...); err != nil || !strings.Contains(rep, "## By level") || strings.Contains(rep, "## By type") {
		t.Fatalf("resume --group-by level: %v\n%s", err, rep)
	}
	if rep, err := runCLI(t, "eval", "report", out, "--group-by", "type,level"); err != nil || !strings.Contains(rep, "## By type") || !strings.Contains(rep, "## By level") {
		t.Fatalf("report --group-by type,level: %v\n%s", err, rep)
	}
	if _, err := runCLI(t, "eval", "report", out, "--group-by", "hops"); err == nil || !strings.Contains(err.Error(), "fields present:") {
		t.Fatalf("report --group-by hops: %v", err)
	}
	if cmp, err := runCLI(t, "eval", "compare", out, out, "--group-by", "type"); err != nil ||
		!strings.Contains(cmp, "hotpotqa-hipporag-100 type=bridge") || !strings.Contains(cmp, "hotpotqa-hipporag-100 type=comparison") {
		t.Fatalf("compare --group-by type: %v\n%s", err, cmp)
	}
	js, err := runCLI(t, "eval", "compare", out, out, "--group-by", "type", "--metric", "em", "--json")
	var parsed struct {
		GroupBy string `json:"group_by"`
		Deltas  []struct {
			Group     string `json:"group"`
			Metric    string `json:"metric"`
			Questions int    `json:"questions"`
			Searches  struct {
				Delta float64 `json:"delta"`
			} `json:"searches"`
		} `json:"deltas"`
	}
	if err != nil || json.Unmarshal([]byte(js), &parsed) != nil || parsed.GroupBy != "type" || len(parsed.Deltas) != 2 ||
		parsed.Deltas[0].Group != "bridge" || parsed.Deltas[0].Questions != 3 || parsed.Deltas[0].Metric != "em" {
		t.Fatalf("compare --json: %v %+v\n%s", err, parsed, js)
	}
	if _, err := runCLI(t, "eval", "--data", "nq", "--model", srv.OpenAIURL(), "--out", out, "--k", "0"); err == nil || !strings.Contains(err.Error(), "--k 0") {
		t.Fatalf("--k 0: %v", err)
	}
	if _, err := runCLI(t, "eval", "compare", out, filepath.Join(dir, "missing")); err == nil {
		t.Fatal("compare with a missing directory succeeded")
	}
}
