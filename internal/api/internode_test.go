package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/transport"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

type noHandler struct{}

func (noHandler) Handle(context.Context, string, *pb.Envelope) *pb.Envelope { return nil }

// TestBadInternodeFrames: a peer sending malformed internode requests gets error answers,
// and nothing it sent changes what the node stores.
func TestBadInternodeFrames(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	target := nodes[0]
	put(t, target, "b", "k", "?w=all", "good", "")

	cfg := transport.DefaultConfig()
	cfg.NodeID, cfg.ListenAddr, cfg.Handler = "evil", "127.0.0.1:0", noHandler{}
	cfg.Resolve = func(string) (string, bool) { return target.RPCAddr(), true }
	evil, err := transport.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()

	good := version.Object{}.Update(nil, version.Sibling{Dot: version.Dot{Actor: "evil.1", Counter: 1}, Value: []byte("bad")})
	enc := good.AppendBinary(nil)
	cases := []struct {
		name string
		body *pb.Envelope
	}{
		{"garbage object", &pb.Envelope{Body: &pb.Envelope_Replicate{Replicate: &pb.ReplicateRequest{Bucket: "b", Key: "k", Object: []byte("\xff\x00garbage")}}}},
		{"truncated object", &pb.Envelope{Body: &pb.Envelope_Replicate{Replicate: &pb.ReplicateRequest{Bucket: "b", Key: "k", Object: enc[:len(enc)-3]}}}},
		{"object with trailing bytes", &pb.Envelope{Body: &pb.Envelope_Replicate{Replicate: &pb.ReplicateRequest{Bucket: "b", Key: "k", Object: append(append([]byte{}, enc...), 0)}}}},
		{"empty object", &pb.Envelope{Body: &pb.Envelope_Replicate{Replicate: &pb.ReplicateRequest{Bucket: "b", Key: "k"}}}},
		{"bad bucket", &pb.Envelope{Body: &pb.Envelope_Replicate{Replicate: &pb.ReplicateRequest{Bucket: "b\x00", Key: "k", Object: enc}}}},
		{"empty key read", &pb.Envelope{Body: &pb.Envelope_Get{Get: &pb.GetRequest{Bucket: "b"}}}},
		{"forwarded write with a bad context", &pb.Envelope{Body: &pb.Envelope_CoordPut{CoordPut: &pb.CoordPutRequest{Bucket: "b", Key: "k", Value: []byte("bad"), Context: "!!!"}}}},
		{"forwarded write with a bad quorum", &pb.Envelope{Body: &pb.Envelope_CoordPut{CoordPut: &pb.CoordPutRequest{Bucket: "b", Key: "k", Value: []byte("bad"), W: "7"}}}},
		{"no body", &pb.Envelope{}},
	}
	for _, tc := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		done := make(chan *pb.Envelope, 1)
		evil.Call(ctx, target.ID(), tc.body, func(e *pb.Envelope, err error) {
			if err != nil {
				t.Errorf("%s: transport error %v", tc.name, err)
			}
			done <- e
		})
		resp := <-done
		cancel()
		if resp.GetError() == nil || resp.GetError().Code != "bad_request" {
			t.Errorf("%s: answer %v, want an error with code bad_request", tc.name, resp)
		}
	}
	// Nothing changed: the key still reads as the one good value everywhere.
	for _, n := range nodes {
		_, lc := local(t, n, "b", "k")
		if !lc.Found || len(lc.Siblings) != 1 || string(lc.Values[0]) != "good" {
			t.Fatalf("%s's copy after bad frames: %+v", n.ID(), lc)
		}
	}
	getOne(t, target, "b", "k", "?r=all", "good")
}
