package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/quorumkv/quorumkv/internal/transport/pb"
)

// The framing. A connection carries frames, each a 4-byte big-endian payload length and
// the payload:
//
//	frame   = length:uint32be payload[length]
//
// The first frame each way is a handshake: the dialer's hello (helloMagic, then its node
// id), then the listener's answer (helloMagic, a status byte, and on refusal the reason).
// Every later frame's payload is a pb.Batch in protobuf encoding: field 1 repeated, one
// length-delimited Envelope each. Envelopes are appended to a frame one by one (tag,
// length, bytes), which is byte for byte what proto.Marshal of the Batch gives, so the
// sender can cut a batch at a size without building the Batch message.
//
// A frame whose length exceeds the reader's limit, or whose payload does not decode, is an
// error that closes the connection: there is no resynchronising inside a byte stream.

const frameHeaderLen = 4

// helloMagic opens both handshake frames: the protocol name and version 1. A listener
// that reads anything else (a gRPC client of an older build, a TLS handshake on a
// plaintext port, a Redis or HTTP client at the wrong port) answers a refusal saying what
// the port is and closes the connection.
const helloMagic = "QKVI\x01"

// HelloMagic is what every handshake frame carries after its length: a client that finds
// it in an answer has reached a node's internode port.
const HelloMagic = helloMagic

const (
	helloOK      byte = 0
	helloRefused byte = 1
)

// maxHelloBytes bounds the handshake frames: a node id and a refusal reason.
const maxHelloBytes = 4 << 10

// ErrFrameTooLarge: a frame (received, or one message to send) exceeds Config.MaxMsgBytes.
var ErrFrameTooLarge = errors.New("transport: frame exceeds the size limit")

// ErrMalformedFrame: a received frame's payload is not a valid batch (or handshake).
var ErrMalformedFrame = errors.New("transport: malformed frame")

// readFrame reads one frame's payload into buf (grown as needed; the result aliases it).
// A length over max fails before anything is allocated.
func readFrame(r *bufio.Reader, buf []byte, max int) ([]byte, error) {
	var h [frameHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return buf, err
	}
	n := binary.BigEndian.Uint32(h[:])
	if uint64(n) > uint64(max) {
		return buf, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return buf, err
	}
	return buf, nil
}

// beginFrame appends a frame header to be filled in by endFrame; it returns the frame's
// start offset in buf.
func beginFrame(buf []byte) ([]byte, int) {
	start := len(buf)
	return append(buf, 0, 0, 0, 0), start
}

// endFrame fills in the length of the frame that began at start.
func endFrame(buf []byte, start int) []byte {
	binary.BigEndian.PutUint32(buf[start:], uint32(len(buf)-start-frameHeaderLen))
	return buf
}

// envelopeBytes is e's encoded size, and whether the fast path encodes it (encode.go);
// otherwise proto.Size caches the size in e for appendEnvelope.
func envelopeBytes(e *pb.Envelope) (size int, hot bool) {
	if n, ok := hotSize(e); ok {
		return n, true
	}
	return proto.Size(e), false
}

// framedSize is how many bytes appendEnvelope adds for an envelope of size bytes.
func framedSize(size int) int { return protowire.SizeTag(1) + protowire.SizeBytes(size) }

// marshalCached marshals with the size proto.Size cached in the message just before.
var marshalCached = proto.MarshalOptions{UseCachedSize: true}

// appendEnvelope appends e, whose size and path envelopeBytes just gave, as one element of
// a Batch's repeated field 1.
func appendEnvelope(buf []byte, e *pb.Envelope, size int, hot bool) ([]byte, error) {
	buf = protowire.AppendTag(buf, 1, protowire.BytesType)
	buf = protowire.AppendVarint(buf, uint64(size))
	if hot {
		return appendHot(buf, e), nil
	}
	return marshalCached.MarshalAppend(buf, e)
}

// decodeBatch decodes a batch payload, calling fn with each envelope in order. Unknown
// fields are skipped (a later version may add some); anything that does not parse is
// ErrMalformedFrame. Envelopes share no memory with payload.
func decodeBatch(payload []byte, fn func(*pb.Envelope)) error {
	for len(payload) > 0 {
		num, typ, n := protowire.ConsumeTag(payload)
		if n < 0 {
			return fmt.Errorf("%w: %w", ErrMalformedFrame, protowire.ParseError(n))
		}
		payload = payload[n:]
		if num == 1 && typ == protowire.BytesType {
			b, n := protowire.ConsumeBytes(payload)
			if n < 0 {
				return fmt.Errorf("%w: %w", ErrMalformedFrame, protowire.ParseError(n))
			}
			payload = payload[n:]
			e, err := unmarshalEnvelope(b)
			if err != nil {
				return fmt.Errorf("%w: envelope: %w", ErrMalformedFrame, err)
			}
			fn(e)
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, payload)
		if n < 0 {
			return fmt.Errorf("%w: %w", ErrMalformedFrame, protowire.ParseError(n))
		}
		payload = payload[n:]
	}
	return nil
}

// appendHello appends the dialer's handshake frame.
func appendHello(buf []byte, nodeID string) []byte {
	buf, start := beginFrame(buf)
	buf = append(buf, helloMagic...)
	buf = append(buf, nodeID...)
	return endFrame(buf, start)
}

// parseHello returns the node id a hello frame names.
func parseHello(payload []byte) (string, error) {
	if len(payload) <= len(helloMagic) || string(payload[:len(helloMagic)]) != helloMagic {
		return "", fmt.Errorf("%w: not a quorumkv internode hello", ErrMalformedFrame)
	}
	return string(payload[len(helloMagic):]), nil
}

// appendHelloAnswer appends the listener's handshake answer: accepted, or refused with a
// reason (sent to the dialer so that its error says why).
func appendHelloAnswer(buf []byte, refusal error) []byte {
	buf, start := beginFrame(buf)
	buf = append(buf, helloMagic...)
	if refusal == nil {
		buf = append(buf, helloOK)
	} else {
		buf = append(buf, helloRefused)
		msg := refusal.Error()
		if len(msg) > maxHelloBytes/2 {
			msg = msg[:maxHelloBytes/2]
		}
		buf = append(buf, msg...)
	}
	return endFrame(buf, start)
}

// errRefused: the listener read the hello and refused the connection.
var errRefused = errors.New("transport: the peer refused the connection")

// parseHelloAnswer returns nil when the listener accepted, or its refusal.
func parseHelloAnswer(payload []byte) error {
	if len(payload) <= len(helloMagic) || string(payload[:len(helloMagic)]) != helloMagic {
		return fmt.Errorf("%w: not a quorumkv internode answer", ErrMalformedFrame)
	}
	switch payload[len(helloMagic)] {
	case helloOK:
		return nil
	case helloRefused:
		return fmt.Errorf("%w: %s", errRefused, payload[len(helloMagic)+1:])
	}
	return fmt.Errorf("%w: unknown handshake status %d", ErrMalformedFrame, payload[len(helloMagic)])
}
