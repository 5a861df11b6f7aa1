//go:build !linux

package testenv

import "syscall"

// setPdeathsig is Linux-only; elsewhere the reaper alone cleans up after a
// killed test process.
func setPdeathsig(*syscall.SysProcAttr, syscall.Signal) {}
