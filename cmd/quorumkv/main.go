// Command quorumkv is the single quorumkv binary: the server, a local development
// cluster, client verbs that talk HTTP to a node, and the tools (bench, sim).
//
// Run "quorumkv help" for the list of commands and "quorumkv help COMMAND" (or
// "quorumkv COMMAND -h") for one command's usage.
//
// Exit codes: 0 success, 1 an operation failed (including "not found"), 2 bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// env is what a command may touch of the outside world; tests substitute it.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// signals returns a context cancelled on SIGINT/SIGTERM, and its stop function
	// (after which a second signal has its default effect).
	signals func() (context.Context, context.CancelFunc)
	getenv  func(string) string
}

// command is one subcommand.
type command struct {
	name    string
	args    string // synopsis after the name
	summary string
	run     func(e *env, args []string) int
	group   string
	hidden  bool
}

// commands is the command table, in help order. Other files append to it in init
// (see stubs.go), so a command lives in one file.
var commands []*command

func register(c *command) { commands = append(commands, c) }

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// run is main without the process: it returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{
		stdin: stdin, stdout: stdout, stderr: stderr,
		signals: func() (context.Context, context.CancelFunc) {
			return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		},
		getenv: os.Getenv,
	}
	return e.run(args)
}

func (e *env) run(args []string) int {
	if len(args) == 0 {
		topUsage(e.stderr)
		return exitUsage
	}
	switch name := args[0]; name {
	case "-h", "-help", "--help":
		topUsage(e.stdout)
		return exitOK
	case "-version", "--version":
		return runVersion(e, args[1:])
	case "help":
		if len(args) == 1 {
			topUsage(e.stdout)
			return exitOK
		}
		c := lookup(args[1])
		if c == nil || len(args) > 2 {
			fmt.Fprintf(e.stderr, "quorumkv help: unknown command %q\n", strings.Join(args[1:], " "))
			return exitUsage
		}
		// The command prints its usage for -h; send it to stdout since it was asked for.
		he := *e
		he.stderr = e.stdout
		return c.run(&he, []string{"-h"})
	default:
		c := lookup(name)
		if c == nil {
			fmt.Fprintf(e.stderr, "quorumkv: unknown command %q\nRun 'quorumkv help' for the list of commands.\n", name)
			return exitUsage
		}
		return c.run(e, args[1:])
	}
}

var groups = []string{"Running", "Data", "Cluster", "Tools"}

func topUsage(w io.Writer) {
	fmt.Fprint(w, `quorumkv is a leaderless, Dynamo-style replicated key-value store.

Usage:
  quorumkv COMMAND [ARGS] [FLAGS]

`)
	for _, g := range groups {
		fmt.Fprintf(w, "%s commands:\n", g)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, c := range commands {
			if c.group == g && !c.hidden {
				fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
			}
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	fmt.Fprint(w, `Client commands talk HTTP to --addr (default 127.0.0.1:8080, or $QUORUMKV_ADDR).
Run 'quorumkv help COMMAND' or 'quorumkv COMMAND -h' for details.
Start here: 'quorumkv dev' runs a 3-node cluster on this machine.
`)
}

// flags makes the FlagSet of command c; help is printed after the synopsis.
func (e *env) flags(c *command, help string) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: quorumkv %s %s\n\n%s\n", c.name, c.args, strings.TrimSpace(help))
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprint(w, "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parse parses args into fs, allowing flags before, between and after positional
// arguments ("--" ends flags). It returns the positional arguments, or ok == false
// and the exit code when parsing ended (help asked: 0; bad flag: 2, already reported).
func parse(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	// A bad flag gets the flag package's one-line error and a pointer to the help;
	// only -h prints the whole usage.
	full := fs.Usage
	fs.Usage = func() {}
	defer func() { fs.Usage = full }()
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				full()
				return nil, exitOK, false
			}
			fmt.Fprintf(fs.Output(), "Run 'quorumkv help %s' for usage.\n", fs.Name())
			return nil, exitUsage, false
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), 0, true
		}
		if len(rest) == 0 {
			return pos, 0, true
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// usageErr reports a usage error for fs and returns exit code 2.
func usageErr(fs *flag.FlagSet, format string, a ...any) int {
	fmt.Fprintf(fs.Output(), "quorumkv %s: %s\n", fs.Name(), fmt.Sprintf(format, a...))
	fmt.Fprintf(fs.Output(), "Run 'quorumkv help %s' for usage.\n", fs.Name())
	return exitUsage
}

// fail prints a one-line error and returns exit code 1.
func (e *env) fail(format string, a ...any) int {
	msg := fmt.Sprintf(format, a...)
	msg = strings.ReplaceAll(strings.TrimSpace(msg), "\n", " ")
	fmt.Fprintf(e.stderr, "quorumkv: %s\n", msg)
	return exitFail
}

// sortedKeys returns m's keys in order (map order never reaches output).
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
