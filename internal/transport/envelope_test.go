package transport

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/quorumkv/quorumkv/internal/transport/pb"
)

// hotEnvelopes are messages of the four kinds the fast path decodes, with every field set
// and with none.
func hotEnvelopes() []*pb.Envelope {
	return []*pb.Envelope{
		{Id: 7, Body: &pb.Envelope_Get{Get: &pb.GetRequest{Bucket: "b", Key: "k", HintFor: "n2"}}},
		{Id: 8, Body: &pb.Envelope_Get{Get: &pb.GetRequest{}}},
		{Id: 9, Body: &pb.Envelope_GetResp{GetResp: &pb.GetResponse{Found: true, Object: []byte("obj"), HlcWall: -5, HlcLogical: 1<<32 - 1}}},
		{Body: &pb.Envelope_GetResp{GetResp: &pb.GetResponse{}}},
		{Id: 1 << 63, Body: &pb.Envelope_Replicate{Replicate: &pb.ReplicateRequest{Bucket: "redis", Key: "ключ", Object: bytes.Repeat([]byte{7}, 300),
			Sync: true, HlcWall: 1 << 40, HlcLogical: 3, HintFor: "n3"}}},
		{Id: 2, Body: &pb.Envelope_Replicate{Replicate: &pb.ReplicateRequest{}}},
		{Id: 3, Body: &pb.Envelope_ReplicateResp{ReplicateResp: &pb.ReplicateResponse{Durable: true}}},
		{Id: 4, Body: &pb.Envelope_ReplicateResp{ReplicateResp: &pb.ReplicateResponse{}}},
		{Id: 5},
		{},
	}
}

func marshal(t testing.TB, e *pb.Envelope) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecodeHotTakesTheFastPath: the hot kinds are decoded by the fast path, to what was
// encoded, owning their bytes.
func TestDecodeHotTakesTheFastPath(t *testing.T) {
	for _, want := range hotEnvelopes() {
		b := marshal(t, want)
		got := decodeHot(b)
		if got == nil {
			t.Errorf("%v: not decoded by the fast path", want)
			continue
		}
		if !proto.Equal(got, want) {
			t.Errorf("fast path: got %v, want %v", got, want)
		}
		clear(b)
		if !proto.Equal(got, want) {
			t.Errorf("%v: the decoded envelope aliases its input", want)
		}
	}
	// Other kinds go to proto.Unmarshal.
	for _, e := range sampleEnvelopes() {
		if _, hot := e.Body.(*pb.Envelope_Error); hot && decodeHot(marshal(t, e)) != nil {
			t.Errorf("%v: decoded by the fast path", e)
		}
	}
}

// fastPathSeeds are envelope encodings the fast path must give up on, or decode exactly as
// proto.Unmarshal does: repeated fields, unknown fields, wrong wire types, invalid UTF-8,
// bodies seen twice, truncations.
func fastPathSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, e := range hotEnvelopes() {
		seeds = append(seeds, marshal(t, e))
	}
	get := func(inner []byte) []byte {
		b := protowire.AppendTag(nil, fieldID, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
		b = protowire.AppendTag(b, fieldGet, protowire.BytesType)
		return protowire.AppendBytes(b, inner)
	}
	str := func(b []byte, num protowire.Number, s string) []byte {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendString(b, s)
	}
	repl := marshal(t, hotEnvelopes()[4])
	seeds = append(seeds,
		get(str(str(nil, 2, "first"), 2, "second")),                                       // a string twice: the last wins
		get(str(nil, 2, "\xff\xfe")),                                                      // invalid UTF-8: proto refuses it
		get(str(str(nil, 2, "\xe8"), 2, "k")),                                             // invalid UTF-8, then a valid value: still refused
		get(str(nil, 9, "unknown")),                                                       // an unknown field: kept by proto
		get(protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 1)), // wrong wire type
		append(get(str(nil, 1, "b")), get(str(nil, 2, "k"))...),                           // the body twice: proto merges
		append(marshal(t, hotEnvelopes()[0]), marshal(t, hotEnvelopes()[6])...),           // two bodies
		repl[:len(repl)-1], // truncated
		append(append([]byte{}, repl...), 0x08, 0x80),                            // a truncated varint
		[]byte{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, // an overflowing varint
		[]byte{0x00},                   // field number 0
		[]byte{0x62, 0x02, 0x20, 0x02}, // replicate.sync = 2 reads as true
		[]byte{0x5a, 0x02, 0x20, 0x01}, // get_resp field 4 (hlc_logical) = 1
		[]byte{0x5a, 0x03, 0x18, 0xff, 0x01},
	)
	return seeds
}

// FuzzDecodeEnvelope: the fast path decodes exactly what proto.Unmarshal decodes, and
// unmarshalEnvelope fails exactly when proto.Unmarshal does.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, s := range fastPathSeeds(f) {
		f.Add(s)
	}
	// A forwarded write with every field (proto's path): a binary CRDT operation with a
	// nested map field, an expiry, a touch, metadata.
	one := int64(3)
	f.Add(marshal(f, &pb.Envelope{Id: 9, Body: &pb.Envelope_CoordPut{CoordPut: &pb.CoordPutRequest{
		Bucket: "b", Key: "k", Value: []byte{0xff, 0}, W: "2", TimeoutMs: 500, CrdtType: "map", ReplaceType: true,
		Meta: []*pb.MetaEntry{{Key: "m", Value: "v"}}, ExpiryMode: pb.ExpiryMode_EXPIRY_MODE_TTL, TtlMs: 60000, Touch: true,
		Crdt: &pb.CrdtOp{Increment: &one, Add: [][]byte{{0xff, 0xfe}}, Remove: [][]byte{{0}}, Context: []byte{1, 2},
			Update: []*pb.CrdtFieldOp{{Name: []byte{0xe8}, Type: "set", Replace: true, Op: &pb.CrdtOp{Add: [][]byte{{0x80}}}}}},
	}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		want := new(pb.Envelope)
		werr := proto.Unmarshal(b, want)
		if hot := decodeHot(b); hot != nil {
			if werr != nil {
				t.Fatalf("fast path accepted what proto refuses (%v): %v", werr, hot)
			}
			if !proto.Equal(hot, want) {
				t.Fatalf("fast path decoded %v, proto %v", hot, want)
			}
		}
		got, err := unmarshalEnvelope(b)
		if (err != nil) != (werr != nil) {
			t.Fatalf("unmarshalEnvelope error %v, proto's %v", err, werr)
		}
		if err == nil && !proto.Equal(got, want) {
			t.Fatalf("unmarshalEnvelope decoded %v, proto %v", got, want)
		}
	})
}
