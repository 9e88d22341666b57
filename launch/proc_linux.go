//go:build linux

package launch

import "syscall"

// sysProcAttr puts each child in its own process group (so a stop reaches
// its workers too) and asks the kernel to kill it if the launcher dies
// without stopping it (kill -9), so no server outlives its run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
