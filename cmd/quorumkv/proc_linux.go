//go:build linux

package main

import "syscall"

// childAttr puts a dev child in its own process group (so a terminal's Ctrl-C reaches
// only dev, which then stops the children in order) and has the kernel send it
// SIGTERM if dev dies without stopping it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
