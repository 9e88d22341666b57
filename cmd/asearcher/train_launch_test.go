//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/recipe"
	"github.com/asearcher/asearcher/retrieval"
)

// asearcherBinary is this test binary, which runs main() when
// ASEARCHER_RUN_MAIN=1 (TestMain): the launcher and, through its default
// launch.binary (the running executable) and the inherited environment,
// every server it starts are the real asearcher commands.
func asearcherBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Skipf("no path to the test binary: %v", err)
	}
	return exe
}

// launchFixture is a tiny model, index and dataset, and a cluster.yaml
// whose launch: block starts `serve search`, two `serve model` samplers
// and a `serve model` trainer.
type launchFixture struct {
	bin, dir, config, run string
}

func newLaunchFixture(t *testing.T, steps int, edit ...string) *launchFixture {
	t.Helper()
	bin := asearcherBinary(t)
	dir := t.TempDir()
	cfg, err := engine.Preset("tiny", 16)
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "tiny")
	if _, err := engine.InitModelDir(context.Background(), model, engine.InitOptions{Config: cfg, Seed: 7, DType: engine.F32}); err != nil {
		t.Fatal(err)
	}
	corpus := filepath.Join(dir, "corpus.jsonl")
	var b strings.Builder
	for i, p := range []string{"Ada Lovelace was born in London.", "Alan Turing worked at Bletchley Park.",
		"Grace Hopper created the first compiler.", "Edsger Dijkstra lived in Nuenen."} {
		fmt.Fprintf(&b, `{"id":"%d","contents":%q}`+"\n", i, p)
	}
	writeFile(t, corpus, b.String())
	index := filepath.Join(dir, "index")
	if _, err := retrieval.Build(context.Background(), retrieval.BuildOptions{Corpus: corpus, Out: index, Progress: retrieval.ProgressOff, NoSync: true}); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "train.jsonl")
	writeFile(t, data, `{"id":"a","question":"Where was Ada Lovelace born?","answers":["London"]}
{"id":"b","question":"Where did Alan Turing work?","answers":["Bletchley Park"]}
{"id":"c","question":"Who created the first compiler?","answers":["Grace Hopper"]}
{"id":"d","question":"Where did Dijkstra live?","answers":["Nuenen"]}
`)
	y := fmt.Sprintf(`cluster:
  data: %s
  agent: tiny
  tokenizer: %s
  trainer:
    base_model: tiny
  reward:
    metric: em
  limits:
    max_turns: 2
    max_call_tokens: 8
    min_call_tokens: 4
    max_context_tokens: 2048
  health_timeout_s: 10
launch:
  model: %s
  health_timeout_s: 60
  stop_grace_s: 5
  search:
    index: %s
  samplers:
    count: 2
  trainer: {}
rl:
  steps: %d
  batch_groups: 2
  group_size: 2
  max_staleness: 1
  filter_zero_variance: false
  advantage:
    global_norm: false
  optim:
    lr: 1.0e-2
  checkpoint_every: 1
  drain_grace_ms: 5
  drain_timeout_ms: 2000
`, data, model, model, index, steps)
	for i := 0; i+1 < len(edit); i += 2 {
		if !strings.Contains(y, edit[i]) {
			t.Fatalf("edit %q matches nothing", edit[i])
		}
		y = strings.Replace(y, edit[i], edit[i+1], 1)
	}
	f := &launchFixture{bin: bin, dir: dir, config: filepath.Join(dir, "cluster.yaml"), run: filepath.Join(dir, "run")}
	writeFile(t, f.config, y)
	return f
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// launcher is a running `asearcher train --config` process.
type launcher struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (f *launchFixture) start(t *testing.T, args ...string) *launcher {
	t.Helper()
	if len(args) == 0 {
		args = []string{"--config", f.config, "--out", f.run}
	}
	cmd := exec.Command(f.bin, append([]string{"train", "--no-progress"}, args...)...)
	cmd.Env = append(os.Environ(), "ASEARCHER_RUN_MAIN=1")
	l := &launcher{cmd: cmd, stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = l.stderr, l.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { l.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		// Whatever happened, no server may outlive the test.
		for _, pid := range l.childPids() {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
	})
	return l
}

// wait returns the launcher's exit error within limit.
func (l *launcher) wait(t *testing.T, limit time.Duration) error {
	t.Helper()
	select {
	case err := <-l.done:
		return err
	case <-time.After(limit):
		t.Fatalf("launcher still runs after %v; output:\n%s", limit, l.stderr.String())
		return nil
	}
}

var startedRE = regexp.MustCompile(`msg=started name=(\S+) pid=(\d+)`)

// childPids are the servers the launcher says it started.
func (l *launcher) childPids() map[string]int {
	m := map[string]int{}
	for _, s := range startedRE.FindAllStringSubmatch(l.stderr.String(), -1) {
		pid, _ := strconv.Atoi(s[2])
		m[s[1]] = pid
	}
	return m
}

// alive says whether pid runs (a zombie waiting for its adopter's reap
// has exited).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}

// assertNoOrphans: every started server is gone once the launcher exited.
func assertNoOrphans(t *testing.T, l *launcher, want int) {
	t.Helper()
	pids := l.childPids()
	if len(pids) != want {
		t.Fatalf("launcher started %d servers (%v), want %d; output:\n%s", len(pids), pids, want, l.stderr.String())
	}
	for name, pid := range pids {
		if alive(pid) {
			t.Errorf("%s (pid %d) outlived the launcher", name, pid)
		}
	}
}

// waitFor polls cond until it holds or limit passes.
func waitFor(t *testing.T, l *launcher, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		select {
		case err := <-l.done:
			t.Fatalf("launcher exited (%v) before %s; output:\n%s", err, what, l.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v; output:\n%s", what, limit, l.stderr.String())
		}
	}
}

func metricsLines(run string) int {
	f, err := os.Open(filepath.Join(run, "metrics.jsonl"))
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		n++
	}
	return n
}

// TestTrainLaunch: one command starts the retrieval server, two samplers
// and the trainer from the launch: block, trains two steps against them,
// and stops them all; the logs are in RUN/logs and config.yaml keeps the
// launch: block, not the ports of this launch.
func TestTrainLaunch(t *testing.T) {
	f := newLaunchFixture(t, 2)
	l := f.start(t)
	if err := l.wait(t, 90*time.Second); err != nil {
		t.Fatalf("launch run: %v\n%s", err, l.stderr.String())
	}
	if !strings.Contains(l.stderr.String(), "trained to version 2") {
		t.Errorf("output lacks the summary:\n%s", l.stderr.String())
	}
	assertNoOrphans(t, l, 4)
	if n := metricsLines(f.run); n != 2 {
		t.Errorf("metrics.jsonl has %d steps, want 2", n)
	}
	for _, name := range []string{"search", "sampler-0", "sampler-1", "trainer"} {
		b, err := os.ReadFile(filepath.Join(f.run, "logs", name+".log"))
		if err != nil || !bytes.Contains(b, []byte("=== ")) {
			t.Errorf("logs/%s.log: %v %q", name, err, b)
		}
	}
	if _, err := os.Stat(filepath.Join(f.run, "launch.json")); !os.IsNotExist(err) {
		t.Errorf("launch.json outlived the servers: %v", err)
	}
	saved, err := recipe.LoadClusterFile(filepath.Join(f.run, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if saved.Launch == nil || saved.Cluster.Search != "" || saved.Cluster.Trainer.BaseURL != "" {
		t.Errorf("config.yaml: launch %v, search %q, trainer %q; want the launch: block and no launched URLs",
			saved.Launch, saved.Cluster.Search, saved.Cluster.Trainer.BaseURL)
	}
}

// TestTrainLaunchSignals: a second launcher on a running run starts
// nothing; SIGTERM to the launcher stops the run and every server; the run resumes, on newly launched servers, from its checkpoint;
// a sampler killed mid-run stops the run with an error that names it; and
// SIGKILL to the launcher still takes its servers down.
func TestTrainLaunchSignals(t *testing.T) {
	f := newLaunchFixture(t, 1000)
	l := f.start(t)
	waitFor(t, l, 60*time.Second, "first step", func() bool { return metricsLines(f.run) >= 1 })
	// A second launcher on the running run is refused before it starts a
	// server.
	second := f.start(t, "--resume", f.run)
	if err := second.wait(t, 30*time.Second); err == nil || !strings.Contains(second.stderr.String(), "another train is running") {
		t.Errorf("second launcher: %v\n%s", err, second.stderr.String())
	}
	if pids := second.childPids(); len(pids) != 0 {
		t.Errorf("the refused launcher started %v", pids)
	}
	if err := l.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := l.wait(t, 30*time.Second); err == nil {
		t.Errorf("a terminated run exited 0")
	}
	assertNoOrphans(t, l, 4)
	if !strings.Contains(l.stderr.String(), "stopping launched servers") {
		t.Errorf("no stop logged:\n%s", l.stderr.String())
	}

	// Resume: new servers, then one of them dies.
	done := metricsLines(f.run)
	l = f.start(t, "--resume", f.run)
	waitFor(t, l, 60*time.Second, "a resumed step", func() bool { return metricsLines(f.run) > done })
	var rows []recipe.LaunchedServer
	raw, err := os.ReadFile(filepath.Join(f.run, "launch.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &rows); err != nil || len(rows) != 4 {
		t.Fatalf("launch.json: %v %s", err, raw)
	}
	victim := rows[len(rows)-1]
	if victim.Name != "sampler-1" {
		t.Fatalf("last launched is %s, want sampler-1", victim.Name)
	}
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = l.wait(t, 30*time.Second)
	out := l.stderr.String()
	want := fmt.Sprintf("sampler-1 (pid %d) exited while the run was going: signal: killed", victim.PID)
	if err == nil || !strings.Contains(out, want) || !strings.Contains(out, "--resume "+f.run) {
		t.Errorf("exit %v; output lacks %q and the resume hint:\n%s", err, want, out)
	}
	assertNoOrphans(t, l, 4)

	// A launcher killed outright cannot stop its servers; the kernel's
	// parent-death signal does.
	l = f.start(t, "--resume", f.run)
	waitFor(t, l, 60*time.Second, "servers", func() bool { return strings.Count(l.stderr.String(), "msg=healthy") == 4 })
	if err := l.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	l.wait(t, 10*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range l.childPids() {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	assertNoOrphans(t, l, 4)
}

// TestTrainLaunchHealthFailure: a server that fails to start stops the
// launch with an error that names it and quotes its log; the servers
// already started are stopped and no run is created.
func TestTrainLaunchHealthFailure(t *testing.T) {
	f := newLaunchFixture(t, 1, "  trainer: {}\n", "  trainer:\n    args: [--no-such-flag]\n")
	l := f.start(t)
	err := l.wait(t, 60*time.Second)
	out := l.stderr.String()
	if err == nil || !strings.Contains(out, "launch: trainer exited before it answered") || !strings.Contains(out, "unknown flag: --no-such-flag") {
		t.Fatalf("exit %v; output:\n%s", err, out)
	}
	assertNoOrphans(t, l, 4)
	if _, err := os.Stat(filepath.Join(f.run, "config.yaml")); !os.IsNotExist(err) {
		t.Errorf("a failed launch created a run: %v", err)
	}
}

// TestTrainLaunchVLLM: launch.samplers.kind vllm starts the fleet with
// `vllm serve` from the servers' PATH and trains through it with the
// vllm-lora publisher. The `vllm` here is a script that records how it
// was called and runs `asearcher serve model` in its place, which serves
// vLLM's routes (/v1/completions with the adapter in model,
// /v1/load_lora_adapter, /v1/unload_lora_adapter).
func TestTrainLaunchVLLM(t *testing.T) {
	binDir, rec := t.TempDir(), t.TempDir()
	bin := asearcherBinary(t)
	script := fmt.Sprintf(`#!/bin/sh
# vllm serve MODEL --served-model-name NAME --host HOST --port PORT [flags]
model="$2"; shift 2
name=""; host=""; port=""
while [ $# -gt 0 ]; do
	case "$1" in
	--served-model-name) name="$2"; shift ;;
	--host) host="$2"; shift ;;
	--port) port="$2"; shift ;;
	esac
	shift
done
echo "$VLLM_ALLOW_RUNTIME_LORA_UPDATING" > %q/"$port"
exec %q serve model --model "$model" --name "$name" --addr "$host:$port"
`, rec, bin)
	writeFile(t, filepath.Join(binDir, "vllm"), script)
	if err := os.Chmod(filepath.Join(binDir, "vllm"), 0o755); err != nil {
		t.Fatal(err)
	}
	adapters := filepath.Join(t.TempDir(), "adapters")
	f := newLaunchFixture(t, 2,
		"  samplers:\n    count: 2\n", fmt.Sprintf("  samplers:\n    count: 2\n    kind: vllm\n    env:\n      PATH: %q\n", binDir+":"+os.Getenv("PATH")),
		"  trainer:\n    base_model: tiny\n", fmt.Sprintf("  trainer:\n    base_model: tiny\n  publish:\n    kind: vllm-lora\n    dir: %s\n", adapters))
	l := f.start(t)
	if err := l.wait(t, 120*time.Second); err != nil {
		t.Fatalf("launch run: %v\n%s", err, l.stderr.String())
	}
	out := l.stderr.String()
	if !strings.Contains(out, "trained to version 2") || !strings.Contains(out, "adapter=policy-v2") {
		t.Errorf("output lacks the summary or the v2 adapter load:\n%s", out)
	}
	assertNoOrphans(t, l, 4)
	calls, err := os.ReadDir(rec)
	if err != nil || len(calls) != 2 {
		t.Fatalf("the fake vllm ran %d times (%v), want 2", len(calls), err)
	}
	for _, c := range calls {
		b, _ := os.ReadFile(filepath.Join(rec, c.Name()))
		if strings.TrimSpace(string(b)) != "True" {
			t.Errorf("vllm on port %s ran with VLLM_ALLOW_RUNTIME_LORA_UPDATING=%q", c.Name(), b)
		}
	}
	entries, _ := os.ReadDir(adapters)
	if len(entries) != 1 || entries[0].Name() != "policy-v2" {
		t.Errorf("publish.dir after the run: %v, want policy-v2 only", entries)
	}
}
