package tools

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Retry bounds how hard a tool tries: attempts on connection errors,
// timeouts, HTTP 429 and 5xx, with exponential backoff and jitter between
// them. A Retry-After header is honoured up to MaxBackoff.
type Retry struct {
	MaxAttempts int           // [3]
	BaseBackoff time.Duration // [500ms]
	MaxBackoff  time.Duration // [8s]
}

func (r Retry) withDefaults() Retry {
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = 3
	}
	if r.BaseBackoff <= 0 {
		r.BaseBackoff = 500 * time.Millisecond
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = 8 * time.Second
	}
	return r
}

func (r Retry) wait(attempt int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, r.MaxBackoff)
	}
	d := r.BaseBackoff << min(attempt-1, 20)
	if d > r.MaxBackoff || d <= 0 {
		d = r.MaxBackoff
	}
	return d/2 + time.Duration(rand.Int64N(int64(d)/2+1))
}

// hostLimiter caps concurrent requests per host so that a page with many
// links, or many agents, cannot hammer one site.
type hostLimiter struct {
	per int
	mu  sync.Mutex
	sem map[string]chan struct{}
}

func newHostLimiter(per int) *hostLimiter {
	return &hostLimiter{per: per, sem: map[string]chan struct{}{}}
}

func (l *hostLimiter) acquire(ctx context.Context, host string) (func(), error) {
	if l == nil || l.per <= 0 {
		return func() {}, nil
	}
	l.mu.Lock()
	ch, ok := l.sem[host]
	if !ok {
		ch = make(chan struct{}, l.per)
		l.sem[host] = ch
	}
	l.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// doer sends HTTP requests for one tool backend.
type doer struct {
	op       string // "search" or "fetch", for errors
	backend  string
	client   *http.Client
	retry    Retry
	timeout  time.Duration // per attempt
	limiter  *hostLimiter
	secrets  []string
	maxBytes int64
}

// reply is a completed HTTP exchange.
type reply struct {
	status    int
	header    http.Header
	body      []byte
	truncated bool
	url       string // final URL after redirects
}

// send runs newReq until it gets a non-retryable reply or the attempts run
// out. The last 429/5xx reply is returned as a reply, not an error, so the
// caller can describe it; transport failures become *Error.
func (d *doer) send(ctx context.Context, host string, newReq func(context.Context) (*http.Request, error)) (*reply, error) {
	retry := d.retry.withDefaults()
	var lastErr error
	for attempt := 1; ; attempt++ {
		rep, err := d.once(ctx, host, newReq)
		if ctx.Err() != nil {
			return nil, &Error{Op: d.op, Backend: d.backend, Msg: "cancelled: " + ctx.Err().Error(), Transient: true, err: ctx.Err(), cancelled: true}
		}
		var retryAfter time.Duration
		switch {
		case err != nil:
			var te *Error
			if errors.As(err, &te) && !te.Transient {
				return nil, err
			}
			lastErr = err
		case rep.status == http.StatusTooManyRequests || rep.status >= 500:
			retryAfter = parseRetryAfter(rep.header.Get("Retry-After"))
			lastErr = nil
		default:
			return rep, nil
		}
		if attempt >= retry.MaxAttempts {
			if lastErr != nil {
				return nil, lastErr
			}
			return rep, nil
		}
		t := time.NewTimer(retry.wait(attempt, retryAfter))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, &Error{Op: d.op, Backend: d.backend, Msg: "cancelled: " + ctx.Err().Error(), Transient: true, err: ctx.Err(), cancelled: true}
		}
	}
}

func (d *doer) once(ctx context.Context, host string, newReq func(context.Context) (*http.Request, error)) (*reply, error) {
	release, err := d.limiter.acquire(ctx, host)
	if err != nil {
		return nil, err
	}
	defer release()
	actx, cancel := ctx, context.CancelFunc(func() {})
	if d.timeout > 0 {
		actx, cancel = context.WithTimeout(ctx, d.timeout)
	}
	defer cancel()
	req, err := newReq(actx)
	if err != nil {
		return nil, &Error{Op: d.op, Backend: d.backend, Msg: d.scrub(err.Error()), err: err}
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, d.transportError(ctx, actx, err)
	}
	defer resp.Body.Close()
	limit := d.maxBytes
	if limit <= 0 {
		limit = 32 << 20
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, d.transportError(ctx, actx, err)
	}
	rep := &reply{status: resp.StatusCode, header: resp.Header, body: body, url: resp.Request.URL.String()}
	if int64(len(body)) > limit {
		rep.body, rep.truncated = body[:limit], true
	}
	return rep, nil
}

// transportError describes a request that got no complete reply.
func (d *doer) transportError(ctx, actx context.Context, err error) error {
	var refused *refusedError
	if errors.As(err, &refused) {
		return &Error{Op: d.op, Backend: d.backend, Msg: refused.Error(), err: refused}
	}
	var redir *redirectError
	if errors.As(err, &redir) {
		return &Error{Op: d.op, Backend: d.backend, Msg: redir.Error(), err: redir}
	}
	var ne net.Error
	if ctx.Err() == nil && (errors.Is(actx.Err(), context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()) {
		return &Error{Op: d.op, Backend: d.backend, Msg: fmt.Sprintf("timeout after %s", d.timeout), Transient: true, err: err}
	}
	return &Error{Op: d.op, Backend: d.backend, Msg: d.scrub(describeNetError(err)), Transient: true, err: err}
}

// describeNetError turns a transport error into a short phrase without the
// request URL (which may carry secrets and is known to the caller anyway).
func describeNetError(err error) string {
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "no such host " + dnsErr.Name
		}
		return "DNS lookup failed for " + dnsErr.Name
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "server closed the connection"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	msg := err.Error()
	// *url.Error reads `Get "URL": cause`; keep the cause.
	if i := strings.LastIndex(msg, "\": "); i >= 0 {
		msg = msg[i+3:]
	}
	return msg
}

func (d *doer) scrub(s string) string {
	for _, sec := range d.secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[REDACTED]")
		}
	}
	return s
}

func parseRetryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(t))
	}
	return 0
}

// bodySnippet is a short one-line excerpt of an error reply.
func (d *doer) bodySnippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return d.scrub(s)
}

// doerConfig is what a backend's config says about its HTTP behaviour;
// zero values take the backend's defaults.
type doerConfig struct {
	client         *http.Client
	retry          Retry
	timeout        time.Duration
	defaultTimeout time.Duration
	concurrent     int // 0: no limit
	maxBytes       int64
	secret         string
}

func newDoer(op, backend string, c doerConfig) *doer {
	if c.client == nil {
		c.client = defaultClient()
	}
	if c.timeout == 0 {
		c.timeout = c.defaultTimeout
	}
	d := &doer{op: op, backend: backend, client: c.client, retry: c.retry, timeout: c.timeout, maxBytes: c.maxBytes}
	if c.concurrent > 0 {
		d.limiter = newHostLimiter(c.concurrent)
	}
	if c.secret != "" {
		d.secrets = []string{c.secret}
	}
	return d
}

func defaultClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: t}
}
