package storage

import (
	"slices"

	"github.com/bucketd/bucketd/bucket"
)

// The table's operations on one key, in terms of buckets (sub): a bucket is
// read into a sub (view) and stored from one (put). Every method needs s.mu
// held.

// view returns record r's bucket; its states go in buf. Its limits are
// the spec's: they must not be changed, nor kept past the lock.
func (s *shard) view(r int, sp *specs, buf *[bucket.MaxLimits]bucket.State) sub {
	x := s.rec(r)
	p := sp.get(x.spec)
	b := sub{ns: p.ns, limits: p.limits, updated: x.updated, fullAt: x.fullAt, states: buf[:len(p.limits)]}
	b.states[0] = x.st
	copy(b.states[1:], s.ext[x.ext:])
	return b
}

// lookup returns key's bucket in ns (a record, or -1), the key's first
// record (or -1) and its index slot (see find).
func (s *shard) lookup(h uint64, key string, ns Namespace, sp *specs) (r, first, slot int) {
	first, slot = s.find(h, key)
	if first < 0 {
		return -1, -1, slot
	}
	return s.inChain(first, ns, sp), first, slot
}

// put stores b as key's bucket in b.ns: r is that bucket's record or -1,
// first and slot what lookup returned. It marks the key's page changed.
// b.limits is copied, if kept at all.
func (t *table) put(s *shard, h uint64, key string, r, first, slot int, b *sub) {
	t.store(s, h, key, r, first, slot, b.ns, b.limits, b.states, b.updated, b.fullAt)
}

// store is put with the bucket's fields apart, so that the states, which
// a take keeps on its stack, do not escape.
func (t *table) store(s *shard, h uint64, key string, r, first, slot int, ns Namespace, limits []bucket.Limit, states []bucket.State, updated, fullAt int64) {
	sp := t.specs
	if r < 0 {
		var id uint32
		id, s.kb = sp.intern(ns, limits, s.kb)
		r = s.newRec(h, key, first, slot, id, len(limits))
	} else if p := sp.get(s.recs[r].spec); p.ns != ns || !slices.Equal(p.limits, limits) {
		var id uint32
		id, s.kb = sp.intern(ns, limits, s.kb)
		x := s.rec(r)
		if n := len(p.limits); n > 1 {
			s.freeExt(x.ext, n-1)
		}
		old := x.spec
		x.spec, x.ext = id, 0
		if n := len(limits); n > 1 {
			x.ext = s.allocExt(n - 1)
		}
		sp.release(old)
	}
	x := s.rec(r)
	x.st = states[0]
	copy(s.ext[x.ext:x.ext+uint32(len(states)-1)], states[1:])
	x.updated, x.fullAt = updated, fullAt
	s.markLocked(pageOf(h))
}

// removeNS drops key's bucket in ns, if any, and reports whether there was
// one; first is the key's first record, or -1.
func (s *shard) removeNS(first int, ns Namespace, sp *specs) bool {
	if first < 0 {
		return false
	}
	r := s.inChain(first, ns, sp)
	if r < 0 {
		return false
	}
	s.markLocked(pageOf(s.recs[r].hash))
	s.deleteRec(r, first, sp)
	return true
}

// removeKey drops every bucket of the key whose first record is first.
func (s *shard) removeKey(first int, sp *specs) {
	s.markLocked(pageOf(s.recs[first].hash))
	for first >= 0 {
		first = s.deleteRec(first, first, sp)
	}
}

// firstOf returns the first record of record r's key.
func (s *shard) firstOf(r int) int {
	x := s.rec(r)
	mask := len(s.index) - 1
	for i := int(tagOf(x.hash)) & mask; ; i = (i + 1) & mask {
		v := s.index[i]
		if f := int(uint32(v)) - 1; v>>32 == tagOf(x.hash) && s.recs[f].keyOff == x.keyOff {
			return f
		}
	}
}

// keyFullAt returns the instant from which every bucket of the key whose
// first record is first is full.
func (s *shard) keyFullAt(first int) int64 {
	var t int64
	for r := first; r >= 0; r = int(s.recs[r].next) {
		t = max(t, s.recs[r].fullAt)
	}
	return t
}

// sweepLocked drops the buckets that have refilled to capacity at t, and
// the keys left with none, marking their pages dirty so that the next
// checkpoint writes them without; then it gives back memory the shard no
// longer needs. It returns how many keys it dropped.
func (s *shard) sweepLocked(t int64, sp *specs) (dropped int) {
	for r := s.nrec - 1; r >= 0; r-- { // a deletion moves the last record, already seen, into r
		if x := s.rec(r); t < x.fullAt {
			continue
		}
		s.markLocked(pageOf(s.recs[r].hash))
		if s.deleteRec(r, s.firstOf(r), sp) < 0 {
			dropped++
		}
	}
	if s.nrec == 0 {
		s.freeLocked(sp)
	} else {
		s.shrinkLocked()
	}
	return dropped
}

// clearLocked empties s and marks every page of it changed.
func (s *shard) clearLocked(sp *specs) {
	s.freeLocked(sp)
	s.dirty = 1<<pagesPerShard - 1
}

// eachKey calls f with the first record of each key of s.
func (s *shard) eachKey(f func(first int)) {
	for _, v := range s.index {
		if v != 0 {
			f(int(uint32(v)) - 1)
		}
	}
}

// liveKey reports whether some bucket of the key whose first record is
// first is not full at t.
func (s *shard) liveKey(first int, t int64) bool { return t < s.keyFullAt(first) }
