package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/transport"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// Tests of issue 3: sloppy quorum (fallbacks stand in for a down primary) and durable
// hinted handoff, with real processes on loopback. The victim is always n5: n1 is the
// seed the others joined, and it coordinates.

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return p.cmd != nil
	}
}

// waitDown waits until every running node's failure detector sees id down (not merely
// suspect), so that request routing uses fallbacks for it from the start.
func (c *cluster) waitDown(id string) {
	c.t.Helper()
	c.waitFor(20*time.Second, "every running node to see "+id+" down", func() bool {
		for _, p := range c.procs {
			if !p.running() {
				continue
			}
			ci, err := p.client().Cluster(context.Background())
			if err != nil {
				return false
			}
			for _, n := range ci.Nodes {
				if n.ID == id && n.State != "down" {
					return false
				}
			}
		}
		return true
	})
}

// keysWithPrimary returns count keys (prefix-i) whose primaries, as via sees them now,
// include primary; keep, if not nil, filters them further.
func keysWithPrimary(t *testing.T, via *proc, bucket, prefix, primary string, count int, keep func(*client.Endpoints) bool) []string {
	t.Helper()
	var out []string
	for i := 0; len(out) < count; i++ {
		if i > 200*count {
			t.Fatalf("found only %d of %d keys with primary %s", len(out), count, primary)
		}
		key := fmt.Sprintf("%s-%d", prefix, i)
		e, err := via.client().Endpoints(context.Background(), bucket, key)
		if err != nil {
			t.Fatalf("endpoints of %s: %v", key, err)
		}
		isPrimary := false
		for _, p := range e.Primaries {
			isPrimary = isPrimary || p.ID == primary
		}
		if isPrimary && (keep == nil || keep(e)) {
			out = append(out, key)
		}
	}
	return out
}

// hintSums adds up /v1/admin/hints over the running nodes, for target (all targets if "").
func (c *cluster) hintSums(target string) (pending int, delivered, expired uint64, err error) {
	for _, p := range c.procs {
		if !p.running() {
			continue
		}
		h, err := p.client().Hints(context.Background())
		if err != nil {
			return 0, 0, 0, err
		}
		for _, ht := range h.Targets {
			if target == "" || ht.Target == target {
				pending += ht.Pending
				delivered += ht.Delivered
				expired += ht.Expired
			}
		}
	}
	return pending, delivered, expired, nil
}

// metrics returns the samples of p's /metrics whose name is name, keyed by their labels
// ("" when none).
func (p *proc) metrics(t *testing.T, name string) map[string]float64 {
	t.Helper()
	resp, err := p.httpGet("/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", p.id, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("metrics of %s: %d %v", p.id, resp.StatusCode, err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || len(line) == len(name) || (line[len(name)] != ' ' && line[len(name)] != '{') {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics of %s: bad line %q", p.id, line)
		}
		out[line[len(name):i]] = v
	}
	return out
}

func sameValues(vs [][]byte, want ...string) bool {
	if len(vs) != len(want) {
		return false
	}
	for i := range vs {
		if string(vs[i]) != want[i] {
			return false
		}
	}
	return true
}

// logHas reports whether p's log (all its runs) has a line holding every part.
func (p *proc) logHas(parts ...string) bool {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		ok := true
		for _, s := range parts {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			return true
		}
	}
	return false
}

// TestSloppyQuorumAndHandoff: with primary n5 of 201 keys killed, W=2 and W=3 writes
// succeed (W=3 only through a fallback), each fallback keeps its key as a hint for n5,
// pw=3 answers 503, R=3 reads succeed (the fallback counts) and pr=3 reads fail. Once n5
// is back its fallbacks hand every hint over within the handoff interval, the hint queues
// drain to zero and the metrics say so.
func TestSloppyQuorumAndHandoff(t *testing.T) {
	const handoffEvery = time.Second
	c := startClusterWith(t, 5, "--handoff-interval", handoffEvery.String())
	ctx := context.Background()
	coord, victim := c.node("n1"), c.node("n5")
	keys := keysWithPrimary(t, coord, "b", "sq", "n5", 201, nil)
	w2, w3, pwKey := keys[:100], keys[100:200], keys[200]

	victim.kill()
	c.waitDown("n5")
	fallback := map[string]string{}
	for _, k := range keys {
		e, err := coord.client().Endpoints(ctx, "b", k)
		if err != nil {
			t.Fatal(err)
		}
		if len(e.Fallbacks) != 1 || e.Fallbacks[0].HintFor != "n5" || e.Fallbacks[0].State != "alive" || e.Fallbacks[0].ID == "n5" {
			t.Fatalf("endpoints of %s with n5 down: want one alive fallback for n5, got %+v", k, e)
		}
		for _, p := range e.Primaries {
			if p.ID == "n5" && p.State != "down" {
				t.Fatalf("endpoints of %s: n5 is %q, want down", k, p.State)
			}
		}
		fallback[k] = e.Fallbacks[0].ID
	}

	// Coordinators: every running node in turn (some are primaries, some forward).
	running := c.procs[:4]
	for i, k := range w2 {
		if _, err := running[i%4].client().Put(ctx, "b", k, []byte("v-"+k), "", client.Quorum{W: "2"}); err != nil {
			t.Fatalf("W=2 put %s with n5 down: %v", k, err)
		}
	}
	for i, k := range w3 {
		if _, err := running[i%4].client().Put(ctx, "b", k, []byte("v-"+k), "", client.Quorum{W: "3"}); err != nil {
			t.Fatalf("W=3 put %s with n5 down: %v", k, err)
		}
	}
	hinted := func(k string) bool {
		lc, err := c.node(fallback[k]).client().Local(ctx, "b", k)
		return err == nil && lc.Found && lc.HintedFor == "n5" && sameValues(lc.Values, "v-"+k)
	}
	// A W=3 ack included the fallback's: its hint is there now.
	for _, k := range w3 {
		if !hinted(k) {
			lc, err := c.node(fallback[k]).client().Local(ctx, "b", k)
			t.Fatalf("fallback %s's copy of %s after a W=3 write: want the value hinted for n5, got %+v %v", fallback[k], k, lc, err)
		}
	}
	// A W=2 write may answer before the fallback's ack arrives.
	c.waitFor(5*time.Second, "the fallbacks to hold the W=2 keys hinted for n5", func() bool {
		for _, k := range w2 {
			if !hinted(k) {
				return false
			}
		}
		return true
	})

	_, err := coord.client().Put(ctx, "b", pwKey, []byte("v-"+pwKey), "", client.Quorum{PW: "3", Timeout: 2 * time.Second})
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 503 || ae.Code != client.CodeQuorumFailed || ae.Acks != 2 || ae.Required != 3 {
		t.Fatalf("pw=3 put with n5 down: want 503 quorum_failed acks=2 required=3, got %v (%+v)", err, ae)
	}

	for i, k := range keys[:200] {
		obj, err := running[i%4].client().Get(ctx, "b", k, client.Quorum{R: "3"})
		if err != nil || !obj.Found || !sameValues(obj.Values, "v-"+k) {
			t.Fatalf("R=3 get %s with n5 down (a fallback must count toward R): %+v %v", k, obj, err)
		}
	}
	for _, k := range []string{w2[0], w3[0]} {
		// The read fails as soon as pr=3 is out of reach (before any reply: acks may be 0).
		_, err := coord.client().Get(ctx, "b", k, client.Quorum{PR: "3", Timeout: 2 * time.Second})
		if !errors.As(err, &ae) || ae.Status != 503 || ae.Code != client.CodeQuorumFailed || ae.Acks > 2 || ae.Required != 3 {
			t.Fatalf("pr=3 get %s with n5 down: want 503 quorum_failed acks<=2 required=3, got %v (%+v)", k, err, ae)
		}
	}

	pending, _, _, err := c.hintSums("n5")
	if err != nil {
		t.Fatal(err)
	}
	// One hint per key: the 200 written and the pw=3 write, which reached its replicas
	// although it failed (writes are not rolled back).
	if pending != len(keys) {
		t.Fatalf("hints pending for n5 over the cluster: %d, want %d", pending, len(keys))
	}
	for _, p := range running {
		if g := p.metrics(t, "quorumkv_hints_pending"); g[`{target="n5"}`] != float64(countHinted(fallback, p.id)) {
			t.Fatalf("%s's quorumkv_hints_pending: %v, want %d for n5", p.id, g, countHinted(fallback, p.id))
		}
	}

	// Phase 2: n5 returns.
	victim.start()
	c.waitAlive(5)
	back := time.Now()
	c.waitFor(handoffEvery+4*time.Second, "every hinted key in n5's own copy", func() bool {
		for _, k := range keys {
			lc, err := victim.client().Local(ctx, "b", k)
			if err != nil || !lc.Found || lc.HintedFor != "" || !sameValues(lc.Values, "v-"+k) {
				return false
			}
		}
		return true
	})
	t.Logf("n5 held all %d hinted keys %v after every node saw it alive", len(keys), time.Since(back).Round(time.Millisecond))
	c.waitFor(5*time.Second, "the hint queues to drain", func() bool {
		p, d, _, err := c.hintSums("n5")
		return err == nil && p == 0 && d >= uint64(len(keys))
	})
	var delivered float64
	for _, p := range c.procs {
		for labels, v := range p.metrics(t, "quorumkv_hints_pending") {
			if v != 0 {
				t.Errorf("%s: quorumkv_hints_pending%s = %v after the handoff", p.id, labels, v)
			}
		}
		delivered += p.metrics(t, "quorumkv_hints_delivered_total")[""]
	}
	if delivered < float64(len(keys)) {
		t.Errorf("quorumkv_hints_delivered_total summed over the nodes: %v, want >= %d", delivered, len(keys))
	}
	if r := victim.metrics(t, "quorumkv_handoff_received_total")[""]; r < float64(len(keys)) {
		t.Errorf("n5's quorumkv_handoff_received_total: %v, want >= %d", r, len(keys))
	}
	// Every fallback let go of its copy: the key is no longer there, as a hint or otherwise.
	for _, k := range keys {
		if lc, err := c.node(fallback[k]).client().Local(ctx, "b", k); err != nil || lc.Found {
			t.Fatalf("fallback %s still holds %s after the handoff: %+v %v", fallback[k], k, lc, err)
		}
	}
}

func countHinted(fallback map[string]string, id string) int {
	n := 0
	for _, f := range fallback {
		if f == id {
			n++
		}
	}
	return n
}

// TestHintsSurviveKillOfFallback: the fallback holding n5's hints is killed with SIGKILL
// before n5 returns; once both are restarted the hints are still delivered.
func TestHintsSurviveKillOfFallback(t *testing.T) {
	c := startClusterWith(t, 5, "--handoff-interval", "1s")
	ctx := context.Background()
	coord, victim := c.node("n1"), c.node("n5")
	victim.kill()
	c.waitDown("n5")
	// Keys hinted on one fallback other than n1, so that killing it leaves three nodes.
	var fb string
	keys := keysWithPrimary(t, coord, "b", "dur", "n5", 40, func(e *client.Endpoints) bool {
		if len(e.Fallbacks) != 1 || e.Fallbacks[0].ID == "n1" {
			return false
		}
		if fb == "" {
			fb = e.Fallbacks[0].ID
		}
		return e.Fallbacks[0].ID == fb
	})
	f := c.node(fb)
	for _, k := range keys {
		if _, err := coord.client().Put(ctx, "b", k, []byte("v-"+k), "", client.Quorum{W: "3"}); err != nil {
			t.Fatalf("W=3 put %s with n5 down: %v", k, err)
		}
		if lc, err := f.client().Local(ctx, "b", k); err != nil || !lc.Found || lc.HintedFor != "n5" {
			t.Fatalf("fallback %s's copy of %s: %+v %v", fb, k, lc, err)
		}
	}

	f.kill()
	f.start()
	c.waitFor(20*time.Second, fb+" alive again everywhere", func() bool {
		ci, err := coord.client().Cluster(ctx)
		if err != nil {
			return false
		}
		for _, n := range ci.Nodes {
			if n.ID == fb {
				return n.State == "alive"
			}
		}
		return false
	})
	h, err := f.client().Hints(ctx)
	if err != nil || h.Pending != len(keys) {
		t.Fatalf("%s's hints after its kill -9 and restart: want %d pending, got %+v %v", fb, len(keys), h, err)
	}

	victim.start()
	c.waitAlive(5)
	c.waitFor(10*time.Second, "every hinted key in n5's own copy", func() bool {
		for _, k := range keys {
			lc, err := victim.client().Local(ctx, "b", k)
			if err != nil || !lc.Found || !sameValues(lc.Values, "v-"+k) {
				return false
			}
		}
		return true
	})
	c.waitFor(5*time.Second, fb+"'s hints to drain", func() bool {
		h, err := f.client().Hints(ctx)
		return err == nil && h.Pending == 0
	})
}

// TestExpiredHintsHealByReadRepair: hints older than --hint-window expire, counted, and
// are never delivered; the key heals on the returning primary through read repair, and a
// newer write is what every replica ends up holding.
func TestExpiredHintsHealByReadRepair(t *testing.T) {
	c := startClusterWith(t, 5, "--hint-window", "2s", "--handoff-interval", "500ms")
	ctx := context.Background()
	coord, victim := c.node("n1"), c.node("n5")
	keys := keysWithPrimary(t, coord, "b", "exp", "n5", 20, nil)
	victim.kill()
	// No wait for the failure detector: a primary found unreachable during the write gets
	// a fallback too.
	for _, k := range keys {
		if _, err := coord.client().Put(ctx, "b", k, []byte("v1-"+k), "", client.Quorum{W: "3"}); err != nil {
			t.Fatalf("W=3 put %s with n5 just killed: %v", k, err)
		}
	}
	pending, _, expired, err := c.hintSums("n5")
	if err != nil || pending+int(expired) != len(keys) {
		t.Fatalf("hints for n5 right after the writes: %d pending + %d expired, want %d (%v)", pending, expired, len(keys), err)
	}
	c.waitFor(15*time.Second, "the hints for n5 to expire", func() bool {
		p, _, e, err := c.hintSums("n5")
		return err == nil && p == 0 && e == uint64(len(keys))
	})
	if !c.node("n1").logHas("hints expired") && !c.node("n2").logHas("hints expired") &&
		!c.node("n3").logHas("hints expired") && !c.node("n4").logHas("hints expired") {
		t.Errorf("no node logged the expiry")
	}
	var expiredMetric float64
	for _, p := range c.procs[:4] {
		expiredMetric += p.metrics(t, "quorumkv_hints_expired_total")[`{target="n5"}`]
	}
	if expiredMetric != float64(len(keys)) {
		t.Errorf("quorumkv_hints_expired_total{target=n5} summed: %v, want %d", expiredMetric, len(keys))
	}

	victim.start()
	c.waitAlive(5)
	// Nothing was handed off: n5 lacks the keys. (Anti-entropy, which exchanges a
	// partition every few seconds, may heal one first: then n5 holds v1, not more.)
	missing := 0
	for _, k := range keys {
		lc, err := victim.client().Local(ctx, "b", k)
		switch {
		case err != nil || lc.Found && !sameValues(lc.Values, "v1-"+k):
			t.Fatalf("n5's copy of %s after its hints expired: %+v %v", k, lc, err)
		case !lc.Found:
			missing++
		}
	}
	if missing == 0 {
		t.Fatalf("n5 holds every key whose hints expired")
	}
	if missing < len(keys) {
		t.Logf("note: anti-entropy healed %d of the %d keys on n5 before the reads", len(keys)-missing, len(keys))
	}
	if _, d, _, err := c.hintSums("n5"); err != nil || d != 0 {
		t.Fatalf("hints delivered to n5 after they expired: %d (%v)", d, err)
	}
	if r := victim.metrics(t, "quorumkv_handoff_received_total")[""]; r != 0 {
		t.Fatalf("n5 received %v handed-off objects after every hint for it expired", r)
	}
	for _, k := range keys {
		// Right after n5 is seen alive a coordinator's connection to it may still be
		// backing off, failing the read fast: poll.
		var obj *client.Object
		c.waitFor(5*time.Second, "an R=all read of "+k, func() bool {
			var err error
			obj, err = coord.client().Get(ctx, "b", k, client.Quorum{R: "all"})
			return err == nil
		})
		if !obj.Found || !sameValues(obj.Values, "v1-"+k) {
			t.Fatalf("R=all get %s: %+v", k, obj)
		}
		// The read repaired n5 before it answered (blocking read repair).
		if lc, err := victim.client().Local(ctx, "b", k); err != nil || !lc.Found || !sameValues(lc.Values, "v1-"+k) {
			t.Fatalf("n5's copy of %s after an R=all read: %+v %v", k, lc, err)
		}
		if _, err := coord.client().Put(ctx, "b", k, []byte("v2-"+k), obj.Context, client.Quorum{W: "all"}); err != nil {
			t.Fatalf("W=all put of v2 of %s: %v", k, err)
		}
	}
	for _, k := range keys {
		e, err := coord.client().Endpoints(ctx, "b", k)
		if err != nil || len(e.Fallbacks) != 0 {
			t.Fatalf("endpoints of %s with every node up: %+v %v", k, e, err)
		}
		// (Should a v2 write have gone through a fallback, its hint reaches n5 soon.)
		c.waitFor(5*time.Second, "v2 only on every replica of "+k, func() bool {
			for _, p := range e.Primaries {
				lc, err := c.node(p.ID).client().Local(ctx, "b", k)
				if err != nil || !lc.Found || len(lc.Siblings) != 1 || !sameValues(lc.Values, "v2-"+k) {
					return false
				}
			}
			return true
		})
	}
	if _, d, _, err := c.hintSums("n5"); err != nil || d != 0 {
		t.Logf("note: %d v2 writes reached n5 through a fallback (%v)", d, err)
	}
}

// TestDoomstone: a tombstone held as a hint for n5, handed off only after n5 took a newer
// write that re-created the key, does not delete it: the version vectors decide, not the
// arrival order. While the fallback cannot reach n5 its handoff fails and the hint stays,
// delivered once the link heals.
func TestDoomstone(t *testing.T) {
	c := startClusterWith(t, 5, "--handoff-interval", "500ms")
	ctx := context.Background()
	coord, victim := c.node("n1"), c.node("n5")
	k := keysWithPrimary(t, coord, "b", "doom", "n5", 1, nil)[0]
	if _, err := coord.client().Put(ctx, "b", k, []byte("v1"), "", client.Quorum{W: "all"}); err != nil {
		t.Fatal(err)
	}
	e, err := coord.client().Endpoints(ctx, "b", k)
	if err != nil {
		t.Fatal(err)
	}

	victim.kill()
	obj, err := coord.client().Get(ctx, "b", k, client.Quorum{R: "2"})
	if err != nil || !obj.Found {
		t.Fatalf("R=2 get of %s with n5 down: %+v %v", k, obj, err)
	}
	delCtx, err := coord.client().Delete(ctx, "b", k, obj.Context, client.Quorum{W: "3"})
	if err != nil {
		t.Fatalf("W=3 delete of %s with n5 down: %v", k, err)
	}
	var f *proc
	for _, p := range c.procs[:4] {
		lc, err := p.client().Local(ctx, "b", k)
		if err != nil {
			t.Fatal(err)
		}
		if lc.HintedFor == "n5" {
			if f != nil || !lc.Tombstone {
				t.Fatalf("%s's copy of %s: %+v (fallback already found: %v)", p.id, k, lc, f != nil)
			}
			f = p
		}
	}
	if f == nil {
		t.Fatalf("no node keeps the tombstone of %s as a hint for n5", k)
	}
	if _, err := f.client().SetFaults(ctx, client.Faults{Drop: []string{"n5"}}); err != nil {
		t.Fatal(err)
	}

	victim.start()
	c.waitAlive(5)
	// n5 is back and a primary: re-create the key over the tombstone, every primary acks
	// (pw=all: no fallback). n5 coordinates: its fresh connections have no backoff.
	if _, err := victim.client().Put(ctx, "b", k, []byte("v2"), delCtx, client.Quorum{W: "all", PW: "all"}); err != nil {
		t.Fatalf("W=all put of v2 with the delete's context: %v", err)
	}
	if lc, err := victim.client().Local(ctx, "b", k); err != nil || !sameValues(lc.Values, "v2") || len(lc.Siblings) != 1 {
		t.Fatalf("n5's copy after the v2 write: %+v %v", lc, err)
	}
	// The fallback tries, fails, and keeps the hint.
	c.waitFor(10*time.Second, f.id+" to fail a handoff to n5", func() bool {
		return f.logHas("handoff interrupted", "target=n5")
	})
	h, err := f.client().Hints(ctx)
	if err != nil || h.Pending != 1 {
		t.Fatalf("%s's hints after a failed handoff: want 1 pending, got %+v %v", f.id, h, err)
	}
	// The CLI shows it.
	out, err := f.cli("hints").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "hints kept by "+f.id+": 1 pending") || !regexpLine(string(out), "n5", "alive", "1") {
		t.Errorf("quorumkv hints: %v\n%s", err, out)
	}

	if _, err := f.client().SetFaults(ctx, client.Faults{}); err != nil {
		t.Fatal(err)
	}
	c.waitFor(5*time.Second, f.id+" to hand the stale tombstone to n5", func() bool {
		h, err := f.client().Hints(ctx)
		return err == nil && h.Pending == 0 && len(h.Targets) == 1 && h.Targets[0].Delivered == 1
	})
	var got *client.Object
	c.waitFor(5*time.Second, "an R=all read of "+k, func() bool {
		var err error
		got, err = coord.client().Get(ctx, "b", k, client.Quorum{R: "all"})
		return err == nil
	})
	if !got.Found || !sameValues(got.Values, "v2") {
		t.Fatalf("R=all get of %s after the tombstone's handoff: want v2, got %+v", k, got)
	}
	for _, p := range e.Primaries {
		lc, err := c.node(p.ID).client().Local(ctx, "b", k)
		if err != nil || !lc.Found || lc.Tombstone || len(lc.Siblings) != 1 || !sameValues(lc.Values, "v2") {
			t.Fatalf("%s's copy of %s after the tombstone's handoff: want v2 only, got %+v %v", p.ID, k, lc, err)
		}
	}
}

// regexpLine reports whether some line of out has the fields want, in order, from its start.
func regexpLine(out string, want ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= len(want) {
			ok := true
			for i, w := range want {
				ok = ok && f[i] == w
			}
			if ok {
				return true
			}
		}
	}
	return false
}

// TestCorruptHandoffBatchChangesNothing: a handoff batch with one good item and one
// corrupt object is refused as a bad request as a whole: the good item is not applied.
func TestCorruptHandoffBatchChangesNothing(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	target := c.node("n1")
	if _, err := target.client().Put(ctx, "b", "k", []byte("good"), "", client.Quorum{W: "all"}); err != nil {
		t.Fatal(err)
	}

	cfg := transport.DefaultConfig()
	cfg.NodeID, cfg.ListenAddr, cfg.Handler = "evil", "127.0.0.1:0", noHandler{}
	cfg.Resolve = func(string) (string, bool) { return target.rpc, true }
	if target.sec != nil {
		// A member gone bad: its certificate is the cluster's (n3's, so it speaks as n3),
		// its batch is not.
		cfg.NodeID = "n3"
		cfg.ServerTLS, cfg.ClientTLS = memberTLS(t, target.sec.dir, "n3")
	}
	evil, err := transport.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()

	obj := version.Object{}.Update(nil, version.Sibling{Dot: version.Dot{Actor: "evil.1", Counter: 1}, Value: []byte("bad")})
	enc := obj.AppendBinary(nil)
	send := func(items ...*pb.HandoffItem) *pb.Envelope {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		done := make(chan *pb.Envelope, 1)
		evil.Call(cctx, "n1", &pb.Envelope{Body: &pb.Envelope_Handoff{Handoff: &pb.HandoffRequest{Items: items}}}, func(e *pb.Envelope, err error) {
			if err != nil {
				t.Errorf("transport error: %v", err)
			}
			done <- e
		})
		return <-done
	}
	for name, bad := range map[string][]byte{
		"garbage":   []byte("\xff\x00garbage"),
		"truncated": enc[:len(enc)-3],
		"trailing":  append(append([]byte{}, enc...), 0),
		"empty":     nil,
	} {
		resp := send(&pb.HandoffItem{Bucket: "b", Key: "k", Object: enc}, &pb.HandoffItem{Bucket: "b", Key: "new", Object: enc},
			&pb.HandoffItem{Bucket: "b", Key: "k2", Object: bad})
		if resp.GetError() == nil || resp.GetError().Code != "bad_request" {
			t.Errorf("batch with a %s object: answer %v, want an error with code bad_request", name, resp)
		}
	}
	resp := send(&pb.HandoffItem{Bucket: "b", Key: "new", Object: enc}, &pb.HandoffItem{Bucket: "b\x00", Key: "x", Object: enc})
	if resp.GetError() == nil || resp.GetError().Code != "bad_request" {
		t.Errorf("batch with a bad bucket name: answer %v, want an error with code bad_request", resp)
	}

	lc, err := target.client().Local(ctx, "b", "k")
	if err != nil || !lc.Found || len(lc.Siblings) != 1 || !sameValues(lc.Values, "good") {
		t.Fatalf("n1's copy of k after refused batches: %+v %v", lc, err)
	}
	for _, key := range []string{"new", "k2"} {
		if lc, err := target.client().Local(ctx, "b", key); err != nil || lc.Found {
			t.Fatalf("n1's copy of %s after refused batches: %+v %v", key, lc, err)
		}
	}
	// A good batch is applied: the fake peer can reach the node, so the refusals above
	// were the node's own.
	if resp := send(&pb.HandoffItem{Bucket: "b", Key: "new", Object: enc}); resp.GetHandoffResp() == nil || resp.GetHandoffResp().Applied != 1 {
		t.Fatalf("good batch: answer %v", resp)
	}
	if lc, err := target.client().Local(ctx, "b", "new"); err != nil || !lc.Found || !sameValues(lc.Values, "bad") {
		t.Fatalf("n1's copy of new after a good batch: %+v %v", lc, err)
	}
}

type noHandler struct{}

func (noHandler) Handle(context.Context, string, *pb.Envelope) *pb.Envelope { return nil }
