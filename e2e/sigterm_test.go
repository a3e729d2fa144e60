package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// TestSIGTERMFinishesInFlightAndLosesNothing is the clean stop a container runtime asks
// for (docker stop, a Kubernetes pod's termination): on SIGTERM the server stops taking
// connections, finishes the request it is in the middle of, flushes and exits 0; after a
// restart on the same data directory every write it acknowledged is there.
func TestSIGTERMFinishesInFlightAndLosesNothing(t *testing.T) {
	c := startCluster(t, 1)
	p := c.procs[0]
	ctx := context.Background()
	if _, err := p.client().SetBucket(ctx, "term", client.BucketProps{N: new(1)}); err != nil {
		t.Fatal(err)
	}

	// Writers keep writing until the server goes away; each acknowledged key is recorded.
	var (
		mu    sync.Mutex
		acked = map[string]string{}
		wg    sync.WaitGroup
	)
	stopWriters := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := p.clientWith(client.WithTimeout(5 * time.Second))
			for i := 0; ; i++ {
				select {
				case <-stopWriters:
					return
				default:
				}
				key, val := fmt.Sprintf("k%d-%d", w, i), fmt.Sprintf("v%d-%d", w, i)
				if _, err := cl.Put(ctx, "term", key, []byte(val), "", client.Quorum{}); err != nil {
					return // the server is stopping
				}
				mu.Lock()
				acked[key] = val
				mu.Unlock()
			}
		}()
	}
	c.waitFor(10*time.Second, "some acknowledged writes", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 200
	})

	// A request in flight: its headers sent with Expect: 100-continue, so the server's
	// "100 Continue" shows the handler has started and is reading the body.
	body := bytes.Repeat([]byte("x"), 64<<10)
	conn, authz, err := p.dialHTTP()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /v1/kv/term/inflight HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", p.http, authz, len(body))
	br := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, "100 Continue") {
		t.Fatalf("want 100 Continue, got %q, %v", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil { // the blank line ending the interim response
		t.Fatal(err)
	}
	if _, err := conn.Write(body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The server stops listening at once, with the request still open...
	c.waitFor(10*time.Second, "the HTTP listener to close", func() bool {
		probe, err := net.DialTimeout("tcp", p.http, time.Second)
		if err != nil {
			return true
		}
		probe.Close()
		return false
	})
	select {
	case <-p.exited:
		t.Fatal("the server exited with a request in flight")
	default:
	}
	// ...and answers it once its body arrives.
	if _, err := conn.Write(body[len(body)/2:]); err != nil {
		t.Fatalf("finishing the in-flight request: %v", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("in-flight request: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("in-flight request answered %d, want 204", resp.StatusCode)
	}
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the server did not exit within 20s of SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	close(stopWriters)
	wg.Wait()

	p.start()
	mu.Lock()
	defer mu.Unlock()
	acked["inflight"] = string(body)
	cl := p.client()
	for k, v := range acked {
		obj, err := cl.Get(ctx, "term", k, client.Quorum{})
		if err != nil || len(obj.Values) != 1 || string(obj.Values[0]) != v {
			t.Fatalf("acknowledged %s lost after a clean stop: %v (%d acknowledged writes)", k, err, len(acked))
		}
	}
	t.Logf("%d writes acknowledged before and during the stop, all there after the restart", len(acked))
}
