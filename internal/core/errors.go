package core

import (
	"errors"
	"fmt"
	"strings"

	"github.com/quorumkv/quorumkv/internal/crdt"
	"github.com/quorumkv/quorumkv/internal/quorum"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
)

// Errors returned to clients; the HTTP and Redis front ends map them to statuses.
var (
	// ErrBadRequest marks client mistakes (HTTP 400).
	ErrBadRequest = errors.New("bad request")
	// ErrTooLarge marks a key, value or object over its limit (HTTP 413).
	ErrTooLarge = errors.New("too large")
	// ErrTooManySiblings refuses a write that would push an object past the sibling cap.
	ErrTooManySiblings = errors.New("too many siblings")
	// ErrUnavailable reports that no replica could be reached, or the node is not ready.
	ErrUnavailable = errors.New("no replica reachable")
	// ErrWrongType reports an operation on a key holding another data type (Redis WRONGTYPE).
	ErrWrongType = errors.New("wrong type")
	// ErrNotFound reports an operation that needs a live value where the key has none
	// (a touch, Redis EXPIRE, of an absent or expired key).
	ErrNotFound = errors.New("not found")
	// ErrPreconditionFailed reports a conditional write whose condition did not hold at the
	// read quorum (HTTP 412); nothing was written.
	ErrPreconditionFailed = errors.New("precondition failed")
)

// Send failures the driver reports in a Response's Err. Wrap the transport's own error
// with one of these so errors.Is tells them apart.
var (
	// ErrUnreachable: the message was not sent (no connection); it did not happen there.
	ErrUnreachable = errors.New("peer unreachable")
	// ErrLost: the message may have been delivered but no answer came (a broken
	// connection, a deadline); what happened there is unknown.
	ErrLost = errors.New("answer lost")
)

// Code is the contract's machine code of an error, carried over the wire.
type Code string

// The error codes.
const (
	CodeNone            Code = ""
	CodeQuorumFailed    Code = "quorum_failed"
	CodeBadRequest      Code = "bad_request"
	CodeTooLarge        Code = "too_large"
	CodeTooManySiblings Code = "too_many_siblings"
	CodeUnavailable     Code = "unavailable"
	CodeWrongType       Code = "wrong_type"
	CodeNotFound        Code = "not_found"
	CodePrecondition    Code = "precondition_failed"
	CodeInternal        Code = "internal"
)

// ErrorCode is the contract's machine code for err.
func ErrorCode(err error) Code {
	var qe *quorum.QuorumError
	switch {
	case err == nil:
		return CodeNone
	case errors.As(err, &qe):
		return CodeQuorumFailed
	case errors.Is(err, ErrBadRequest):
		return CodeBadRequest
	case errors.Is(err, ErrTooLarge):
		return CodeTooLarge
	case errors.Is(err, ErrTooManySiblings):
		return CodeTooManySiblings
	case errors.Is(err, ErrUnavailable):
		return CodeUnavailable
	case errors.Is(err, ErrWrongType):
		return CodeWrongType
	case errors.Is(err, ErrNotFound):
		return CodeNotFound
	case errors.Is(err, ErrPreconditionFailed):
		return CodePrecondition
	}
	return CodeInternal
}

// Cause is a finer reason an error carries over the wire beside its Code, for the errors
// whose cause the node that asked acts on: without it, the answer of a forwarded write
// would say "bad request" and no more.
type Cause string

// The causes.
const (
	CauseNone Cause = ""
	// CauseCRDTTypeMismatch: crdt.ErrTypeMismatch, a map field of another type (Redis
	// HINCRBY of a string field answers "hash value is not an integer").
	CauseCRDTTypeMismatch Cause = "crdt_type_mismatch"
)

// causes are the errors each Cause stands for.
var causes = map[Cause]error{CauseCRDTTypeMismatch: crdt.ErrTypeMismatch}

// ErrorCause is the Cause err carries over the wire.
func ErrorCause(err error) Cause {
	if errors.Is(err, crdt.ErrTypeMismatch) {
		return CauseCRDTTypeMismatch
	}
	return CauseNone
}

// RemoteErrorOf turns an error answer back into a typed error: its code's (RemoteError),
// and its cause's too, so errors.Is holds for both.
func RemoteErrorOf(e *pb.Error) error {
	err := RemoteError(e.GetCode(), e.GetMessage())
	if cause, ok := causes[Cause(e.GetCause())]; ok {
		return &causedError{err: err, cause: cause}
	}
	return err
}

// causedError is a remote error with its cause.
type causedError struct{ err, cause error }

func (e *causedError) Error() string   { return e.err.Error() }
func (e *causedError) Unwrap() []error { return []error{e.err, e.cause} }

// RemoteError turns an error carried over the wire back into a typed error.
func RemoteError(code, msg string) error {
	var base error
	switch Code(code) {
	case CodeBadRequest:
		base = ErrBadRequest
	case CodeTooLarge:
		base = ErrTooLarge
	case CodeTooManySiblings:
		base = ErrTooManySiblings
	case CodeUnavailable:
		base = ErrUnavailable
	case CodeWrongType:
		base = ErrWrongType
	case CodeNotFound:
		base = ErrNotFound
	case CodePrecondition:
		base = ErrPreconditionFailed
	default:
		return errors.New(msg)
	}
	// The message is the remote error's text, which names the base already.
	return fmt.Errorf("%w: %s", base, strings.TrimPrefix(msg, base.Error()+": "))
}
