package storage

import (
	"encoding/binary"
	"unsafe"

	"github.com/bucketd/bucketd/bucket"
)

// A shard's memory, outside the Go heap (allocRegion), with no Go pointer
// per bucket:
//
//   - recs: the buckets, dense, one fixed-size record each. A record holds
//     the key's hash, the key's offset in the arena, the id of its spec
//     (namespace and limits), the state of its first limit inline and,
//     for more limits, an offset into ext. A key with buckets in several
//     namespaces has a record per bucket, chained by next, sharing the key.
//     Deleting a record moves the last one into its place.
//   - index: open addressing with linear probing over a power-of-two
//     number of 8-byte slots: the high half of the key's hash as a tag, and
//     the key's first record + 1 (0 for an empty slot). Deletion shifts
//     back, so there are no tombstones.
//   - arena: each key once, as uvarint length then bytes, appended; a
//     deleted key leaves garbage, and the arena is compacted when garbage
//     outweighs the live keys.
//
// A region grows by doubling into a new one; pages never touched cost no
// memory, so the doubling costs address space, not RSS. Sweeps shrink a
// region that has become mostly empty.

// record is one bucket. 64 bytes.
type record struct {
	hash    uint64 // the key's hash (table.hash)
	keyOff  uint32 // the key's offset in the arena
	next    int32  // the key's next record, or -1
	spec    uint32 // id in table.specs: namespace and limits
	ext     uint32 // offset in shard.ext of the states of limits 2..n
	updated int64  // instant of the last change
	fullAt  int64  // instant from which every limit is full
	st      bucket.State
}

const recSize = int(unsafe.Sizeof(record{}))

// minRegion is the smallest region: one page.
const minRegion = 4096

// maxLoad is the index's load factor, in 1/8: it grows past 6/8.
const maxLoad = 6

func (s *shard) rec(i int) *record { return &s.recs[i] }

// keyAt returns the key at off in the arena. The string points into the
// arena: it must not outlive the lock, nor a change of the shard.
func (s *shard) keyAt(off uint32) string {
	n, w := binary.Uvarint(s.arena[off:])
	return unsafe.String(&s.arena[int(off)+w], int(n))
}

// keyBytes is the arena's length of key.
func keyBytes(key string) int { return uvarintLen(uint64(len(key))) + len(key) }

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func tagOf(h uint64) uint64 { return h >> 32 }

// find returns key's first record, or -1, and the index slot that holds it
// (or the empty slot where it would go).
func (s *shard) find(h uint64, key string) (first, slot int) {
	if len(s.index) == 0 {
		return -1, -1
	}
	mask := len(s.index) - 1
	tag := tagOf(h)
	for i := int(tag) & mask; ; i = (i + 1) & mask {
		v := s.index[i]
		if v == 0 {
			return -1, i
		}
		if v>>32 == tag {
			r := int(uint32(v)) - 1
			if s.keyAt(s.recs[r].keyOff) == key {
				return r, i
			}
		}
	}
}

// home returns what the index slot where the search for hash h starts
// holds: 0 when it is empty (or the index is), else the tag and the first
// record of a key, which may be h's.
func (s *shard) home(h uint64) uint64 {
	if len(s.index) == 0 {
		return 0
	}
	return s.index[int(tagOf(h))&(len(s.index)-1)]
}

// slotOf returns the index slot that points at first, a key's first record.
func (s *shard) slotOf(first int) int {
	mask := len(s.index) - 1
	for i := int(tagOf(s.recs[first].hash)) & mask; ; i = (i + 1) & mask {
		if int(uint32(s.index[i]))-1 == first {
			return i
		}
	}
}

// inChain returns the record of key (whose first record is first) in the
// namespace ns, or -1.
func (s *shard) inChain(first int, ns Namespace, sp *specs) int {
	for r := first; r >= 0; r = int(s.recs[r].next) {
		if sp.get(s.recs[r].spec).ns == ns {
			return r
		}
	}
	return -1
}

// newRec appends a record for key, in spec id (held by the caller, now by
// the record), linked as the key's first record when first < 0 (slot is
// then the empty index slot find returned), or last in first's chain. It
// returns the record's index; its states are zero.
func (s *shard) newRec(h uint64, key string, first, slot int, id uint32, nlimits int) int {
	if s.nrec == len(s.recs) {
		s.growRecs(max(minRegion/recSize, 2*len(s.recs)))
	}
	r := s.nrec
	s.nrec++
	x := s.rec(r)
	*x = record{hash: h, spec: id, next: -1}
	if nlimits > 1 {
		x.ext = s.allocExt(nlimits - 1)
	}
	if first >= 0 { // last in the chain: a key's buckets keep their order
		p := first
		for s.recs[p].next >= 0 {
			p = int(s.recs[p].next)
		}
		x.keyOff, s.recs[p].next = s.recs[first].keyOff, int32(r)
		return r
	}
	x.keyOff = s.storeKey(key)
	if (s.keys+1)*8 > len(s.index)*maxLoad {
		s.growIndex(max(minRegion/8, 2*len(s.index)))
		_, slot = s.find(h, key)
	}
	s.index[slot] = tagOf(h)<<32 | uint64(r+1)
	s.keys++
	return r
}

// deleteRec removes record r, whose key's first record is first, and
// releases its spec. It returns the key's first record after (-1 when the
// key has no bucket left). Record numbers above r may change: the last
// record moves into r's place.
func (s *shard) deleteRec(r, first int, sp *specs) int {
	x := s.rec(r)
	if r == first {
		first = int(x.next)
		slot := s.slotOf(r)
		if first >= 0 {
			s.index[slot] = s.index[slot]&^0xffffffff | uint64(first+1)
		} else {
			s.unslot(slot)
			s.garbage += keyBytes(s.keyAt(x.keyOff))
		}
	} else {
		p := first
		for int(s.recs[p].next) != r {
			p = int(s.recs[p].next)
		}
		s.recs[p].next = x.next
	}
	if n := sp.get(x.spec).limits; len(n) > 1 {
		s.freeExt(x.ext, len(n)-1)
	}
	sp.release(x.spec)
	last := s.nrec - 1
	if r != last {
		s.moveRec(last, r)
		if first == last {
			first = r
		}
	}
	s.recs[last] = record{}
	s.nrec--
	return first
}

// moveRec moves record from to the free place to, and points what pointed
// at it there.
func (s *shard) moveRec(from, to int) {
	x := s.rec(from)
	mask := len(s.index) - 1
	for i := int(tagOf(x.hash)) & mask; ; i = (i + 1) & mask {
		v := s.index[i]
		r := int(uint32(v)) - 1
		if r == from { // from is its key's first record
			s.index[i] = v&^0xffffffff | uint64(to+1)
			break
		}
		if v>>32 == tagOf(x.hash) && s.recs[r].keyOff == x.keyOff { // the same key: from is further down its chain
			for int(s.recs[r].next) != from {
				r = int(s.recs[r].next)
			}
			s.recs[r].next = int32(to)
			break
		}
	}
	s.recs[to] = *x
}

// unslot empties index slot i, shifting back the slots after it that
// would no longer be found.
func (s *shard) unslot(i int) {
	mask := len(s.index) - 1
	for j := (i + 1) & mask; ; j = (j + 1) & mask {
		v := s.index[j]
		if v == 0 {
			break
		}
		home := int(v>>32) & mask
		// v may move to i when i lies cyclically in [home, j).
		if (j-home)&mask >= (j-i)&mask {
			s.index[i] = v
			i = j
		}
	}
	s.index[i] = 0
	s.keys--
}

// storeKey appends key to the arena and returns its offset.
func (s *shard) storeKey(key string) uint32 {
	need := keyBytes(key)
	if s.arenaLen+need > len(s.arena) {
		if s.garbage > 0 && s.garbage >= s.arenaLen/2 {
			s.compactArena(need)
		}
		if s.arenaLen+need > len(s.arena) {
			s.resizeArena(max(minRegion, 2*len(s.arena), s.arenaLen+need))
		}
	}
	off := s.arenaLen
	n := binary.PutUvarint(s.arena[off:], uint64(len(key)))
	copy(s.arena[off+n:], key)
	s.arenaLen += need
	return uint32(off)
}

// compactArena copies the live keys into a new arena, with room for need
// bytes more.
func (s *shard) compactArena(need int) {
	live := s.arenaLen - s.garbage
	old := s.arena
	s.arena = allocRegion(roundRegion(max(minRegion, 2*(live+need))))
	s.arenaLen, s.garbage = 0, 0
	for _, v := range s.index {
		if v == 0 {
			continue
		}
		first := int(uint32(v)) - 1
		off := s.recs[first].keyOff
		n, w := binary.Uvarint(old[off:])
		at := uint32(s.arenaLen)
		s.arenaLen += copy(s.arena[s.arenaLen:], old[off:int(off)+w+int(n)])
		for r := first; r >= 0; r = int(s.recs[r].next) {
			s.recs[r].keyOff = at
		}
	}
	freeRegion(old)
}

func (s *shard) resizeArena(n int) {
	b := allocRegion(roundRegion(n))
	copy(b, s.arena[:s.arenaLen])
	freeRegion(s.arena)
	s.arena = b
}

// growRecs makes room for n records.
func (s *shard) growRecs(n int) {
	b := allocRegion(roundRegion(n * recSize))
	recs := unsafe.Slice((*record)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/recSize)
	copy(recs, s.recs[:s.nrec])
	s.freeRecs()
	s.recs, s.recsMem = recs, b
}

func (s *shard) freeRecs() {
	freeRegion(s.recsMem)
	s.recs, s.recsMem = nil, nil
}

// growIndex rebuilds the index with n slots (a power of two).
func (s *shard) growIndex(n int) {
	b := allocRegion(roundRegion(n * 8))
	index := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(b))), n)
	mask := n - 1
	for _, v := range s.index {
		if v == 0 {
			continue
		}
		i := int(v>>32) & mask
		for index[i] != 0 {
			i = (i + 1) & mask
		}
		index[i] = v
	}
	freeRegion(s.indexMem)
	s.index, s.indexMem = index, b
}

// roundRegion rounds n up to whole pages.
func roundRegion(n int) int { return (n + minRegion - 1) &^ (minRegion - 1) }

// allocExt returns the offset in s.ext of n free states.
func (s *shard) allocExt(n int) uint32 {
	if f := s.extFree[n]; len(f) > 0 {
		off := f[len(f)-1]
		s.extFree[n] = f[:len(f)-1]
		return off
	}
	off := len(s.ext)
	s.ext = append(s.ext, make([]bucket.State, n)...)
	return uint32(off)
}

func (s *shard) freeExt(off uint32, n int) { s.extFree[n] = append(s.extFree[n], off) }

// freeLocked gives back every region of s and empties it; the specs its
// buckets hold are released. s.mu must be held.
func (s *shard) freeLocked(sp *specs) {
	for i := range s.nrec {
		sp.release(s.recs[i].spec)
	}
	s.freeRecs()
	freeRegion(s.indexMem)
	freeRegion(s.arena)
	s.index, s.indexMem, s.arena = nil, nil, nil
	s.nrec, s.keys, s.arenaLen, s.garbage = 0, 0, 0, 0
	s.ext, s.extFree = nil, [bucket.MaxLimits][]uint32{}
}

// shrinkLocked moves a shard that sweeps have mostly emptied into smaller
// regions, so that the memory of a burst of keys is given back. s.mu must
// be held.
func (s *shard) shrinkLocked() {
	if len(s.recs)*recSize > minRegion && s.nrec*8 < len(s.recs) {
		s.growRecs(max(minRegion/recSize, 2*s.nrec))
	}
	if len(s.index)*8 > minRegion && s.keys*8 < len(s.index) {
		n := minRegion / 8
		for (s.keys+1)*8 > n*maxLoad/2 {
			n *= 2
		}
		s.growIndex(n)
	}
	if len(s.arena) > minRegion && (s.arenaLen-s.garbage)*8 < len(s.arena) {
		s.compactArena(0)
	}
}
