//go:build unix

package main

import (
	"os"
	"syscall"
)

// lockHolder returns the pid of the process holding a POSIX (fcntl) write lock on path,
// as Pebble holds its LOCK file while a store is open; 0 when none does or it cannot
// tell. Locks held by this process are not reported (POSIX locks are per process).
func lockHolder(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil || lk.Type == syscall.F_UNLCK {
		return 0
	}
	return int(lk.Pid)
}
