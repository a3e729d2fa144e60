package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

func init() {
	register(&command{name: "version", group: "Tools", args: "",
		summary: "print the version and build information (also: quorumkv --version)", run: runVersion})
}

func runVersion(e *env, args []string) int {
	c := lookup("version")
	fs := e.flags(c, `
Prints the module version (or "(devel)" for a build from a work tree), the VCS revision
and time the binary was built from, and the Go version, from the build information Go
stamps into every binary.`)
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageErr(fs, "unexpected argument %q", pos[0])
	}
	printVersion(e.stdout, debug.ReadBuildInfo)
	return exitOK
}

// printVersion writes one line: "quorumkv VERSION (REVISION[, modified], TIME) GOVERSION".
func printVersion(w io.Writer, read func() (*debug.BuildInfo, bool)) {
	bi, ok := read()
	if !ok {
		fmt.Fprintln(w, "quorumkv (no build information)")
		return
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, at, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = ", modified"
			}
		}
	}
	fmt.Fprintf(w, "quorumkv %s", v)
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		fmt.Fprintf(w, " (%s%s", rev, dirty)
		if at != "" {
			fmt.Fprintf(w, ", %s", at)
		}
		fmt.Fprint(w, ")")
	}
	fmt.Fprintf(w, " %s\n", bi.GoVersion)
}
