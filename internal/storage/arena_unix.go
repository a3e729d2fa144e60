//go:build unix

package storage

import "syscall"

// newArena returns n bytes of anonymous memory outside the Go heap: the row cache's
// arenas then count neither in the live heap nor in the headroom the node's memory limit
// gives the collector (twice the live heap, cmd/quorumkv/servermem.go), and their pages
// cost nothing until written. Falls back to the heap if the system refuses.
func newArena(n int) (b []byte, release func()) {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]byte, n), func() {}
	}
	return b, func() { _ = syscall.Munmap(b) }
}
