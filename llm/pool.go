package llm

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// HealthChecker is implemented by backends that can be probed cheaply.
type HealthChecker interface {
	Health(ctx context.Context) error
}

// PoolConfig tunes a Pool. Zero values take the defaults in brackets.
type PoolConfig struct {
	// MaxAttempts bounds tries per call, the first included [3].
	MaxAttempts int
	// BaseBackoff and MaxBackoff shape the exponential backoff between
	// attempts; each wait is drawn from [d/2, d) [200ms, 5s].
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// AttemptTimeout bounds one attempt [10m]; negative disables it. A
	// timed-out attempt is aborted on its server and retried.
	AttemptTimeout time.Duration
	// MaxInFlight caps concurrent requests per server [64].
	MaxInFlight int
	// HealthInterval is how often servers are probed [10s]; negative
	// disables probing.
	HealthInterval time.Duration
	// Cooldown is how long a server that failed a request is skipped when
	// there is another one to try [5s].
	Cooldown time.Duration
	// StickyEntries bounds the request-key → server table [8192].
	StickyEntries int
	Metrics       *PoolMetrics
	Logger        *slog.Logger
}

func (c *PoolConfig) withDefaults() {
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.BaseBackoff <= 0 {
		c.BaseBackoff = 200 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.AttemptTimeout == 0 {
		c.AttemptTimeout = 10 * time.Minute
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 64
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = 10 * time.Second
	}
	if c.Cooldown <= 0 {
		c.Cooldown = 5 * time.Second
	}
	if c.StickyEntries <= 0 {
		c.StickyEntries = 8192
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// StickyKey is the part of a request ID that picks its server: the text
// before the first '#'. An agent names its calls "<trajectory>#<n>" so
// every call of one trajectory (and every resubmission of one call) reuses
// the same server's prefix cache while each call keeps a unique rid.
func StickyKey(id string) string {
	if i := strings.IndexByte(id, '#'); i >= 0 {
		return id[:i]
	}
	return id
}

// Pool spreads requests over several servers. Calls with the same
// StickyKey go to the same server while it is healthy; other calls go to
// the server with the fewest requests in flight. Failed attempts that may
// succeed again (connection errors, timeouts, 429, 5xx) are retried with
// exponential backoff and jitter, on another server when the first one is
// down. Pool implements Sampler and Aborter; Close stops its health checks.
type Pool struct {
	cfg     PoolConfig
	members []*member
	rr      atomic.Uint64

	mu     sync.Mutex
	sticky map[string]*list.Element
	lru    *list.List // of stickyEntry, most recent first

	rngMu sync.Mutex
	rng   *rand.Rand

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

type stickyEntry struct {
	key string
	m   *member
}

type member struct {
	name     string
	s        Sampler
	sem      chan struct{}
	inflight atomic.Int64
	healthy  atomic.Bool
	downAt   atomic.Int64 // unix nanos of the last failure
}

// ServerStatus is one pool member as seen now.
type ServerStatus struct {
	Name     string
	Healthy  bool
	InFlight int
}

// NewPool builds a pool over samplers (at least one). Samplers that
// implement fmt.Stringer are named by it in logs and metrics.
func NewPool(samplers []Sampler, cfg PoolConfig) (*Pool, error) {
	if len(samplers) == 0 {
		return nil, errors.New("llm pool: no servers")
	}
	cfg.withDefaults()
	p := &Pool{
		cfg:    cfg,
		sticky: map[string]*list.Element{},
		lru:    list.New(),
		rng:    rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5eed)),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	for i, s := range samplers {
		name := fmt.Sprintf("server-%d", i)
		if st, ok := s.(fmt.Stringer); ok {
			name = st.String()
		}
		m := &member{name: name, s: s, sem: make(chan struct{}, cfg.MaxInFlight)}
		m.healthy.Store(true)
		p.members = append(p.members, m)
		if cfg.Metrics != nil {
			cfg.Metrics.up.WithLabelValues(name).Set(1)
		}
	}
	if cfg.HealthInterval > 0 {
		go p.healthLoop()
	} else {
		close(p.done)
	}
	return p, nil
}

// String lists the members.
func (p *Pool) String() string {
	names := make([]string, len(p.members))
	for i, m := range p.members {
		names[i] = m.name
	}
	return strings.Join(names, ",")
}

// Close stops background health checks. In-flight calls finish normally.
func (p *Pool) Close() error {
	p.once.Do(func() { close(p.stop) })
	<-p.done
	return nil
}

// Servers reports each member's state.
func (p *Pool) Servers() []ServerStatus {
	out := make([]ServerStatus, len(p.members))
	for i, m := range p.members {
		out[i] = ServerStatus{Name: m.name, Healthy: m.healthy.Load(), InFlight: int(m.inflight.Load())}
	}
	return out
}

// usable says whether m should get traffic: healthy, or failed long
// enough ago that it is worth another try.
func (p *Pool) usable(m *member, now time.Time) bool {
	if m.healthy.Load() {
		return true
	}
	return now.UnixNano()-m.downAt.Load() > int64(p.cfg.Cooldown)
}

// pick chooses the member for key: its sticky server if usable, else the
// least loaded usable one (round robin among equals), which becomes the
// key's sticky server. avoid is skipped when anything else is usable.
func (p *Pool) pick(key string, avoid *member) *member {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if key != "" {
		if el, ok := p.sticky[key]; ok {
			m := el.Value.(*stickyEntry).m
			if m != avoid && p.usable(m, now) {
				p.lru.MoveToFront(el)
				return m
			}
		}
	}
	var best *member
	n := len(p.members)
	start := int(p.rr.Add(1) % uint64(n))
	for pass := 0; pass < 2 && best == nil; pass++ {
		for i := 0; i < n; i++ {
			m := p.members[(start+i)%n]
			if pass == 0 && (m == avoid || !p.usable(m, now)) {
				continue
			}
			if best == nil || m.inflight.Load() < best.inflight.Load() {
				best = m
			}
		}
	}
	if key != "" {
		p.setSticky(key, best)
	}
	return best
}

func (p *Pool) setSticky(key string, m *member) {
	if el, ok := p.sticky[key]; ok {
		el.Value.(*stickyEntry).m = m
		p.lru.MoveToFront(el)
		return
	}
	p.sticky[key] = p.lru.PushFront(&stickyEntry{key: key, m: m})
	for p.lru.Len() > p.cfg.StickyEntries {
		last := p.lru.Back()
		delete(p.sticky, last.Value.(*stickyEntry).key)
		p.lru.Remove(last)
	}
}

func (p *Pool) stickyMember(key string) *member {
	p.mu.Lock()
	defer p.mu.Unlock()
	if el, ok := p.sticky[key]; ok {
		return el.Value.(*stickyEntry).m
	}
	return nil
}

func (p *Pool) markDown(m *member, err error) {
	m.downAt.Store(time.Now().UnixNano())
	if m.healthy.Swap(false) {
		p.cfg.Logger.Warn("llm server marked down", "server", m.name, "err", err)
		if p.cfg.Metrics != nil {
			p.cfg.Metrics.up.WithLabelValues(m.name).Set(0)
		}
	}
}

func (p *Pool) markUp(m *member) {
	if !m.healthy.Swap(true) {
		p.cfg.Logger.Info("llm server back up", "server", m.name)
		if p.cfg.Metrics != nil {
			p.cfg.Metrics.up.WithLabelValues(m.name).Set(1)
		}
	}
}

// backoff is the wait before attempt n+1 (n ≥ 1): exponential, capped,
// with jitter so that many agents do not retry in lockstep.
func (p *Pool) backoff(n int) time.Duration {
	d := p.cfg.BaseBackoff << min(n-1, 20)
	if d > p.cfg.MaxBackoff || d <= 0 {
		d = p.cfg.MaxBackoff
	}
	p.rngMu.Lock()
	j := time.Duration(p.rng.Int64N(int64(d)/2 + 1))
	p.rngMu.Unlock()
	return d/2 + j
}

// Sample implements Sampler.
func (p *Pool) Sample(ctx context.Context, req *Request) (*Response, error) {
	key := StickyKey(req.ID)
	var avoid *member
	var lastErr error
	for attempt := 1; ; attempt++ {
		m := p.pick(key, avoid)
		resp, err := p.attempt(ctx, m, req)
		if err == nil {
			p.markUp(m)
			return resp, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w (last error: %v)", m.name, ctx.Err(), err)
		}
		if !Retryable(err) {
			return nil, err
		}
		if isConnError(err) && !errors.As(err, new(*attemptTimeoutError)) {
			p.markDown(m, err)
		}
		if attempt >= p.cfg.MaxAttempts {
			return nil, fmt.Errorf("after %d attempts: %w", attempt, lastErr)
		}
		if p.cfg.Metrics != nil {
			p.cfg.Metrics.retries.WithLabelValues(m.name).Inc()
		}
		p.cfg.Logger.Debug("llm attempt failed; retrying", "server", m.name, "attempt", attempt, "err", err)
		avoid = m
		t := time.NewTimer(p.backoff(attempt))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (last error: %v)", ctx.Err(), lastErr)
		}
	}
}

// attempt runs one try on m under the concurrency limit and the attempt
// timeout.
func (p *Pool) attempt(ctx context.Context, m *member, req *Request) (*Response, error) {
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-m.sem }()
	m.inflight.Add(1)
	defer m.inflight.Add(-1)
	met := p.cfg.Metrics
	if met != nil {
		met.inflight.WithLabelValues(m.name).Inc()
		defer met.inflight.WithLabelValues(m.name).Dec()
	}
	actx, cancel := ctx, context.CancelFunc(func() {})
	if p.cfg.AttemptTimeout > 0 {
		actx, cancel = context.WithTimeout(ctx, p.cfg.AttemptTimeout)
	}
	start := time.Now()
	resp, err := m.s.Sample(actx, req)
	timedOut := err != nil && ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded)
	cancel()
	switch {
	case err == nil:
		if met != nil {
			met.requests.WithLabelValues(m.name, "ok").Inc()
			met.latency.WithLabelValues(m.name).Observe(time.Since(start).Seconds())
			met.tokens.WithLabelValues(m.name).Add(float64(len(resp.OutputIDs)))
		}
		return resp, nil
	case timedOut:
		if met != nil {
			met.requests.WithLabelValues(m.name, "timeout").Inc()
		}
		// The server may still be decoding; free it before trying again.
		if ab, ok := m.s.(Aborter); ok && req.ID != "" {
			go func() {
				actx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = ab.Abort(actx, req.ID)
			}()
		}
		return nil, &attemptTimeoutError{after: p.cfg.AttemptTimeout, err: err}
	default:
		if met != nil {
			met.requests.WithLabelValues(m.name, "error").Inc()
		}
		return nil, err
	}
}

// Abort implements Aborter: the request's sticky server is told to abort
// it; when the pool never routed that key, every server that can abort is
// told.
func (p *Pool) Abort(ctx context.Context, requestID string) error {
	if m := p.stickyMember(StickyKey(requestID)); m != nil {
		if ab, ok := m.s.(Aborter); ok {
			return ab.Abort(ctx, requestID)
		}
		return fmt.Errorf("%s cannot abort requests", m.name)
	}
	var errs []error
	n := 0
	for _, m := range p.members {
		if ab, ok := m.s.(Aborter); ok {
			n++
			if err := ab.Abort(ctx, requestID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if n == 0 {
		return errors.New("no server in the pool can abort requests")
	}
	return errors.Join(errs...)
}

func (p *Pool) healthLoop() {
	defer close(p.done)
	t := time.NewTicker(p.cfg.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.CheckHealth(context.Background())
		}
	}
}

// CheckHealth probes every member that implements HealthChecker once, in
// parallel, and updates its state.
func (p *Pool) CheckHealth(ctx context.Context) {
	timeout := min(p.cfg.HealthInterval, 5*time.Second)
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	var wg sync.WaitGroup
	for _, m := range p.members {
		hc, ok := m.s.(HealthChecker)
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			hctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			if err := hc.Health(hctx); err != nil {
				p.markDown(m, err)
				return
			}
			p.markUp(m)
		}()
	}
	wg.Wait()
}

// Health implements HealthChecker for the pool as a whole: it probes every
// server once and succeeds when at least one answers.
func (p *Pool) Health(ctx context.Context) error {
	p.CheckHealth(ctx)
	for _, m := range p.members {
		if m.healthy.Load() {
			return nil
		}
	}
	return fmt.Errorf("no server of %s answers", p)
}

// ContextLength implements ContextLengther: the smallest context window
// among the servers that report one (a request must fit whichever server
// it lands on); 0 when none does.
func (p *Pool) ContextLength(ctx context.Context) int {
	least := 0
	for _, m := range p.members {
		if n := ContextLength(ctx, m.s); n > 0 && (least == 0 || n < least) {
			least = n
		}
	}
	return least
}
