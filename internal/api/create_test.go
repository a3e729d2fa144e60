package api_test

import (
	"testing"
)

// TestCreateOnly: PUT with If-None-Match: * writes only when no live value is there (412
// otherwise, nothing written); If-Match: * only over a live value; a create-only write
// over a deleted key supersedes the tombstone (one value). Other forms answer 400.
func TestCreateOnly(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	inm := map[string]string{"If-None-Match": "*"}
	im := map[string]string{"If-Match": "*"}

	if resp, body := do(t, "PUT", addr(n1, "/v1/kv/c/k"), "first", inm); resp.StatusCode != 204 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	resp, body := do(t, "PUT", addr(n2, "/v1/kv/c/k"), "second", inm)
	wantError(t, "create over a value", 412, "precondition_failed", resp.StatusCode, body)
	getOne(t, n3, "c", "k", "?r=all", "first")

	resp, body = do(t, "PUT", addr(n2, "/v1/kv/c/absent"), "x", im)
	wantError(t, "If-Match over nothing", 412, "precondition_failed", resp.StatusCode, body)
	wantAbsent(t, nodes, "c", "absent")
	if resp, body := do(t, "PUT", addr(n2, "/v1/kv/c/k"), "replaced", im); resp.StatusCode != 204 {
		t.Fatalf("If-Match over a value: %d %s", resp.StatusCode, body)
	}
	// The conditional write supersedes what its read saw: one value, not siblings.
	ctx := getOne(t, n1, "c", "k", "?r=all", "replaced")

	for _, hdr := range []map[string]string{
		{"If-None-Match": `"abc"`},
		{"If-Match": `W/"x"`},
		{"If-None-Match": "*", "If-Match": "*"},
	} {
		resp, body := do(t, "PUT", addr(n1, "/v1/kv/c/other"), "x", hdr)
		wantError(t, "bad condition", 400, "bad_request", resp.StatusCode, body)
	}
	wantAbsent(t, nodes, "c", "other")

	// Deleted: absent for a create-only write, which then holds the only value.
	if resp, body := do(t, "DELETE", addr(n1, "/v1/kv/c/k"), "", map[string]string{"X-Quorumkv-Context": ctx}); resp.StatusCode != 204 {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, "PUT", addr(n3, "/v1/kv/c/k"), "reborn", inm); resp.StatusCode != 204 {
		t.Fatalf("create after delete: %d %s", resp.StatusCode, body)
	}
	getOne(t, n2, "c", "k", "?r=all", "reborn")
}
