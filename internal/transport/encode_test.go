package transport

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/quorumkv/quorumkv/internal/transport/pb"
)

// TestEncodeHotTakesTheFastPath: the hot kinds are encoded by the fast path, to proto's
// very bytes and size; other bodies, and a string proto refuses, are left to proto.
func TestEncodeHotTakesTheFastPath(t *testing.T) {
	for _, e := range hotEnvelopes() {
		size, ok := hotSize(e)
		if ok != (e.Body != nil) { // every body of hotEnvelopes is a hot kind

			t.Errorf("%v: fast path %v", e, ok)
			continue
		}
		if !ok {
			continue
		}
		want := marshal(t, e)
		if got := appendHot(nil, e); !bytes.Equal(got, want) || size != len(want) {
			t.Errorf("%v: fast path gave %x (size %d), proto %x", e, got, size, want)
		}
	}
	for _, e := range []*pb.Envelope{
		{Id: 5, Body: &pb.Envelope_Error{Error: &pb.Error{Message: "no"}}},
		{Id: 6, Body: &pb.Envelope_Replicate{Replicate: &pb.ReplicateRequest{Key: "\xff"}}},
		{Id: 7, Body: &pb.Envelope_Get{Get: &pb.GetRequest{HintFor: "\xc3"}}},
		{Id: 8, Body: &pb.Envelope_Get{}},
	} {
		if _, ok := hotSize(e); ok {
			t.Errorf("%v: taken by the fast path", e)
		}
	}
	// A frame of hot and other envelopes reads back as what was sent.
	envs := append(hotEnvelopes(), sampleEnvelopes()...)
	frame := encodeFrame(t, nil, envs)
	var back []*pb.Envelope
	if err := decodeBatch(frame[frameHeaderLen:], func(e *pb.Envelope) { back = append(back, e) }); err != nil {
		t.Fatal(err)
	}
	for i := range envs {
		if !proto.Equal(envs[i], back[i]) {
			t.Fatalf("envelope %d: sent %v, read %v", i, envs[i], back[i])
		}
	}
}

// FuzzEncodeEnvelope: whatever hot envelope proto decodes from the input, the fast path
// encodes to proto.Marshal's bytes, or leaves to proto one that proto refuses to encode.
func FuzzEncodeEnvelope(f *testing.F) {
	for _, s := range fastPathSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e := new(pb.Envelope)
		if proto.Unmarshal(b, e) != nil {
			return
		}
		e.ProtoReflect().SetUnknown(nil) // ours never carry any
		if m := e.GetGet(); m != nil {
			m.ProtoReflect().SetUnknown(nil)
		}
		if m := e.GetGetResp(); m != nil {
			m.ProtoReflect().SetUnknown(nil)
		}
		if m := e.GetReplicate(); m != nil {
			m.ProtoReflect().SetUnknown(nil)
		}
		if m := e.GetReplicateResp(); m != nil {
			m.ProtoReflect().SetUnknown(nil)
		}
		want, werr := proto.MarshalOptions{Deterministic: true}.Marshal(e)
		size, ok := hotSize(e)
		if !ok {
			return
		}
		if werr != nil {
			t.Fatalf("fast path took %v, which proto refuses: %v", e, werr)
		}
		if got := appendHot(nil, e); !bytes.Equal(got, want) || size != len(want) {
			t.Fatalf("%v: fast path gave %x (size %d), proto %x", e, got, size, want)
		}
	})
}
