package storage

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/bucketd/bucketd/bucket"
)

// shardCount is the number of independently locked parts of the table, so
// that takes on different keys rarely wait for each other.
const shardCount = 256

// entry is everything stored for one key: a bucket per policy the key has
// been taken under (usually one). A key with no entry, or no bucket under
// a policy, has a full bucket there.
type entry struct {
	key   string // owned copy of the key; may point into short
	short [24]byte
	subs  []*sub
	first sub     // the first bucket, allocated with the entry
	arr   [1]*sub // backing array of subs for one bucket
	// rec is the stored form of the entry (see encode) when cached is
	// set: a flush copies it instead of encoding again. Every change
	// clears cached.
	rec    []byte
	cached bool
}

// sub is one bucket: the limits it was last changed under and a state per
// limit.
type sub struct {
	policy  bucket.Policy // owned copy of the name and limits
	states  []bucket.State
	one     [1]bucket.State // backing array of states for one limit
	updated int64           // Unix ns of the last change
	fullAt  int64           // Unix ns from which every limit is full
}

func newEntry(key string) *entry {
	e := &entry{key: key}
	e.subs = e.arr[:0]
	return e
}

// newOwnedEntry returns a new entry for a copy of key, which may point into
// memory the caller reuses. A short key is copied into the entry itself, so
// that a new bucket costs one allocation, not two.
func newOwnedEntry(key string) *entry {
	e := newEntry("")
	if len(key) <= len(e.short) {
		n := copy(e.short[:], key)
		e.key = unsafe.String(&e.short[0], n)
	} else {
		e.key = strings.Clone(key)
	}
	return e
}

// find returns the bucket under the named policy, or nil.
func (e *entry) find(policy string) *sub {
	for _, s := range e.subs {
		if s.policy.Name == policy {
			return s
		}
	}
	return nil
}

// add returns a new bucket under p's name and limits, with zero states.
func (e *entry) add(p bucket.Policy) *sub {
	var s *sub
	if len(e.subs) == 0 {
		e.first = sub{}
		s = &e.first
	} else {
		s = new(sub)
	}
	s.setPolicy(p)
	e.subs = append(e.subs, s)
	e.cached = false
	return s
}

// remove drops the bucket under the named policy and reports whether there
// was one.
func (e *entry) remove(policy string) bool {
	for i, s := range e.subs {
		if s.policy.Name == policy {
			e.subs = slices.Delete(e.subs, i, i+1)
			e.cached = false
			return true
		}
	}
	return false
}

// setPolicy gives s p's name and limits, and states for them; the states
// must be filled by the caller. p.Limits is kept, not copied: every caller
// passes a slice that is never changed (the policy table's, an interned
// one, or one just decoded).
func (s *sub) setPolicy(p bucket.Policy) {
	s.policy = bucket.Policy{Name: p.Name, Limits: p.Limits}
	if len(p.Limits) == 1 {
		s.states = s.one[:]
	} else {
		s.states = make([]bucket.State, len(p.Limits))
	}
}

// pagesPerShard is the number of pages of a shard. A page is the unit of
// persistence: the buckets of its keys are written together as one bbolt
// value, so a flush costs a sequential write per changed page, not a
// B+tree update per changed key.
const pagesPerShard = 16

// pageCount is the number of pages in the file.
const pageCount = shardCount * pagesPerShard

// shard is one part of the table.
type shard struct {
	mu sync.Mutex // guards m and dirty
	m  [pagesPerShard]map[string]*entry
	// dirty has bit i set when page i changed since the last flush.
	dirty uint16
	_     [64]byte // keep shards on separate cache lines
}

// table is the in-memory state of every bucket that is not full.
type table struct {
	seed   uint64 // the file's hash seed: where a key lives is stable across restarts
	shards [shardCount]shard
}

func newTable(seed uint64) *table {
	t := &table{seed: seed}
	for i := range t.shards {
		for j := range t.shards[i].m {
			t.shards[i].m[j] = make(map[string]*entry)
		}
	}
	return t
}

// hash is FNV-1a over the file's seed and the key: stable, so that a key's
// page is the same after a restart, and seeded, so that keys cannot be
// chosen to crowd one shard without knowing the seed.
func (t *table) hash(key string) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for i := 0; i < 8; i++ {
		h ^= (t.seed >> (8 * i)) & 0xff
		h *= prime
	}
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= prime
	}
	return h ^ h>>29
}

// locate returns key's shard and its page within the shard.
func (t *table) locate(key string) (*shard, int) {
	h := t.hash(key)
	return &t.shards[h%shardCount], int(h/shardCount) % pagesPerShard
}

// get returns key's entry in page pg, or nil. s.mu must be held.
func (s *shard) get(pg int, key string) *entry { return s.m[pg][key] }

// markLocked records that page pg changed. s.mu must be held.
func (s *shard) markLocked(pg int) { s.dirty |= 1 << pg }

// takeLocked takes cost from key's bucket under p at now. It reports whether
// the bucket changed, in which case key is marked dirty, and whether the
// key's entry was created. each receives the per-limit decisions when not
// nil. s.mu must be held.
func (s *shard) takeLocked(pg int, key string, p bucket.Policy, now time.Time, cost bucket.Tokens, each []bucket.Decision) (d bucket.Decision, changed, created bool) {
	e := s.m[pg][key]
	var b *sub
	if e != nil {
		b = e.find(p.Name)
	}
	var buf [bucket.MaxLimits]bucket.State
	states := buf[:len(p.Limits)]
	fitStates(states, b, p, now)
	d = p.Take(states, now, cost, each)
	if !d.Allowed || cost <= 0 {
		return d, false, false
	}
	if e == nil {
		e = newOwnedEntry(key) // key may point into a request buffer
		s.m[pg][e.key] = e
		created = true
	}
	if b == nil {
		b = e.add(p)
	} else if !slices.Equal(b.policy.Limits, p.Limits) {
		b.setPolicy(p)
	}
	copy(b.states, states)
	b.touch(now, d.ResetAfter)
	e.cached = false
	s.markLocked(pg)
	return d, true, created
}

// touch records a change at now, after which the bucket is full in
// untilFull.
func (b *sub) touch(now time.Time, untilFull time.Duration) {
	t := now.UnixNano()
	b.updated = t
	b.fullAt = t + int64(untilFull)
	if b.fullAt < t { // saturate
		b.fullAt = 1<<63 - 1
	}
}

// fitStates fills dst (one state per limit of p) from b's stored states: a
// missing bucket is full, and a bucket last changed under other limits keeps
// its tokens where it can (the limits apply to it from now on, clamped to
// the new capacities; limits it did not have start full).
func fitStates(dst []bucket.State, b *sub, p bucket.Policy, now time.Time) {
	for i, l := range p.Limits {
		if b != nil && i < len(b.states) {
			dst[i] = b.states[i]
		} else {
			dst[i] = bucket.Full(l, now)
		}
	}
}

// snapshot returns the bucket as it is at now, under its stored limits.
func (b *sub) snapshot(now time.Time) bucket.Snapshot {
	var buf [bucket.MaxLimits]bucket.State
	states := buf[:len(b.states)]
	copy(states, b.states)
	snap := bucket.Snapshot{Policy: b.policy, UpdatedAt: time.Unix(0, b.updated)}
	if len(b.policy.Limits) > 1 {
		snap.Limits = make([]bucket.Decision, len(b.policy.Limits))
	}
	snap.Decision = b.policy.Take(states, now, 0, snap.Limits)
	return snap
}

// isFull reports whether every limit of b is full at now.
func (b *sub) isFull(now time.Time) bool {
	return b.untilFull(now) == 0
}

// untilFull returns how long until every limit of b is full.
func (b *sub) untilFull(now time.Time) time.Duration {
	var d time.Duration
	for i, l := range b.policy.Limits {
		d = max(d, b.states[i].UntilFull(l, now))
	}
	return d
}

// sweepLocked drops the buckets that have refilled to capacity, and the
// entries left with none, marking their pages dirty so that the flush
// writes them without. It returns how many entries it dropped. s.mu must
// be held.
func (s *shard) sweepLocked(now time.Time) (dropped int) {
	t := now.UnixNano()
	for pg, m := range s.m {
		for k, e := range m {
			changed := false
			for i := 0; i < len(e.subs); {
				if b := e.subs[i]; t >= b.fullAt && b.isFull(now) {
					e.subs = slices.Delete(e.subs, i, i+1)
					e.cached = false
					changed = true
					continue
				}
				i++
			}
			if !changed {
				continue
			}
			if len(e.subs) == 0 {
				delete(m, k)
				dropped++
			}
			s.markLocked(pg)
		}
	}
	return dropped
}

// appendPage appends the stored form of page pg to b: for each entry,
// uvarint len(key), key, uint32 len(record) little-endian, record (see
// encode), the record encoded in place.
func (s *shard) appendPage(b []byte, pg int) []byte {
	for k, e := range s.m[pg] {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		if !e.cached {
			e.rec = encode(e.rec[:0], e)
			e.cached = true
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e.rec)))
		b = append(b, e.rec...)
	}
	return b
}

// decodePage calls f with each key and record of a page written by
// appendPage. The slices point into b.
func decodePage(b []byte, f func(key, rec []byte) error) error {
	for len(b) > 0 {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return fmt.Errorf("%w: page cut short", errCorrupt)
		}
		key := b[w : w+int(n)]
		b = b[w+int(n):]
		if len(b) < 4 || uint64(binary.LittleEndian.Uint32(b)) > uint64(len(b)-4) {
			return fmt.Errorf("%w: page cut short", errCorrupt)
		}
		rec := b[4 : 4+binary.LittleEndian.Uint32(b)]
		b = b[4+len(rec):]
		if err := f(key, rec); err != nil {
			return err
		}
	}
	return nil
}
