package version

import "errors"

var (
	// ErrCorrupt reports that an encoded Object is malformed: truncated,
	// with trailing bytes, an unknown format version, or violating an
	// invariant of the package (see the package documentation).
	ErrCorrupt = errors.New("version: corrupt encoding")

	// ErrBadContext reports that a causal context string given by a client
	// is malformed. It is distinct from ErrCorrupt so that the caller can
	// answer a client error (400) rather than a storage fault.
	ErrBadContext = errors.New("version: bad causal context")
)
