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

// pure lists the code the simulator runs as is, which must not reach the world (network,
// disk, processes, the wall clock, global randomness) nor start goroutines: a package
// directory under internal/ ("ring"), or one file of a package whose other files do I/O
// ("membership/state.go"). Every entry must exist and hold Go code: an entry that is
// missing (renamed, moved, deleted) fails the test rather than being skipped, so the rule
// never silently checks less. A new pure package is one more line here.
var pure = []string{
	"ring",
	"version",
	"quorum",
	"crdt",
	"merkle",
	"wire",
	"aae",
	"core",
	"membership/state.go",
}

// forbiddenImports may not be imported by pure code.
var forbiddenImports = map[string]string{
	"net":         "network",
	"net/http":    "network",
	"os":          "operating system",
	"os/exec":     "processes",
	"os/signal":   "signals",
	"syscall":     "system calls",
	"io/ioutil":   "files",
	"math/rand":   "global randomness (take a seeded source)",
	"crypto/rand": "randomness (take a seeded source)",
	"sync":        "locks (pure logic is single-threaded)",
	"sync/atomic": "atomics (pure logic is single-threaded)",
	"log":         "global logging",
	"log/slog":    "logging (return values instead)",
	"github.com/quorumkv/quorumkv/internal/transport": "network (connections; the messages are internal/transport/pb)",
	"github.com/cockroachdb/pebble":                   "disk",
	"github.com/hashicorp/memberlist":                 "network",
}

// forbiddenCalls names, by import path, the functions pure code may not call or refer to,
// whatever name a file gives the import (its own, an alias, or a dot import).
var forbiddenCalls = map[string]map[string]string{
	"time": {
		"Now": "reads the wall clock", "Since": "reads the wall clock", "Until": "reads the wall clock",
		"Sleep": "blocks on the wall clock", "After": "starts a timer", "AfterFunc": "starts a timer",
		"NewTimer": "starts a timer", "NewTicker": "starts a ticker", "Tick": "starts a ticker",
	},
	"context": {
		"WithTimeout": "starts a timer", "WithTimeoutCause": "starts a timer",
		"WithDeadline": "starts a timer", "WithDeadlineCause": "starts a timer",
		"WithCancel": "may start a goroutine to follow its parent", "WithCancelCause": "may start a goroutine to follow its parent",
		"AfterFunc": "starts a goroutine",
	},
}

// onlyAllowed names, by import path, the only identifiers pure code may use from a package
// whose other functions are impure: math/rand/v2's package-level functions (IntN, Shuffle,
// N, ...) draw from the global, unseeded source; a *rand.Rand built with New from a seeded
// source, or passed in, is fine.
var onlyAllowed = map[string]map[string]bool{
	"math/rand/v2": {
		"New": true, "Rand": true, "Source": true,
		"NewPCG": true, "PCG": true, "NewChaCha8": true, "ChaCha8": true, "NewZipf": true, "Zipf": true,
	},
}

func TestPurePackagesStayPure(t *testing.T) {
	for _, entry := range pure {
		problems, _, err := checkPure(filepath.Join("..", filepath.FromSlash(entry)))
		if err != nil {
			t.Errorf("pure entry %q: %v", entry, err)
			continue
		}
		for _, p := range problems {
			t.Error(p)
		}
	}
}

// TestCheckerCatchesImpurity proves the rule can fail: a fixture that does everything
// forbidden, each in the ways a reader might miss (an aliased or dot import), is flagged
// for each.
func TestCheckerCatchesImpurity(t *testing.T) {
	problems, n, err := checkPure(filepath.Join("testdata", "impure"))
	if err != nil || n != 5 {
		t.Fatalf("fixture: %v, %d files", err, n)
	}
	all := strings.Join(problems, "\n")
	for _, w := range []string{
		// bad.go
		`imports "os"`, `imports "net"`, "starts a goroutine", "uses a channel", "calls time.Now",
		"sends on a channel", "receives from a channel", "selects on channels",
		// alias.go: import t "time"
		"calls time.Now (as t.Now)", "calls time.Tick (as t.Tick)", "calls time.NewTimer (as t.NewTimer)",
		"calls time.AfterFunc (as t.AfterFunc)",
		// dot.go: import . "time"
		`dot-imports "time"`, "calls time.Now (dot import)", "calls time.Sleep (dot import)",
		// context.go
		"calls context.WithTimeout", "calls context.WithDeadline", "calls context.WithCancel",
		"calls context.WithTimeout (as cx.WithTimeout)",
		// rand.go
		"uses math/rand/v2.IntN", "uses math/rand/v2.Shuffle", "uses math/rand/v2.N:",
		"uses math/rand/v2.Int64 (as r2.Int64)",
	} {
		if !strings.Contains(all, w) {
			t.Errorf("checker missed %q; it said:\n%s", w, all)
		}
	}
	// Nothing else: each bad line is flagged once, and the allowed uses in rand.go are
	// not (bad.go 8, alias.go 4, dot.go 3, context.go 4, rand.go 4).
	if len(problems) != 23 {
		t.Errorf("%d problems, want 23:\n%s", len(problems), all)
	}
}

// TestCheckerAllowsPureCode: the allowed uses of the watched packages pass.
func TestCheckerAllowsPureCode(t *testing.T) {
	problems, n, err := checkPure(filepath.Join("testdata", "pure"))
	if err != nil || n != 1 {
		t.Fatalf("fixture: %v, %d files", err, n)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// TestCheckerRefusesMissingEntries: an entry that names nothing, or no Go code, is an
// error, never a silent pass.
func TestCheckerRefusesMissingEntries(t *testing.T) {
	for _, path := range []string{
		filepath.Join("testdata", "missing"),           // no such package
		filepath.Join("testdata", "impure", "gone.go"), // no such file
		"testdata", // a directory with no Go files
		filepath.Join("testdata", "impure", "README"), // not a Go file
	} {
		if _, n, err := checkPure(path); err == nil {
			t.Errorf("%s: no error (%d files checked)", path, n)
		}
	}
	// A file entry checks that file alone.
	problems, n, err := checkPure(filepath.Join("testdata", "impure", "alias.go"))
	if err != nil || n != 1 || len(problems) != 4 {
		t.Errorf("alias.go alone: %v, %d files, problems:\n%s", err, n, strings.Join(problems, "\n"))
	}
}

// checkPure lists the rule violations in path: a Go file, or the non-test Go files of a
// directory. A path that does not exist or holds no Go code is an error.
func checkPure(path string) (problems []string, files int, err error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, 0, err
	}
	var paths []string
	if info.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, 0, err
		}
		for _, e := range entries {
			name := e.Name()
			if !e.IsDir() && strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
				paths = append(paths, filepath.Join(path, name))
			}
		}
		if len(paths) == 0 {
			return nil, 0, fmt.Errorf("%s holds no Go files: the rule would check nothing", path)
		}
	} else {
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil, 0, fmt.Errorf("%s is not a non-test Go file", path)
		}
		paths = []string{path}
	}
	for _, p := range paths {
		ps, err := checkFile(p)
		if err != nil {
			return nil, 0, err
		}
		problems = append(problems, ps...)
	}
	return problems, len(paths), nil
}

// watched is an import the call checks look through: its path, and how the file names it.
type watched struct {
	path, name string // name is "." for a dot import
}

// checkFile lists the rule violations in one Go file.
func checkFile(path string) ([]string, error) {
	fset := token.NewFileSet()
	// Object resolution stays on: an identifier that names an import is unresolved
	// (Obj == nil), while a local variable that shadows the import's name is not.
	f, err := parser.ParseFile(fset, path, nil, 0)
	if err != nil {
		return nil, err
	}
	var problems []string
	report := func(pos token.Pos, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s: %s", fset.Position(pos), fmt.Sprintf(format, args...)))
	}

	names := map[string]string{} // local name → import path, for the watched imports
	var dots []string            // watched import paths imported with "."
	for _, imp := range f.Imports {
		p, err := strconv.Unquote(imp.Path.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: import %s: %w", fset.Position(imp.Pos()), imp.Path.Value, err)
		}
		if why, bad := forbiddenImports[p]; bad {
			report(imp.Pos(), "imports %q (%s): pure code must not", p, why)
		}
		if forbiddenCalls[p] == nil && onlyAllowed[p] == nil {
			continue
		}
		switch name := importName(imp, p); name {
		case "_":
		case ".":
			dots = append(dots, p)
			report(imp.Pos(), "dot-imports %q: import it by name, so that what it calls can be checked", p)
		default:
			names[name] = p
		}
	}

	// use reports a reference to path.name, made through local (an alias, the package's
	// own name, or "." for a dot import), if it is forbidden.
	use := func(pos token.Pos, path, name, local string) {
		via := ""
		switch base := importName(nil, path); local {
		case base:
		case ".":
			via = " (dot import)"
		default:
			via = fmt.Sprintf(" (as %s.%s)", local, name)
		}
		if why, bad := forbiddenCalls[path][name]; bad {
			report(pos, "calls %s.%s%s: %s (pure code takes time as an argument and starts nothing)", path, name, via, why)
		}
		if allowed := onlyAllowed[path]; allowed != nil && !allowed[name] {
			report(pos, "uses %s.%s%s: package-level functions use the global source (take a seeded *rand.Rand)", path, name, via)
		}
	}

	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.GoStmt:
			report(x.Pos(), "starts a goroutine")
		case *ast.ChanType:
			report(x.Pos(), "uses a channel type")
		case *ast.SendStmt:
			report(x.Pos(), "sends on a channel")
		case *ast.UnaryExpr:
			if x.Op == token.ARROW {
				report(x.Pos(), "receives from a channel")
			}
		case *ast.SelectStmt:
			report(x.Pos(), "selects on channels")
		case *ast.SelectorExpr:
			if id, ok := x.X.(*ast.Ident); ok && id.Obj == nil {
				if p, ok := names[id.Name]; ok {
					use(x.Pos(), p, x.Sel.Name, id.Name)
				}
			}
		case *ast.CallExpr:
			// Through a dot import a call is a bare, unresolved identifier (possibly
			// instantiated: N[int64](...)).
			fun := x.Fun
			if ix, ok := fun.(*ast.IndexExpr); ok {
				fun = ix.X
			}
			if ix, ok := fun.(*ast.IndexListExpr); ok {
				fun = ix.X
			}
			if id, ok := fun.(*ast.Ident); ok && id.Obj == nil {
				for _, p := range dots {
					if forbiddenCalls[p][id.Name] != "" || (onlyAllowed[p] != nil && !onlyAllowed[p][id.Name] && ast.IsExported(id.Name)) {
						use(id.Pos(), p, id.Name, ".")
					}
				}
			}
		}
		return true
	})
	return problems, nil
}

// importName is the name a file uses for an import of path: its explicit name ("t", ".",
// "_") if any, else the package's own name, which for the standard packages watched here
// is the last path element that is not a major version ("math/rand/v2" → "rand").
func importName(imp *ast.ImportSpec, path string) string {
	if imp != nil && imp.Name != nil {
		return imp.Name.Name
	}
	elems := strings.Split(path, "/")
	last := elems[len(elems)-1]
	if len(elems) > 1 && isMajorVersion(last) {
		last = elems[len(elems)-2]
	}
	return last
}

func isMajorVersion(s string) bool {
	n, err := strconv.Atoi(strings.TrimPrefix(s, "v"))
	return strings.HasPrefix(s, "v") && err == nil && n >= 2
}
