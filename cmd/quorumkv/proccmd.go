package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
)

// describeProcess names process pid for a message: "pid 1234 (quorumkv server --id n1 ...)"
// where /proc tells its command line, else "pid 1234".
func describeProcess(pid int) string {
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
