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
