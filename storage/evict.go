package storage

import (
	"math/rand/v2"
)

// evictSample is how many keys an eviction compares: it evicts the one
// closest to full among them (as Redis compares a sample of keys), so that
// an eviction costs the same however many keys a shard holds.
const evictSample = 32

// lenLocked returns the keys shard s holds, full or not. s.mu must be held.
func (s *shard) lenLocked() int {
	n := 0
	for _, m := range s.m {
		n += len(m)
	}
	return n
}

// makeRoomLocked evicts one key from s when s holds its share of
// Options.MaxKeys, before a new key is added: of a sample of its keys, the
// one whose buckets are closest to full (a full one first), since resetting
// it gives away the fewest tokens. The eviction is journaled like a reset.
// s.mu must be held.
func (db *DB) makeRoomLocked(s *shard) error {
	if db.maxPerShard <= 0 || s.lenLocked() < db.maxPerShard {
		return nil
	}
	var victim *entry
	victimPage, seen := 0, 0
	start := rand.IntN(pagesPerShard)
	for i := 0; i < pagesPerShard && seen < evictSample; i++ {
		pg := (start + i) % pagesPerShard
		for _, e := range s.m[pg] { // map order is random: a sample
			if victim == nil || e.fullAt() < victim.fullAt() {
				victim, victimPage = e, pg
			}
			if seen++; seen >= evictSample {
				break
			}
		}
	}
	if victim == nil {
		return nil
	}
	delete(s.m[victimPage], victim.key)
	s.markLocked(victimPage)
	db.evicted.Add(1)
	s.buf = appendDeleteKey(s.buf[:0], victim.key)
	_, err := db.journalLocked(s.buf)
	return err
}

// fullAt returns the instant from which every bucket of e is full.
func (e *entry) fullAt() int64 {
	var t int64
	for _, b := range e.subs {
		t = max(t, b.fullAt)
	}
	return t
}

// Evicted returns how many keys were evicted for Options.MaxKeys since Open.
func (db *DB) Evicted() uint64 { return db.evicted.Load() }
