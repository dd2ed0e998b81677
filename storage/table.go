package storage

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/bucketd/bucketd/bucket"
)

// shardCount is the number of independently locked parts of the table, so
// that takes on different keys rarely wait for each other.
const shardCount = 256

// entry is a key's buckets, decoded: what a stored record (encode) and a
// checkpoint's page hold. The table itself keeps no entries (see shard); it
// builds one to encode, and takes them apart when it loads.
type entry struct {
	key  string
	subs []*sub
}

// sub is one bucket: its namespace, the limits it was last changed under
// and a state per limit. Instants are on the DB's timeline (see DB.now).
type sub struct {
	ns      Namespace
	limits  []bucket.Limit // not changed once set; may be shared
	states  []bucket.State
	updated int64 // instant of the last change
	fullAt  int64 // instant from which every limit is full
}

func newEntry(key string) *entry { return &entry{key: key} }

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
	s := &sub{ns: ns}
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
func (s *sub) setLimits(limits []bucket.Limit) {
	s.limits = limits
	s.states = make([]bucket.State, len(limits))
}

// pagesPerShard is the number of pages of a shard. A page is the unit of
// persistence: the buckets of its keys are written together as one bbolt
// value, so a flush costs a sequential write per changed page, not a
// B+tree update per changed key.
const pagesPerShard = 16

// pageCount is the number of pages in the file.
const pageCount = shardCount * pagesPerShard

// shard is one part of the table: see table_shard.go for its layout.
type shard struct {
	mu sync.Mutex // guards everything below

	recs     []record // the buckets, in recsMem; nrec used
	recsMem  []byte   // the region of recs
	nrec     int      // buckets
	index    []uint64 // key -> first record, in indexMem
	indexMem []byte
	keys     int    // keys: used slots of index
	arena    []byte // the keys, a region; arenaLen used, garbage of it deleted
	arenaLen int
	garbage  int
	// ext holds the states of limits 2..n of buckets under several limits;
	// extFree the offsets of free runs, by length.
	ext     []bucket.State
	extFree [bucket.MaxLimits][]uint32

	// dirty has bit i set when page i changed since the last checkpoint.
	dirty uint16
	buf   []byte   // the journal record being appended, reused
	kb    []byte   // a spec's key being looked up, reused
	_     [64]byte // keep shards on separate cache lines
}

// table is the in-memory state of every bucket that is not full.
type table struct {
	seed   uint64 // the file's hash seed: where a key lives is stable across restarts
	h0     uint64 // the hash state after the seed, the same for every key
	specs  *specs
	shards [shardCount]shard
}

func newTable(seed uint64) *table {
	t := &table{seed: seed, specs: newSpecs()}
	t.h0 = fnvOffset
	for i := 0; i < 8; i++ {
		t.h0 ^= (seed >> (8 * i)) & 0xff
		t.h0 *= fnvPrime
	}
	return t
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// hash is FNV-1a over the file's seed and the key: stable, so that a key's
// page is the same after a restart, and seeded, so that keys cannot be
// chosen to crowd one shard without knowing the seed.
// The seed's part of the hash is computed once (newTable).
func (t *table) hash(key string) uint64 {
	h := t.h0
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= fnvPrime
	}
	return h ^ h>>29
}

// locate returns key's shard, its page within the shard and its hash.
func (t *table) locate(key string) (*shard, int, uint64) {
	h := t.hash(key)
	return &t.shards[h%shardCount], pageOf(h), h
}

// buckets returns the number of buckets in memory (a full one not yet
// swept included), locking one shard at a time.
func (t *table) buckets() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += s.nrec
		s.mu.Unlock()
	}
	return n
}

// pageOf returns the page, within its shard, of the key of hash h.
func pageOf(h uint64) int { return int(h/shardCount) % pagesPerShard }

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

// appendPage appends the stored form of page pg to b: for each key,
// uvarint len(key), key, uint32 len(record) little-endian, record (see
// encode), the record encoded in place. s.mu must be held.
func (s *shard) appendPage(b []byte, pg int, sp *specs) []byte {
	var pages [pagesPerShard][]byte
	pages[pg] = b
	s.appendPages(&pages, 1<<pg, sp)
	return pages[pg]
}

// appendPages appends to pages[pg] the stored form of page pg (as
// appendPage) for each page pg in the bit set want, in one pass over the
// index: a checkpoint that writes every page of a shard reads each record
// once, not once per page. s.mu must be held.
func (s *shard) appendPages(pages *[pagesPerShard][]byte, want uint16, sp *specs) {
	var bk sub
	var states [bucket.MaxLimits]bucket.State
	for _, v := range s.index {
		if v == 0 {
			continue
		}
		first := int(uint32(v)) - 1
		pg := pageOf(s.recs[first].hash)
		if want&(1<<pg) == 0 {
			continue
		}
		b := appendStr(pages[pg], s.keyAt(s.recs[first].keyOff))
		// The record is encoded in place, after a length to fill in: a
		// checkpoint is rare enough that no bucket keeps its encoding.
		at := len(b)
		b = append(b, 0, 0, 0, 0, recordVersion)
		for r := first; r >= 0; r = int(s.recs[r].next) {
			bk = s.view(r, sp, &states)
			b = appendSub(b, &bk, 0)
		}
		binary.LittleEndian.PutUint32(b[at:], uint32(len(b)-at-4))
		pages[pg] = b
	}
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
