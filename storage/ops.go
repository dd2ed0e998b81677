package storage

import (
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/bucketd/bucketd/bucket"
)

var _ Store = (*DB)(nil)

// Take implements Store. key must be 1 to 32768 bytes (bbolt's limit).
func (db *DB) Take(ns Namespace, key string, limits []bucket.Limit, cost bucket.Tokens, each []bucket.Decision) (bucket.Decision, error) {
	s, h, t, off, err := db.lockKey(ns, key, limits, each)
	if err != nil {
		return bucket.Decision{}, err
	}
	d, seq, err := db.takeLocked(s, h, ns, key, limits, cost, each, t, off)
	s.mu.Unlock()
	if err != nil {
		return d, db.durable(0, err)
	}
	return d, db.durable(seq, nil)
}

// takeLocked is Take on key (of hash h) in its shard s, locked, at the
// instant t (off: the offset to wall time then). It returns the seq of the
// change's log record, 0 when nothing changed, or an error of the log or
// of the eviction that made room: the take's decision stands, and the
// caller wraps it (durable).
func (db *DB) takeLocked(s *shard, h uint64, ns Namespace, key string, limits []bucket.Limit, cost bucket.Tokens, each []bucket.Decision, t, off int64) (bucket.Decision, uint64, error) {
	now := time.Unix(0, t)
	r, first, slot := s.lookup(h, key, ns, db.table.specs)
	var b sub
	var stored [bucket.MaxLimits]bucket.State
	live := (*sub)(nil)
	if r >= 0 {
		b = s.view(r, db.table.specs, &stored)
		if b.liveAt(t) {
			live = &b // else refilled under its stored limits: full, swept or not
		}
	}
	var buf [bucket.MaxLimits]bucket.State
	states := buf[:len(limits)]
	fitStates(states, live, ns, limits, now)
	d := apply(states, limits, now, cost, each)
	if cost == 0 || (cost > 0 && !d.Allowed) || (cost < 0 && live == nil) {
		return d, 0, nil // nothing changed
	}
	if first < 0 {
		if evicted, err := db.makeRoomLocked(s); err != nil {
			return d, 0, err
		} else if evicted {
			_, slot = s.find(h, key) // the index changed
		}
		db.stats.created.Add(1)
	}
	b = sub{ns: ns, limits: limits, states: states}
	b.touch(t, d.ResetAfter)
	db.table.store(s, h, key, r, first, slot, ns, limits, states, b.updated, b.fullAt)
	s.buf = appendPut(s.buf[:0], key, &b, off)
	seq, err := db.journalLocked(s.buf)
	return d, seq, err
}

// lockKey checks the arguments of a change of (ns, key), locks key's shard
// and returns it, the key's hash, the instant now and the offset from the
// timeline to wall time at that instant (read with it: one clock reading
// for both on the system clock). On an error nothing is locked.
func (db *DB) lockKey(ns Namespace, key string, limits []bucket.Limit, each []bucket.Decision) (*shard, uint64, int64, int64, error) {
	if err := checkArgs(ns, key, limits, each); err != nil {
		return nil, 0, 0, 0, err
	}
	s, _, h := db.table.locate(key)
	s.mu.Lock()
	if db.closed.Load() {
		s.mu.Unlock()
		return nil, 0, 0, 0, bucket.ErrClosed
	}
	t, off := db.nowOffset()
	return s, h, t, off, nil
}

// Peek implements Store.
func (db *DB) Peek(ns Namespace, key string, limits []bucket.Limit) (bucket.Snapshot, bool, error) {
	if limits != nil {
		if err := checkArgs(ns, key, limits, nil); err != nil {
			return bucket.Snapshot{}, false, err
		}
	}
	s, _, h := db.table.locate(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if db.closed.Load() {
		return bucket.Snapshot{}, false, bucket.ErrClosed
	}
	t := db.now()
	r, _, _ := s.lookup(h, key, ns, db.table.specs)
	if r < 0 {
		return bucket.Snapshot{}, false, nil
	}
	var stored [bucket.MaxLimits]bucket.State
	b := s.view(r, db.table.specs, &stored)
	if !b.liveAt(t) {
		return bucket.Snapshot{}, false, nil
	}
	if limits == nil {
		limits = b.limits
	}
	now := time.Unix(0, t)
	var buf [bucket.MaxLimits]bucket.State
	states := buf[:len(limits)]
	fitStates(states, &b, ns, limits, now)
	snap := bucket.Snapshot{
		Policy:    bucket.Policy{Limits: slices.Clone(limits)},
		UpdatedAt: db.wallAt(b.updated),
	}
	if len(limits) > 1 {
		snap.Limits = make([]bucket.Decision, len(limits))
	}
	snap.Decision = apply(states, limits, now, 0, snap.Limits)
	if snap.ResetAfter == 0 { // full under the limits asked about
		return bucket.Snapshot{}, false, nil
	}
	return snap, true, nil
}

// Set implements Store.
func (db *DB) Set(ns Namespace, key string, limits []bucket.Limit, tokens bucket.Tokens, each []bucket.Decision) (bucket.Decision, error) {
	s, h, t, off, err := db.lockKey(ns, key, limits, each)
	if err != nil {
		return bucket.Decision{}, err
	}
	now := time.Unix(0, t)
	var buf [bucket.MaxLimits]bucket.State
	states := buf[:len(limits)]
	for i, l := range limits {
		states[i] = bucket.Set(l, now, tokens)
	}
	d := apply(states, limits, now, 0, each)
	r, first, slot := s.lookup(h, key, ns, db.table.specs)
	switch {
	case d.ResetAfter == 0: // full: no bucket
		s.removeNS(first, ns, db.table.specs)
		s.buf = appendDelete(s.buf[:0], key, ns)
	default:
		if first < 0 {
			if evicted, err := db.makeRoomLocked(s); err != nil {
				s.mu.Unlock()
				return d, db.durable(0, err)
			} else if evicted {
				_, slot = s.find(h, key)
			}
			db.stats.created.Add(1)
		}
		b := sub{ns: ns, limits: limits, states: states}
		b.touch(t, d.ResetAfter)
		db.table.store(s, h, key, r, first, slot, ns, limits, states, b.updated, b.fullAt)
		s.buf = appendPut(s.buf[:0], key, &b, off)
	}
	seq, err := db.journalLocked(s.buf)
	s.mu.Unlock()
	return d, db.durable(seq, err)
}

// Reset implements Store.
func (db *DB) Reset(ns Namespace, key string) (bool, error) {
	if ns != AllNamespaces {
		if err := ns.Validate(); err != nil {
			return false, err
		}
	}
	s, _, h := db.table.locate(key)
	s.mu.Lock()
	if db.closed.Load() {
		s.mu.Unlock()
		return false, bucket.ErrClosed
	}
	t := db.now()
	sp := db.table.specs
	existed, changed := false, false
	if first, _ := s.find(h, key); first >= 0 {
		if ns == AllNamespaces {
			existed = s.liveKey(first, t)
			s.removeKey(first, sp)
			changed = true
		} else if r := s.inChain(first, ns, sp); r >= 0 {
			existed = t < s.recs[r].fullAt
			s.removeNS(first, ns, sp)
			changed = true
		}
	}
	if !changed {
		s.mu.Unlock()
		return false, nil
	}
	if !existed {
		// Only full buckets went, which every read and every replay
		// already takes as absent: nothing to write.
		s.mu.Unlock()
		return false, nil
	}
	if ns == AllNamespaces {
		s.buf = appendDeleteKey(s.buf[:0], key)
	} else {
		s.buf = appendDelete(s.buf[:0], key, ns)
	}
	seq, err := db.journalLocked(s.buf)
	s.mu.Unlock()
	return true, db.durable(seq, err)
}

// Namespaces implements Store.
func (db *DB) Namespaces(key string) ([]Namespace, error) {
	s, _, h := db.table.locate(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if db.closed.Load() {
		return nil, bucket.ErrClosed
	}
	t := db.now()
	var out []Namespace
	first, _ := s.find(h, key)
	for r := first; r >= 0; r = int(s.recs[r].next) {
		if t < s.recs[r].fullAt {
			out = append(out, db.table.specs.get(s.recs[r].spec).ns)
		}
	}
	slices.SortFunc(out, Namespace.Compare)
	return out, nil
}

// Scan implements Store. The cursor is a shard number.
func (db *DB) Scan(cursor uint64, count int) (keys []string, next uint64, err error) {
	if db.closed.Load() {
		return nil, 0, bucket.ErrClosed
	}
	if cursor >= shardCount {
		return nil, 0, nil
	}
	count = max(count, 1)
	i := int(cursor)
	for ; i < shardCount && len(keys) < count; i++ {
		s := &db.table.shards[i]
		s.mu.Lock()
		t := db.now()
		s.eachKey(func(first int) {
			if s.liveKey(first, t) {
				keys = append(keys, strings.Clone(s.keyAt(s.recs[first].keyOff)))
			}
		})
		s.mu.Unlock()
	}
	if i >= shardCount {
		return keys, 0, nil
	}
	return keys, uint64(i), nil
}

// Len implements Store. It visits every key in memory, one shard at a time.
func (db *DB) Len() (int, error) {
	if db.closed.Load() {
		return 0, bucket.ErrClosed
	}
	n := 0
	for i := range db.table.shards {
		s := &db.table.shards[i]
		s.mu.Lock()
		t := db.now()
		s.eachKey(func(first int) {
			if s.liveKey(first, t) {
				n++
			}
		})
		s.mu.Unlock()
	}
	return n, nil
}

// Clear implements Store. It locks every shard (in order) while it empties
// them and appends its record, so that the log orders it exactly among the
// takes; no disk I/O happens under the locks.
func (db *DB) Clear() error {
	for i := range db.table.shards {
		db.table.shards[i].mu.Lock()
	}
	unlock := func() {
		for i := range db.table.shards {
			db.table.shards[i].mu.Unlock()
		}
	}
	if db.closed.Load() {
		unlock()
		return bucket.ErrClosed
	}
	for i := range db.table.shards {
		db.table.shards[i].clearLocked(db.table.specs)
	}
	seq, err := db.journalLocked([]byte{opClear})
	unlock()
	return db.durable(seq, err)
}

// checkArgs refuses what no bucket can be: a bad namespace, a key bbolt
// cannot store (empty, or longer than bolt.MaxKeySize), invalid limits, or
// each of the wrong length.
func checkArgs(ns Namespace, key string, limits []bucket.Limit, each []bucket.Decision) error {
	if err := ns.Validate(); err != nil {
		return err
	}
	if len(key) == 0 || len(key) > bolt.MaxKeySize {
		return fmt.Errorf("key of %d bytes: want 1 to %d bytes: %w", len(key), bolt.MaxKeySize, bucket.ErrInvalid)
	}
	if len(limits) == 0 || len(limits) > bucket.MaxLimits {
		return fmt.Errorf("%d limits: want 1 to %d: %w", len(limits), bucket.MaxLimits, bucket.ErrInvalid)
	}
	for _, l := range limits {
		if err := l.Validate(); err != nil {
			return err
		}
	}
	if each != nil && len(each) != len(limits) {
		return fmt.Errorf("%d decisions for %d limits: %w", len(each), len(limits), bucket.ErrInvalid)
	}
	return nil
}
