// Package auth holds quorumkv's users, roles and credentials.
//
// Model: a user is a name, a password hash and a list of grants; a grant is a role (read,
// write or admin) on one bucket or, with an empty bucket, on every bucket. Roles are
// ordered: write includes read, admin includes write. Admin on every bucket is needed for
// the cluster-wide endpoints (repair, hints, cluster changes, users, debug); admin on a
// bucket suffices for that bucket's properties. Users live in the cluster metadata
// (gossiped, persisted, last writer wins), one JSON record each, through a Store.
//
// Passwords are hashed with argon2id (RFC 9106) with a random salt, in the PHC string
// form ($argon2id$v=19$m=...,t=...,p=...$salt$hash), and compared in constant time. A
// successful check is remembered under an HMAC of the name and password keyed by a
// per-process secret, so that HTTP basic auth, which sends the password with every
// request, costs one argon2id run per client and password change, not one per request.
//
// Invariants: no password, hash or cache key is ever logged or put in an error; a failed
// authentication costs the same whether the user exists or not (a dummy hash is checked);
// a client that keeps failing is slowed down per address (Backoff), never the node.
package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Role is what a grant allows.
type Role string

// The roles, weakest first.
const (
	RoleRead  Role = "read"
	RoleWrite Role = "write"
	RoleAdmin Role = "admin"
)

// rank orders the roles; 0 is no role.
func (r Role) rank() int {
	switch r {
	case RoleRead:
		return 1
	case RoleWrite:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// ParseRole reads a role name.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if r.rank() == 0 {
		return "", fmt.Errorf("%w: role %q: want read, write or admin", ErrInvalid, s)
	}
	return r, nil
}

// Errors. Test with errors.Is.
var (
	// ErrBadCredentials: no such user, or a wrong password (never said which).
	ErrBadCredentials = errors.New("auth: invalid username-password pair")
	// ErrForbidden: the user is known but lacks the grant.
	ErrForbidden = errors.New("auth: permission denied")
	// ErrInvalid: a malformed user name, role, grant or password.
	ErrInvalid = errors.New("auth: invalid input")
	// ErrNoUser: the named user does not exist (user management only).
	ErrNoUser = errors.New("auth: no such user")
)

// Grant is one role on one bucket ("" = every bucket).
type Grant struct {
	Role   Role   `json:"role"`
	Bucket string `json:"bucket,omitempty"`
}

func (g Grant) String() string {
	if g.Bucket == "" {
		return string(g.Role)
	}
	return string(g.Role) + " on " + g.Bucket
}

// User is one user's record as stored in the cluster metadata.
type User struct {
	Name   string  `json:"name"`
	Hash   string  `json:"hash"`
	Grants []Grant `json:"grants"`
}

// Can reports whether u holds role on bucket. bucket "" asks for a grant on every bucket
// (cluster-wide endpoints).
func (u *User) Can(role Role, bucket string) bool {
	if role.rank() == 0 {
		return false
	}
	for _, g := range u.Grants {
		if g.Role.rank() >= role.rank() && (g.Bucket == "" || (bucket != "" && g.Bucket == bucket)) {
			return true
		}
	}
	return false
}

// AddGrant adds g unless an equal grant is there; it reports whether u changed.
func (u *User) AddGrant(g Grant) bool {
	if slices.Contains(u.Grants, g) {
		return false
	}
	u.Grants = append(u.Grants, g)
	slices.SortFunc(u.Grants, func(a, b Grant) int {
		if c := strings.Compare(a.Bucket, b.Bucket); c != 0 {
			return c
		}
		return a.Role.rank() - b.Role.rank()
	})
	return true
}

// RemoveGrant removes g; it reports whether u held it.
func (u *User) RemoveGrant(g Grant) bool {
	i := slices.Index(u.Grants, g)
	if i < 0 {
		return false
	}
	u.Grants = slices.Delete(u.Grants, i, i+1)
	return true
}

// Public is u without its hash, as the API lists users.
func (u *User) Public() PublicUser {
	gs := u.Grants
	if gs == nil {
		gs = []Grant{}
	}
	return PublicUser{Name: u.Name, Grants: gs}
}

// PublicUser is what GET /v1/users answers of a user.
type PublicUser struct {
	Name   string  `json:"name"`
	Grants []Grant `json:"grants"`
}

// MaxNameBytes and MaxPasswordBytes bound user input: a name is a label, and a password
// longer than 1 KiB is no stronger but costs more to hash.
const (
	MaxNameBytes     = 64
	MaxPasswordBytes = 1024
	minPasswordBytes = 8
)

// ValidName checks a user name: 1..64 bytes of letters, digits, '.', '_', '-' and '@'.
func ValidName(name string) error {
	if name == "" || len(name) > MaxNameBytes {
		return fmt.Errorf("%w: a user name is 1..%d characters", ErrInvalid, MaxNameBytes)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-@", c)) {
			return fmt.Errorf("%w: a user name holds letters, digits and . _ - @ only", ErrInvalid)
		}
	}
	return nil
}

// ValidPassword checks a new password's length (never its content in an error).
func ValidPassword(pw string) error {
	if len(pw) < minPasswordBytes || len(pw) > MaxPasswordBytes {
		return fmt.Errorf("%w: a password is %d..%d bytes", ErrInvalid, minPasswordBytes, MaxPasswordBytes)
	}
	return nil
}

// ValidGrant checks a grant: a known role, and a bucket name that is empty or usable.
func ValidGrant(g Grant) error {
	if g.Role.rank() == 0 {
		return fmt.Errorf("%w: role %q: want read, write or admin", ErrInvalid, g.Role)
	}
	if len(g.Bucket) > 255 || strings.ContainsAny(g.Bucket, "\x00/") {
		return fmt.Errorf("%w: bucket name in a grant", ErrInvalid)
	}
	return nil
}

// Params are argon2id's cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
}

// DefaultParams: 19 MiB, 2 passes, 1 lane, OWASP's recommended minimum for argon2id:
// about 20 ms of one core here (BenchmarkCheckPassword), paid once per login (RESP) or per client and password
// (HTTP, through the verified cache), and 19 MiB per check in flight.
var DefaultParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1}

const (
	saltBytes = 16
	keyBytes  = 32
)

// HashPassword returns the PHC string of pw under p with a fresh salt.
func HashPassword(pw string, p Params) (string, error) {
	salt := make([]byte, saltBytes)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, keyBytes)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// maxParams bounds the cost a stored hash may ask for, so that a corrupt or hostile
// record cannot make a check take a gigabyte or a minute.
var maxParams = Params{Memory: 256 << 10, Time: 10, Threads: 16}

// parseHash reads a PHC argon2id string.
func parseHash(h string) (p Params, salt, key []byte, err error) {
	parts := strings.Split(h, "$")
	bad := fmt.Errorf("%w: not an argon2id hash", ErrInvalid)
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return p, nil, nil, bad
	}
	var m, t, th uint32
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &th); err != nil || n != 3 {
		return p, nil, nil, bad
	}
	if m == 0 || t == 0 || th == 0 || m > maxParams.Memory || t > maxParams.Time || th > uint32(maxParams.Threads) || m < 8*th {
		return p, nil, nil, bad
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	key, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, bad
	}
	return Params{Memory: m, Time: t, Threads: uint8(th)}, salt, key, nil
}

// CheckPassword reports whether pw matches the PHC hash h, comparing in constant time.
// A malformed hash matches nothing.
func CheckPassword(h, pw string) bool {
	p, salt, key, err := parseHash(h)
	if err != nil {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1
}

// DecodeUser reads a stored user record.
func DecodeUser(raw []byte) (*User, error) {
	var u User
	if err := json.Unmarshal(raw, &u); err != nil {
		return nil, fmt.Errorf("auth: user record: %w", err)
	}
	return &u, nil
}

// cacheKey names a (name, password) pair in the verified cache: an HMAC under a secret
// of this process, so the cache holds nothing a reader of memory could replay elsewhere
// and its lookups leak nothing about the password.
func cacheKey(secret []byte, name, pw string) [sha256.Size]byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write([]byte(pw))
	var out [sha256.Size]byte
	copy(out[:], m.Sum(nil))
	return out
}
