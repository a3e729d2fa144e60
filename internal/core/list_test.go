package core_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// askListKeys steps a ListKeysRequest into node id and returns its answer.
func askListKeys(t *testing.T, w *world, id string, req *pb.ListKeysRequest) *pb.Envelope {
	t.Helper()
	nd := w.node(id)
	nd.core.Step(w.time(nd), core.PeerRequest{From: "n2", ID: 1 << 50, Env: &pb.Envelope{Body: &pb.Envelope_ListKeys{ListKeys: req}}})
	rd := nd.core.Ready()
	nd.core.Advance()
	if len(rd.Answers) != 1 {
		t.Fatalf("%d answers to a listing question", len(rd.Answers))
	}
	return w.wire(rd.Answers[0].Env)
}

// TestListKeysAnswer: a replica answers a listing's question with the keys of the bucket
// and prefix alone, each with its versions and without its value unless asked: the bytes
// of an answer follow the keys, not the values. A deleted key comes with its tombstone (a
// coordinator merging replicas needs it); bad questions are refused.
func TestListKeysAnswer(t *testing.T) {
	w := newWorld(t, 3, fixedBuckets{}, nil)
	big := strings.Repeat("v", 64<<10)
	for i := range 6 {
		w.request(fmt.Sprint("p", i), "n1", core.ClientRequest{Op: core.OpPut, Bucket: "b", Key: fmt.Sprint("k", i), Value: []byte(big),
			Write: core.WriteOptions{W: "all", Meta: []version.MetaEntry{{Key: "m", Value: "x"}}}})
		w.request(fmt.Sprint("o", i), "n1", core.ClientRequest{Op: core.OpPut, Bucket: "other", Key: fmt.Sprint("k", i), Value: []byte(big),
			Write: core.WriteOptions{W: "all"}})
	}
	w.request("d", "n1", core.ClientRequest{Op: core.OpDelete, Bucket: "b", Key: "k5", Write: core.WriteOptions{W: "all"}})
	w.run(time.Second)
	list := func(values bool, prefix string) (keys []string, size int, objs []version.Object) {
		for p := range 64 {
			env := askListKeys(t, w, "n1", &pb.ListKeysRequest{Partition: int32(p), Partitions: 64, Bucket: "b", Prefix: []byte(prefix),
				Limit: 100, Values: values})
			a := env.GetListKeysResp()
			if a == nil || !a.Done {
				t.Fatalf("partition %d: %v", p, env)
			}
			size += proto.Size(a)
			for _, k := range a.Keys {
				obj, err := version.Decode(k.Object)
				if err != nil {
					t.Fatal(err)
				}
				keys = append(keys, string(k.Key))
				objs = append(objs, obj)
			}
		}
		return keys, size, objs
	}
	keys, small, objs := list(false, "")
	if len(keys) != 6 {
		t.Fatalf("listed %v, want the 6 keys of bucket b (k5 with its tombstone)", keys)
	}
	if small > 6*200 {
		t.Errorf("answers without values are %d bytes for 6 keys", small)
	}
	tombs := 0
	for i, o := range objs {
		for _, s := range o.Siblings {
			if s.Value != nil || s.Meta != nil {
				t.Errorf("%s: a sibling's value or metadata was sent: %+v", keys[i], s)
			}
		}
		for _, s := range o.Siblings {
			if s.Tombstone {
				tombs++
			}
		}
	}
	if tombs != 1 {
		t.Errorf("%d tombstones listed, want k5's (a blind delete: a sibling of its value)", tombs)
	}
	_, size, objs := list(true, "")
	values := 0
	for _, o := range objs {
		for _, s := range o.Siblings {
			if bytes.Equal(s.Value, []byte(big)) && len(s.Meta) == 1 {
				values++
			}
		}
	}
	t.Logf("6 keys of 64 KiB values over 64 partitions: answers of %d bytes without values, %d with", small, size)
	if values != 6 || size < 6*len(big) {
		t.Errorf("answers with values: %d values with their metadata, %d bytes", values, size)
	}
	if keys, _, _ := list(false, "k1"); len(keys) != 1 || keys[0] != "k1" {
		t.Errorf("prefix k1: %v", keys)
	}

	// A limit and a budget end an answer early, with the position to go on from.
	total := 0
	for p := range 64 {
		var after []byte
		for {
			a := askListKeys(t, w, "n1", &pb.ListKeysRequest{Partition: int32(p), Partitions: 64, Bucket: "other", After: after, Limit: 1, MaxBytes: 1}).GetListKeysResp()
			total += len(a.Keys)
			if a.Done {
				break
			}
			if len(a.Keys) > 1 || len(a.Next) == 0 {
				t.Fatalf("partition %d: an unfinished answer %v", p, a)
			}
			after = a.Next
		}
	}
	if total != 6 {
		t.Errorf("listed %d keys of bucket other one at a time, want 6", total)
	}

	for name, req := range map[string]*pb.ListKeysRequest{
		"partitions":     {Partition: 0, Partitions: 32, Bucket: "b", Limit: 1},
		"partition":      {Partition: 64, Partitions: 64, Bucket: "b", Limit: 1},
		"no bucket":      {Partitions: 64, Limit: 1},
		"no limit":       {Partitions: 64, Bucket: "b"},
		"cursor outside": {Partition: 1, Partitions: 64, Bucket: "b", Limit: 1, After: []byte("zzz")},
	} {
		if e := askListKeys(t, w, "n1", req).GetError(); e == nil || e.Code != string(core.CodeBadRequest) {
			t.Errorf("%s: answered %v, want a bad request", name, e)
		}
	}
}
