package membership

// Admission: with TLS configured (Config.Cert and Config.CAs), gossip counts only from a
// node that proves it holds a key the cluster CA certified for its node id.
//
// The gossip key lets a host into memberlist; it does not make it a member. Everything
// this package sends over gossip with TLS on is signed by the sending node with the
// private key of its certificate:
//
//   - its node meta (its own member record), signed by itself, relayed unchanged by
//     memberlist;
//   - every broadcast (a member record, a metadata entry), signed by whoever sends or
//     relays it;
//   - every push-pull state, signed by the node that sends it, which carries the
//     certificates it knows.
//
// A receiver applies a message only when its sender is named by a certificate the cluster
// CA signed and the signature verifies with that certificate's key. Certificates travel
// by gossip too (msgCert, unsigned: a certificate proves itself against the CA) and in
// push-pull states; each is checked against the CA and must name the node it is filed
// under before it is kept. What fails is dropped before it is merged, so it is never
// applied, relayed or persisted; it is counted by reason (Unverified) and logged, at most
// once per sender and reason every unverifiedLogEvery.
//
// Signing hop by hop (each sender signs what it sends) rather than per entry by its
// author: every certified node is equally trusted with the metadata (any of them may write
// any key), a certified node relays only what it accepted, so authenticating the sender is
// enough, and nothing stored needs a signature: entries persisted before TLS or before
// this change load and spread as they are (the local store is trusted), an author that
// left the cluster or whose certificate expired leaves no entry that can no longer be
// checked, and a certificate renewal needs no re-signing. A replayed signed message only
// carries authentic state again, which the last-writer-wins merge ignores when older.
//
// A memberlist node is live (Members reports it Alive) only while its node meta verifies
// and announces the address memberlist sees it at, so a host with the gossip key cannot
// take a down member's name either. A member whose certificate has not arrived yet is
// left out and looked at again on every view refresh (every ProbeInterval/2), which is the
// re-probe: admission follows as soon as its certificate comes by push-pull or broadcast.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumkv/quorumkv/internal/pki"
)

// Reason says why a gossip message from a node without a proven certificate was refused.
type Reason string

// Reasons of Unverified.
const (
	// ReasonUnsigned: a message or state without a signature while TLS is on.
	ReasonUnsigned Reason = "unsigned"
	// ReasonUnknownSender: signed by a node whose certificate this node does not know
	// (a stranger, or a newcomer whose certificate has not arrived yet: what it sent
	// comes again by relay or push-pull).
	ReasonUnknownSender Reason = "unknown_sender"
	// ReasonBadCertificate: a certificate the cluster CA did not sign, or that does not
	// name the node it came for.
	ReasonBadCertificate Reason = "bad_certificate"
	// ReasonBadSignature: the signature does not verify with the sender's certificates.
	ReasonBadSignature Reason = "bad_signature"
)

// Reasons lists every Reason, in a fixed order (for metrics).
var Reasons = []Reason{ReasonUnsigned, ReasonUnknownSender, ReasonBadCertificate, ReasonBadSignature}

// errUnverified wraps every refusal of a signed message; the Reason travels in
// *unverifiedError.
var errUnverified = errors.New("membership: gossip from an unverified member")

type unverifiedError struct {
	reason Reason
	sender string
	err    error // the cause, without secrets
}

func (e *unverifiedError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("%v: %s (sender %q)", errUnverified, e.reason, e.sender)
	}
	return fmt.Sprintf("%v: %s (sender %q): %v", errUnverified, e.reason, e.sender, e.err)
}
func (e *unverifiedError) Unwrap() []error {
	if e.err == nil {
		return []error{errUnverified}
	}
	return []error{errUnverified, e.err}
}

func refuse(r Reason, sender string, err error) error {
	return &unverifiedError{reason: r, sender: sender, err: err}
}

// maxCertsPerNode bounds the certificates kept per node: the newest by NotBefore, so a
// renewal (a rolling restart) never leaves a node without the one its peer signs with,
// and nobody can grow the state by replaying old ones.
const maxCertsPerNode = 4

// unverifiedLogEvery: a refused sender is logged once per reason in this window, so a
// stranger that keeps gossiping cannot flood the log (the counter counts every message).
const unverifiedLogEvery = 30 * time.Second

// Signature domains: a signature made for one use never verifies for another.
const (
	domainMeta  = "quorumkv/membership/v1/node-meta"
	domainMsg   = "quorumkv/membership/v1/broadcast"
	domainState = "quorumkv/membership/v1/push-pull"
)

// msgSigned frames a signed message: msgSigned, sender length (1 byte), sender, signature
// length (2 bytes, big endian), signature, payload.
const msgSigned byte = 3

// msgCert carries one node's certificate chain (certWire, JSON); it needs no signature.
const msgCert byte = 4

// certWire is a node's certificate chain (DER, leaf first) on the wire and on disk.
type certWire struct {
	ID    string   `json:"id"`
	Chain [][]byte `json:"chain"`
}

// identity is this node's signing key and the cluster CA.
type identity struct {
	id     string
	chain  [][]byte
	leaf   *x509.Certificate
	signer crypto.Signer
	cas    *x509.CertPool
}

func newIdentity(id string, cert *tls.Certificate, cas *x509.CertPool) (*identity, error) {
	if len(cert.Certificate) == 0 {
		return nil, fmt.Errorf("%w: Cert holds no certificate", ErrInvalidInput)
	}
	signer, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: Cert's private key cannot sign", ErrInvalidInput)
	}
	leaf, err := pki.VerifyNode(cert.Certificate, cas, id)
	if err != nil {
		return nil, fmt.Errorf("%w: this node's own certificate: %w", ErrInvalidInput, err)
	}
	if _, err := signatureAlgorithm(leaf.PublicKey); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	if !publicKeyMatches(leaf.PublicKey, signer.Public()) {
		return nil, fmt.Errorf("%w: Cert's private key does not match its certificate", ErrInvalidInput)
	}
	return &identity{id: id, chain: slices.Clone(cert.Certificate), leaf: leaf, signer: signer, cas: cas}, nil
}

func publicKeyMatches(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// signatureAlgorithm is the algorithm this package signs with for a key type; the
// verifier derives the same from the certificate.
func signatureAlgorithm(pub crypto.PublicKey) (x509.SignatureAlgorithm, error) {
	switch pub.(type) {
	case *ecdsa.PublicKey:
		return x509.ECDSAWithSHA256, nil
	case ed25519.PublicKey:
		return x509.PureEd25519, nil
	case *rsa.PublicKey:
		return x509.SHA256WithRSA, nil
	default:
		return 0, fmt.Errorf("unsupported key type %T", pub)
	}
}

// signedBytes is what a signature covers: the domain, the sender and the payload, each
// length-prefixed so no two messages share a signed form.
func signedBytes(domain, sender string, payload []byte) []byte {
	var b bytes.Buffer
	for _, part := range [][]byte{[]byte(domain), []byte(sender), payload} {
		b.Write(binary.AppendUvarint(nil, uint64(len(part))))
		b.Write(part)
	}
	return b.Bytes()
}

// sign frames payload as a message of this node signed for domain.
func (id *identity) sign(domain string, payload []byte) ([]byte, error) {
	msg := signedBytes(domain, id.id, payload)
	var sig []byte
	var err error
	if _, ok := id.signer.Public().(ed25519.PublicKey); ok {
		sig, err = id.signer.Sign(rand.Reader, msg, crypto.Hash(0))
	} else {
		d := sha256.Sum256(msg)
		opts := crypto.SignerOpts(crypto.SHA256)
		sig, err = id.signer.Sign(rand.Reader, d[:], opts)
	}
	if err != nil {
		return nil, fmt.Errorf("membership: signing gossip: %w", err)
	}
	if len(id.id) > 255 || len(sig) > 0xffff {
		return nil, fmt.Errorf("%w: node id or signature too long to frame", ErrInvalidInput)
	}
	out := make([]byte, 0, 4+len(id.id)+len(sig)+len(payload))
	out = append(out, msgSigned, byte(len(id.id)))
	out = append(out, id.id...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(sig)))
	out = append(out, sig...)
	return append(out, payload...), nil
}

// signedMsg is a parsed, not yet verified, signed message.
type signedMsg struct {
	sender  string
	sig     []byte
	payload []byte
}

// parseSigned splits a msgSigned frame; ok is false when b is not one (an unsigned
// message); err reports a malformed frame.
func parseSigned(b []byte) (m signedMsg, ok bool, err error) {
	if len(b) == 0 || b[0] != msgSigned {
		return m, false, nil
	}
	b = b[1:]
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return m, true, fmt.Errorf("%w: truncated signed message", ErrCorruptState)
	}
	m.sender, b = string(b[1:1+int(b[0])]), b[1+int(b[0]):]
	if len(b) < 2 || len(b) < 2+int(binary.BigEndian.Uint16(b)) {
		return m, true, fmt.Errorf("%w: truncated signed message", ErrCorruptState)
	}
	n := int(binary.BigEndian.Uint16(b))
	m.sig, m.payload = b[2:2+n], b[2+n:]
	if m.sender == "" || n == 0 {
		return m, true, fmt.Errorf("%w: signed message without sender or signature", ErrCorruptState)
	}
	return m, true, nil
}

// certKey identifies a certificate chain.
type certKey [sha256.Size]byte

func chainKey(chain [][]byte) certKey {
	h := sha256.New()
	for _, c := range chain {
		h.Write(binary.AppendUvarint(nil, uint64(len(c))))
		h.Write(c)
	}
	var k certKey
	copy(k[:], h.Sum(nil))
	return k
}

// badKey names a chain refused for a node id.
type badKey struct {
	id  string
	key certKey
}

// verifiedCert is a chain checked against the CA for a node id.
type verifiedCert struct {
	chain [][]byte
	leaf  *x509.Certificate
	key   certKey
}

// admission holds what gossip admission knows: the certificates of the nodes, checked,
// and which memberlist nodes proved their meta. Safe for concurrent use; it never calls
// memberlist nor takes Membership.mu.
type admission struct {
	self *identity

	mu    sync.Mutex
	certs map[string][]verifiedCert // node id → newest first, at most maxCertsPerNode
	gen   uint64                    // bumped whenever certs changes
	bad   map[badKey]error          // chains that failed the CA check for an id (bounded)
	peers map[string]peer           // memberlist node name → its meta and address, from events
	live  map[string]liveCheck      // memberlist node name → last check of its meta
	seen  map[string]time.Time      // sender+reason → last log line

	counts [4]atomic.Uint64 // by index in Reasons
}

// peer is what memberlist last told about a node, copied in its event callbacks (the
// only place memberlist's node fields may be read: it updates them under its lock).
type peer struct {
	meta []byte
	addr string
}

func (a *admission) setPeer(name string, p peer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.peers[name] = p
}

func (a *admission) dropPeer(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.peers, name)
}

// liveCheck caches the verification of a memberlist node's meta.
type liveCheck struct {
	meta, addr string
	gen        uint64
	rec        record
	ok         bool
}

func newAdmission(self *identity) *admission {
	a := &admission{self: self, certs: map[string][]verifiedCert{}, bad: map[badKey]error{},
		peers: map[string]peer{}, live: map[string]liveCheck{}, seen: map[string]time.Time{}}
	if _, err := a.addCert(self.id, self.chain); err != nil {
		panic(fmt.Sprintf("membership: own certificate refused after it was checked: %v", err)) // newIdentity checked it
	}
	return a
}

// addCert checks chain against the CA for id and keeps it; added reports whether it was
// new. A chain that fails is remembered, so a stranger's certificate costs one check.
func (a *admission) addCert(id string, chain [][]byte) (added bool, err error) {
	k := chainKey(chain)
	a.mu.Lock()
	if err, ok := a.bad[badKey{id, k}]; ok {
		a.mu.Unlock()
		return false, err
	}
	for _, c := range a.certs[id] {
		if c.key == k {
			a.mu.Unlock()
			return false, nil
		}
	}
	a.mu.Unlock()
	leaf, err := pki.VerifyNode(chain, a.self.cas, id)
	if err == nil {
		_, err = signatureAlgorithm(leaf.PublicKey)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		if len(a.bad) >= 1024 {
			clear(a.bad)
		}
		a.bad[badKey{id, k}] = err
		return false, err
	}
	cs := append(a.certs[id], verifiedCert{chain: cloneChain(chain), leaf: leaf, key: k})
	slices.SortFunc(cs, func(x, y verifiedCert) int {
		if c := y.leaf.NotBefore.Compare(x.leaf.NotBefore); c != 0 {
			return c
		}
		return bytes.Compare(x.key[:], y.key[:])
	})
	cs = slices.CompactFunc(cs, func(x, y verifiedCert) bool { return x.key == y.key })
	if len(cs) > maxCertsPerNode {
		cs = cs[:maxCertsPerNode]
	}
	a.certs[id] = cs
	a.gen++
	return slices.ContainsFunc(cs, func(c verifiedCert) bool { return c.key == k }), nil
}

func cloneChain(chain [][]byte) [][]byte {
	out := make([][]byte, len(chain))
	for i, c := range chain {
		out[i] = slices.Clone(c)
	}
	return out
}

// wire lists the certificates kept, sorted by id then newest first.
func (a *admission) wire() []certWire {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := make([]string, 0, len(a.certs))
	for id := range a.certs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []certWire
	for _, id := range ids {
		for _, c := range a.certs[id] {
			out = append(out, certWire{ID: id, Chain: c.chain})
		}
	}
	return out
}

func (a *admission) generation() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gen
}

// verify checks a signed message for domain. certErr, when not nil, is why a certificate
// that came with the message for its sender was refused (it names the refusal when no
// known certificate verifies the signature).
func (a *admission) verify(domain string, m signedMsg, certErr error) error {
	a.mu.Lock()
	certs := slices.Clone(a.certs[m.sender])
	a.mu.Unlock()
	if len(certs) == 0 {
		if certErr != nil {
			return refuse(ReasonBadCertificate, m.sender, certErr)
		}
		return refuse(ReasonUnknownSender, m.sender, nil)
	}
	msg := signedBytes(domain, m.sender, m.payload)
	now := time.Now()
	for _, c := range certs {
		alg, err := signatureAlgorithm(c.leaf.PublicKey)
		if err != nil || now.After(c.leaf.NotAfter) {
			continue // an expired certificate speaks no more (the transport refuses it too)
		}
		if c.leaf.CheckSignature(alg, msg, m.sig) == nil {
			return nil
		}
	}
	if certErr != nil {
		return refuse(ReasonBadCertificate, m.sender, certErr)
	}
	return refuse(ReasonBadSignature, m.sender, nil)
}

// count records a refusal and reports whether it should be logged now (rate-limited
// per sender and reason).
func (a *admission) count(err error, now time.Time) (log bool) {
	var ue *unverifiedError
	if !errors.As(err, &ue) {
		return true
	}
	if i := slices.Index(Reasons, ue.reason); i >= 0 {
		a.counts[i].Add(1)
	}
	k := ue.sender + "\x00" + string(ue.reason)
	a.mu.Lock()
	defer a.mu.Unlock()
	if t, ok := a.seen[k]; ok && now.Sub(t) < unverifiedLogEvery {
		return false
	}
	if len(a.seen) >= 4096 {
		clear(a.seen)
	}
	a.seen[k] = now
	return true
}

// forgetLive drops the cached checks of memberlist nodes no longer listed.
func (a *admission) forgetLive(present map[string]bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for name := range a.live {
		if !present[name] {
			delete(a.live, name)
		}
	}
}

// signedMeta is our node meta for record r: the record, signed with admission on.
func (m *Membership) signedMeta(r record) ([]byte, error) {
	b := encodeMsg(msgRecord, r)
	if m.adm == nil {
		return b, nil
	}
	m.metaMu.Lock()
	defer m.metaMu.Unlock()
	if m.metaSig != nil && m.metaRec == r {
		return m.metaSig, nil
	}
	sb, err := m.adm.self.sign(domainMeta, b)
	if err != nil {
		return nil, err
	}
	m.metaRec, m.metaSig = r, sb
	return sb, nil
}

// checkLive reports whether memberlist node name proved itself: its meta is its own
// record, signed with a certificate of the CA naming it, announcing the address memberlist
// sees it at. fresh is true when it proved itself now, or with another record (worth
// merging, and logging). A refusal is counted and logged once per meta, address and set
// of certificates; a node whose certificate is not known yet is only waiting.
func (m *Membership) checkLive(name string) (rec record, ok, fresh bool) {
	a := m.adm
	gen := a.generation()
	a.mu.Lock()
	p, known := a.peers[name]
	c, cached := a.live[name]
	a.mu.Unlock()
	if !known {
		return record{}, false, false // no event about it yet
	}
	if cached && c.meta == string(p.meta) && c.addr == p.addr && c.gen == gen {
		return c.rec, c.ok, false
	}
	rec, err := m.verifyMeta(name, p)
	var ue *unverifiedError
	switch {
	case errors.As(err, &ue) && ue.reason == ReasonUnknownSender:
		// Not a refusal yet: a newcomer's certificate comes with its push-pull state,
		// just after memberlist told of it. Not counted: whatever it gossips meanwhile is
		// refused, and counted, on its own.
		m.log.Debug("member waiting for its certificate", "member", name, "addr", p.addr)
	case err != nil:
		m.refused(err, "node meta", p.addr)
	}
	a.mu.Lock()
	a.live[name] = liveCheck{meta: string(p.meta), addr: p.addr, gen: gen, rec: rec, ok: err == nil}
	a.mu.Unlock()
	ok = err == nil
	return rec, ok, ok && (!cached || !c.ok || c.rec != rec)
}

// verifyMeta checks memberlist node name's meta and address (see checkLive) and returns
// its record.
func (m *Membership) verifyMeta(name string, p peer) (record, error) {
	sm, signed, err := parseSigned(p.meta)
	if err != nil {
		return record{}, refuse(ReasonUnsigned, name, err)
	}
	if !signed {
		return record{}, refuse(ReasonUnsigned, name, nil)
	}
	if sm.sender != name {
		return record{}, refuse(ReasonBadSignature, name, fmt.Errorf("node meta signed by %q", sm.sender))
	}
	if err := m.adm.verify(domainMeta, sm, nil); err != nil {
		return record{}, err
	}
	r, _, err := decodeMsg(sm.payload)
	if err != nil || r == nil || r.ID != name {
		return record{}, refuse(ReasonBadSignature, name, fmt.Errorf("node meta is not its own member record: %w", err))
	}
	if r.Gossip != p.addr {
		// A replay of a member's meta from another address: not that member.
		return record{}, refuse(ReasonBadSignature, name, fmt.Errorf("node meta announces gossip address %s, seen at %s", r.Gossip, p.addr))
	}
	return *r, nil
}

// refused counts a refusal and logs it (rate-limited per sender and reason): never the
// message, which may hold password hashes; the sender, the reason, the cause.
func (m *Membership) refused(err error, what, from string) {
	if !m.adm.count(err, time.Now()) {
		return
	}
	var ue *unverifiedError
	if !errors.As(err, &ue) {
		m.log.Warn("gossip from an unverified member refused", "via", what, "err", err)
		return
	}
	level := slog.LevelWarn
	if ue.reason == ReasonUnknownSender {
		// Also a newcomer whose certificate is still on its way; what it sent comes again.
		level = slog.LevelInfo
	}
	attrs := []any{"sender", ue.sender, "reason", string(ue.reason), "via", what}
	if from != "" {
		attrs = append(attrs, "from", from)
	}
	if ue.err != nil {
		attrs = append(attrs, "err", ue.err)
	}
	m.log.Log(context.Background(), level, "gossip from an unverified member refused", attrs...)
}

// learnCert checks and keeps a certificate that came by gossip, and spreads it when it is
// new to this node. The error says why the CA check refused it.
func (m *Membership) learnCert(c certWire) error {
	added, err := m.adm.addCert(c.ID, c.Chain)
	if err != nil {
		return err
	}
	if added {
		m.log.Debug("learned a member's certificate", "member", c.ID)
		m.broadcastCert(c.ID, c.Chain)
		m.signalView() // a member waiting for it may be admitted now
		signal(m.persistCh)
	}
	return nil
}

// broadcastCert queues a certificate for gossip (unsigned: it proves itself).
func (m *Membership) broadcastCert(id string, chain [][]byte) {
	k := chainKey(chain)
	m.queueMsg("cert:"+id+":"+string(k[:8]), encodeMsg(msgCert, certWire{ID: id, Chain: chain}))
}

// openMsg verifies a gossip message under admission and returns the message inside, or
// nil when it was a certificate (handled here) or refused (counted and logged).
func (m *Membership) openMsg(b []byte) []byte {
	if len(b) > 0 && b[0] == msgCert {
		var c certWire
		if err := json.Unmarshal(b[1:], &c); err != nil || c.ID == "" {
			m.log.Warn("ignoring corrupt gossip message", "err", fmt.Errorf("%w: certificate message: %w", ErrCorruptState, err))
			return nil
		}
		if err := m.learnCert(c); err != nil {
			m.refused(refuse(ReasonBadCertificate, c.ID, err), "certificate", "")
		}
		return nil
	}
	sm, signed, err := parseSigned(b)
	if err == nil && !signed {
		err = refuse(ReasonUnsigned, "", nil)
	}
	if err == nil {
		err = m.adm.verify(domainMsg, sm, nil)
	}
	if err != nil {
		m.refused(err, "broadcast", "")
		return nil
	}
	return sm.payload
}

// openState verifies a push-pull state under admission: it must be signed by its sender
// with a certificate of the CA, known or carried in the state. Certificates it carries are
// checked one by one and kept.
func (m *Membership) openState(buf []byte, join bool) (*state, error) {
	sm, signed, err := parseSigned(buf)
	if err != nil {
		return nil, refuse(ReasonUnsigned, "", err)
	}
	if !signed {
		return nil, refuse(ReasonUnsigned, "", nil)
	}
	st, certs, err := decodeStateCerts(sm.payload)
	if err != nil {
		return nil, err
	}
	var senderErr error
	for _, c := range certs {
		if err := m.learnCert(c); err != nil {
			if c.ID == sm.sender {
				senderErr = err
			} else {
				m.refused(refuse(ReasonBadCertificate, c.ID, err), "push-pull certificate", "")
			}
		}
	}
	if err := m.adm.verify(domainState, sm, senderErr); err != nil {
		return nil, err
	}
	return st, nil
}
