// Package testbin builds the quorumkv binary once for the tests of a package that run it as
// a process (e2e, deploy): TestMain calls Run, which builds into a temporary directory,
// runs the tests and removes the directory.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Run builds pkg (a path such as "../cmd/quorumkv") into a temporary directory, sets
// *binary to the executable, runs the tests and returns their exit code; it returns 1 when
// the build fails.
func Run(m *testing.M, pkg string, binary *string) int {
	dir, err := os.MkdirTemp("", "quorumkv-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*binary = filepath.Join(dir, "quorumkv")
	build := exec.Command("go", "build", "-o", *binary, pkg)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building quorumkv:", err)
		return 1
	}
	return m.Run()
}
