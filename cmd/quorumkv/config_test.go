package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// settings parses --print-config output into key → (value, source).
func settings(t *testing.T, out string) map[string][2]string {
	t.Helper()
	re := regexp.MustCompile(`^(\S+) = (.*?)\s+# (.+)$`)
	m := map[string][2]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		g := re.FindStringSubmatch(line)
		if g == nil {
			t.Fatalf("print-config line %q is not key = value # source", line)
		}
		m[g[1]] = [2]string{g[2], g[3]}
	}
	return m
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func printConfigRun(t *testing.T, vars map[string]string, args ...string) map[string][2]string {
	t.Helper()
	e, out, errb := testEnv("", vars)
	if code := e.run(append([]string{"server", "--print-config"}, args...)); code != 0 {
		t.Fatalf("server --print-config %q: exit %d: %s", args, code, errb)
	}
	return settings(t, out.String())
}

func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, "q.toml", `
# every layer sets hint-window; fewer set the others
hint-window = "1h"
hedge-delay = "2s"
max-siblings = 7
zone = "from-file"
debug-faults = true
join = ["n1:7946", "n2:7946"]
`)
	vars := map[string]string{
		"QUORUMKV_HINT_WINDOW": "2h",
		"QUORUMKV_HEDGE_DELAY": "3s",
		"QUORUMKV_ID":          "n9",
	}
	got := printConfigRun(t, vars, "--config", file, "--hint-window", "4h")
	want := map[string][2]string{
		"hint-window":     {`"4h0m0s"`, fromFlag},
		"hedge-delay":     {`"3s"`, "QUORUMKV_HEDGE_DELAY"},
		"id":              {`"n9"`, "QUORUMKV_ID"},
		"max-siblings":    {"7", fromFile},
		"zone":            {`"from-file"`, fromFile},
		"debug-faults":    {"true", fromFile},
		"join":            {`"n1:7946,n2:7946"`, fromFile},
		"request-timeout": {`"5s"`, fromDefault},
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
	if _, ok := got["config"]; ok {
		t.Errorf("print-config lists config itself")
	}

	// $QUORUMKV_CONFIG names the file when --config does not.
	got = printConfigRun(t, map[string]string{"QUORUMKV_CONFIG": file})
	if got["zone"] != [2]string{`"from-file"`, fromFile} {
		t.Errorf("QUORUMKV_CONFIG: zone = %v", got["zone"])
	}
}

// TestConfigEveryFlag sets every server flag through its environment variable, and
// through the file, to the value it has: the configuration layers are generic, so no flag
// is left out, and print-config's output reads back as a config file.
func TestConfigEveryFlag(t *testing.T) {
	base := printConfigRun(t, nil)
	if len(base) < 20 {
		t.Fatalf("print-config listed %d settings", len(base))
	}
	vars := map[string]string{}
	for k, v := range base {
		if v[1] != fromDefault {
			t.Errorf("%s: source %q with nothing set", k, v[1])
		}
		vars[envName(k)] = strings.Trim(v[0], `"`)
	}
	// Empty values are as unset (a flag's default); the rest must all come from the env.
	for k, v := range printConfigRun(t, vars) {
		if vars[envName(k)] != "" && v[1] != envName(k) {
			t.Errorf("%s: source %q, want %s", k, v[1], envName(k))
		}
		if v[0] != base[k][0] {
			t.Errorf("%s via env: %s, want %s", k, v[0], base[k][0])
		}
	}

	e, out, _ := testEnv("", nil)
	if code := e.run([]string{"server", "--print-config", "--id", "n1", "--zone", `a "quoted" zone`, "--hint-window", "90m"}); code != 0 {
		t.Fatal("print-config failed")
	}
	file := writeFile(t, "round.toml", out.String())
	for k, v := range printConfigRun(t, nil, "--config", file) {
		if v[1] != fromFile {
			t.Errorf("%s: source %q, want the file", k, v[1])
		}
		if want := settings(t, out.String())[k][0]; v[0] != want {
			t.Errorf("%s read back as %s, printed as %s", k, v[0], want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		vars map[string]string
		want []string
	}{
		{"unknown keys", "hint_window = \"1h\"\nfrobnicate = 1\n", nil,
			[]string{`unknown key "frobnicate"`, `unknown key "hint_window" (did you mean hint-window?)`}},
		{"config in the file", "config = \"other.toml\"\n", nil, []string{`unknown key "config"`}},
		{"table", "[zone]\nname = \"z1\"\n", nil, []string{"zone: want a string, number, boolean or array"}},
		{"bad duration in the file", "hint-window = 3\n", nil, []string{`hint-window = "3": want a duration`}},
		{"bad toml", "hint-window = \n", nil, []string{"q.toml"}},
		{"bad env", "", map[string]string{"QUORUMKV_NO_AAE": "maybe"}, []string{`QUORUMKV_NO_AAE="maybe": want true or false`}},
		{"bad env number", "", map[string]string{"QUORUMKV_MAX_SIBLINGS": "lots"}, []string{`QUORUMKV_MAX_SIBLINGS="lots": want an integer`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"server", "--print-config"}
			if tc.file != "" {
				args = append(args, "--config", writeFile(t, "q.toml", tc.file))
			}
			e, out, errb := testEnv("", tc.vars)
			if code := e.run(args); code != exitUsage {
				t.Fatalf("exit %d, want %d (stdout %q)", code, exitUsage, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr %q lacks %q", errb, w)
				}
			}
		})
	}
	e, _, errb := testEnv("", nil)
	if code := e.run([]string{"server", "--config", filepath.Join(t.TempDir(), "missing.toml")}); code != exitUsage ||
		!strings.Contains(errb.String(), "missing.toml") {
		t.Errorf("missing file: exit %d, stderr %q", code, errb)
	}
}

func TestHealthcheck(t *testing.T) {
	healthy := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" || !healthy {
			http.Error(w, `{"error":"down","code":"unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"status":"ok","node":"n1"}`))
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	conf := writeFile(t, "q.toml", "id = \"n1\"\nhttp = \"0.0.0.0:"+port+"\"\n")
	for _, tc := range []struct {
		name string
		vars map[string]string
		args []string
	}{
		{"--addr", nil, []string{"--addr", srv.URL}},
		{"QUORUMKV_HTTP with a wildcard host", map[string]string{"QUORUMKV_HTTP": "0.0.0.0:" + port}, nil},
		{"QUORUMKV_HTTP with no host", map[string]string{"QUORUMKV_HTTP": ":" + port}, nil},
		{"QUORUMKV_CONFIG", map[string]string{"QUORUMKV_CONFIG": conf}, nil},
		{"QUORUMKV_ADDR", map[string]string{"QUORUMKV_ADDR": srv.Listener.Addr().String()}, nil},
	} {
		healthy = true
		e, _, errb := testEnv("", tc.vars)
		if code := e.run(append([]string{"healthcheck"}, tc.args...)); code != exitOK {
			t.Errorf("%s: healthy node: exit %d: %s", tc.name, code, errb)
		}
		healthy = false
		e, _, errb = testEnv("", tc.vars)
		if code := e.run(append([]string{"healthcheck"}, tc.args...)); code != exitFail || !strings.Contains(errb.String(), "healthcheck") {
			t.Errorf("%s: failing node: exit %d: %s", tc.name, code, errb)
		}
	}
	srv.Close()
	e, _, errb := testEnv("", map[string]string{"QUORUMKV_HTTP": "127.0.0.1:" + port})
	if code := e.run([]string{"healthcheck", "--timeout", "1s"}); code != exitFail {
		t.Errorf("no node: exit %d: %s", code, errb)
	}
}
