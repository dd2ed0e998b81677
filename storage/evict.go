package storage

import (
	"math/rand/v2"
)

// evictSample is how many buckets an eviction compares: it evicts the key
// closest to full among theirs (as Redis compares a sample of keys), so
// that an eviction costs the same however many keys a shard holds.
const evictSample = 32

// lenLocked returns the keys shard s holds, full or not. s.mu must be held.
func (s *shard) lenLocked() int { return s.keys }

// makeRoomLocked evicts one key from s when s holds its share of
// Options.MaxKeys, before a new key is added: of the keys of a sample of
// its buckets, the one whose buckets are closest to full (a full one
// first), since resetting it gives away the fewest tokens. The eviction is
// journaled like a reset. It reports whether it evicted. s.mu must be held.
func (db *DB) makeRoomLocked(s *shard) (bool, error) {
	if db.maxPerShard <= 0 || s.lenLocked() < db.maxPerShard || s.nrec == 0 {
		return false, nil
	}
	victim, at := -1, int64(0)
	for i := range min(evictSample, s.nrec) {
		r := i // a shard of few buckets: every one
		if s.nrec > evictSample {
			r = rand.IntN(s.nrec)
		}
		first := s.firstOf(r)
		if t := s.keyFullAt(first); victim < 0 || t < at {
			victim, at = first, t
		}
	}
	s.buf = appendDeleteKey(s.buf[:0], s.keyAt(s.recs[victim].keyOff)) // before the key's bytes may move
	s.removeKey(victim, db.table.specs)
	db.evicted.Add(1)
	_, err := db.journalLocked(s.buf)
	return true, err
}

// Evicted returns how many keys were evicted for Options.MaxKeys since Open.
func (db *DB) Evicted() uint64 { return db.evicted.Load() }
