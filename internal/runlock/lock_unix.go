//go:build unix

package runlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Acquire takes an exclusive lock on the file at path (creating it), so two
// processes never write the same outputs at once. The kernel drops the lock
// when the process dies, so a killed run never leaves a stale lock. what
// names the command for the refusal ("eval", "synth").
func Acquire(path, what string) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: another %s is running on %s (lock %s); wait for it or choose another --out", ErrLocked, what, filepath.Dir(path), path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
