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

// entry is everything stored for one key: a bucket per namespace the key
// has been taken in (usually one). A key with no entry, or no bucket in a
// namespace, has a full bucket there.
type entry struct {
	key   string // owned copy of the key; may point into short
	short [24]byte
	subs  []*sub
	first sub     // the first bucket, allocated with the entry
	arr   [1]*sub // backing array of subs for one bucket
}

// sub is one bucket: its namespace, the limits it was last changed under
// and a state per limit. Instants are on the DB's timeline (see DB.now).
type sub struct {
	ns      Namespace
	limits  []bucket.Limit // never changed once set; may be shared
	states  []bucket.State
	one     [1]bucket.State // backing array of states for one limit
	updated int64           // instant of the last change
	fullAt  int64           // instant from which every limit is full
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

// find returns the bucket in ns, or nil.
func (e *entry) find(ns Namespace) *sub {
	for _, s := range e.subs {
		if s.ns == ns {
			return s
		}
	}
	return nil
}

// add returns a new bucket in ns under limits, with zero states.
func (e *entry) add(ns Namespace, limits []bucket.Limit) *sub {
	var s *sub
	if len(e.subs) == 0 {
		e.first = sub{}
		s = &e.first
	} else {
		s = new(sub)
	}
	s.ns = ns
	s.setLimits(limits)
	e.subs = append(e.subs, s)
	return s
}

// remove drops the bucket in ns and reports whether there was one.
func (e *entry) remove(ns Namespace) bool {
	for i, s := range e.subs {
		if s.ns == ns {
			e.subs = slices.Delete(e.subs, i, i+1)
			return true
		}
	}
	return false
}

// setLimits gives s limits, and states for them that the caller fills.
// limits is kept, not copied: callers pass a slice nobody changes (an
// interned one, or one just decoded or cloned).
func (s *sub) setLimits(limits []bucket.Limit) {
	s.limits = limits
	if len(limits) == 1 {
		s.states = s.one[:]
	} else {
		s.states = make([]bucket.State, len(limits))
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
	// dirty has bit i set when page i changed since the last checkpoint.
	dirty uint16
	buf   []byte   // the journal record being appended, reused
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

// fitStates fills dst (one state per limit) from b's stored states at now:
// a missing bucket is full, and a bucket last changed under other limits is
// refitted as its namespace says (bucket.State.Refit); limits it did not
// have start full.
func fitStates(dst []bucket.State, b *sub, ns Namespace, limits []bucket.Limit, now time.Time) {
	carry := ns.Carry()
	for i, l := range limits {
		switch {
		case b == nil || i >= len(b.states):
			dst[i] = bucket.Full(l, now)
		case i < len(b.limits):
			dst[i] = b.states[i].Refit(b.limits[i], l, now, carry)
		default:
			dst[i] = b.states[i]
		}
	}
}

// apply takes cost (gives -cost when negative) from states under limits at
// now: the one step every read and write goes through.
func apply(states []bucket.State, limits []bucket.Limit, now time.Time, cost bucket.Tokens, each []bucket.Decision) bucket.Decision {
	p := bucket.Policy{Limits: limits}
	if cost < 0 {
		return p.Give(states, now, -cost, each)
	}
	return p.Take(states, now, cost, each)
}

// touch records a change at now (an instant), after which the bucket is
// full in untilFull.
func (b *sub) touch(now int64, untilFull time.Duration) {
	b.updated = now
	b.fullAt = now + int64(untilFull)
	if b.fullAt < now { // saturate
		b.fullAt = 1<<63 - 1
	}
}

// untilFull returns how long from now until every limit of b is full.
func (b *sub) untilFull(now time.Time) time.Duration {
	var d time.Duration
	for i, l := range b.limits {
		d = max(d, b.states[i].UntilFull(l, now))
	}
	return d
}

// liveAt reports whether b is not full at now (an instant).
// fullAt is exact: every change of the states sets it (touch).
func (b *sub) liveAt(now int64) bool { return now < b.fullAt }

// liveAt reports whether some bucket of e is not full at now (an instant).
func (e *entry) liveAt(now int64) bool {
	for _, b := range e.subs {
		if b.liveAt(now) {
			return true
		}
	}
	return false
}

// sweepLocked drops the buckets that have refilled to capacity, and the
// entries left with none, marking their pages dirty so that the flush
// writes them without. It returns how many entries it dropped. s.mu must
// be held.
func (s *shard) sweepLocked(t int64) (dropped int) {
	for pg, m := range s.m {
		for k, e := range m {
			changed := false
			for i := 0; i < len(e.subs); {
				if b := e.subs[i]; !b.liveAt(t) {
					e.subs = slices.Delete(e.subs, i, i+1)
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
		// The record is encoded in place, after a length to fill in: a
		// checkpoint is rare enough that no entry keeps its encoding.
		at := len(b)
		b = append(b, 0, 0, 0, 0)
		b = encode(b, e)
		binary.LittleEndian.PutUint32(b[at:], uint32(len(b)-at-4))
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
