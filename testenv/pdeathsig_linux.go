package testenv

import "syscall"

// setPdeathsig makes the kernel send sig to the child when this process
// dies, so no server outlives a killed test process.
func setPdeathsig(attr *syscall.SysProcAttr, sig syscall.Signal) { attr.Pdeathsig = sig }
