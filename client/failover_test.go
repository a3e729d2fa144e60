package client

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// A client given several addresses skips a node it cannot reach and keeps to the one
// that answered; an address list with a bad entry is refused whole.
func TestFailoverToTheNextAddress(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"node":"n2","pending":false,"ring":["n1","n2"]}`))
	}))
	defer srv.Close()
	// A port nothing listens on: bind one, then close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()

	c := New(dead + "," + strings.TrimPrefix(srv.URL, "http://"))
	for i := range 3 {
		tr, err := c.Transfers(context.Background())
		if err != nil || tr.Node != "n2" {
			t.Fatalf("request %d: %+v %v", i, tr, err)
		}
	}
	if hits.Load() != 3 {
		t.Fatalf("the live node saw %d requests, want 3", hits.Load())
	}
	if got := c.cur.Load(); got != 1 {
		t.Fatalf("client keeps to address %d, want 1 (the one that answered)", got)
	}
	// Only the dead node: the error says it could not connect.
	if _, err := New(dead).Transfers(context.Background()); err == nil || !unreachable(err) {
		t.Fatalf("dead node alone: %v", err)
	}
	if _, err := New(dead + ",ftp://x").Transfers(context.Background()); err == nil || !strings.Contains(err.Error(), "scheme must be http or https") {
		t.Fatalf("bad entry in the list: %v", err)
	}
}
