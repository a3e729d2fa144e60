package api_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/quorumkv/quorumkv/internal/node"
)

// TestForwardToReplica: with n=1 and n=2 buckets on three nodes, most keys have a replica
// set that excludes the node a request arrives at. Writes through any node are forwarded to
// a primary, which coordinates; reads through any node reach the primaries; only the
// primaries store the key.
func TestForwardToReplica(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	for _, n := range []int{1, 2} {
		bucket := fmt.Sprintf("fwd%d", n)
		setBucket(t, nodes, bucket, fmt.Sprintf(`{"n":%d,"r":"all","w":"all"}`, n))
		forwarded := 0
		for i := 0; i < 30; i++ {
			key := fmt.Sprintf("k%d", i)
			via := nodes[i%3]
			resp, body := do(t, "GET", addr(via, "/v1/admin/endpoints/"+bucket+"/"+key), "", nil)
			var ep node.EndpointsInfo
			if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &ep) != nil || len(ep.Primaries) != n {
				t.Fatalf("endpoints %s/%s: %d %s", bucket, key, resp.StatusCode, body)
			}
			primary := map[string]bool{}
			for _, p := range ep.Primaries {
				primary[p.ID] = true
			}
			if !primary[via.ID()] {
				forwarded++
			}
			put(t, via, bucket, key, "", "v-"+key, "")
			for _, m := range nodes {
				getOne(t, m, bucket, key, "", "v-"+key)
				status, lc := local(t, m, bucket, key)
				if primary[m.ID()] != lc.Found {
					t.Fatalf("%s/%s: node %s primary=%v but holds a copy=%v (status %d)", bucket, key, m.ID(), primary[m.ID()], lc.Found, status)
				}
			}
		}
		if forwarded == 0 {
			t.Fatalf("n=%d: no write was forwarded; the test exercised nothing", n)
		}
	}
}
