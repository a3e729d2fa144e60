// Package lint holds tests that enforce the project's structural rules.
package lint

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// purePackages hold protocol logic that the simulator runs as is: they must not reach the
// world (network, disk, processes, the wall clock) nor start goroutines.
var purePackages = []string{"ring", "version", "quorum", "crdt", "merkle", "wire"}

// forbiddenImports may not be imported by a pure package.
var forbiddenImports = map[string]string{
	"net":                             "network",
	"net/http":                        "network",
	"os":                              "operating system",
	"os/exec":                         "processes",
	"syscall":                         "system calls",
	"io/ioutil":                       "files",
	"math/rand":                       "global randomness (take a seeded source)",
	"crypto/rand":                     "randomness (take a seeded source)",
	"sync":                            "locks (pure logic is single-threaded)",
	"log":                             "global logging",
	"log/slog":                        "logging (return values instead)",
	"google.golang.org/grpc":          "network",
	"github.com/cockroachdb/pebble":   "disk",
	"github.com/hashicorp/memberlist": "network",
}

// forbiddenCalls may not be called (selector form pkg.Func) by a pure package.
var forbiddenCalls = map[string]bool{
	"time.Now": true, "time.Since": true, "time.Until": true, "time.Sleep": true,
	"time.After": true, "time.AfterFunc": true, "time.NewTimer": true, "time.NewTicker": true, "time.Tick": true,
}

func TestPurePackagesStayPure(t *testing.T) {
	checked := 0
	for _, pkg := range purePackages {
		problems, n, err := checkPure(filepath.Join("..", pkg))
		if err != nil {
			t.Fatal(err)
		}
		checked += n
		for _, p := range problems {
			t.Error(p)
		}
	}
	if checked == 0 {
		t.Fatal("no pure package files found: the rule checks nothing")
	}
}

// TestCheckerCatchesImpurity proves the rule can fail: a fixture that does everything
// forbidden is flagged for each.
func TestCheckerCatchesImpurity(t *testing.T) {
	problems, n, err := checkPure(filepath.Join("testdata", "impure"))
	if err != nil || n != 1 {
		t.Fatalf("fixture: %v, %d files", err, n)
	}
	want := []string{`imports "os"`, `imports "net"`, "starts a goroutine", "uses a channel", "calls time.Now"}
	all := strings.Join(problems, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("checker missed %q; it said:\n%s", w, all)
		}
	}
}

// checkPure lists the rule violations in the non-test Go files of dir.
func checkPure(dir string) (problems []string, files int, err error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, 0, nil // not written yet
	}
	if err != nil {
		return nil, 0, err
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		files++
		path := filepath.Join(dir, name)
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return nil, 0, err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if why, bad := forbiddenImports[p]; bad {
				problems = append(problems, fmt.Sprintf("%s imports %q (%s): pure packages must not", path, p, why))
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.GoStmt:
				problems = append(problems, fmt.Sprintf("%s: starts a goroutine at %s", path, fset.Position(x.Pos())))
			case *ast.ChanType:
				problems = append(problems, fmt.Sprintf("%s: uses a channel at %s", path, fset.Position(x.Pos())))
			case *ast.SelectorExpr:
				if id, ok := x.X.(*ast.Ident); ok && forbiddenCalls[id.Name+"."+x.Sel.Name] {
					problems = append(problems, fmt.Sprintf("%s: calls %s.%s at %s (take time as an argument)", path, id.Name, x.Sel.Name, fset.Position(x.Pos())))
				}
			}
			return true
		})
	}
	return problems, files, nil
}
