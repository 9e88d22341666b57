//go:build unix

package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHelperProcess is the child the tests launch (not a test itself): a
// tiny server whose behaviour LAUNCH_HELPER picks.
//
//	serve      answers /health, exits 0 on SIGTERM
//	grandchild like serve, and starts a `sleep` that ignores SIGTERM in its group; its pid goes to $LAUNCH_PIDFILE
//	stubborn   answers /health, ignores SIGTERM
//	unhealthy  answers /health with 503
//	crash      prints a line and exits 3
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("LAUNCH_HELPER")
	if mode == "" {
		return
	}
	port := os.Args[len(os.Args)-1]
	if mode == "crash" {
		fmt.Println("helper: bad flag --nope")
		os.Exit(3)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	if mode == "grandchild" {
		// It ignores SIGTERM (an ignored signal stays ignored across
		// exec), so only the group's SIGKILL after the leader's exit ends it.
		c := exec.Command("sh", "-c", `trap "" TERM; exec sleep 60`)
		if err := c.Start(); err != nil {
			os.Exit(4)
		}
		os.WriteFile(os.Getenv("LAUNCH_PIDFILE"), []byte(strconv.Itoa(c.Process.Pid)), 0o644)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Println("helper:", err)
		os.Exit(5)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mode == "unhealthy" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	fmt.Println("helper: serving on", ln.Addr())
	for range sigs {
		if mode != "stubborn" {
			os.Exit(0)
		}
		fmt.Println("helper: ignoring SIGTERM")
	}
}

func helperSpec(t *testing.T, name, mode string, env ...string) Spec {
	t.Helper()
	port, err := freePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return Spec{Name: name, Argv: []string{os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "--", strconv.Itoa(port)},
		Env: append([]string{"LAUNCH_HELPER=" + mode}, env...), URL: fmt.Sprintf("http://127.0.0.1:%d", port), Health: "/health",
		Log: filepath.Join(t.TempDir(), name+".log")}
}

func quietOptions() Options {
	return Options{HealthTimeout: 30 * time.Second, StopGrace: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// alive says whether pid is a running process (a zombie is not: it has
// exited and only waits to be reaped by whoever adopted it).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
			return s[i+2] != 'Z' && s[i+2] != 'X'
		}
		return true
	}
	if !errors.Is(err, os.ErrNotExist) {
		return syscall.Kill(pid, 0) == nil
	}
	return false
}

// assertGone fails for every pid still running a moment after the stop.
func assertGone(t *testing.T, pids map[string]int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for name, pid := range pids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("%s (pid %d) still runs after Stop", name, pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// TestStartStop: healthy servers start, and Stop ends every one of them,
// including a process a server started in its group and one that ignores
// SIGTERM (killed after the grace period).
func TestStartStop(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "grandchild.pid")
	specs := []Spec{helperSpec(t, "search", "serve"), helperSpec(t, "sampler-0", "grandchild", "LAUNCH_PIDFILE="+pidfile),
		helperSpec(t, "trainer", "stubborn")}
	g, err := Start(context.Background(), specs, quietOptions())
	if err != nil {
		t.Fatal(err)
	}
	pids := g.Pids()
	if len(pids) != 3 {
		t.Fatalf("pids %v", pids)
	}
	raw, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	gc, _ := strconv.Atoi(string(raw))
	pids["sleep started by sampler-0"] = gc
	for name, pid := range pids {
		if !alive(pid) {
			t.Fatalf("%s (pid %d) is not running after Start", name, pid)
		}
	}
	start := time.Now()
	g.Stop()
	if took := time.Since(start); took < 2*time.Second || took > 15*time.Second {
		t.Errorf("Stop took %v; want the 2s grace for the stubborn one, then SIGKILL", took)
	}
	assertGone(t, pids)
	if g.Err() != nil {
		t.Errorf("a stop is not a death: %v", g.Err())
	}
	log, _ := os.ReadFile(specs[2].Log)
	if !strings.Contains(string(log), "ignoring SIGTERM") || !strings.Contains(string(log), "=== ") {
		t.Errorf("trainer log lacks the header or its output:\n%s", log)
	}
	g.Stop() // a second Stop is a no-op
}

// TestStartFailures: a server that exits, or never becomes healthy, stops
// the start with an error that names it and quotes its log, and nothing
// started is left running.
func TestStartFailures(t *testing.T) {
	for _, tc := range []struct {
		mode string
		want []string
	}{
		{"crash", []string{"sampler-1 exited before it answered", "exit status 3", "helper: bad flag --nope"}},
		// On a loaded machine the helper may not listen yet when the wait
		// ends (the last try is then a refused connection); its log always
		// has the launch header.
		{"unhealthy", []string{"sampler-1 did not answer", "raise launch.health_timeout_s", "last lines of", "=== "}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ok := helperSpec(t, "sampler-0", "serve")
			bad := helperSpec(t, "sampler-1", tc.mode)
			o := quietOptions()
			o.HealthTimeout = 5 * time.Second
			g, err := Start(context.Background(), []Spec{ok, bad}, o)
			if err == nil {
				g.Stop()
				t.Fatal("start succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			// The healthy one was stopped: its port is free again.
			port := strings.TrimPrefix(ok.URL, "http://")
			deadline := time.Now().Add(3 * time.Second)
			for {
				ln, lerr := net.Listen("tcp", port)
				if lerr == nil {
					ln.Close()
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("sampler-0 still holds %s after the failed start", port)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	// A command that cannot start at all.
	s := helperSpec(t, "trainer", "serve")
	s.Argv[0] = filepath.Join(t.TempDir(), "no-such-binary")
	if _, err := Start(context.Background(), []Spec{s}, quietOptions()); err == nil || !strings.Contains(err.Error(), "launch trainer: start") {
		t.Fatalf("missing binary: %v", err)
	}
}

// TestDiedMidRun: a server killed while the run goes on closes Died with
// an error that names it; the others still stop.
func TestDiedMidRun(t *testing.T) {
	g, err := Start(context.Background(), []Spec{helperSpec(t, "sampler-0", "serve"), helperSpec(t, "sampler-1", "serve")}, quietOptions())
	if err != nil {
		t.Fatal(err)
	}
	pids := g.Pids()
	defer assertGone(t, pids)
	defer g.Stop()
	if err := syscall.Kill(pids["sampler-1"], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.Died():
	case <-time.After(5 * time.Second):
		t.Fatal("Died not closed 5s after a server was killed")
	}
	if err := g.Err(); err == nil || !strings.Contains(err.Error(), "sampler-1") || !strings.Contains(err.Error(), "signal: killed") {
		t.Fatalf("Err = %v", err)
	}
}

// TestStartCancelled: a context that ends during the health wait stops
// the start and what it started.
func TestStartCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	s := helperSpec(t, "trainer", "unhealthy")
	_, err := Start(ctx, []Spec{s}, quietOptions())
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
}

// TestTail: the log tail is on one line, keeps the last lines and drops a
// line cut by the byte limit.
func TestTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	if got := tail(p); got != "" {
		t.Errorf("missing file: %q", got)
	}
	os.WriteFile(p, nil, 0o644)
	if got := tail(p); !strings.Contains(got, "is empty") {
		t.Errorf("empty file: %q", got)
	}
	var b strings.Builder
	for i := range 500 {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	os.WriteFile(p, []byte(b.String()), 0o644)
	got := tail(p)
	if !strings.HasSuffix(got, "line 494 | line 495 | line 496 | line 497 | line 498 | line 499") || strings.Contains(got, "\n") {
		t.Errorf("tail %q", got)
	}
}

// TestStartUsesServerPath: a command given by a bare name is found in the
// server's own env: PATH (SkyRL's uv shim in a venv's bin), not only in
// the launcher's; a name in neither is an error that names that PATH.
func TestStartUsesServerPath(t *testing.T) {
	bin := t.TempDir()
	if err := os.Symlink(os.Args[0], filepath.Join(bin, "launch-helper")); err != nil {
		t.Fatal(err)
	}
	s := helperSpec(t, "trainer", "serve", "PATH="+bin+string(filepath.ListSeparator)+os.Getenv("PATH"))
	s.Argv[0] = "launch-helper"
	g, err := Start(context.Background(), []Spec{s}, quietOptions())
	if err != nil {
		t.Fatalf("a command on the server's env PATH: %v", err)
	}
	g.Stop()

	s = helperSpec(t, "trainer", "serve", "PATH="+t.TempDir())
	s.Argv[0] = "launch-helper"
	if g, err := Start(context.Background(), []Spec{s}, quietOptions()); err == nil || !strings.Contains(err.Error(), "server's env PATH") {
		if g != nil {
			g.Stop()
		}
		t.Fatalf("a command on no PATH: %v", err)
	}
}

// TestStartVLLMFleet: launch.samplers.kind vllm starts `vllm serve` with
// the flags runtime LoRA loading needs and VLLM_ALLOW_RUNTIME_LORA_UPDATING
// set, and the controller gets the fleet as vllm:URL/v1. A fake `vllm` on
// the servers' PATH records its command line and environment, then serves
// /health (the test helper).
func TestStartVLLMFleet(t *testing.T) {
	bin, rec := t.TempDir(), t.TempDir()
	script := `#!/bin/sh
port=""; prev=""
for a in "$@"; do
	if [ "$prev" = "--port" ]; then port="$a"; fi
	prev="$a"
done
{ printf '%s\n' "$@"; echo "VLLM_ALLOW_RUNTIME_LORA_UPDATING=$VLLM_ALLOW_RUNTIME_LORA_UPDATING"; } > "$FAKE_VLLM_DIR/$port.args"
exec "$LAUNCH_TEST_BINARY" -test.run='^TestHelperProcess$' -test.count=1 -- "$port"
`
	if err := os.WriteFile(filepath.Join(bin, "vllm"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.Model = "/m/agent"
	c.Samplers = &Server{Kind: KindVLLM, Count: 2, Env: map[string]string{
		"PATH": bin + string(filepath.ListSeparator) + os.Getenv("PATH"), "LAUNCH_HELPER": "serve",
		"LAUNCH_TEST_BINARY": os.Args[0], "FAKE_VLLM_DIR": rec}}
	p, err := c.Plan(Vars{RunDir: t.TempDir(), BaseModel: "agent", LoraRank: 32, MaxLoRAs: 6})
	if err != nil {
		t.Fatal(err)
	}
	g, err := Start(context.Background(), p.Specs, quietOptions())
	if err != nil {
		t.Fatalf("starting the fake vLLM fleet: %v", err)
	}
	defer g.Stop()
	var want []string
	for _, s := range p.Specs {
		port := s.URL[strings.LastIndexByte(s.URL, ':')+1:]
		got, err := os.ReadFile(filepath.Join(rec, port+".args"))
		if err != nil {
			t.Fatalf("%s did not run the fake vllm: %v", s.Name, err)
		}
		line := strings.Join(strings.Fields(string(got)), " ")
		exp := "serve /m/agent --served-model-name agent --host 127.0.0.1 --port " + port +
			" --enable-lora --max-lora-rank 32 --max-loras 6 VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"
		if line != exp {
			t.Errorf("%s ran\n%s\nwant\n%s", s.Name, line, exp)
		}
		want = append(want, s.URL+"/v1")
	}
	if got := p.Endpoints.SamplerSpec(); got != "vllm:"+strings.Join(want, ",") {
		t.Errorf("cluster.sampler for the fleet: %q, want vllm:%s", got, strings.Join(want, ","))
	}
}
