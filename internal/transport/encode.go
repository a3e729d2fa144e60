package transport

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/quorumkv/quorumkv/internal/transport/pb"
)

// Encoding of sent envelopes, with a fast path for the messages of every quorum read and
// write (GetRequest, GetResponse, ReplicateRequest, ReplicateResponse), the counterpart of
// decodeHot.
//
// proto.Size and proto.MarshalAppend walk a message through its reflection tables: about
// a twentieth of each node's CPU under a Redis SET load went to sizing and encoding these
// four (docs/benchmarks.md). The fast path writes their fields directly.
//
// Invariant: for an envelope it takes, the fast path gives exactly proto.Marshal's bytes
// (fields in number order, zero values left out, as proto3 does; FuzzEncodeEnvelope
// checks it). It takes only envelopes of those four bodies whose strings are valid UTF-8;
// anything else, including a string proto would refuse, goes through proto. Envelopes
// this program builds carry no unknown fields, which the fast path would leave out.

// hotBody returns e's body when it is one of the four hot kinds (with every string valid
// UTF-8, when asked to check), its envelope field number and its encoded size; nil when
// proto must encode e.
func hotBody(e *pb.Envelope, check bool) (body any, field protowire.Number, size int) {
	switch b := e.Body.(type) {
	case *pb.Envelope_Get:
		m := b.Get
		if m == nil || check && !validStrings(m.Bucket, m.Key, m.HintFor) {
			return nil, 0, 0
		}
		return m, fieldGet, sizeString(1, m.Bucket) + sizeString(2, m.Key) + sizeString(3, m.HintFor)
	case *pb.Envelope_GetResp:
		m := b.GetResp
		if m == nil {
			return nil, 0, 0
		}
		return m, fieldGetResp, sizeBool(1, m.Found) + sizeBytes(2, m.Object) + sizeVarint(3, uint64(m.HlcWall)) + sizeVarint(4, uint64(m.HlcLogical))
	case *pb.Envelope_Replicate:
		m := b.Replicate
		if m == nil || check && !validStrings(m.Bucket, m.Key, m.HintFor) {
			return nil, 0, 0
		}
		return m, fieldReplicate, sizeString(1, m.Bucket) + sizeString(2, m.Key) + sizeBytes(3, m.Object) + sizeBool(4, m.Sync) +
			sizeVarint(5, uint64(m.HlcWall)) + sizeVarint(6, uint64(m.HlcLogical)) + sizeString(7, m.HintFor)
	case *pb.Envelope_ReplicateResp:
		m := b.ReplicateResp
		if m == nil {
			return nil, 0, 0
		}
		return m, fieldReplicateResp, sizeBool(1, m.Durable)
	}
	return nil, 0, 0
}

// hotSize is e's encoded size through the fast path; ok false when proto must encode e.
func hotSize(e *pb.Envelope) (size int, ok bool) {
	body, field, n := hotBody(e, true)
	if body == nil {
		return 0, false
	}
	return sizeVarint(fieldID, e.Id) + protowire.SizeTag(field) + protowire.SizeBytes(n), true
}

// appendHot appends e's encoding; e is one hotSize took.
func appendHot(buf []byte, e *pb.Envelope) []byte {
	body, field, n := hotBody(e, false)
	buf = appendVarint(buf, fieldID, e.Id)
	buf = protowire.AppendTag(buf, field, protowire.BytesType)
	buf = protowire.AppendVarint(buf, uint64(n))
	switch m := body.(type) {
	case *pb.GetRequest:
		buf = appendString(buf, 1, m.Bucket)
		buf = appendString(buf, 2, m.Key)
		buf = appendString(buf, 3, m.HintFor)
	case *pb.GetResponse:
		buf = appendBool(buf, 1, m.Found)
		buf = appendBytes(buf, 2, m.Object)
		buf = appendVarint(buf, 3, uint64(m.HlcWall))
		buf = appendVarint(buf, 4, uint64(m.HlcLogical))
	case *pb.ReplicateRequest:
		buf = appendString(buf, 1, m.Bucket)
		buf = appendString(buf, 2, m.Key)
		buf = appendBytes(buf, 3, m.Object)
		buf = appendBool(buf, 4, m.Sync)
		buf = appendVarint(buf, 5, uint64(m.HlcWall))
		buf = appendVarint(buf, 6, uint64(m.HlcLogical))
		buf = appendString(buf, 7, m.HintFor)
	case *pb.ReplicateResponse:
		buf = appendBool(buf, 1, m.Durable)
	}
	return buf
}

func validStrings(a, b, c string) bool {
	return utf8.ValidString(a) && utf8.ValidString(b) && utf8.ValidString(c)
}

func sizeString(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s))
}

func sizeBytes(num protowire.Number, b []byte) int {
	if len(b) == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(b))
}

func sizeVarint(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

func sizeBool(num protowire.Number, b bool) int {
	if !b {
		return 0
	}
	return protowire.SizeTag(num) + 1
}

func appendString(buf []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return buf
	}
	return protowire.AppendString(protowire.AppendTag(buf, num, protowire.BytesType), s)
}

func appendBytes(buf []byte, num protowire.Number, b []byte) []byte {
	if len(b) == 0 {
		return buf
	}
	return protowire.AppendBytes(protowire.AppendTag(buf, num, protowire.BytesType), b)
}

func appendVarint(buf []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return buf
	}
	return protowire.AppendVarint(protowire.AppendTag(buf, num, protowire.VarintType), v)
}

func appendBool(buf []byte, num protowire.Number, b bool) []byte {
	if !b {
		return buf
	}
	return protowire.AppendVarint(protowire.AppendTag(buf, num, protowire.VarintType), 1)
}
