//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asearcher/asearcher/export"
)

// The SkyRL conformance test runs only where scripts/skyrl_conformance.sh
// found (or installed) a SkyRL venv: ASEARCHER_SKYRL_VENV is that venv,
// with the `uv` shim in its bin/. ASEARCHER_SKYRL_KEEP names a directory to
// copy the downloaded sampler archive into.
const skyrlVenvEnv = "ASEARCHER_SKYRL_VENV"

// skyrlBackendConfig keeps SkyRL's JAX engine small on a CPU: a slot for
// the base model and three adapters, LoRA rank up to 8.
const skyrlBackendConfig = `{"max_lora_adapters":4,"max_lora_rank":8,"train_micro_batch_size":4,"sample_max_num_sequences":8}`

// skyrlCommand is the SkyRL Tinker API server as a launch: command, the
// one docs/cluster.md gives (with the JAX extra for a CPU).
func skyrlCommand(host, port, model, run, ckpt string) []string {
	return []string{"uv", "run", "--extra", "tinker", "--extra", "jax", "-m", "skyrl.tinker.api",
		"--base-model", model, "--host", host, "--port", port,
		"--database-url", "sqlite:///" + run + "/skyrl.db", "--checkpoints-base", ckpt,
		"--backend-config", skyrlBackendConfig}
}

// TestTrainSkyRL: `asearcher train --config` with SkyRL's Tinker API server
// as the trainer and sampler (launched from the config's launch: block,
// through the uv shim) and `asearcher serve search` as retrieval runs async
// RL steps with the ppo loss and a checkpoint per step; the launcher is
// killed with SIGKILL mid-run (SkyRL's API and engine must die with it);
// the resumed run relaunches SkyRL on the same database and checkpoint
// directory, loads the trainer state and finishes with every step exactly
// once. SkyRL reports no loss from forward_backward: metrics.jsonl must say
// null, not 0. Then a sampler checkpoint is downloaded through the archive
// route (302 → /download) by `asearcher export` and checked as a PEFT LoRA
// adapter.
func TestTrainSkyRL(t *testing.T) {
	const steps = 3
	venv, f, model := newSkyRLFixture(t, steps,
		"  trainer:\n    base_model: tiny\n", "  sampler: tinker\n  trainer:\n    base_model: tiny\n",
		"  samplers:\n    count: 2\n", "")

	// Kill the launcher outright once the first step is checkpointed
	// (checkpoint_every is 1).
	l := f.start(t)
	waitFor(t, l, 12*time.Minute, "the first checkpoint", func() bool {
		_, err := os.Stat(filepath.Join(f.run, "checkpoints", "step_000001", "controller.json"))
		return err == nil
	})
	if err := l.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	l.wait(t, 10*time.Second)
	// The launcher's parent-death signal takes the shim; the shim's takes
	// the API, and the API's takes the engine.
	deadline := time.Now().Add(15 * time.Second)
	var left []int
	for {
		left = skyrlProcesses(f.run)
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(left) > 0 {
		for _, pid := range left {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		t.Fatalf("SkyRL processes %v outlived the killed launcher", left)
	}
	killedAt := metricsLines(f.run)
	t.Logf("launcher killed after %d recorded steps", killedAt)
	if killedAt >= steps {
		t.Fatalf("the run finished (%d steps) before it was killed", killedAt)
	}

	l = f.start(t, "--resume", f.run)
	if err := l.wait(t, 12*time.Minute); err != nil {
		t.Fatalf("resume: %v\n%s", err, l.stderr.String())
	}
	out := l.stderr.String()
	if !strings.Contains(out, fmt.Sprintf("trained to version %d", steps)) {
		t.Errorf("resumed run's output lacks the summary:\n%s", out)
	}
	if left := skyrlProcesses(f.run); len(left) > 0 {
		t.Errorf("SkyRL processes %v outlived the finished run", left)
	}

	recs := readStepRecords(t, f.run)
	if len(recs) != steps {
		t.Fatalf("metrics.jsonl has %d steps, want %d (duplicated or missing steps)", len(recs), steps)
	}
	for i, r := range recs {
		if r.Step != i || r.Version != i+1 {
			t.Errorf("line %d: step %d version %d, want step %d version %d", i+1, r.Step, r.Version, i, i+1)
		}
		if r.Train == nil {
			t.Fatalf("step %d has no train stats", r.Step)
		}
		// SkyRL's forward_backward returns empty metrics: the loss is not
		// reported, and must not read as 0.
		if string(r.Train.Loss) != "null" {
			t.Errorf("step %d: loss %s, want null (SkyRL reports none)", r.Step, r.Train.Loss)
		}
		if _, ok := r.Train.Optim["skyrl.ai/grad_norm"]; !ok {
			t.Errorf("step %d: optim metrics %v lack SkyRL's skyrl.ai/grad_norm", r.Step, r.Train.Optim)
		}
		if r.Train.Tokens == 0 {
			t.Errorf("step %d trained no tokens", r.Step)
		}
	}

	// The weights: SkyRL again on the run's database and checkpoints, the
	// last sampler checkpoint through the archive route.
	url := startSkyRL(t, venv, model, f.run, filepath.Join(f.run, "server_checkpoints"))
	path := lastSamplerCheckpoint(t, url)
	t.Logf("sampler checkpoint %s", path)
	adapter := filepath.Join(f.dir, "adapter")
	merged := filepath.Join(f.dir, "merged")
	exp := exec.Command(f.bin, "export", path, "--tinker-url", url, "--adapter-out", adapter, "--base", model, "--out", merged)
	exp.Env = append(os.Environ(), "ASEARCHER_RUN_MAIN=1")
	if b, err := exp.CombinedOutput(); err != nil {
		t.Fatalf("asearcher export %s: %v\n%s", path, err, b)
	}
	var ac struct {
		PeftType      string   `json:"peft_type"`
		R             int      `json:"r"`
		LoraAlpha     float64  `json:"lora_alpha"`
		TargetModules []string `json:"target_modules"`
	}
	b, err := os.ReadFile(filepath.Join(adapter, "adapter_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ac); err != nil {
		t.Fatalf("adapter_config.json: %v\n%s", err, b)
	}
	if ac.PeftType != "LORA" || ac.R != 8 || ac.LoraAlpha != 32 || len(ac.TargetModules) != 7 {
		t.Errorf("exported adapter_config.json %+v: want LORA, r 8, alpha 32 (SkyRL's fixed alpha) and all seven projections", ac)
	}
	if _, err := os.Stat(filepath.Join(merged, "model.safetensors")); err != nil {
		t.Errorf("merged export: %v", err)
	}
	if keep := os.Getenv("ASEARCHER_SKYRL_KEEP"); keep != "" {
		keepArchive(t, url, path, keep)
	}
}

// newSkyRLFixture is the launch test's fixture with SkyRL as the trainer
// (cluster.trainer.base_model is the model directory: SkyRL names its one
// model by its --base-model argument) and the extra edits applied first.
// It skips without a SkyRL venv.
func newSkyRLFixture(t *testing.T, steps int, edit ...string) (venv string, f *launchFixture, model string) {
	t.Helper()
	venv = os.Getenv(skyrlVenvEnv)
	if venv == "" {
		t.Skipf("%s is not set: scripts/skyrl_conformance.sh runs this test with a SkyRL venv", skyrlVenvEnv)
	}
	if _, err := os.Stat(filepath.Join(venv, "bin", "uv")); err != nil {
		t.Fatalf("%s=%s has no bin/uv shim (scripts/skyrl_conformance.sh writes it): %v", skyrlVenvEnv, venv, err)
	}
	f = newLaunchFixture(t, steps)
	model = filepath.Join(f.dir, "tiny")
	cmd, _ := json.Marshal(skyrlCommand("{host}", "{port}", "{model}", "{run}", "{checkpoint_dir}"))
	edits := append(edit,
		"    base_model: tiny\n", fmt.Sprintf("    base_model: %s\n    lora_rank: 8\n", model),
		"  trainer: {}\n",
		fmt.Sprintf("  trainer:\n    command: %s\n    env: {JAX_PLATFORMS: cpu, PATH: %q}\n    health: /api/v1/healthz\n",
			cmd, filepath.Join(venv, "bin")+":"+os.Getenv("PATH")),
		// SkyRL's health answers before its engine is up; the trainer's
		// first create_model (bounded by cluster.health_timeout_s) waits
		// for the engine's import and model load.
		"  health_timeout_s: 60\n", "  health_timeout_s: 600\n",
		"  health_timeout_s: 10\n", "  health_timeout_s: 600\n",
		"  optim:\n", "  loss:\n    kind: decoupled_ppo\n  optim:\n",
	)
	raw, err := os.ReadFile(f.config)
	if err != nil {
		t.Fatal(err)
	}
	y := string(raw)
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(y, edits[i]) {
			t.Fatalf("edit %q matches nothing in\n%s", edits[i], y)
		}
		y = strings.Replace(y, edits[i], edits[i+1], 1)
	}
	writeFile(t, f.config, y)
	t.Setenv("TINKER_API_KEY", "tml-asearcher-conformance") // SkyRL wants the tml- prefix
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"trainer.log", "sampler-0.log", "skyrl-export.log"} {
				if b, err := os.ReadFile(filepath.Join(f.run, "logs", name)); err == nil {
					t.Logf("logs/%s (last 6000 bytes):\n%s", name, b[max(0, len(b)-6000):])
				}
			}
		}
	})
	return venv, f, model
}

// stepRecord is the part of a metrics.jsonl line this test reads.
type stepRecord struct {
	Step    int `json:"step"`
	Version int `json:"version"`
	Train   *struct {
		Loss   json.RawMessage    `json:"loss"`
		Tokens int                `json:"train_tokens"`
		Optim  map[string]float64 `json:"optim"`
	} `json:"train"`
}

func readStepRecords(t *testing.T, run string) []stepRecord {
	t.Helper()
	fh, err := os.Open(filepath.Join(run, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var recs []stepRecord
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<22)
	for sc.Scan() {
		var r stepRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("metrics.jsonl line %d: %v", len(recs)+1, err)
		}
		recs = append(recs, r)
	}
	return recs
}

// skyrlProcesses are the live processes whose command line names this
// run's SkyRL database: the shim, the API and the engine.
func skyrlProcesses(run string) []int {
	needle := []byte("sqlite:///" + run + "/skyrl.db")
	dirs, _ := os.ReadDir("/proc")
	var pids []int
	for _, d := range dirs {
		var pid int
		if _, err := fmt.Sscanf(d.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), string(needle)) && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// startSkyRL runs SkyRL's API on a free port for the rest of the test and
// returns its URL once it answers.
func startSkyRL(t *testing.T, venv, model, run, ckpt string) string {
	t.Helper()
	port := freeTestPort(t)
	argv := skyrlCommand("127.0.0.1", fmt.Sprint(port), model, run, ckpt)
	cmd := exec.Command(filepath.Join(venv, "bin", "uv"), argv[1:]...)
	cmd.Args[0] = argv[0] // SkyRL reads its parent's command line: "uv run … -m skyrl.tinker.api"
	cmd.Env = append(os.Environ(), "JAX_PLATFORMS=cpu", "PATH="+filepath.Join(venv, "bin")+":"+os.Getenv("PATH"))
	logf, err := os.Create(filepath.Join(run, "logs", "skyrl-export.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
	})
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get(url + "/api/v1/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("SkyRL did not answer within 90 s: %v\n%s", err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func freeTestPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// keepArchive downloads the sampler checkpoint's tar.gz (the archive
// route, 302 → /download) into dir, for people who need a real one.
func keepArchive(t *testing.T, url, path, dir string) {
	t.Helper()
	aurl, err := export.ArchiveURL(url, path)
	if err != nil {
		t.Fatal(err)
	}
	_, name, _ := export.ParseTinkerPath(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := export.Download(context.Background(), nil, aurl, os.Getenv("TINKER_API_KEY"), &buf, 64<<20); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "skyrl-sampler-"+name+".tar.gz")
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("kept %s (%d bytes)", dst, buf.Len())
}

// lastSamplerCheckpoint asks the server for its training runs and returns
// the newest sampler checkpoint's tinker:// path.
func lastSamplerCheckpoint(t *testing.T, url string) string {
	t.Helper()
	var runs struct {
		TrainingRuns []struct {
			ID string `json:"training_run_id"`
		} `json:"training_runs"`
	}
	getJSON(t, url+"/api/v1/training_runs?limit=100", &runs)
	var last string
	for _, r := range runs.TrainingRuns {
		var cps struct {
			Checkpoints []struct {
				Type string `json:"checkpoint_type"`
				Path string `json:"tinker_path"`
				Time string `json:"time"`
			} `json:"checkpoints"`
		}
		getJSON(t, url+"/api/v1/training_runs/"+r.ID+"/checkpoints", &cps)
		for _, c := range cps.Checkpoints {
			if c.Type == "sampler" {
				last = c.Path
			}
		}
	}
	if last == "" {
		t.Fatalf("SkyRL lists no sampler checkpoint in %d training runs", len(runs.TrainingRuns))
	}
	return last
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	req.Header.Set("X-API-Key", os.Getenv("TINKER_API_KEY"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d: %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, b)
	}
}

// TestTrainSkyRLLoRAFleet is the whole path of a LoRA version from a real
// trainer to our fleet: SkyRL trains LoRA, the controller downloads each
// version's sampler archive (302 → /download), writes it as a PEFT adapter
// under publish.dir and hot-loads it on `asearcher serve model` with
// /load_lora_adapter (publish.kind: sglang-lora); requests name their
// adapter and their tokens carry its version, so from the second step on no
// trained token is older than version 1 (η = 1), which the base model
// (version 0) would be.
func TestTrainSkyRLLoRAFleet(t *testing.T) {
	const steps = 3
	_, f, _ := newSkyRLFixture(t, steps,
		"  samplers:\n    count: 2\n", "  samplers:\n    count: 1\n",
		"  trainer:\n    base_model: tiny\n",
		fmt.Sprintf("  publish:\n    kind: sglang-lora\n    dir: %s\n  trainer:\n    base_model: tiny\n", filepath.Join(t.TempDir(), "adapters")))
	l := f.start(t)
	if err := l.wait(t, 12*time.Minute); err != nil {
		t.Fatalf("run: %v\n%s", err, l.stderr.String())
	}
	if out := l.stderr.String(); !strings.Contains(out, fmt.Sprintf("trained to version %d", steps)) {
		t.Errorf("output lacks the summary:\n%s", out)
	}
	if left := skyrlProcesses(f.run); len(left) > 0 {
		t.Errorf("SkyRL processes %v outlived the run", left)
	}
	recs := readStepRecords(t, f.run)
	if len(recs) != steps {
		t.Fatalf("metrics.jsonl has %d steps, want %d", len(recs), steps)
	}
	for i, r := range recs {
		if r.Step != i || r.Train == nil || string(r.Train.Loss) != "null" {
			t.Errorf("line %d: step %d, train %+v; want step %d with a null loss", i+1, r.Step, r.Train, i)
		}
	}
	for step := 1; step < steps; step++ {
		b, err := os.ReadFile(filepath.Join(f.run, "samples", fmt.Sprintf("step_%06d.jsonl", step)))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var s struct {
				MinVersion int `json:"min_version"`
			}
			if err := json.Unmarshal([]byte(line), &s); err != nil {
				t.Fatal(err)
			}
			if s.MinVersion < step-1 {
				t.Errorf("step %d trained a sample whose oldest token has version %d", step, s.MinVersion)
			}
		}
	}
	// Every published version is hot-loaded; at least versions 1 and 2,
	// which steps 1 and 2 sample on.
	b, _ := os.ReadFile(filepath.Join(f.run, "logs", "sampler-0.log"))
	loaded := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "lora adapter loaded") && strings.Contains(line, "name=policy-v") {
			loaded++
		}
	}
	t.Logf("serve model hot-loaded %d SkyRL adapters", loaded)
	if loaded < steps-1 {
		t.Errorf("sampler-0.log shows %d policy-vN adapter loads, want at least %d:\n%s", loaded, steps-1, b[max(0, len(b)-3000):])
	}
}
