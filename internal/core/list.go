package core

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/quorum"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// Listing: the keys of a bucket by a coverage query (Riak's coverage plans). The store is
// ordered by key hash (DataKey), so a bucket's keys are spread over every partition and a
// listing walks the whole ring in store-key order: partition after partition, each read
// from R of its live primaries (the bucket's R by default: with R + W > N every
// acknowledged write is in one of them), falling back to another primary when one fails or
// is seen down. The replicas' copies of each key are merged by the version rules, so a key
// one replica deleted (or let expire) is left out even if another still holds the older
// value; deleted and expired keys never appear.
//
// A page is a contiguous range of the store-key space, [cursor, next): the cursor is the
// store key to start at, so any node can go on from it (it holds no state), each key sits
// at one fixed position, and a key that exists for the whole listing appears exactly once
// over the pages, whatever else is written or deleted meanwhile. A key written or deleted
// during the listing appears or not depending on whether its position was read before or
// after. The replicas answer with ListKeysResponse: the keys of the bucket and prefix
// alone, each with its version (clock, dots, timestamps, tombstones, expiries) and without
// its values unless asked (ListOptions.Values), so a page costs bytes in step with its
// keys, not with the values they hold.

// ListOptions are a listing request's settings.
type ListOptions struct {
	Prefix string // only keys starting with it
	// Cursor is the store key to start at (a previous page's Next); nil starts at the
	// beginning.
	Cursor []byte
	// Limit bounds the keys of a page (1..MaxListLimit); the page may hold fewer, with a
	// Next to go on from, when its scan budget runs out first.
	Limit int
	// R is how many replicas of each partition to read and merge ("": the bucket's R).
	R string
	// HashAligned ends a page only between keys of different 32-bit hash prefixes, so that
	// Next is a hash position (ListCursorHash): Redis SCAN's numeric cursor. A page may
	// then hold a few more keys than Limit.
	HashAligned bool
	// Partitions, when > 0, stops the listing after that many partitions (DBSIZE's sample).
	Partitions int
	Timeout    time.Duration
	// Values asks for the siblings' values too (Redis SCAN, KEYS and DBSIZE fold each
	// key's CRDT state to tell its type and skip empty collections). Without it, a listed
	// key's Object may hold its versions only (no values, content types or metadata): the
	// replicas leave them out of all but small objects.
	Values bool
}

// Listing limits.
const (
	MaxListLimit = 100_000
	// listScanBudget bounds the bytes of answers one page reads (about 64 answers), so a
	// page over a bucket with few keys among many still answers within its deadline.
	listScanBudget = 64 << 20
)

// ListedKey is one key of a listing page, with its merged, unexpired object (its values
// only with ListOptions.Values).
type ListedKey struct {
	Key    string
	Object version.Object
}

// listCoord coordinates one listing page.
type listCoord struct {
	id       uint64
	client   uint64
	bucket   string
	o        ListOptions
	n, r     int
	pos      []byte // where the scan stands: the next store key to read
	end      []byte // where it stops
	keys     []ListedKey
	scanned  int64 // bytes of the store the answers read
	deadline time.Duration
	// the current round: one partition, read from r replicas
	part    int
	cands   []string // replicas not asked yet, in order
	asking  map[string]bool
	answers map[string]*pb.ListKeysResponse
}

// ListCursorHash is the position of a HashAligned cursor: the 32-bit hash prefix it starts
// at, and false when the cursor is not at a hash boundary.
func ListCursorHash(cursor []byte) (uint32, bool) {
	if len(cursor) != len(PrefixData)+4 || string(cursor[:len(PrefixData)]) != PrefixData {
		return 0, false
	}
	return binary.BigEndian.Uint32(cursor[len(PrefixData):]), true
}

// ListCursorAt is the cursor starting at hash position h.
func ListCursorAt(h uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte(PrefixData), h)
}

// partitionOfStoreKey is the partition a data key (or cursor) falls in.
func partitionOfStoreKey(k []byte, partitions int) int {
	pbits := bits.TrailingZeros(uint(partitions))
	if pbits == 0 {
		return 0
	}
	var h [4]byte
	copy(h[:], k[len(PrefixData):])
	return int(binary.BigEndian.Uint32(h[:]) >> (32 - uint(pbits)))
}

func (c *Core) startList(r ClientRequest) {
	fail := func(err error) { c.reply(origin{client: true, id: r.ID}, Reply{Err: err}) }
	o := r.List
	if o == nil {
		fail(fmt.Errorf("%w: listing request without options", ErrBadRequest))
		return
	}
	if err := ValidBucket(r.Bucket); err != nil {
		fail(err)
		return
	}
	if o.Limit < 1 || o.Limit > MaxListLimit {
		fail(fmt.Errorf("%w: limit %d is outside 1..%d", ErrBadRequest, o.Limit, MaxListLimit))
		return
	}
	if len(o.Prefix) > c.cfg.MaxKeyBytes {
		fail(fmt.Errorf("%w: prefix is %d bytes, the limit is %d", ErrTooLarge, len(o.Prefix), c.cfg.MaxKeyBytes))
		return
	}
	pos := partitionStart(0, c.cfg.Partitions)
	if o.Cursor != nil {
		if len(o.Cursor) < len(PrefixData)+4 || string(o.Cursor[:len(PrefixData)]) != PrefixData {
			fail(fmt.Errorf("%w: bad cursor", ErrBadRequest))
			return
		}
		pos = o.Cursor
	}
	end := partitionStart(c.cfg.Partitions, c.cfg.Partitions)
	if o.Partitions > 0 {
		end = partitionStart(min(partitionOfStoreKey(pos, c.cfg.Partitions)+o.Partitions, c.cfg.Partitions), c.cfg.Partitions)
	}
	props := c.deps.Buckets.Bucket(r.Bucket)
	spec, err := getSpec(props, ReadOptions{R: o.R})
	if err != nil {
		fail(err)
		return
	}
	if c.view.Ring == nil {
		fail(fmt.Errorf("%w: the ring has no members yet", ErrUnavailable))
		return
	}
	l := &listCoord{id: c.newID(), client: r.ID, bucket: r.Bucket, o: *o, n: props.N, r: spec.R,
		pos: bytes.Clone(pos), end: end, deadline: c.now.Mono + c.timeout(o.Timeout)}
	c.lists[l.id] = l
	c.at(l.deadline, timerListDeadline, l.id)
	c.listRound(l)
}

// listRound starts reading the partition the scan stands in, or answers when the page is
// complete.
func (c *Core) listRound(l *listCoord) {
	if bytes.Compare(l.pos, l.end) >= 0 || len(l.keys) >= l.o.Limit || l.scanned >= listScanBudget {
		c.listAnswer(l)
		return
	}
	l.part = partitionOfStoreKey(l.pos, c.cfg.Partitions)
	walk := c.ringFor(l.part).Walk(l.part)
	prims := walk[:min(l.n, len(walk))]
	if len(prims) < l.r {
		c.listFail(l, ringTooSmall(l.bucket, l.n, len(prims), "r", l.r))
		return
	}
	// Live primaries first, then the others (the failure detector may be behind).
	l.cands = l.cands[:0]
	for _, id := range prims {
		if c.alive(string(id)) {
			l.cands = append(l.cands, string(id))
		}
	}
	for _, id := range prims {
		if !c.alive(string(id)) {
			l.cands = append(l.cands, string(id))
		}
	}
	l.asking, l.answers = map[string]bool{}, map[string]*pb.ListKeysResponse{}
	for range l.r {
		c.listAsk(l)
	}
}

// listAsk asks the next candidate replica for the current partition from pos.
func (c *Core) listAsk(l *listCoord) bool {
	if len(l.cands) == 0 {
		return false
	}
	to := l.cands[0]
	l.cands = l.cands[1:]
	l.asking[to] = true
	// The keys the page still needs, and a quarter more: some may turn out deleted or
	// expired once the copies are merged.
	need := l.o.Limit - len(l.keys)
	req := &pb.ListKeysRequest{Partition: int32(l.part), Partitions: int32(c.cfg.Partitions), Bucket: l.bucket,
		Prefix: []byte(l.o.Prefix), After: bytes.Clone(l.pos), Limit: int32(min(need+need/4+16, MaxListLimit)),
		MaxBytes: int32(c.cfg.HandoffBatchBytes), Values: l.o.Values}
	c.send(to, &pb.Envelope{Body: &pb.Envelope_ListKeys{ListKeys: req}}, l.deadline, pending{owner: l.id, kind: callList})
	return true
}

func (c *Core) listResponse(l *listCoord, p pending, r Response) {
	if !l.asking[p.node] {
		return // an answer from an earlier round
	}
	delete(l.asking, p.node)
	var tr *pb.ListKeysResponse
	if r.Err == nil {
		tr = r.Env.GetListKeysResp()
	}
	if tr == nil {
		err := r.Err
		if err == nil {
			err = remoteErr(r.Env)
		}
		c.log(LevelDebug, "listing: a replica failed", "replica", p.node, "partition", l.part, "err", err)
		c.listAsk(l) // another replica instead, if one is left
	} else {
		l.answers[p.node] = tr
	}
	switch {
	case len(l.answers) >= l.r:
		c.listMerge(l)
	case len(l.answers)+len(l.asking) < l.r:
		c.listFail(l, &quorum.QuorumError{Kind: "r", Required: l.r, Acks: len(l.answers)})
	}
}

// listMerge merges the round's answers up to where all of them reach, and moves on.
func (c *Core) listMerge(l *listCoord) {
	reach := partitionStart(l.part+1, c.cfg.Partitions)
	for _, a := range l.answers {
		if !a.Done && bytes.Compare(a.Next, reach) < 0 {
			reach = a.Next
		}
	}
	type entry struct {
		sk  []byte
		key string
		obj version.Object
	}
	byKey := map[string]*entry{}
	var order []*entry
	nodes := make([]string, 0, len(l.answers))
	for n := range l.answers {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	for _, n := range nodes {
		a := l.answers[n]
		l.scanned += max(a.Scanned, 0)
		for _, it := range a.Keys {
			key := string(it.Key)
			if !strings.HasPrefix(key, l.o.Prefix) {
				continue // the replica filters; this only guards against one that does not
			}
			sk := DataKey(l.bucket, key)
			if bytes.Compare(sk, reach) >= 0 || bytes.Compare(sk, l.pos) < 0 {
				continue
			}
			obj, err := version.Decode(it.Object)
			if err != nil {
				c.log(LevelError, "listing: a replica sent a corrupt object", "replica", n, "key", key, "err", err)
				continue
			}
			if e := byKey[key]; e != nil {
				e.obj = version.Merge(e.obj, obj)
				continue
			}
			e := &entry{sk: sk, key: key, obj: obj}
			byKey[key] = e
			order = append(order, e)
		}
	}
	slices.SortFunc(order, func(a, b *entry) int { return bytes.Compare(a.sk, b.sk) })
	at := c.expiryNow()
	next := reach
	for i, e := range order {
		obj := e.obj.Unexpired(at)
		if len(obj.Live()) == 0 {
			continue
		}
		if len(l.keys) >= l.o.Limit {
			// The page is full: it ends before this key (in a hash-aligned listing, before
			// the first key of a new hash prefix).
			if !l.o.HashAligned || !bytes.Equal(e.sk[:len(PrefixData)+4], order[i-1].sk[:len(PrefixData)+4]) {
				next = e.sk
				if l.o.HashAligned {
					next = e.sk[:len(PrefixData)+4]
				}
				break
			}
		}
		l.keys = append(l.keys, ListedKey{Key: e.key, Object: obj})
	}
	if bytes.Equal(next, reach) && l.o.HashAligned && !atHashBoundary(next) && bytes.Compare(next, l.end) < 0 {
		// The answers stop inside a hash prefix: go on from its start next round, after
		// dropping the keys of it taken already (they come again). Should that not move
		// forward (the answers of one round all fell in the prefix the scan started in:
		// over a mebibyte of objects whose keys share a 32-bit hash prefix, which does not
		// happen), skip to the next prefix.
		floor := next[:len(PrefixData)+4]
		if bytes.Compare(floor, l.pos) > 0 {
			l.keys = dropFrom(l.keys, floor, l.bucket)
			next = floor
		} else if h, _ := ListCursorHash(floor); h < 1<<32-1 {
			next = ListCursorAt(h + 1)
		} else {
			next = l.end
		}
	}
	l.pos = bytes.Clone(next)
	c.listRound(l)
}

// atHashBoundary reports whether store position k starts a 32-bit hash prefix.
func atHashBoundary(k []byte) bool { return len(k) == len(PrefixData)+4 }

// dropFrom removes the keys at or after store position from.
func dropFrom(keys []ListedKey, from []byte, bucket string) []ListedKey {
	for len(keys) > 0 && bytes.Compare(DataKey(bucket, keys[len(keys)-1].Key), from) >= 0 {
		keys = keys[:len(keys)-1]
	}
	return keys
}

// listAnswer replies with the page: its keys and the cursor to go on from (nil: done).
func (c *Core) listAnswer(l *listCoord) {
	delete(c.lists, l.id)
	var next []byte
	if bytes.Compare(l.pos, l.end) < 0 {
		next = l.pos
	}
	c.reply(origin{client: true, id: l.client}, Reply{Keys: l.keys, Next: next, At: c.expiryNow()})
}

func (c *Core) listFail(l *listCoord, err error) {
	delete(c.lists, l.id)
	c.reply(origin{client: true, id: l.client}, Reply{Err: err, Partition: l.part})
}

// listTimeout ends a page at its deadline: the keys found so far with the cursor to go on
// from, or a quorum error when none were.
func (c *Core) listTimeout(l *listCoord) {
	if len(l.keys) > 0 {
		c.listAnswer(l)
		return
	}
	c.listFail(l, &quorum.QuorumError{Kind: "r", Required: l.r, Acks: len(l.answers), Timeout: true})
}

// listStripBytes: a listing answer leaves the values out of objects larger than this. A
// smaller one goes as it is stored: decoding it to strip a few bytes of value costs the
// replica more than the bytes save (measured: a million keys of 40-byte values listed at
// r=2 went from about 118,000 to 77,000 keys/s when every object was stripped).
const listStripBytes = 512

// handleListKeys answers a listing's question to a replica: the keys of one bucket and
// prefix in one partition of its store, from a store position, each with its object (its
// values left out of any object over listStripBytes unless asked). The answer ends after limit keys or about max_bytes of
// the store read, whichever comes first, with the position to go on from.
func (c *Core) handleListKeys(r *pb.ListKeysRequest) *pb.Envelope {
	if err := ValidBucket(r.Bucket); err != nil {
		return ErrorEnvelope(err)
	}
	if r.Limit < 1 || r.Limit > MaxListLimit {
		return ErrorEnvelope(fmt.Errorf("%w: listing limit %d is outside 1..%d", ErrBadRequest, r.Limit, MaxListLimit))
	}
	p, start, hi, err := c.partitionScan("listing", r.Partition, r.Partitions, r.After)
	if err != nil {
		return ErrorEnvelope(err)
	}
	budget := int64(r.MaxBytes)
	if budget <= 0 || budget > int64(c.cfg.HandoffBatchBytes) {
		budget = int64(c.cfg.HandoffBatchBytes)
	}
	resp := &pb.ListKeysResponse{Done: true}
	var last []byte
	var failed error
	err = c.deps.Store.Scan(start, hi, func(k, v []byte) bool {
		if resp.Scanned >= budget || len(resp.Keys) >= int(r.Limit) {
			resp.Done = false
			return false
		}
		last = append(last[:0], k...)
		resp.Scanned += int64(len(k) + len(v))
		bucket, key, ok := ParseDataKey(k)
		if !ok || bucket != r.Bucket || !strings.HasPrefix(key, string(r.Prefix)) {
			return true
		}
		obj := bytes.Clone(v)
		if !r.Values && len(v) > listStripBytes {
			o, err := version.Decode(v)
			if err != nil {
				failed = fmt.Errorf("stored object %q: %w", k, err)
				return false
			}
			obj = versionsOnly(o).AppendBinary(nil)
		}
		resp.Keys = append(resp.Keys, &pb.ListedKey{Key: []byte(key), Object: obj})
		return true
	})
	if err == nil {
		err = failed
	}
	if err != nil {
		return ErrorEnvelope(fmt.Errorf("listing of partition %d: %w", p, err))
	}
	if !resp.Done {
		resp.Next = append(last, 0) // the next key after the last one read
	}
	return &pb.Envelope{Body: &pb.Envelope_ListKeysResp{ListKeysResp: resp}}
}

// versionsOnly is o without what its siblings hold (values, content types, metadata):
// what a listing needs to merge copies and tell live keys from deleted and expired ones.
func versionsOnly(o version.Object) version.Object {
	sibs := make([]version.Sibling, len(o.Siblings))
	for i, s := range o.Siblings {
		sibs[i] = version.Sibling{Dot: s.Dot, Tombstone: s.Tombstone, Timestamp: s.Timestamp, Expires: s.Expires}
	}
	o.Siblings = sibs
	return o
}
