//go:build unix

package launch

import "syscall"

// signalGroup sends SIGTERM (or SIGKILL) to the process group whose leader
// is pid. Errors mean the group is gone already.
func signalGroup(pid int, kill bool) {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = syscall.Kill(-pid, sig)
}

func supported() error { return nil }
