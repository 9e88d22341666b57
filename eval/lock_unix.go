//go:build unix

package eval

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockRunDir takes an exclusive lock on DIR/eval.lock, so two evals never
// append to the same results at once (each would run the other's missing
// samples too). The kernel drops the lock when the process dies, so a
// killed run never leaves a stale lock.
func lockRunDir(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, "eval.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock run directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another eval is running in %s; wait for it or use another --out", dir)
		}
		return nil, fmt.Errorf("lock run directory: %w", err)
	}
	return func() { f.Close() }, nil
}
