package storage

import (
	"context"
	"fmt"
	"log/slog"

	bolt "go.etcd.io/bbolt"

	"github.com/bucketd/bucketd/bucket"
)

// Take takes cost tokens from key's bucket under the named policy ("" is
// the default). A cost of 0 peeks. A cost above the policy's capacity is a
// denial whose RetryAfter is bucket.Never, not an error. Under SyncAlways an
// allowed take returns once it is on disk. key is not retained; it must be
// 1 to 32768 bytes (bbolt's limit), or the error wraps bucket.ErrInvalid.
func (db *DB) Take(key, policy string, cost bucket.Tokens) (bucket.Result, error) {
	pe, err := db.policies.Load().resolve(key, policy)
	if err != nil {
		return bucket.Result{}, err
	}
	res := bucket.Result{Policy: pe.Policy}
	if len(pe.Limits) > 1 {
		res.Limits = make([]bucket.Decision, len(pe.Limits))
	}
	res.Decision, err = db.take(key, pe.Policy, cost, res.Limits)
	if err == nil && cost > 0 {
		if res.Allowed {
			pe.c.allowed.Add(1)
		} else {
			pe.c.denied.Add(1)
			if pe.Shadow {
				db.log.LogAttrs(context.Background(), slog.LevelInfo, "shadow policy refused a take; allowed",
					slog.String("policy", pe.Name), slog.String("key", key), slog.String("cost", cost.String()),
					slog.Duration("retry_after", res.RetryAfter))
			}
		}
	}
	return res, err
}

// Throttle takes cost tokens from key's bucket under the single limit l,
// given by the caller (as CL.THROTTLE does). A cost of 0 peeks. It is the
// bucket of the default policy: takes of both on one key share it, each
// under the limits it gives.
func (db *DB) Throttle(key string, l bucket.Limit, cost bucket.Tokens) (bucket.Decision, error) {
	if err := l.Validate(); err != nil {
		return bucket.Decision{}, err
	}
	return db.take(key, bucket.Policy{Name: db.policies.Load().def, Limits: db.intern(l)}, cost, nil)
}

// maxInterned is the most distinct CL.THROTTLE limits kept for reuse.
const maxInterned = 4096

// intern returns an unchanging one-limit slice of l, shared by every bucket
// under it, so that a new bucket costs no copy of its limits.
func (db *DB) intern(l bucket.Limit) []bucket.Limit {
	if ls, ok := db.interned.Load(l); ok {
		return ls.([]bucket.Limit)
	}
	if db.internedN.Load() >= maxInterned {
		return []bucket.Limit{l}
	}
	ls, loaded := db.interned.LoadOrStore(l, []bucket.Limit{l})
	if !loaded {
		db.internedN.Add(1)
	}
	return ls.([]bucket.Limit)
}

func (db *DB) take(key string, p bucket.Policy, cost bucket.Tokens, each []bucket.Decision) (bucket.Decision, error) {
	if cost < 0 {
		return bucket.Decision{}, fmt.Errorf("cost %s is negative: %w", cost, bucket.ErrInvalid)
	}
	if err := checkKey(key); err != nil {
		return bucket.Decision{}, err
	}
	s, pg := db.table.locate(key)
	s.mu.Lock()
	if db.closed.Load() {
		s.mu.Unlock()
		return bucket.Decision{}, bucket.ErrClosed
	}
	d, changed, created := s.takeLocked(pg, key, p, db.now(), cost, each)
	if created {
		db.keys.Add(1) // under the lock, so FlushAll cannot come between
	}
	s.mu.Unlock()
	if changed && db.sync == SyncAlways {
		if err := db.waitFlush(false); err != nil {
			return d, err
		}
	}
	return d, nil
}

// checkKey refuses a key bbolt cannot store (empty, or longer than
// bolt.MaxKeySize): once in the table it would fail every flush.
func checkKey(key string) error {
	if len(key) == 0 || len(key) > bolt.MaxKeySize {
		return fmt.Errorf("key of %d bytes: want 1 to %d bytes: %w", len(key), bolt.MaxKeySize, bucket.ErrInvalid)
	}
	return nil
}

// Peek returns key's bucket under the default policy as it is now (or,
// when it has none, its first bucket), and false when there is none (a
// missing bucket is full).
func (db *DB) Peek(key string) (bucket.Snapshot, bool, error) {
	s, pg := db.table.locate(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if db.closed.Load() {
		return bucket.Snapshot{}, false, bucket.ErrClosed
	}
	e := s.m[pg][key]
	if e == nil {
		return bucket.Snapshot{}, false, nil
	}
	now := db.now()
	b := e.find(db.policies.Load().def)
	if b == nil || b.isFull(now) {
		b = nil
		for _, o := range e.subs {
			if !o.isFull(now) {
				b = o
				break
			}
		}
	}
	if b == nil {
		return bucket.Snapshot{}, false, nil
	}
	return b.snapshot(now), true, nil
}

// Delete resets the buckets of keys to full, and returns how many existed.
func (db *DB) Delete(keys ...string) (int, error) {
	n := 0
	for _, key := range keys {
		s, pg := db.table.locate(key)
		s.mu.Lock()
		if db.closed.Load() {
			s.mu.Unlock()
			return n, bucket.ErrClosed
		}
		if e := s.m[pg][key]; e != nil {
			delete(s.m[pg], key)
			s.markLocked(pg)
			db.keys.Add(-1)
			if e.liveAt(db.now().UnixNano()) {
				n++
			}
		}
		s.mu.Unlock()
	}
	if n > 0 && db.sync == SyncAlways {
		return n, db.waitFlush(false)
	}
	return n, nil
}

// Scan returns the keys of some buckets, starting at cursor (0 to begin);
// next is 0 when the scan is complete. Every key that has a bucket for the
// whole scan is returned at least once. It may return more than count keys.
func (db *DB) Scan(cursor uint64, count int) (keys []string, next uint64, err error) {
	if db.closed.Load() {
		return nil, 0, bucket.ErrClosed
	}
	if cursor >= shardCount {
		return nil, 0, nil
	}
	count = max(count, 1)
	now := db.now().UnixNano()
	i := int(cursor)
	for ; i < shardCount && len(keys) < count; i++ {
		s := &db.table.shards[i]
		s.mu.Lock()
		for _, m := range s.m {
			for k, e := range m {
				if e.liveAt(now) {
					keys = append(keys, k)
				}
			}
		}
		s.mu.Unlock()
	}
	if i >= shardCount {
		return keys, 0, nil
	}
	return keys, uint64(i), nil
}

// Len returns the number of buckets held (not full).
func (db *DB) Len() int { return int(db.keys.Load()) }

// FlushAll removes every bucket, from memory and disk.
func (db *DB) FlushAll() error {
	if db.closed.Load() {
		return bucket.ErrClosed
	}
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	for i := range db.table.shards {
		db.table.shards[i].mu.Lock()
	}
	defer func() {
		for i := range db.table.shards {
			db.table.shards[i].mu.Unlock()
		}
	}()
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(pagesName); err != nil {
			return err
		}
		_, err := tx.CreateBucket(pagesName)
		return err
	})
	if err != nil {
		return fmt.Errorf("storage: flushall: %w", err)
	}
	for i := range db.table.shards {
		s := &db.table.shards[i]
		for _, m := range s.m {
			clear(m)
		}
		s.dirty = 0
	}
	db.keys.Store(0)
	return nil
}
