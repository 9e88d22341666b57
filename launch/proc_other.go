//go:build !unix

package launch

import (
	"errors"
	"syscall"
)

func signalGroup(pid int, kill bool) {}

func sysProcAttr() *syscall.SysProcAttr { return nil }

// supported: process groups and signals are what Stop relies on.
func supported() error { return errors.New("launch needs a Unix system (process groups)") }
