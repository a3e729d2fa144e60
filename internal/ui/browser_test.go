package ui_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/quorumkv/quorumkv/internal/node"
)

// TestDashboardInChromium loads /ui/ from a live three-node cluster in headless Chromium
// and checks what the page renders: every node, a key's siblings in the inspector, a node
// shown down once it is stopped, and the page staying up when the node serving it is
// stopped. It saves screenshots at 1280×800 and on a phone-sized viewport to
// $QUORUMKV_UI_ARTIFACTS (or the test's temporary directory).
func TestDashboardInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser and a cluster")
	}
	exe := needTool(t, "chromium", "chromium", "chromium-browser", "google-chrome", "headless-shell")
	artifacts := os.Getenv("QUORUMKV_UI_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	} else if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}

	nodes := startCluster(t, 3, 250*time.Millisecond)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	// Two blind writes of one key through two nodes are concurrent: siblings everywhere.
	put(t, n1, "b", "sib", "one")
	put(t, n2, "b", "sib", "two")
	for i := range 20 {
		put(t, nodes[i%3], "b", fmt.Sprintf("k%d", i), "v")
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // the tests may run as root, where Chromium's sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	defer cancel()

	// Collect uncaught exceptions and browser log errors (a CSP violation, a failed load).
	var mu sync.Mutex
	var problems []string
	if err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			problems = append(problems, (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error())
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError {
				problems = append(problems, fmt.Sprintf("%s: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	}); err != nil {
		t.Fatalf("start chromium (%s): %v", exe, err)
	}
	problemsSoFar := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(problems)
	}
	run := func(what string, a chromedp.Action[chromedp.Void]) {
		t.Helper()
		if _, err := chromedp.Run(ctx, a); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(what, js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	waitJS := func(what, predicate string, d time.Duration) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](predicate,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(d))); err != nil {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
	}
	// shot saves what the viewport shows and, beside it, the whole page.
	shot := func(name string) {
		t.Helper()
		buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		p := filepath.Join(artifacts, name+".png")
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		buf, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(artifacts, name+"-full.png"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (and -full.png: the whole page)", p)
	}

	run("enable the browser log", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, cdplog.Enable, cdp.Empty{})
		return err
	}))
	run("viewport 1280x800", chromedp.EmulateViewport(1280, 800))
	run("disable the cache", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: true})
		return err
	}))

	// The issue asks for a page that loads in under a second from a local node: the
	// document with its script and style, then the first refresh with the cluster's data
	// drawn. Each load is a first visit (no cache), before the test's own traffic starts;
	// the best of three is what the page costs, the others what a machine busy with other
	// tests adds to it.
	bestLoad, bestFirst := math.Inf(1), math.Inf(1)
	for i := range 3 {
		// A new query each time: a new document, not a jump within this one.
		run("navigate", chromedp.Navigate(url(n1, fmt.Sprintf("/ui/?visit=%d#bucket=b&key=sib&refresh=500", i))))
		waitJS("first data rendered", `document.body.dataset.refreshes >= 1`, 10*time.Second)
		var load, first float64
		loadMs := eval("load time", `String(Math.round(performance.getEntriesByType("navigation")[0].loadEventEnd))`)
		firstMs := eval("first data", `document.body.dataset.firstDataMs`)
		if _, err := fmt.Sscan(loadMs, &load); err != nil {
			t.Fatalf("load time %q: %v", loadMs, err)
		}
		if _, err := fmt.Sscan(firstMs, &first); err != nil {
			t.Fatalf("first data time %q: %v", firstMs, err)
		}
		t.Logf("load %d: page loaded in %v ms, first data drawn at %v ms", i+1, load, first)
		bestLoad, bestFirst = min(bestLoad, load), min(bestFirst, first)
	}
	switch {
	case raceDetector:
		t.Logf("page load %v ms, first data %v ms (best of three): not held to a second under the race detector", bestLoad, bestFirst)
	case bestLoad <= 0 || bestLoad >= 1000 || bestFirst <= 0 || bestFirst >= 1000:
		t.Errorf("page load %v ms, first data %v ms (best of three): want both under 1000", bestLoad, bestFirst)
	}

	// Traffic for the charts, through n1 and n2, until the serving node is stopped.
	stopLoad := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stopLoad:
				return
			case <-tick.C:
			}
			n := nodes[i%2]
			if i%3 == 0 {
				req, _ := http.NewRequest(http.MethodPut, url(n, fmt.Sprintf("/v1/kv/load/k%d", i%50)), strings.NewReader("v"))
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			} else if resp, err := http.Get(url(n, fmt.Sprintf("/v1/kv/load/k%d", i%50))); err == nil {
				resp.Body.Close()
			}
		}
	}()
	stopLoadOnce := sync.OnceFunc(func() { close(stopLoad); <-loadDone })
	defer stopLoadOnce()

	// Every node, alive, in the nodes table and the ring's legend.
	for _, n := range nodes {
		st := eval("state of "+n.ID(), fmt.Sprintf(`(document.querySelector('#nodes tr[data-node="%s"]') || {dataset: {}}).dataset.state || "missing"`, n.ID()))
		if st != "alive" {
			t.Errorf("nodes table: %s is %q, want alive", n.ID(), st)
		}
	}
	if got := eval("ring partitions", `String(document.querySelectorAll("#ring path.part").length)`); got != "256" {
		t.Errorf("ring has %s partitions drawn, want 256", got)
	}
	legend := eval("legend", `document.getElementById("ring-legend").textContent`)
	for _, n := range nodes {
		if !strings.Contains(legend, n.ID()) {
			t.Errorf("ring legend %q lacks %s", legend, n.ID())
		}
	}
	if got := eval("transfers", `document.getElementById("transfers").textContent.trim()`); got != "none" {
		t.Errorf("transfers panel shows %q, want none (no change pending)", got)
	}

	// The key inspector: both siblings on each of the three primaries.
	waitJS("inspector filled", `document.querySelectorAll('#key-replicas tr[data-found="true"]').length === 3`, 5*time.Second)
	for _, n := range nodes {
		sibs := eval("siblings on "+n.ID(), fmt.Sprintf(
			`Array.from(document.querySelectorAll('#key-replicas tr[data-node="%s"] [data-sibling]'), e => e.dataset.sibling).sort().join(",")`, n.ID()))
		if sibs != "one,two" {
			t.Errorf("inspector: %s shows siblings %q, want one,two", n.ID(), sibs)
		}
	}
	// The charts: lines once a few windows are sampled, and the operations table.
	waitJS("charts drawn", `document.querySelectorAll("#charts path.line").length >= 3`, 10*time.Second)
	waitJS("get rate shown", `Number(document.querySelector('#ops tr[data-op="get"] td.num').textContent) > 0`, 10*time.Second)
	if p := problemsSoFar(); len(p) > 0 {
		t.Errorf("browser reported problems: %q", p)
	}
	shot("dashboard-1280x800")

	// A narrow screen: one column, nothing wider than the viewport.
	run("viewport 390x844", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	waitJS("one column", `getComputedStyle(document.querySelector("main")).gridTemplateColumns.split(" ").length === 1`, 5*time.Second)
	if w := eval("page width", `String(document.documentElement.scrollWidth)`); w != "390" {
		t.Errorf("narrow viewport: page is %s px wide, want 390 (no horizontal scrolling)", w)
	}
	shot("dashboard-390x844")
	run("viewport 1280x800 again", chromedp.EmulateViewport(1280, 800))

	// Stop n3: the page shows it down, in the table and in the inspector.
	if err := n3.Close(context.Background()); err != nil {
		t.Fatalf("stop n3: %v", err)
	}
	waitFor(t, 30*time.Second, "n1 sees n3 down", func() bool { return memberState(n1, "n3") == "down" })
	waitJS("n3 shown down", `(document.querySelector('#nodes tr[data-node="n3"]') || {dataset: {}}).dataset.state === "down"`, 10*time.Second)
	waitJS("n3 unreachable in the inspector", `(document.querySelector('#key-replicas tr[data-node="n3"]') || {dataset: {}}).dataset.reachable === "false"`, 10*time.Second)
	for _, n := range []*node.Node{n1, n2} {
		st := eval("state of "+n.ID(), fmt.Sprintf(`document.querySelector('#nodes tr[data-node="%s"]').dataset.state`, n.ID()))
		if st != "alive" {
			t.Errorf("after stopping n3: %s shown %q, want alive", n.ID(), st)
		}
	}
	shot("dashboard-node-down")

	// Stop the node serving the page: the page stays, says so, and keeps what it showed.
	stopLoadOnce()
	if err := n1.Close(context.Background()); err != nil {
		t.Fatalf("stop n1: %v", err)
	}
	waitJS("banner", `!document.getElementById("banner").hidden`, 10*time.Second)
	if got := eval("rows kept", `String(document.querySelectorAll("#nodes tbody tr[data-node]").length)`); got != "3" {
		t.Errorf("with its node stopped the page shows %s node rows, want the last 3", got)
	}
	shot("dashboard-serving-node-down")
}

func memberState(n *node.Node, id string) string {
	for _, m := range n.Members() {
		if m.ID == id {
			return string(m.State)
		}
	}
	return ""
}
