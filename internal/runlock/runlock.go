// Package runlock keeps two processes from writing one run's outputs at
// once (eval's run directory, synth's output file, train's run directory).
package runlock

import "errors"

// ErrLocked is wrapped by Acquire's error when another process holds the
// lock.
var ErrLocked = errors.New("output in use")
