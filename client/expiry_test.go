package client

import (
	"context"
	"net/http"
	"testing"
	"time"
)

func TestPutWithTTL(t *testing.T) {
	c, got := fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(ContextHeader, "c")
		w.WriteHeader(http.StatusNoContent)
	})
	ctx := context.Background()
	for _, tc := range []struct {
		ttl   time.Duration
		query string
	}{
		{0, ""},
		{90 * time.Second, "ttl=90"},
		{1500 * time.Millisecond, "ttl=2"}, // rounded up: a value never lives shorter than asked
		{NoExpiry, "ttl=0"},
	} {
		*got = nil
		if _, err := c.PutWith(ctx, "b", "k", []byte("v"), PutOptions{TTL: tc.ttl, Quorum: Quorum{}}); err != nil {
			t.Fatalf("TTL %v: %v", tc.ttl, err)
		}
		if (*got)[0].Query != tc.query {
			t.Errorf("TTL %v: query %q, want %q", tc.ttl, (*got)[0].Query, tc.query)
		}
	}
	*got = nil
	if _, err := c.PutWith(ctx, "b", "k", []byte("v"), PutOptions{TTL: -5 * time.Second}); err == nil || len(*got) != 0 {
		t.Fatalf("a negative TTL: err %v, %d requests sent", err, len(*got))
	}
}

func TestPutIfAbsent(t *testing.T) {
	var inm, im []string
	c, _ := fake(t, func(w http.ResponseWriter, r *http.Request) {
		inm, im = r.Header.Values("If-None-Match"), r.Header.Values("If-Match")
		if len(inm) > 0 {
			writeJSON(w, http.StatusPreconditionFailed, map[string]string{"error": "precondition failed", "code": "precondition_failed"})
			return
		}
		w.Header().Set(ContextHeader, "c")
		w.WriteHeader(http.StatusNoContent)
	})
	ctx := context.Background()
	_, err := c.PutWith(ctx, "b", "k", []byte("v"), PutOptions{IfAbsent: true})
	if !IsPreconditionFailed(err) || len(inm) != 1 || inm[0] != "*" || len(im) != 0 {
		t.Fatalf("IfAbsent: err %v, If-None-Match %q, If-Match %q", err, inm, im)
	}
	_, err = c.PutWith(ctx, "b", "k", []byte("v"), PutOptions{IfPresent: true})
	if err != nil || IsPreconditionFailed(err) || len(im) != 1 || im[0] != "*" || len(inm) != 0 {
		t.Fatalf("IfPresent: err %v, If-None-Match %q, If-Match %q", err, inm, im)
	}
	if _, err := c.PutWith(ctx, "b", "k", []byte("v"), PutOptions{IfAbsent: true, IfPresent: true}); err == nil {
		t.Fatal("IfAbsent with IfPresent: no error")
	}
}
