//go:build unix

package storage

import (
	"os"
	"path/filepath"
	"syscall"
)

// LockHolder returns the pid of the process that holds the Pebble store in dir open (its
// fcntl lock on dir/LOCK), or 0 when none does or it cannot tell. A lock this process
// holds is not reported: POSIX locks are per process.
func LockHolder(dir string) int {
	f, err := os.Open(filepath.Join(dir, "LOCK"))
	if err != nil {
		return 0
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil || lk.Type == syscall.F_UNLCK {
		return 0
	}
	return int(lk.Pid)
}
