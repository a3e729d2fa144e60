// Package deploy_test checks the deployment files against what the server needs, with no
// Docker engine or Kubernetes cluster: deploy/compose.yaml and deploy/k8s/ are parsed as
// YAML, their cross-references followed (Service and PodDisruptionBudget selectors, the
// StatefulSet's headless Service, probes, volumes, the ConfigMap behind QUORUMKV_CONFIG),
// and the settings each node would get are fed to the real binary's --print-config, so a
// misspelt QUORUMKV_* variable or config key fails here rather than on a cluster.
package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/quorumkv/quorumkv/internal/testbin"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var binary string

func TestMain(m *testing.M) { os.Exit(testbin.Run(m, "../cmd/quorumkv", &binary)) }

// obj is a decoded YAML mapping with path lookups.
type obj map[string]any

// get follows a dotted path of mapping keys; "" and false when a step is missing.
func (o obj) get(path string) (any, bool) {
	var cur any = map[string]any(o)
	for _, k := range strings.Split(path, ".") {
		m, ok := asMap(cur)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func (o obj) str(path string) string {
	v, _ := o.get(path)
	s, _ := v.(string)
	return s
}

func (o obj) num(path string) int {
	v, _ := o.get(path)
	n, _ := v.(int)
	return n
}

func (o obj) m(path string) obj {
	v, _ := o.get(path)
	m, _ := asMap(v)
	return m
}

func (o obj) list(path string) []obj {
	v, _ := o.get(path)
	l, _ := v.([]any)
	var out []obj
	for _, e := range l {
		if m, ok := asMap(e); ok {
			out = append(out, m)
		}
	}
	return out
}

func asMap(v any) (obj, bool) {
	switch m := v.(type) {
	case map[string]any:
		return obj(m), true
	case obj:
		return m, true
	}
	return nil, false
}

// decodeAll decodes every document of a YAML file.
func decodeAll(t *testing.T, path string) []obj {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []obj
	for {
		var d map[string]any
		if err := dec.Decode(&d); err != nil {
			if errors.Is(err, io.EOF) {
				return docs
			}
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
}

// matches reports whether selector's labels are all among labels.
func matches(selector, labels obj) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// printConfig runs "quorumkv server --print-config" with exactly the environment env
// and returns its output; it fails the test when the server refuses the settings.
func printConfig(t *testing.T, env map[string]string) string {
	t.Helper()
	cmd := exec.Command(binary, "server", "--print-config")
	cmd.Env = []string{}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("server --print-config with %v: %v\n%s", cmd.Env, err, stderr.String())
	}
	return string(out)
}

// serverFlags are the names of the server's settings, from --print-config.
func serverFlags(t *testing.T) map[string]bool {
	t.Helper()
	flags := map[string]bool{}
	for _, line := range strings.Split(printConfig(t, nil), "\n") {
		if k, _, ok := strings.Cut(line, " = "); ok && !strings.HasPrefix(k, "#") {
			flags[k] = true
		}
	}
	if len(flags) < 10 {
		t.Fatalf("print-config listed %d settings", len(flags))
	}
	return flags
}

// checkEnvNames fails for a QUORUMKV_* variable that names no server flag (the server
// ignores unknown variables, since clients have their own, so a typo would be silent).
func checkEnvNames(t *testing.T, where string, env map[string]string, flags map[string]bool) {
	t.Helper()
	for k := range env {
		name, ok := strings.CutPrefix(k, "QUORUMKV_")
		if !ok {
			continue
		}
		flag := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		if !flags[flag] && flag != "config" {
			t.Errorf("%s: %s names no flag of quorumkv server", where, k)
		}
	}
}

// wantSetting checks one line of --print-config output.
func wantSetting(t *testing.T, where, out, key, value string) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + ` = ` + regexp.QuoteMeta(value) + `\s`)
	if !re.MatchString(out) {
		t.Errorf("%s: effective %s is not %s:\n%s", where, key, value, out)
	}
}

func TestKubernetes(t *testing.T) {
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	byKind := map[string][]obj{}
	var resources []string
	for _, f := range files {
		for _, d := range decodeAll(t, f) {
			kind := d.str("kind")
			if kind == "Kustomization" {
				for _, r := range d["resources"].([]any) {
					resources = append(resources, r.(string))
				}
				continue
			}
			if d.str("apiVersion") == "" || d.str("metadata.name") == "" {
				t.Errorf("%s: a %s without apiVersion or metadata.name", f, kind)
			}
			byKind[kind] = append(byKind[kind], d)
		}
	}
	var manifests []string
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" {
			manifests = append(manifests, base)
		}
	}
	sort.Strings(resources)
	if !slices.Equal(resources, manifests) {
		t.Errorf("kustomization lists %v, the directory holds %v", resources, manifests)
	}
	if len(byKind["StatefulSet"]) != 1 || len(byKind["PodDisruptionBudget"]) != 1 || len(byKind["ConfigMap"]) != 1 || len(byKind["Service"]) != 2 {
		t.Fatalf("want one StatefulSet, PodDisruptionBudget and ConfigMap and two Services; have %v", mapsCount(byKind))
	}
	ss := byKind["StatefulSet"][0]
	podLabels := ss.m("spec.template.metadata.labels")
	if !matches(ss.m("spec.selector.matchLabels"), podLabels) {
		t.Errorf("the StatefulSet's selector does not select its pods")
	}
	if ss.num("spec.replicas") != 5 {
		t.Errorf("replicas %d, want 5", ss.num("spec.replicas"))
	}

	// The headless Service named by serviceName lists pods before they are ready (a node
	// needs its peers to become ready); the client Service serves HTTP and RESP.
	var headless, clientSvc obj
	for _, s := range byKind["Service"] {
		if !matches(s.m("spec.selector"), podLabels) {
			t.Errorf("Service %s does not select the StatefulSet's pods", s.str("metadata.name"))
		}
		if s.str("spec.clusterIP") == "None" {
			headless = s
		} else {
			clientSvc = s
		}
	}
	if headless == nil || headless.str("metadata.name") != ss.str("spec.serviceName") {
		t.Fatalf("serviceName %q is not a headless Service", ss.str("spec.serviceName"))
	}
	if v, _ := headless.get("spec.publishNotReadyAddresses"); v != true {
		t.Errorf("the headless Service must publish pods that are not ready yet")
	}
	if clientSvc == nil {
		t.Fatal("no client Service")
	}
	var clientPorts []string
	for _, p := range clientSvc.list("spec.ports") {
		clientPorts = append(clientPorts, fmt.Sprint(p["port"]))
	}
	sort.Strings(clientPorts)
	if !slices.Equal(clientPorts, []string{"6379", "8080"}) {
		t.Errorf("client Service ports %v, want 6379 and 8080", clientPorts)
	}

	pdb := byKind["PodDisruptionBudget"][0]
	if pdb.num("spec.maxUnavailable") != 1 || !matches(pdb.m("spec.selector.matchLabels"), podLabels) {
		t.Errorf("the PodDisruptionBudget must allow at most one of the StatefulSet's pods down")
	}

	pod := ss.m("spec.template.spec")
	containers := pod.list("containers")
	if len(containers) != 1 {
		t.Fatalf("want one container, have %d", len(containers))
	}
	c := containers[0]
	ports := map[string]int{}
	for _, p := range c.list("ports") {
		ports[p.str("name")] = p.num("containerPort")
	}
	// The environment, with $(VAR) references resolved as the kubelet would, from a
	// made-up pod: quorumkv-3 at 10.0.0.7 in zone zone-b.
	fieldValues := map[string]string{
		"metadata.name": "quorumkv-3", "status.podIP": "10.0.0.7", "metadata.namespace": "db",
		"metadata.labels['topology.kubernetes.io/zone']": "zone-b",
	}
	env := map[string]string{}
	for _, e := range c.list("env") {
		name := e.str("name")
		switch {
		case e.str("valueFrom.fieldRef.fieldPath") != "":
			fp := e.str("valueFrom.fieldRef.fieldPath")
			v, ok := fieldValues[fp]
			if !ok {
				t.Errorf("env %s: unexpected fieldPath %s", name, fp)
			}
			env[name] = v
		case e.str("valueFrom.resourceFieldRef.resource") != "":
			env[name] = "2147483648"
		default:
			env[name] = regexp.MustCompile(`\$\((\w+)\)`).ReplaceAllStringFunc(e.str("value"), func(ref string) string {
				v, ok := env[ref[2:len(ref)-1]]
				if !ok {
					t.Errorf("env %s refers to %s before it is defined", name, ref)
				}
				return v
			})
		}
	}
	// The ConfigMap behind QUORUMKV_CONFIG, mounted where the variable says.
	cm := byKind["ConfigMap"][0]
	confPath := env["QUORUMKV_CONFIG"]
	var confMount string
	for _, vm := range c.list("volumeMounts") {
		for _, v := range pod.list("volumes") {
			if v.str("name") == vm.str("name") && v.str("configMap.name") == cm.str("metadata.name") {
				confMount = vm.str("mountPath")
			}
		}
	}
	key, ok := strings.CutPrefix(confPath, confMount+"/")
	conf, _ := cm.m("data")[key].(string)
	if confMount == "" || !ok || conf == "" {
		t.Fatalf("QUORUMKV_CONFIG=%q is not a key of ConfigMap %s mounted at %q", confPath, cm.str("metadata.name"), confMount)
	}
	dir := t.TempDir()
	localConf := filepath.Join(dir, key)
	if err := os.WriteFile(localConf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	flags := serverFlags(t)
	checkEnvNames(t, "StatefulSet", env, flags)
	env["QUORUMKV_CONFIG"] = localConf
	out := printConfig(t, env)
	wantSetting(t, "StatefulSet", out, "id", `"quorumkv-3"`)
	wantSetting(t, "StatefulSet", out, "zone", `"zone-b"`)
	wantSetting(t, "StatefulSet", out, "rpc", `"10.0.0.7:7070"`)
	wantSetting(t, "StatefulSet", out, "gossip", `"10.0.0.7:7946"`)
	wantSetting(t, "StatefulSet", out, "join", `"`+headless.str("metadata.name")+`.db.svc:7946"`)
	wantSetting(t, "StatefulSet", out, "log-level", `"info"`) // from the ConfigMap
	if !strings.Contains(out, "# config file") {
		t.Errorf("no setting came from the ConfigMap:\n%s", out)
	}
	httpPort := env["QUORUMKV_HTTP"][strings.LastIndex(env["QUORUMKV_HTTP"], ":")+1:]
	if fmt.Sprint(ports["http"]) != httpPort {
		t.Errorf("container port http %d, the server listens on %s", ports["http"], httpPort)
	}

	// Probes ask /healthz on the HTTP port.
	for _, probe := range []string{"readinessProbe", "livenessProbe"} {
		p := c.m(probe)
		port := fmt.Sprint(p["httpGet"].(map[string]any)["port"])
		if n, ok := ports[port]; ok {
			port = fmt.Sprint(n)
		}
		if p.str("httpGet.path") != "/healthz" || port != httpPort {
			t.Errorf("%s asks %s on port %s, want /healthz on %s", probe, p.str("httpGet.path"), port, httpPort)
		}
	}
	for _, r := range []string{"requests.cpu", "requests.memory", "limits.memory"} {
		if c.str("resources."+r) == "" {
			t.Errorf("no resources.%s", r)
		}
	}
	// The data directory is the volume claim, and the pod runs as the image's user with
	// the volume writable to it.
	claims := ss.list("spec.volumeClaimTemplates")
	dataMounted := false
	for _, vm := range c.list("volumeMounts") {
		for _, cl := range claims {
			if cl.str("metadata.name") == vm.str("name") && vm.str("mountPath") == env["QUORUMKV_DATA"] {
				dataMounted = true
			}
		}
	}
	if !dataMounted {
		t.Errorf("QUORUMKV_DATA=%s is not a volume claim's mount", env["QUORUMKV_DATA"])
	}
	if pod.num("securityContext.runAsUser") != 65532 || pod.num("securityContext.fsGroup") != 65532 {
		t.Errorf("the pod must run as the image's user 65532 with fsGroup 65532")
	}
	if pod.num("terminationGracePeriodSeconds") <= 10 {
		t.Errorf("terminationGracePeriodSeconds %d: the server may take 10 s to stop cleanly", pod.num("terminationGracePeriodSeconds"))
	}
}

func mapsCount(m map[string][]obj) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[k] = len(v)
	}
	return out
}

func TestCompose(t *testing.T) {
	docs := decodeAll(t, "compose.yaml")
	if len(docs) != 1 {
		t.Fatalf("compose.yaml holds %d documents", len(docs))
	}
	services := docs[0].m("services")
	if len(services) != 5 {
		t.Fatalf("%d services, want 5", len(services))
	}
	flags := serverFlags(t)
	zones := map[string]int{}
	for _, name := range slices.Sorted(maps.Keys(services)) {
		s, _ := asMap(services[name])
		env := map[string]string{}
		for k, v := range s.m("environment") {
			env[k] = fmt.Sprint(v)
		}
		checkEnvNames(t, name, env, flags)
		out := printConfig(t, env)
		wantSetting(t, name, out, "id", `"`+name+`"`)
		zones[env["QUORUMKV_ZONE"]]++
		for _, a := range []string{"QUORUMKV_RPC", "QUORUMKV_GOSSIP"} {
			if !strings.HasPrefix(env[a], name+":") {
				t.Errorf("%s: %s=%s: want the container's name, which the others resolve", name, a, env[a])
			}
		}
		var published []string
		for _, p := range s["ports"].([]any) {
			ps := p.(string)
			published = append(published, ps[strings.LastIndex(ps, ":")+1:])
		}
		sort.Strings(published)
		if !slices.Equal(published, []string{"6379", "8080"}) {
			t.Errorf("%s publishes %v, want HTTP 8080 and RESP 6379", name, published)
		}
		var volumes []string
		for _, v := range s["volumes"].([]any) {
			volumes = append(volumes, v.(string))
		}
		if len(volumes) != 1 || !strings.HasSuffix(volumes[0], ":/data") || strings.HasPrefix(volumes[0], "/") || strings.HasPrefix(volumes[0], ".") {
			t.Errorf("%s: volumes %v, want one named volume at /data", name, volumes)
		}
	}
	if len(zones) != 3 || zones[""] > 0 {
		t.Errorf("nodes per zone %v, want 5 nodes over 3 zones", zones)
	}
}

// TestDockerfile checks what the image contract says without building it (the container
// suite in e2e/container builds and runs it).
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var from, user []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			from = append(from, f[1])
		case "USER":
			user = append(user, f[1])
		}
	}
	if !slices.Equal(from, []string{"scratch"}) {
		t.Errorf("FROM %v, want only scratch", from)
	}
	if len(user) != 1 || !regexp.MustCompile(`^[1-9][0-9]*:[1-9][0-9]*$`).MatchString(user[0]) {
		t.Errorf("USER %v, want one numeric non-root uid:gid", user)
	}
	if !strings.Contains(string(b), `CMD ["/quorumkv", "healthcheck"]`) {
		t.Errorf("the health check does not run 'quorumkv healthcheck'")
	}
}

// TestComposeTLS checks the override that secures the compose cluster: every node gets
// its own certificate, the CA, the gossip key and --auth, turns --insecure off, and reads
// the certificates from one read-only mount.
func TestComposeTLS(t *testing.T) {
	docs := decodeAll(t, "compose.tls.yaml")
	if len(docs) != 1 {
		t.Fatalf("compose.tls.yaml holds %d documents", len(docs))
	}
	base := decodeAll(t, "compose.yaml")[0].m("services")
	services := docs[0].m("services")
	if len(services) != len(base) {
		t.Fatalf("%d services, compose.yaml has %d", len(services), len(base))
	}
	flags := serverFlags(t)
	for _, name := range slices.Sorted(maps.Keys(services)) {
		s, _ := asMap(services[name])
		env := map[string]string{}
		for k, v := range s.m("environment") {
			env[k] = fmt.Sprint(v)
		}
		delete(env, "QUORUMKV_ADMIN_PASSWORD") // the first admin's password: not a flag
		checkEnvNames(t, name, env, flags)
		want := map[string]string{
			"QUORUMKV_TLS_CERT": "/certs/" + name + ".pem", "QUORUMKV_TLS_KEY": "/certs/" + name + "-key.pem",
			"QUORUMKV_TLS_CA": "/certs/ca.pem", "QUORUMKV_GOSSIP_KEY": "/certs/gossip.key",
			"QUORUMKV_AUTH": "true", "QUORUMKV_INSECURE": "false",
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("%s: %s=%q, want %q", name, k, env[k], v)
			}
		}
		vols, _ := s["volumes"].([]any)
		if len(vols) != 1 || vols[0] != "./certs:/certs:ro" {
			t.Errorf("%s: volumes %v, want ./certs:/certs:ro", name, vols)
		}
	}
}
