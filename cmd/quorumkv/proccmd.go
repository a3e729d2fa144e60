package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// describeProcess names process pid for a message: "pid 1234 (quorumkv server --id n1 ...)"
// where /proc tells its command line, else "pid 1234"; a quorumkv server that a
// "quorumkv dev" runs is named with it: "..., run by pid 1200 (quorumkv dev ...)".
func describeProcess(pid int) string {
	desc := processCmdline(pid)
	if ppid := parentPID(pid); ppid > 1 && strings.Contains(desc, " server ") {
		if parent := processCmdline(ppid); strings.Contains(parent, " dev") {
			desc += ", run by " + parent
		}
	}
	return desc
}

// parentPID is pid's parent from /proc/PID/stat (0 when unknown).
func parentPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses; it ends at the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// processCmdline is "pid N (command line)", or "pid N" when /proc does not tell.
func processCmdline(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return fmt.Sprintf("pid %d", pid)
	}
	args := strings.Fields(string(bytes.ReplaceAll(bytes.TrimRight(b, "\x00"), []byte{0}, []byte{' '})))
	if len(args) > 0 {
		args[0] = baseName(args[0])
	}
	cmd := strings.Join(args, " ")
	if len(cmd) > 120 {
		cmd = cmd[:120] + "..."
	}
	return fmt.Sprintf("pid %d (%s)", pid, cmd)
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}
