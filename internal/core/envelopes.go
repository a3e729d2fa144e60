package core

import "github.com/quorumkv/quorumkv/internal/transport/pb"

// Envelopes of the messages of every quorum read and write, each made in one allocation:
// the envelope, its oneof wrapper and the message side by side, where composite literals
// take three (a quorum write sends N replicate requests and gets N answers).

type replicateEnv struct {
	env  pb.Envelope
	body pb.Envelope_Replicate
	req  pb.ReplicateRequest
}

// newReplicate returns an envelope carrying a replicate request, and the request to fill.
func newReplicate() (*pb.Envelope, *pb.ReplicateRequest) {
	m := new(replicateEnv)
	m.body.Replicate = &m.req
	m.env.Body = &m.body
	return &m.env, &m.req
}

type replicateRespEnv struct {
	env  pb.Envelope
	body pb.Envelope_ReplicateResp
	resp pb.ReplicateResponse
}

// replicateAck is the answer to a replicate request.
func replicateAck(durable bool) *pb.Envelope {
	m := new(replicateRespEnv)
	m.resp.Durable = durable
	m.body.ReplicateResp = &m.resp
	m.env.Body = &m.body
	return &m.env
}

type getEnv struct {
	env  pb.Envelope
	body pb.Envelope_Get
	req  pb.GetRequest
}

// newGet returns an envelope carrying a read request, and the request to fill.
func newGet() (*pb.Envelope, *pb.GetRequest) {
	m := new(getEnv)
	m.body.Get = &m.req
	m.env.Body = &m.body
	return &m.env, &m.req
}

type getRespEnv struct {
	env  pb.Envelope
	body pb.Envelope_GetResp
	resp pb.GetResponse
}

// newGetResp returns an envelope carrying a read's answer, and the answer to fill.
func newGetResp() (*pb.Envelope, *pb.GetResponse) {
	m := new(getRespEnv)
	m.body.GetResp = &m.resp
	m.env.Body = &m.body
	return &m.env, &m.resp
}
