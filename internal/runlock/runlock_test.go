//go:build unix

package runlock

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLockHelper holds the lock in a child process until its stdin closes.
func TestLockHelper(t *testing.T) {
	path := os.Getenv("RUNLOCK_HELPER_PATH")
	if path == "" {
		t.Skip("helper process only")
	}
	release, err := Acquire(path, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	os.Stdout.WriteString("locked\n")
	buf := make([]byte, 1)
	os.Stdin.Read(buf)
}

// TestAcquire: a second holder is refused, in this process or another; a
// released lock, or one whose holder died, can be taken again.
func TestAcquire(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.lock")
	release, err := Acquire(path, "eval")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(path, "eval")
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "another eval is running") {
		t.Fatalf("second acquire: %v", err)
	}
	release()
	release, err = Acquire(path, "eval")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	release()

	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RUNLOCK_HELPER_PATH="+path)
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := out.Read(buf); err != nil || string(buf) != "locked\n" {
		t.Fatalf("helper: %q %v", buf, err)
	}
	if _, err := Acquire(path, "synth"); !errors.Is(err, ErrLocked) {
		t.Errorf("lock held by another process: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	stdin.Close()
	release, err = Acquire(path, "synth")
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	release()
}
