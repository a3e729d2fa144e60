package core_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/crdt"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
)

// forwardTo steps a CoordPutRequest from n1 into the coordinator and runs the write; the
// answer goes back to n1, which asked nothing and drops it.
func forwardTo(w *world, coord string, req *pb.CoordPutRequest) {
	w.nextReq++
	w.step(w.node(coord), core.PeerRequest{From: "n1", ID: 1<<40 + w.nextReq, Env: &pb.Envelope{Body: &pb.Envelope_CoordPut{CoordPut: req}}})
	w.run(100 * time.Millisecond)
}

// TestForwardedExpiryForms: a coordinator reads a forwarded write's expiry from the
// message's fields, and, for one release, from the reserved metadata entries nodes of the
// previous release sent instead (a rolling upgrade must not drop their TTLs). A forwarded
// write with a bad expiry, or with it in both forms, changes nothing.
func TestForwardedExpiryForms(t *testing.T) {
	w := newWorld(t, 3, fixedBuckets{}, nil)
	expires := func(key string) (int64, bool) {
		t.Helper()
		obj, _, err := w.node("n2").core.Local("b", key)
		if err != nil {
			t.Fatal(err)
		}
		if len(obj.Siblings) != 1 {
			return 0, false
		}
		return obj.Siblings[0].Expires - baseWall, true
	}
	legacyTTL := []*pb.MetaEntry{{Key: "\x00expiry", Value: "2:60000"}, {Key: "a", Value: "client"}}
	forwardTo(w, "n2", &pb.CoordPutRequest{Bucket: "b", Key: "new", Value: []byte("v"),
		ExpiryMode: pb.ExpiryMode_EXPIRY_MODE_TTL, TtlMs: 60_000})
	forwardTo(w, "n2", &pb.CoordPutRequest{Bucket: "b", Key: "old", Value: []byte("v"), Meta: legacyTTL})
	for _, key := range []string{"new", "old"} {
		if e, ok := expires(key); !ok || e < 60_000 || e > 61_000 {
			t.Errorf("%s form: stored expiry %d ms from the start (stored: %v), want about 60000", key, e, ok)
		}
	}
	obj, _, _ := w.node("n2").core.Local("b", "old")
	if m := obj.Siblings[0].Meta; len(m) != 1 || m[0].Key != "a" {
		t.Errorf("old form: stored metadata %v, want the client's entry alone", m)
	}

	// An old node's touch (Redis EXPIRE) of a register.
	v := "x"
	w.request("set", "n2", core.ClientRequest{Op: core.OpCRDT, Bucket: "b", Key: "reg",
		CRDT: &core.CRDTOp{Type: crdt.Register, Op: crdt.Op{Assign: &v}}})
	w.run(100 * time.Millisecond)
	forwardTo(w, "n2", &pb.CoordPutRequest{Bucket: "b", Key: "reg", CrdtType: "register", CrdtOpJson: []byte("{}"),
		Meta: []*pb.MetaEntry{{Key: "\x00expiry", Value: "2:5000"}, {Key: "\x00touch", Value: "1"}}})
	if e, ok := expires("reg"); !ok || e < 5_000 || e > 6_000 {
		t.Errorf("old form touch: stored expiry %d ms from the start (stored: %v), want about 5000", e, ok)
	}

	bad := map[string]*pb.CoordPutRequest{
		"unknown mode":   {ExpiryMode: 9},
		"ttl without it": {ExpiryMode: pb.ExpiryMode_EXPIRY_MODE_NEVER, TtlMs: 5},
		"ttl of zero":    {ExpiryMode: pb.ExpiryMode_EXPIRY_MODE_TTL},
		"negative ttl":   {ExpiryMode: pb.ExpiryMode_EXPIRY_MODE_TTL, TtlMs: -1},
		"both forms":     {ExpiryMode: pb.ExpiryMode_EXPIRY_MODE_TTL, TtlMs: 5, Meta: legacyTTL},
		"bad old form":   {Meta: []*pb.MetaEntry{{Key: "\x00expiry", Value: "2:x"}}},
		"unknown old":    {Meta: []*pb.MetaEntry{{Key: "\x00what", Value: "1"}}},
	}
	for name, req := range bad {
		req.Bucket, req.Key, req.Value = "b", "bad", []byte("v")
		forwardTo(w, "n2", req)
		if _, ok := expires("bad"); ok {
			t.Errorf("%s: the write was stored", name)
		}
	}
}

// TestForwardedTypeMismatch: a CRDT operation that meets a map field of another type fails
// with crdt.ErrTypeMismatch (and ErrBadRequest) at the node the client asked, also when
// that node forwarded it and the error came back over the wire (Error.cause). n1 is not a
// primary of key c: the operations are forwarded.
func TestForwardedTypeMismatch(t *testing.T) {
	w := newWorld(t, 5, fixedBuckets{}, nil)
	v, one := "text", int64(1)
	w.request("hset", "n1", core.ClientRequest{Op: core.OpCRDT, Bucket: "b", Key: "c", CRDT: &core.CRDTOp{Type: crdt.Map,
		Op: crdt.Op{Update: map[string]crdt.FieldOp{"f": {Type: crdt.Register, Op: crdt.Op{Assign: &v}}}}}})
	w.run(100 * time.Millisecond)
	if r := w.replies["hset"]; r == nil || r.Err != nil {
		t.Fatalf("HSET: %+v", r)
	}
	w.request("hincrby", "n1", core.ClientRequest{Op: core.OpCRDT, Bucket: "b", Key: "c", CRDT: &core.CRDTOp{Type: crdt.Map,
		Op: crdt.Op{Update: map[string]crdt.FieldOp{"f": {Type: crdt.Counter, Op: crdt.Op{Increment: &one}}}}}})
	w.run(100 * time.Millisecond)
	r := w.replies["hincrby"]
	if r == nil {
		t.Fatal("HINCRBY: no reply")
	}
	if !errors.Is(r.Err, crdt.ErrTypeMismatch) || !errors.Is(r.Err, core.ErrBadRequest) {
		t.Fatalf("HINCRBY of a register field: %v, want a bad request with crdt.ErrTypeMismatch", r.Err)
	}
	if w.counts[core.CountForward] != 2 {
		t.Fatalf("%d writes forwarded, want 2: the test exercised nothing", w.counts[core.CountForward])
	}
}

// TestRemoteErrorOf: an error answer keeps its code's error, and its cause's.
func TestRemoteErrorOf(t *testing.T) {
	env := core.ErrorEnvelope(fmt.Errorf("%w: field: %w", core.ErrBadRequest, crdt.ErrTypeMismatch))
	err := core.RemoteErrorOf(env.GetError())
	if !errors.Is(err, core.ErrBadRequest) || !errors.Is(err, crdt.ErrTypeMismatch) {
		t.Fatalf("%v: lost its code or cause", err)
	}
	err = core.RemoteErrorOf(core.ErrorEnvelope(fmt.Errorf("%w: no", core.ErrWrongType)).GetError())
	if !errors.Is(err, core.ErrWrongType) || errors.Is(err, crdt.ErrTypeMismatch) {
		t.Fatalf("%v: want a wrong type without a cause", err)
	}
	if err := core.RemoteErrorOf(&pb.Error{Code: "bad_request", Message: "m", Cause: "from a later version"}); !errors.Is(err, core.ErrBadRequest) {
		t.Fatalf("an unknown cause: %v, want the code's error", err)
	}
}
