package transport

import (
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/quorumkv/quorumkv/internal/transport/pb"
)

// Decoding of received envelopes, with a fast path for the messages of every quorum read
// and write (GetRequest, GetResponse, ReplicateRequest, ReplicateResponse).
//
// proto.Unmarshal of a ReplicateRequest allocates six times: the Envelope, the oneof
// wrapper, the request, and one allocation per string or bytes field. The fast path makes
// the three structs one allocation (a receiver that keeps only the request keeps the
// other two alive with it, about 200 bytes) and the string fields one more (a
// single string that the fields slice), and gives each bytes field its own allocation as
// proto.Unmarshal does, so a small key kept by its receiver never pins a large object.
//
// Invariant: the fast path accepts exactly the inputs it decodes the way proto.Unmarshal
// does (the same field values; proto.Equal holds, as FuzzDecodeEnvelope checks). Anything
// else — a field it does not know, a wire type other than the expected one, a body field
// seen twice (proto merges those), invalid UTF-8 in a string, a malformed varint —
// makes it give up, and proto.Unmarshal decodes the envelope (or returns the error).
// Nothing it decodes aliases the input.

// unmarshalEnvelope decodes one envelope; it owns no part of b.
func unmarshalEnvelope(b []byte) (*pb.Envelope, error) {
	if e := decodeHot(b); e != nil {
		return e, nil
	}
	e := new(pb.Envelope)
	if err := proto.Unmarshal(b, e); err != nil {
		return nil, err
	}
	return e, nil
}

// Envelope field numbers of the bodies decodeHot knows (internode.proto).
const (
	fieldID            = 1
	fieldGet           = 10
	fieldGetResp       = 11
	fieldReplicate     = 12
	fieldReplicateResp = 13
)

// decodeHot decodes an envelope of id and at most one body of the four hot kinds, or
// returns nil when b is anything else.
func decodeHot(b []byte) *pb.Envelope {
	var (
		id      uint64
		bodyNum protowire.Number
		body    []byte
	)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil
		}
		b = b[n:]
		switch {
		case num == fieldID && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil
			}
			id, b = v, b[n:] // a repeated scalar: the last one wins, as in proto
		case num >= fieldGet && num <= fieldReplicateResp && typ == protowire.BytesType:
			if bodyNum != 0 {
				return nil // a second body: proto merges or replaces; leave it to proto
			}
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil
			}
			bodyNum, body, b = num, v, b[n:]
		default:
			return nil
		}
	}
	switch bodyNum {
	case 0:
		return &pb.Envelope{Id: id}
	case fieldGet:
		return decodeGet(id, body)
	case fieldGetResp:
		return decodeGetResp(id, body)
	case fieldReplicate:
		return decodeReplicate(id, body)
	case fieldReplicateResp:
		return decodeReplicateResp(id, body)
	}
	return nil
}

// The hot envelopes, each one allocation: the envelope, its oneof wrapper and its body.
type (
	getEnvelope struct {
		env  pb.Envelope
		body pb.Envelope_Get
		msg  pb.GetRequest
	}
	getRespEnvelope struct {
		env  pb.Envelope
		body pb.Envelope_GetResp
		msg  pb.GetResponse
	}
	replicateEnvelope struct {
		env  pb.Envelope
		body pb.Envelope_Replicate
		msg  pb.ReplicateRequest
	}
	replicateRespEnvelope struct {
		env  pb.Envelope
		body pb.Envelope_ReplicateResp
		msg  pb.ReplicateResponse
	}
)

// fields holds the raw values of one message's fields, by field number (1..7 are all the
// hot messages use); a field seen twice keeps its last value, as in proto.
type fields struct {
	raw [8][]byte // bytes fields
	num [8]uint64 // varint fields
}

// kind is what a hot message's field holds: its wire type, and for a string, that it must
// be valid UTF-8.
type kind uint8

const (
	kindNone kind = iota
	kindVarint
	kindBytes
	kindString
)

// scan reads b's fields into f. kinds[i] is field i's kind; a field out of range, of
// another wire type, or a string that is not valid UTF-8 (proto refuses those in proto3,
// each occurrence, even one a later occurrence replaces) fails the scan.
func (f *fields) scan(b []byte, kinds []kind) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num <= 0 || int(num) >= len(kinds) {
			return false
		}
		b = b[n:]
		switch k := kinds[num]; {
		case k == kindVarint && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			f.num[num], b = v, b[n:]
		case (k == kindBytes || k == kindString) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || (k == kindString && !utf8.Valid(v)) {
				return false
			}
			f.raw[num], b = v, b[n:]
		default:
			return false
		}
	}
	return true
}

// strings returns the string fields idx of f as strings sharing one allocation.
func (f *fields) strings(idx ...int) [8]string {
	var out [8]string
	total := 0
	for _, i := range idx {
		total += len(f.raw[i])
	}
	if total == 0 {
		return out
	}
	var sb strings.Builder
	sb.Grow(total)
	for _, i := range idx {
		sb.Write(f.raw[i])
	}
	all := sb.String()
	off := 0
	for _, i := range idx {
		out[i] = all[off : off+len(f.raw[i])]
		off += len(f.raw[i])
	}
	return out
}

// bytesField copies a bytes field as proto.Unmarshal does (nil when empty).
func bytesField(b []byte) []byte { return append([]byte(nil), b...) }

var (
	// GetRequest: bucket, key, hint_for.
	getKinds = []kind{kindNone, kindString, kindString, kindString}
	// GetResponse: found, object, hlc_wall, hlc_logical.
	getRespKinds = []kind{kindNone, kindVarint, kindBytes, kindVarint, kindVarint}
	// ReplicateRequest: bucket, key, object, sync, hlc_wall, hlc_logical, hint_for.
	replicateKinds = []kind{kindNone, kindString, kindString, kindBytes, kindVarint, kindVarint, kindVarint, kindString}
	// ReplicateResponse: durable.
	replicateRespKinds = []kind{kindNone, kindVarint}
)

func decodeGet(id uint64, b []byte) *pb.Envelope {
	var f fields
	if !f.scan(b, getKinds) {
		return nil
	}
	s := f.strings(1, 2, 3)
	e := &getEnvelope{}
	e.msg.Bucket, e.msg.Key, e.msg.HintFor = s[1], s[2], s[3]
	e.body.Get = &e.msg
	e.env.Id, e.env.Body = id, &e.body
	return &e.env
}

func decodeGetResp(id uint64, b []byte) *pb.Envelope {
	var f fields
	if !f.scan(b, getRespKinds) {
		return nil
	}
	e := &getRespEnvelope{}
	e.msg.Found = f.num[1] != 0
	e.msg.Object = bytesField(f.raw[2])
	e.msg.HlcWall = int64(f.num[3])
	e.msg.HlcLogical = uint32(f.num[4])
	e.body.GetResp = &e.msg
	e.env.Id, e.env.Body = id, &e.body
	return &e.env
}

func decodeReplicate(id uint64, b []byte) *pb.Envelope {
	var f fields
	if !f.scan(b, replicateKinds) {
		return nil
	}
	s := f.strings(1, 2, 7)
	e := &replicateEnvelope{}
	e.msg.Bucket, e.msg.Key, e.msg.HintFor = s[1], s[2], s[7]
	e.msg.Object = bytesField(f.raw[3])
	e.msg.Sync = f.num[4] != 0
	e.msg.HlcWall = int64(f.num[5])
	e.msg.HlcLogical = uint32(f.num[6])
	e.body.Replicate = &e.msg
	e.env.Id, e.env.Body = id, &e.body
	return &e.env
}

func decodeReplicateResp(id uint64, b []byte) *pb.Envelope {
	var f fields
	if !f.scan(b, replicateRespKinds) {
		return nil
	}
	e := &replicateRespEnvelope{}
	e.msg.Durable = f.num[1] != 0
	e.body.ReplicateResp = &e.msg
	e.env.Id, e.env.Body = id, &e.body
	return &e.env
}
