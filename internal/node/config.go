package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Config configures a Node.
type Config struct {
	ID         string   // unique, stable node name (e.g. "n1")
	DataDir    string   // where the store lives
	HTTPAddr   string   // host:port of the HTTP API; port 0 picks one
	RESPAddr   string   // host:port of the Redis protocol front end ("" = off)
	RPCAddr    string   // host:port of internode gRPC
	GossipAddr string   // host:port of memberlist gossip
	Join       []string // gossip addresses of seed nodes
	Zone       string   // failure zone; preference lists spread over zones first

	// DebugFaults enables POST /v1/debug/faults.
	DebugFaults bool

	// Partitions is Q, the fixed number of ring partitions: 256 balances to within 1/256
	// for clusters up to a few dozen nodes and keeps per-partition state small.
	Partitions int
	// MaxKeyBytes: 8 KiB, the contract's limit; longer keys are refused with 413.
	MaxKeyBytes int
	// MaxValueBytes: 4 MiB, the contract's limit; larger values are refused with 413.
	MaxValueBytes int
	// MaxSiblings: 100 siblings per object. Past that a client that never resolves
	// conflicts is refused (409) rather than letting one key grow without bound.
	MaxSiblings int
	// MaxObjectBytes: 64 MiB per stored object (all siblings), to bound one key's memory.
	MaxObjectBytes int
	// RequestTimeout: 5 s default deadline for a client request, overridable per request.
	RequestTimeout time.Duration

	Logger *slog.Logger

	// HTTPHandler builds the HTTP API for the node (api.New); nil serves no HTTP.
	HTTPHandler func(*Node) http.Handler
}

// DefaultConfig returns the defaults; reasons are beside each field.
func DefaultConfig() Config {
	return Config{
		Partitions:     256,
		MaxKeyBytes:    8 << 10,
		MaxValueBytes:  4 << 20,
		MaxSiblings:    100,
		MaxObjectBytes: 64 << 20,
		RequestTimeout: 5 * time.Second,
	}
}

// Validate reports a configuration error.
func (c Config) Validate() error {
	var errs []error
	if c.ID == "" {
		errs = append(errs, errors.New("node: --id is required"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("node: --data is required"))
	}
	if c.HTTPAddr == "" || c.RPCAddr == "" || c.GossipAddr == "" {
		errs = append(errs, errors.New("node: --http, --rpc and --gossip addresses are required"))
	}
	if c.Partitions <= 0 || c.Partitions&(c.Partitions-1) != 0 {
		errs = append(errs, fmt.Errorf("node: partitions %d is not a power of two", c.Partitions))
	}
	if c.MaxKeyBytes <= 0 || c.MaxValueBytes <= 0 || c.MaxSiblings <= 0 || c.MaxObjectBytes <= 0 {
		errs = append(errs, errors.New("node: limits must be positive"))
	}
	if c.RequestTimeout <= 0 {
		errs = append(errs, errors.New("node: request timeout must be positive"))
	}
	return errors.Join(errs...)
}
