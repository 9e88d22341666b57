package llm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// maxResponseBytes bounds what we read from a model server: a 100k-token
// response with logprobs is a few MB, so anything far beyond is a broken or
// hostile server, not a reply worth buffering.
const maxResponseBytes = 256 << 20

// HTTPError is a non-2xx reply from a model server.
type HTTPError struct {
	Server string // base URL, credentials removed
	Path   string
	Status int
	Body   string // at most a few hundred bytes of the reply
	// ContextLength says the server refused the request because it does
	// not fit the model's context window (see ErrContextLength); read from
	// the whole body, not just Body's snippet.
	ContextLength bool
}

// Is makes errors.Is(err, ErrContextLength) true for context-length
// refusals.
func (e *HTTPError) Is(target error) bool {
	return target == ErrContextLength && e.ContextLength
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("%s%s: HTTP %d", e.Server, e.Path, e.Status)
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Retryable reports whether another attempt may succeed: connection
// failures, timeouts of a single attempt, HTTP 429 and 5xx. A cancelled
// caller context is never retryable.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Status == http.StatusTooManyRequests || he.Status >= 500
	}
	var ae *attemptTimeoutError
	if errors.As(err, &ae) {
		return true
	}
	return isConnError(err)
}

// isConnError recognises transport failures: refused or reset connections,
// a server that hung up mid-reply, DNS failures.
func isConnError(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	var de *net.DNSError
	return errors.As(err, &de)
}

// attemptTimeoutError marks a single attempt that ran past its own deadline
// while the caller's context was still live.
type attemptTimeoutError struct {
	after time.Duration
	err   error
}

func (e *attemptTimeoutError) Error() string {
	return fmt.Sprintf("no reply within %s: %v", e.after, e.err)
}
func (e *attemptTimeoutError) Unwrap() error { return e.err }

// redactURL drops user info and query from a URL so it can be logged.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid url>"
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}

// endpoint is one model server's HTTP surface.
type endpoint struct {
	base    string // no trailing slash
	client  *http.Client
	headers http.Header
	secrets []string // values scrubbed from every error text
}

func newEndpoint(base string, client *http.Client, headers http.Header, secrets ...string) endpoint {
	if client == nil {
		client = defaultHTTPClient()
	}
	var keep []string
	for _, s := range secrets {
		if s != "" {
			keep = append(keep, s)
		}
	}
	return endpoint{base: strings.TrimRight(base, "/"), client: client, headers: headers, secrets: keep}
}

// defaultHTTPClient keeps connections alive across the many small calls an
// agent makes; there is no overall timeout here because generations can run
// for minutes and the caller's context bounds them.
func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	return &http.Client{Transport: t}
}

func (e endpoint) scrub(s string) string {
	for _, sec := range e.secrets {
		s = strings.ReplaceAll(s, sec, "[REDACTED]")
	}
	return s
}

// do sends one request and returns the body of a 2xx reply.
func (e endpoint) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("build request %s: %w", redactURL(e.base+path), err)
	}
	for k, vs := range e.headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		cause := unwrapURLError(err)
		return nil, &transportError{op: method + " " + redactURL(e.base+path), msg: e.scrub(cause.Error()), cause: cause}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read reply of %s: %w", redactURL(e.base+path), err)
	}
	if len(data) > maxResponseBytes {
		return nil, fmt.Errorf("reply of %s exceeds %d bytes", redactURL(e.base+path), maxResponseBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &HTTPError{Server: redactURL(e.base), Path: path, Status: resp.StatusCode, Body: e.scrub(snippet(data, 300)),
			ContextLength: isContextLengthReply(resp.StatusCode, data)}
	}
	return data, nil
}

// unwrapURLError strips *url.Error's "Post "URL": " prefix (we add our own,
// redacted URL) while keeping the cause inspectable with errors.Is/As.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// transportError is a request that got no HTTP reply. Its text has secrets
// scrubbed; its cause stays reachable for Retryable.
type transportError struct {
	op    string
	msg   string
	cause error
}

func (t *transportError) Error() string { return t.op + ": " + t.msg }
func (t *transportError) Unwrap() error { return t.cause }

// snippet returns at most n bytes of b as a one-line string.
func snippet(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strings.Join(strings.Fields(s), " ")
}
