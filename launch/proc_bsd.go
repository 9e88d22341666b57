//go:build unix && !linux

package launch

import "syscall"

// sysProcAttr puts each child in its own process group. Without Linux's
// parent-death signal, a launcher killed with SIGKILL leaves its children
// running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
