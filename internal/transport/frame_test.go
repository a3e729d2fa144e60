package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/quorumkv/quorumkv/internal/transport/pb"
)

func sampleEnvelopes() []*pb.Envelope {
	return []*pb.Envelope{
		{Id: 1, Body: &pb.Envelope_Get{Get: &pb.GetRequest{Bucket: "b", Key: "k"}}},
		{Id: 2, Body: &pb.Envelope_Replicate{Replicate: &pb.ReplicateRequest{Bucket: "b", Key: "k", Object: bytes.Repeat([]byte{7}, 300), HlcWall: 123, Sync: true}}},
		{Id: 1 << 40, Body: &pb.Envelope_GetResp{GetResp: &pb.GetResponse{Found: true, Object: []byte("obj")}}},
		{Id: 4},
		{Id: 5, Body: &pb.Envelope_Error{Error: &pb.Error{Message: "no", Code: "bad_request"}}},
	}
}

// encodeFrame is what the writers do: envelopes appended one by one into one frame.
func encodeFrame(t testing.TB, buf []byte, envs []*pb.Envelope) []byte {
	t.Helper()
	buf, start := beginFrame(buf)
	for _, e := range envs {
		var err error
		size, hot := envelopeBytes(e)
		if buf, err = appendEnvelope(buf, e, size, hot); err != nil {
			t.Fatal(err)
		}
	}
	return endFrame(buf, start)
}

// TestFrameIsABatch: a frame's payload is byte for byte proto.Marshal of the Batch, so any
// protobuf implementation reads it; and it decodes back to the same envelopes.
func TestFrameIsABatch(t *testing.T) {
	envs := sampleEnvelopes()
	frame := encodeFrame(t, nil, envs)
	want, err := proto.MarshalOptions{Deterministic: true}.Marshal(&pb.Batch{Msgs: envs})
	if err != nil {
		t.Fatal(err)
	}
	if n := binary.BigEndian.Uint32(frame); int(n) != len(frame)-frameHeaderLen {
		t.Fatalf("header says %d, payload is %d", n, len(frame)-frameHeaderLen)
	}
	if !bytes.Equal(frame[frameHeaderLen:], want) {
		t.Fatalf("frame payload differs from the marshalled Batch:\n%x\n%x", frame[frameHeaderLen:], want)
	}
	payload, err := readFrame(bufio.NewReader(bytes.NewReader(frame)), nil, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var got []*pb.Envelope
	if err := decodeBatch(payload, func(e *pb.Envelope) { got = append(got, e) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(envs) {
		t.Fatalf("decoded %d envelopes, want %d", len(got), len(envs))
	}
	for i := range envs {
		if !proto.Equal(got[i], envs[i]) {
			t.Errorf("envelope %d: got %v, want %v", i, got[i], envs[i])
		}
	}
	// Decoded envelopes own their bytes: reusing the read buffer changes nothing.
	clear(payload)
	if !proto.Equal(got[1], envs[1]) {
		t.Error("a decoded envelope aliases the read buffer")
	}
}

func TestReadFrameLimitsAndTruncation(t *testing.T) {
	frame := encodeFrame(t, nil, sampleEnvelopes())
	payloadLen := len(frame) - frameHeaderLen
	if _, err := readFrame(bufio.NewReader(bytes.NewReader(frame)), nil, payloadLen-1); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("frame one byte over the limit: %v, want ErrFrameTooLarge", err)
	}
	if _, err := readFrame(bufio.NewReader(bytes.NewReader(frame)), nil, payloadLen); err != nil {
		t.Errorf("frame at the limit: %v", err)
	}
	huge := []byte{0xff, 0xff, 0xff, 0xff}
	if _, err := readFrame(bufio.NewReader(bytes.NewReader(huge)), nil, 256<<20); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("4 GiB header: %v, want ErrFrameTooLarge", err)
	}
	if _, err := readFrame(bufio.NewReader(bytes.NewReader(frame[:len(frame)-1])), nil, 1<<20); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated frame: %v, want io.ErrUnexpectedEOF", err)
	}
	if _, err := readFrame(bufio.NewReader(bytes.NewReader(nil)), nil, 1<<20); !errors.Is(err, io.EOF) {
		t.Errorf("no frame: %v, want io.EOF", err)
	}
}

func TestDecodeBatchRejectsMalformed(t *testing.T) {
	good := encodeFrame(t, nil, sampleEnvelopes())[frameHeaderLen:]
	for name, payload := range map[string][]byte{
		"truncated":           good[:len(good)-1],
		"length past the end": {0x0a, 0x05, 0x08},
		"bad tag":             {0xff},
		"envelope not proto":  {0x0a, 0x02, 0xff, 0xff},
		"group wire type":     {0x0b},
		"bad varint":          {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	} {
		if err := decodeBatch(payload, func(*pb.Envelope) {}); !errors.Is(err, ErrMalformedFrame) {
			t.Errorf("%s: %v, want ErrMalformedFrame", name, err)
		}
	}
	// An unknown field (a later version's) is skipped.
	withUnknown := append([]byte{0x10, 0x01}, good...)
	n := 0
	if err := decodeBatch(withUnknown, func(*pb.Envelope) { n++ }); err != nil || n != len(sampleEnvelopes()) {
		t.Errorf("unknown field: %d envelopes, %v", n, err)
	}
}

func TestHello(t *testing.T) {
	h := appendHello(nil, "n1")
	payload, err := readFrame(bufio.NewReader(bytes.NewReader(h)), nil, maxHelloBytes)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := parseHello(payload); err != nil || id != "n1" {
		t.Fatalf("hello: %q %v", id, err)
	}
	for _, bad := range [][]byte{nil, []byte(helloMagic), []byte("QKVI\x02n1"), []byte("\x16\x03\x01\x02\x00")} {
		if _, err := parseHello(bad); !errors.Is(err, ErrMalformedFrame) {
			t.Errorf("hello %q: %v", bad, err)
		}
	}
	ok := appendHelloAnswer(nil, nil)
	if err := parseHelloAnswer(ok[frameHeaderLen:]); err != nil {
		t.Errorf("accepted: %v", err)
	}
	no := appendHelloAnswer(nil, errWrongNode)
	if err := parseHelloAnswer(no[frameHeaderLen:]); !errors.Is(err, errRefused) || !bytes.Contains([]byte(err.Error()), []byte("does not name")) {
		t.Errorf("refused: %v", err)
	}
}

// FuzzFrameDecoder: whatever bytes arrive, the decoder returns envelopes or an error and
// never panics or allocates past the limit; what it accepts re-encodes to a frame that
// decodes to the same envelopes.
func FuzzFrameDecoder(f *testing.F) {
	f.Add(encodeFrame(f, nil, sampleEnvelopes()))
	f.Add(encodeFrame(f, nil, nil))
	f.Add(encodeFrame(f, nil, hotEnvelopes()))
	f.Add([]byte{0, 0, 0, 2, 0x0a, 0x00})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add(appendHello(nil, "n1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 1 << 16
		r := bufio.NewReader(bytes.NewReader(data))
		var buf []byte
		for {
			payload, err := readFrame(r, buf, limit)
			if err != nil {
				return
			}
			if cap(payload) > limit {
				t.Fatalf("buffer grew to %d past the limit %d", cap(payload), limit)
			}
			buf = payload
			_, _ = parseHello(payload)
			_ = parseHelloAnswer(payload)
			var envs []*pb.Envelope
			if err := decodeBatch(payload, func(e *pb.Envelope) { envs = append(envs, e) }); err != nil {
				if !errors.Is(err, ErrMalformedFrame) {
					t.Fatalf("decode error not ErrMalformedFrame: %v", err)
				}
				continue
			}
			again := encodeFrame(t, nil, envs)
			var back []*pb.Envelope
			if err := decodeBatch(again[frameHeaderLen:], func(e *pb.Envelope) { back = append(back, e) }); err != nil {
				t.Fatalf("re-encoded frame does not decode: %v", err)
			}
			if len(back) != len(envs) {
				t.Fatalf("re-encoded %d envelopes, decoded %d", len(envs), len(back))
			}
			for i := range envs {
				if !proto.Equal(envs[i], back[i]) {
					t.Fatalf("envelope %d changed in a round trip: %v vs %v", i, envs[i], back[i])
				}
			}
		}
	})
}

func BenchmarkEncodeFrame(b *testing.B) {
	envs := []*pb.Envelope{}
	for i := range 16 {
		envs = append(envs, &pb.Envelope{Id: uint64(i), Body: &pb.Envelope_Replicate{Replicate: &pb.ReplicateRequest{
			Bucket: "redis", Key: "key:000000012345", Object: bytes.Repeat([]byte{1}, 160), HlcWall: 1 << 40}}})
	}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = encodeFrame(b, buf[:0], envs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(envs)), "ns/msg")
}

func BenchmarkDecodeFrame(b *testing.B) {
	envs := []*pb.Envelope{}
	for i := range 16 {
		envs = append(envs, &pb.Envelope{Id: uint64(i), Body: &pb.Envelope_Replicate{Replicate: &pb.ReplicateRequest{
			Bucket: "redis", Key: "key:000000012345", Object: bytes.Repeat([]byte{1}, 160), HlcWall: 1 << 40}}})
	}
	payload := encodeFrame(b, nil, envs)[frameHeaderLen:]
	b.ReportAllocs()
	for b.Loop() {
		if err := decodeBatch(payload, func(*pb.Envelope) {}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(envs)), "ns/msg")
}
