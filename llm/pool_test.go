package llm_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/llm"
)

func fastPool(cfg llm.PoolConfig) llm.PoolConfig {
	if cfg.BaseBackoff == 0 {
		cfg.BaseBackoff = time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 5 * time.Millisecond
	}
	if cfg.HealthInterval == 0 {
		cfg.HealthInterval = -1
	}
	return cfg
}

// servers starts n fakes that answer every call with "ok".
func servers(t *testing.T, n int, h func(fakellm.Call) fakellm.Reply) ([]*fakellm.Server, []llm.Sampler) {
	t.Helper()
	if h == nil {
		h = func(fakellm.Call) fakellm.Reply { return fakellm.Reply{Text: "ok"} }
	}
	var srvs []*fakellm.Server
	var ss []llm.Sampler
	for range n {
		srv := fakellm.New(fakellm.Options{Handler: h})
		t.Cleanup(srv.Close)
		srvs = append(srvs, srv)
		ss = append(ss, newSGLang(t, srv))
	}
	return srvs, ss
}

func newPool(t *testing.T, ss []llm.Sampler, cfg llm.PoolConfig) *llm.Pool {
	t.Helper()
	p, err := llm.NewPool(ss, fastPool(cfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestPoolStickyRoutingByTrajectory(t *testing.T) {
	ctx := context.Background()
	srvs, ss := servers(t, 3, nil)
	p := newPool(t, ss, llm.PoolConfig{})
	for traj := range 6 {
		for call := range 4 {
			id := "traj" + string(rune('A'+traj)) + "#" + string(rune('0'+call))
			if _, err := p.Sample(ctx, &llm.Request{ID: id, InputIDs: []int{1}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Each trajectory stayed on one server: every server saw a multiple of
	// 4 calls, and the 6 trajectories were spread over all 3.
	for i, s := range srvs {
		byTraj := map[string]int{}
		for _, c := range s.Calls() {
			byTraj[llm.StickyKey(c.RID)]++
		}
		if len(byTraj) == 0 {
			t.Errorf("server %d got no trajectory", i)
		}
		for k, n := range byTraj {
			if n != 4 {
				t.Errorf("trajectory %s split across servers (%d calls on server %d)", k, n, i)
			}
		}
	}
}

func TestPoolLeastLoaded(t *testing.T) {
	ctx := context.Background()
	release := make(chan struct{})
	h := func(c fakellm.Call) fakellm.Reply {
		if c.RID == "slow" {
			<-release
		}
		return fakellm.Reply{Text: "ok"}
	}
	srvs, ss := servers(t, 2, h)
	p := newPool(t, ss, llm.PoolConfig{})
	done := make(chan error)
	go func() {
		_, err := p.Sample(ctx, &llm.Request{ID: "slow", InputIDs: []int{1}})
		done <- err
	}()
	waitFor(t, func() bool { return len(srvs[0].Calls())+len(srvs[1].Calls()) == 1 })
	busy := 0
	if len(srvs[1].Calls()) == 1 {
		busy = 1
	}
	for range 5 {
		if _, err := p.Sample(ctx, &llm.Request{InputIDs: []int{2}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(srvs[busy].Calls()); got != 1 {
		t.Errorf("busy server got %d more calls; want all on the idle one", got-1)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestPoolRetries(t *testing.T) {
	ctx := context.Background()
	t.Run("5xx then success", func(t *testing.T) {
		srv := fakellm.New(fakellm.Options{})
		defer srv.Close()
		srv.Enqueue(fakellm.Reply{Status: 503}, fakellm.Reply{Status: 502}, fakellm.Reply{Text: "ok"})
		p := newPool(t, []llm.Sampler{newSGLang(t, srv)}, llm.PoolConfig{MaxAttempts: 3})
		r, err := p.Sample(ctx, &llm.Request{InputIDs: []int{1}})
		if err != nil || r.Text != "ok" {
			t.Fatalf("%+v %v", r, err)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		srv := fakellm.New(fakellm.Options{})
		defer srv.Close()
		srv.Enqueue(fakellm.Reply{Status: 503}, fakellm.Reply{Status: 503}, fakellm.Reply{Text: "never"})
		p := newPool(t, []llm.Sampler{newSGLang(t, srv)}, llm.PoolConfig{MaxAttempts: 2})
		_, err := p.Sample(ctx, &llm.Request{InputIDs: []int{1}})
		if err == nil || !strings.Contains(err.Error(), "after 2 attempts") || srv.Pending() != 1 {
			t.Fatalf("err %v, pending %d", err, srv.Pending())
		}
	})
	t.Run("4xx is not retried", func(t *testing.T) {
		srv := fakellm.New(fakellm.Options{})
		defer srv.Close()
		srv.Enqueue(fakellm.Reply{Status: 400}, fakellm.Reply{Text: "never"})
		p := newPool(t, []llm.Sampler{newSGLang(t, srv)}, llm.PoolConfig{})
		if _, err := p.Sample(ctx, &llm.Request{InputIDs: []int{1}}); err == nil || srv.Pending() != 1 {
			t.Fatalf("err %v pending %d", err, srv.Pending())
		}
	})
	t.Run("cancelled caller stops retrying", func(t *testing.T) {
		srv := fakellm.New(fakellm.Options{})
		defer srv.Close()
		srv.Enqueue(fakellm.Reply{Status: 503}, fakellm.Reply{Text: "never"})
		p := newPool(t, []llm.Sampler{newSGLang(t, srv)}, llm.PoolConfig{BaseBackoff: time.Hour, MaxBackoff: time.Hour})
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := p.Sample(cctx, &llm.Request{InputIDs: []int{1}})
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
			t.Fatalf("err %v after %s", err, time.Since(start))
		}
	})
}

func TestPoolFailsOverFromDeadServer(t *testing.T) {
	ctx := context.Background()
	srvs, ss := servers(t, 2, nil)
	p := newPool(t, ss, llm.PoolConfig{Cooldown: time.Hour})
	// Pin the trajectory, then kill its server.
	if _, err := p.Sample(ctx, &llm.Request{ID: "t#0", InputIDs: []int{1}}); err != nil {
		t.Fatal(err)
	}
	dead := 0
	if len(srvs[1].Calls()) == 1 {
		dead = 1
	}
	srvs[dead].Close()
	for i := range 3 {
		if _, err := p.Sample(ctx, &llm.Request{ID: "t#" + string(rune('1'+i)), InputIDs: []int{1}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(srvs[1-dead].Calls()); got != 3 {
		t.Errorf("live server got %d calls, want 3", got)
	}
	st := p.Servers()
	if st[dead].Healthy || !st[1-dead].Healthy {
		t.Errorf("status %+v", st)
	}
}

func TestPoolAttemptTimeoutAbortsAndRetries(t *testing.T) {
	ctx := context.Background()
	srv := fakellm.New(fakellm.Options{})
	defer srv.Close()
	srv.Enqueue(fakellm.Reply{Text: "slow", Delay: 10 * time.Second}, fakellm.Reply{Text: "fast"})
	p := newPool(t, []llm.Sampler{newSGLang(t, srv)}, llm.PoolConfig{AttemptTimeout: 100 * time.Millisecond})
	r, err := p.Sample(ctx, &llm.Request{ID: "x", InputIDs: []int{1}})
	if err != nil || r.Text != "fast" {
		t.Fatalf("%+v %v", r, err)
	}
	// The timed-out request was aborted on the server, not left running.
	waitFor(t, func() bool { return srv.InFlight() == 0 })
}

func TestPoolConcurrencyLimit(t *testing.T) {
	ctx := context.Background()
	var cur, peak atomic.Int64
	h := func(fakellm.Call) fakellm.Reply {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
		cur.Add(-1)
		return fakellm.Reply{Text: "ok"}
	}
	_, ss := servers(t, 1, h)
	p := newPool(t, ss, llm.PoolConfig{MaxInFlight: 2})
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.Sample(ctx, &llm.Request{InputIDs: []int{1}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if peak.Load() > 2 || peak.Load() < 1 {
		t.Errorf("peak concurrency %d, limit 2", peak.Load())
	}
}

func TestPoolHealthChecksAndMetrics(t *testing.T) {
	ctx := context.Background()
	srvs, ss := servers(t, 2, nil)
	reg := prometheus.NewRegistry()
	met, err := llm.NewPoolMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	p := newPool(t, ss, llm.PoolConfig{Metrics: met})
	if _, err := p.Sample(ctx, &llm.Request{InputIDs: []int{1}}); err != nil {
		t.Fatal(err)
	}
	srvs[1].Close()
	p.CheckHealth(ctx)
	st := p.Servers()
	if !st[0].Healthy || st[1].Healthy {
		t.Fatalf("health %+v", st)
	}
	name0, name1 := st[0].Name, st[1].Name
	if got := metricValue(t, met.UpGauge(name1)); got != 0 {
		t.Errorf("server_up for dead server = %v", got)
	}
	total := metricValue(t, met.RequestCounter(name0, "ok")) + metricValue(t, met.RequestCounter(name1, "ok"))
	if total != 1 {
		t.Errorf("ok requests = %v", total)
	}
	// A second pool on the same registry shares the series.
	if _, err := llm.NewPoolMetrics(reg); err != nil {
		t.Errorf("second registration: %v", err)
	}
}

func TestPoolAbortGoesToStickyServer(t *testing.T) {
	ctx := context.Background()
	srvs, ss := servers(t, 2, func(c fakellm.Call) fakellm.Reply {
		return fakellm.Reply{Text: strings.Repeat("y", 500), TokenDelay: time.Millisecond}
	})
	p := newPool(t, ss, llm.PoolConfig{})
	done := make(chan *llm.Response)
	go func() {
		r, err := p.Sample(ctx, &llm.Request{ID: "job#1", InputIDs: []int{1}, Params: llm.Params{MaxNewTokens: 500}})
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	waitFor(t, func() bool { return srvs[0].InFlight()+srvs[1].InFlight() == 1 })
	if err := p.Abort(ctx, "job#1"); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r == nil || r.Finish != llm.FinishAbort {
		t.Fatalf("want aborted reply, got %+v", r)
	}
}

func TestStickyKey(t *testing.T) {
	for in, want := range map[string]string{"": "", "a": "a", "traj-1#3": "traj-1", "#x": "", "a#b#c": "a"} {
		if got := llm.StickyKey(in); got != want {
			t.Errorf("StickyKey(%q) = %q want %q", in, got, want)
		}
	}
}

func metricValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	t.Fatalf("unsupported metric %v", &m)
	return 0
}
