//go:build unix && !linux

package main

import "syscall"

// childAttr puts a dev child in its own process group, so a terminal's Ctrl-C reaches
// only dev, which then stops the children in order.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
