package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// What bounds one server's connections and memory, whoever the client:
//
//   - connections: at most MaxConns are open. When a new one arrives at the
//     cap, the connection that has waited longest without a complete request
//     (headers or body still arriving, or idle between requests) is closed to
//     make room, so a flood of half-sent requests cannot lock out /health or
//     a real client. Only when every open connection is running a handler is
//     the newcomer refused with a 503.
//   - time: headers must arrive within ReadHeaderTimeout, a body within
//     BodyTimeout, and a keep-alive connection is closed after IdleTimeout.
//     The body deadline is set per request (not http.Server.ReadTimeout,
//     which would also cancel the context of every handler that runs longer
//     than the timeout) and lifted once the body is read.
//   - memory: a body is at most MaxBodyBytes (413), and the bodies of the
//     requests being served add up to at most MaxInflightBytes; a request
//     that does not fit waits up to AdmitWait for room and then gets a 429.
//     A request is admitted by its Content-Length before any of its body is
//     read; one without a length is charged MaxBodyBytes.

// connKey carries the server-side connection in a request's context.
type connKey struct{}

// connPhase is what an open connection is doing, for eviction.
type connPhase int

const (
	phaseReading connPhase = iota // request headers or body still arriving
	phaseIdle                     // between keep-alive requests
	phaseBusy                     // request read, handler running
)

// trackedConn is a server-side connection under a connLimiter.
type trackedConn struct {
	net.Conn
	l         *connLimiter
	closeOnce sync.Once
	// phase and since are guarded by l.mu.
	phase connPhase
	since time.Time
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() { c.l.remove(c) })
	return err
}

// setPhase records what the connection is doing now.
func (c *trackedConn) setPhase(p connPhase) {
	c.l.mu.Lock()
	if c.phase != p {
		c.phase, c.since = p, time.Now()
	}
	c.l.mu.Unlock()
}

// connLimiter is a listener that keeps at most max connections open,
// evicting the stalest one that is not running a request.
type connLimiter struct {
	net.Listener
	max int

	mu      sync.Mutex
	open    map[*trackedConn]struct{}
	evicted int64
	refused int64
}

func newConnLimiter(ln net.Listener, max int) *connLimiter {
	return &connLimiter{Listener: ln, max: max, open: map[*trackedConn]struct{}{}}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, l: l, phase: phaseReading, since: time.Now()}
		l.mu.Lock()
		var victim *trackedConn
		if len(l.open) >= l.max {
			victim = l.stalestLocked()
			if victim == nil {
				l.refused++
				l.mu.Unlock()
				go refuseConn(c)
				continue
			}
			delete(l.open, victim) // counted out now; its Close finds nothing
			l.evicted++
		}
		l.open[tc] = struct{}{}
		l.mu.Unlock()
		if victim != nil {
			_ = victim.Conn.Close()
		}
		return tc, nil
	}
}

// stalestLocked is the open connection that has been reading or idle the
// longest; nil when all are running handlers.
func (l *connLimiter) stalestLocked() *trackedConn {
	var best *trackedConn
	for c := range l.open {
		if c.phase == phaseBusy {
			continue
		}
		if best == nil || c.since.Before(best.since) {
			best = c
		}
	}
	return best
}

func (l *connLimiter) remove(c *trackedConn) {
	l.mu.Lock()
	delete(l.open, c)
	l.mu.Unlock()
}

// stats are the open connections and how many were evicted or refused.
func (l *connLimiter) stats() (open int, evicted, refused int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.open), l.evicted, l.refused
}

// connState follows http.Server's view of each connection.
func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	tc, ok := c.(*trackedConn)
	if !ok {
		return
	}
	switch st {
	case http.StateNew, http.StateActive:
		tc.setPhase(phaseReading)
	case http.StateIdle:
		tc.setPhase(phaseIdle)
	case http.StateClosed, http.StateHijacked:
		tc.closeOnce.Do(func() { l.remove(tc) })
	}
}

// refuseConn answers a connection over the cap with a 503 and closes it.
func refuseConn(c net.Conn) {
	defer c.Close()
	body := `{"error":{"message":"the server has too many open connections; retry shortly","type":"server_error","param":null,"code":503}}` + "\n"
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: "+
		strconv.Itoa(len(body))+"\r\n\r\n"+body)
}

// admission bounds the total body bytes of the requests being served.
type admission struct {
	limit int64

	mu      sync.Mutex
	used    int64
	changed chan struct{} // closed and replaced on every release
}

func newAdmission(limit int64) *admission {
	return &admission{limit: limit, changed: make(chan struct{})}
}

var errBusy = errors.New("busy")

// acquire reserves n bytes, waiting up to wait for room.
func (a *admission) acquire(ctx context.Context, n int64, wait time.Duration) error {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		a.mu.Lock()
		if a.used+n <= a.limit {
			a.used += n
			a.mu.Unlock()
			return nil
		}
		ch := a.changed
		a.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			return errBusy
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (a *admission) release(n int64) {
	a.mu.Lock()
	a.used -= n
	close(a.changed)
	a.changed = make(chan struct{})
	a.mu.Unlock()
}

// inUse is the body bytes reserved now.
func (a *admission) inUse() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.used
}

// deadlineBody lifts the body read deadline once the body has been read,
// so a long handler's connection is not timed out underneath it, and marks
// the connection busy (no longer evictable).
type deadlineBody struct {
	io.ReadCloser
	done func()
	once sync.Once
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.once.Do(b.done)
	}
	return n, err
}

// limitedError answers an over-limit request in OpenAI's error shape
// (which SGLang's and Tinker's clients also read as a message).
func limitedError(w http.ResponseWriter, status int, msg string) {
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Connection", "close")
	openAIError(w, status, msg)
}

// bodyDeadline gives r's body BodyTimeout to arrive; the deadline is
// lifted, and the connection marked busy, once the body has been read.
// A request without a body is busy at once.
func (s *Server) bodyDeadline(w http.ResponseWriter, r *http.Request) {
	tc, _ := r.Context().Value(connKey{}).(*trackedConn)
	busy := func() {
		if tc != nil {
			tc.setPhase(phaseBusy)
		}
	}
	if r.Body == nil || r.Body == http.NoBody {
		busy()
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.opts.BodyTimeout))
	r.Body = &deadlineBody{ReadCloser: r.Body, done: func() {
		_ = rc.SetReadDeadline(time.Time{})
		busy()
	}}
}

// admit applies the body cap and admission to r; it answers the client
// itself and returns ok=false when r may not go on. release must be called
// when the handler is done.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	if r.Body == nil || r.Body == http.NoBody {
		return func() {}, true
	}
	if r.ContentLength > s.opts.MaxBodyBytes {
		limitedError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body of %d bytes exceeds the server's limit of %d bytes (--max-body-bytes)", r.ContentLength, s.opts.MaxBodyBytes))
		return nil, false
	}
	cost := r.ContentLength
	if cost < 0 {
		cost = s.opts.MaxBodyBytes
	}
	if err := s.admission.acquire(r.Context(), cost, s.opts.AdmitWait); err != nil {
		if errors.Is(err, errBusy) {
			limitedError(w, http.StatusTooManyRequests, fmt.Sprintf("the server is busy: request bodies in flight would exceed %d bytes (--max-inflight-bytes); retry shortly", s.opts.MaxInflightBytes))
		}
		return nil, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	return func() { s.admission.release(cost) }, true
}

// maxLogprobEntries bounds the logprob entries one reply may hold
// (positions × (1 + alternatives) over all its sequences): each is a small
// JSON object, so 1M of them is already ~100 MB of reply being built.
const maxLogprobEntries = 1 << 20

// logprobBudget refuses a request whose logprob listing would pass
// maxLogprobEntries, before any of it is computed.
func logprobBudget(entries int64) error {
	if entries > maxLogprobEntries {
		return &bodyError{http.StatusRequestEntityTooLarge, fmt.Sprintf("the reply would hold about %d logprob entries (positions × alternatives over all sequences), more than %d; ask for fewer sequences, tokens or alternatives", entries, maxLogprobEntries)}
	}
	return nil
}
