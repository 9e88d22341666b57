package tools

import (
	"errors"
	"fmt"
)

// Error is a tool failure the agent shows the model as an observation, e.g.
// "fetch failed: HTTP 429" or "search failed: serper: HTTP 403: Unauthorized".
// It is never an empty page or an empty result list in disguise.
type Error struct {
	// Op is "search" or "fetch".
	Op string
	// Backend names the service when it helps the reader ("serper", "jina",
	// "local"); empty for direct fetches.
	Backend string
	// Status is the HTTP status when the failure was an HTTP reply.
	Status int
	// Msg says what went wrong, without secrets.
	Msg string
	// Transient failures (timeouts, connection errors, 429, 5xx) may
	// succeed later; the cache does not serve them back in live mode.
	Transient bool
	err       error
	// cancelled: the caller gave up; nothing was learnt about the target.
	cancelled bool
}

func (e *Error) Error() string {
	if e.Backend != "" {
		return e.Op + " failed: " + e.Backend + ": " + e.Msg
	}
	return e.Op + " failed: " + e.Msg
}

// Unwrap exposes the cause (a context error, a refused address).
func (e *Error) Unwrap() error { return e.err }

// IsTransient reports whether err is a tool failure worth retrying later.
func IsTransient(err error) bool {
	var te *Error
	if errors.As(err, &te) {
		return te.Transient
	}
	return false
}

func statusError(op, backend string, status int, detail string) *Error {
	msg := fmt.Sprintf("HTTP %d", status)
	if detail != "" {
		msg += ": " + detail
	}
	return &Error{Op: op, Backend: backend, Status: status, Msg: msg, Transient: status == 429 || status >= 500}
}
