//go:build !unix

package launch

import "syscall"

func signalGroup(pid int, kill bool) {}

func sysProcAttr() *syscall.SysProcAttr { return nil }

func supported() error { return errUnsupported }
