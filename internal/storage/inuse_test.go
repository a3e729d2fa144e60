package storage

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestHelperHoldStore is not a test: TestOpenInUse runs the test binary with it to hold a
// store open in another process until its stdin closes.
func TestHelperHoldStore(t *testing.T) {
	dir := os.Getenv("QKV_STORAGE_HOLD")
	if dir == "" {
		t.Skip("a helper process for TestOpenInUse")
	}
	db, err := OpenPebble(dir, DefaultPebbleConfig())
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer db.Close()
	fmt.Println("open")
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// TestOpenInUse: a store another process holds open is ErrInUse, naming that process.
func TestOpenInUse(t *testing.T) {
	dir := t.TempDir()
	holder := exec.Command(os.Args[0], "-test.run=^TestHelperHoldStore$")
	holder.Env = append(os.Environ(), "QKV_STORAGE_HOLD="+dir)
	stdin, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = holder.Wait() }()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "open\n" {
		t.Fatalf("helper: %q, %v", line, err)
	}
	if pid := LockHolder(dir); pid != holder.Process.Pid {
		t.Fatalf("LockHolder = %d, want %d", pid, holder.Process.Pid)
	}
	_, err = OpenPebble(dir, DefaultPebbleConfig())
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), fmt.Sprintf("%s is open in pid %d", dir, holder.Process.Pid)) {
		t.Fatalf("open of a store in use: %v", err)
	}
	if pid := LockHolder(t.TempDir()); pid != 0 {
		t.Fatalf("LockHolder of an empty directory = %d", pid)
	}
}
