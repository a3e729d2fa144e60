package client_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/quorumkv/quorumkv/client"
)

// A read-modify-write: read the siblings and their context, resolve them, write back
// with the context so the new value supersedes every sibling read.
func Example() {
	// A stand-in for a node: two siblings on GET, 204 on PUT.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"values":["cmVk","Ymx1ZQ=="],"context":"ctx-1"}`)
			return
		}
		w.Header().Set(client.ContextHeader, "ctx-2")
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	ctx := context.Background()
	c := client.New(srv.URL)
	obj, err := c.Get(ctx, "colors", "favorite", client.Quorum{R: "quorum"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("found=%v siblings=%q\n", obj.Found, obj.Values)
	resolved := obj.Values[len(obj.Values)-1] // the application decides
	next, err := c.Put(ctx, "colors", "favorite", resolved, obj.Context, client.Quorum{W: "all"})
	if client.IsQuorumFailed(err) {
		fmt.Println("not enough replicas acknowledged; the write may still have landed on some")
		return
	}
	fmt.Println("new context:", next, err)
	// Output:
	// found=true siblings=["red" "blue"]
	// new context: ctx-2 <nil>
}
