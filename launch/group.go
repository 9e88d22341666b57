// Package launch starts the servers of a training run on one machine (the
// retrieval server, the sampler fleet, the trainer), waits until each
// answers its health endpoint, watches them while the run goes on, and
// stops them all at the end: SIGTERM to each process group, SIGKILL after
// a grace period, every child reaped. What to start comes from the
// launch: block of a cluster YAML (Config); recipe.RunLaunched runs the
// controller between Start and Stop.
package launch

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Spec is one process to start.
type Spec struct {
	// Name names the process in logs and errors (search, sampler-0,
	// trainer); its output goes to Log.
	Name string
	// Argv is the command line, placeholders already filled.
	Argv []string
	// Env is added to the launcher's environment (KEY=VALUE).
	Env []string
	// URL is the server's root (http://host:port) and Health the path
	// that answers 2xx once it is ready.
	URL    string
	Health string
	// Log is the file that gets the process's stdout and stderr.
	Log string
}

// Options bound the start and the stop.
type Options struct {
	// HealthTimeout bounds the wait for every server's health endpoint,
	// counted from the start of all of them.
	HealthTimeout time.Duration
	// StopGrace is how long a process may take to exit after SIGTERM
	// before its group gets SIGKILL.
	StopGrace time.Duration
	Logger    *slog.Logger
}

// Group is a set of started processes. Stop ends them all; it is safe to
// call more than once and from any goroutine.
type Group struct {
	procs    []*proc
	grace    time.Duration
	log      *slog.Logger
	stopping atomic.Bool
	stopOnce sync.Once

	diedOnce sync.Once
	died     chan struct{}
	diedErr  error
}

// proc is one started process and the result of its Wait.
type proc struct {
	spec Spec
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, set before done closes
	logf *os.File
}

// Start starts every spec, each in its own process group with its output
// in its log file, then waits until each answers its health endpoint. On
// any failure it stops what it started and returns an error that names
// the process and ends with the last lines of its log.
func Start(ctx context.Context, specs []Spec, o Options) (*Group, error) {
	if err := supported(); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.HealthTimeout <= 0 {
		o.HealthTimeout = 2 * time.Minute
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 10 * time.Second
	}
	g := &Group{grace: o.StopGrace, log: o.Logger, died: make(chan struct{})}
	for _, s := range specs {
		if err := g.start(s); err != nil {
			g.Stop()
			return nil, err
		}
	}
	deadline := time.Now().Add(o.HealthTimeout)
	for _, p := range g.procs {
		if err := g.waitHealthy(ctx, p, deadline); err != nil {
			g.Stop()
			return nil, err
		}
		g.log.Info("healthy", "name", p.spec.Name, "pid", p.cmd.Process.Pid, "url", p.spec.URL, "log", p.spec.Log)
	}
	return g, nil
}

func (g *Group) start(s Spec) error {
	if len(s.Argv) == 0 {
		return fmt.Errorf("launch %s: empty command", s.Name)
	}
	if err := os.MkdirAll(filepath.Dir(s.Log), 0o755); err != nil {
		return fmt.Errorf("launch %s: %w", s.Name, err)
	}
	// Append: a resumed run keeps the logs of the servers it had before.
	f, err := os.OpenFile(s.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("launch %s: %w", s.Name, err)
	}
	fmt.Fprintf(f, "=== %s launch %s: %s\n", time.Now().UTC().Format(time.RFC3339), s.Name, strings.Join(s.Argv, " "))
	// Not CommandContext: the context's end must lead to Stop's
	// SIGTERM-then-SIGKILL of the whole group, not a SIGKILL of the leader.
	cmd := exec.Command(s.Argv[0], s.Argv[1:]...)
	cmd.Env = append(os.Environ(), s.Env...)
	// exec.Command looked a bare name up in the launcher's PATH; a
	// server's own env: PATH (a venv's bin, where SkyRL's uv shim lives)
	// is where its program is meant to be found.
	if path, ok := envValue(s.Env, "PATH"); ok && !strings.ContainsRune(s.Argv[0], '/') {
		bin, err := lookPathIn(s.Argv[0], path)
		if err != nil {
			f.Close()
			return fmt.Errorf("launch %s: start %s: %w", s.Name, s.Argv[0], err)
		}
		cmd.Path, cmd.Err = bin, nil
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("launch %s: start %s: %w", s.Name, s.Argv[0], err)
	}
	p := &proc{spec: s, cmd: cmd, done: make(chan struct{}), logf: f}
	g.procs = append(g.procs, p)
	g.log.Info("started", "name", s.Name, "pid", cmd.Process.Pid, "log", s.Log)
	go g.watch(p)
	return nil
}

// envValue is the last KEY=VALUE setting of key in env.
func envValue(env []string, key string) (string, bool) {
	val, found := "", false
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			val, found = v, true
		}
	}
	return val, found
}

// lookPathIn finds an executable file named name in the directories of
// path, as a shell would.
func lookPathIn(name, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		cand := filepath.Join(dir, name)
		if st, err := os.Stat(cand); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return cand, nil
		}
	}
	return "", fmt.Errorf("%q is not an executable in the server's env PATH %s", name, path)
}

// watch reaps p; an exit that Stop did not ask for marks the group dead.
func (g *Group) watch(p *proc) {
	p.err = p.cmd.Wait()
	p.logf.Close()
	close(p.done)
	if g.stopping.Load() {
		return
	}
	g.diedOnce.Do(func() {
		g.diedErr = fmt.Errorf("%s (pid %d) exited while the run was going: %s%s", p.spec.Name, p.cmd.Process.Pid, exitText(p.err), tail(p.spec.Log))
		close(g.died)
	})
}

// waitHealthy polls p's health endpoint until it answers 2xx, p exits, ctx
// ends or the deadline passes.
func (g *Group) waitHealthy(ctx context.Context, p *proc, deadline time.Time) error {
	client := &http.Client{Timeout: 2 * time.Second}
	url := p.spec.URL + p.spec.Health
	var last string
	for {
		if err := probe(ctx, client, url); err == nil {
			return nil
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it answered %s: %s%s", p.spec.Name, url, exitText(p.err), tail(p.spec.Log))
		case <-ctx.Done():
			return fmt.Errorf("launch %s: %w", p.spec.Name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer %s in time (raise launch.health_timeout_s; last try: %s)%s", p.spec.Name, url, last, tail(p.spec.Log))
		}
	}
}

func probe(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// Died is closed when a process exits before Stop was called; Err then
// names it.
func (g *Group) Died() <-chan struct{} { return g.died }

// Err is the first unexpected exit, or nil.
func (g *Group) Err() error {
	select {
	case <-g.died:
		return g.diedErr
	default:
		return nil
	}
}

// Pids are the process ids of the started processes, in start order.
func (g *Group) Pids() map[string]int {
	m := make(map[string]int, len(g.procs))
	for _, p := range g.procs {
		m[p.spec.Name] = p.cmd.Process.Pid
	}
	return m
}

// Stop sends SIGTERM to every process group, waits up to the grace
// period, sends SIGKILL to the groups still there, and returns once every
// started process has been reaped.
func (g *Group) Stop() {
	g.stopOnce.Do(g.stop)
}

func (g *Group) stop() {
	g.stopping.Store(true)
	for _, p := range g.procs {
		select {
		case <-p.done:
		default:
			signalGroup(p.cmd.Process.Pid, false)
		}
	}
	timer := time.NewTimer(g.grace)
	defer timer.Stop()
	for _, p := range g.procs {
		select {
		case <-p.done:
		case <-timer.C:
			// Closed channel semantics: later procs get the kill at once.
			timer.Reset(0)
			g.log.Warn("process did not stop in time; killing its group", "name", p.spec.Name, "grace", g.grace)
			signalGroup(p.cmd.Process.Pid, true)
			<-p.done
		}
		// The leader is gone; anything it started in its group (a server's
		// worker processes) goes with it.
		signalGroup(p.cmd.Process.Pid, true)
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// tail renders the last lines of a log for an error message, on one line.
func tail(path string) string {
	const maxBytes, maxLines = 2048, 6
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-maxBytes, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if off > 0 && len(lines) > 1 {
		lines = lines[1:] // the first one is cut
	}
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	var kept []string
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			kept = append(kept, l)
		}
	}
	if len(kept) == 0 {
		return fmt.Sprintf("; %s is empty", path)
	}
	return fmt.Sprintf("; last lines of %s: %s", path, strings.Join(kept, " | "))
}
