package main

// Placeholders for commands that later issues implement. Whoever implements one
// deletes its entry here and registers the real command in its own file.

func init() {
	for _, name := range []string{"sim"} {
		summary := map[string]string{"sim": "deterministic simulator"}[name]
		register(&command{name: name, group: "Tools", args: "", summary: summary + " (not implemented yet)",
			run: func(e *env, args []string) int {
				e.stderr.Write([]byte("quorumkv " + name + ": not implemented yet: coming in a later issue\n"))
				return exitUsage
			}})
	}
}
