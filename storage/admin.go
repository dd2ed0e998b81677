package storage

import (
	"slices"
	"strings"

	"github.com/bucketd/bucketd/bucket"
)

// Reset deletes key's bucket under policy, or every bucket of key when
// policy is "". It reports whether there was one that was not full.
func (db *DB) Reset(key, policy string) (bool, error) {
	if policy == "" {
		n, err := db.Delete(key)
		return n > 0, err
	}
	s, pg := db.table.locate(key)
	s.mu.Lock()
	if db.closed.Load() {
		s.mu.Unlock()
		return false, bucket.ErrClosed
	}
	existed := false
	if e := s.m[pg][key]; e != nil {
		if b := e.find(policy); b != nil {
			existed = !b.isFull(db.now())
			e.remove(policy)
			if len(e.subs) == 0 {
				delete(s.m[pg], key)
				db.keys.Add(-1)
			}
			s.markLocked(pg)
		}
	}
	s.mu.Unlock()
	if existed && db.sync == SyncAlways {
		return true, db.waitFlush(false)
	}
	return existed, nil
}

// Set sets the tokens key's bucket under policy ("" is the default) holds
// now, clamped to each limit's capacity: an administrator's grant or drain.
// It returns a peek at the bucket. Setting a bucket to full removes it.
func (db *DB) Set(key, policy string, tokens bucket.Tokens) (bucket.Result, error) {
	if err := checkKey(key); err != nil {
		return bucket.Result{}, err
	}
	pe, err := db.policies.Load().resolve(key, policy)
	if err != nil {
		return bucket.Result{}, err
	}
	p := pe.Policy
	s, pg := db.table.locate(key)
	s.mu.Lock()
	if db.closed.Load() {
		s.mu.Unlock()
		return bucket.Result{}, bucket.ErrClosed
	}
	now := db.now()
	e := s.m[pg][key]
	if e == nil {
		e = newOwnedEntry(key)
		s.m[pg][e.key] = e
		db.keys.Add(1)
	}
	b := e.find(p.Name)
	if b == nil {
		b = e.add(p)
	} else {
		p.Limits = b.policy.Limits // a bucket keeps its own limits (CL.THROTTLE's, say) until its next take
	}
	for i, l := range b.policy.Limits {
		b.states[i] = bucket.Set(l, now, tokens)
	}
	b.touch(now, b.untilFull(now))
	e.cached = false
	res := bucket.Result{Policy: p}
	if len(p.Limits) > 1 {
		res.Limits = make([]bucket.Decision, len(p.Limits))
	}
	var buf [bucket.MaxLimits]bucket.State
	states := buf[:len(b.states)]
	copy(states, b.states)
	res.Decision = p.Take(states, now, 0, res.Limits)
	if b.isFull(now) {
		e.remove(p.Name)
		if len(e.subs) == 0 {
			delete(s.m[pg], e.key)
			db.keys.Add(-1)
		}
	}
	s.markLocked(pg)
	s.mu.Unlock()
	if db.sync == SyncAlways {
		return res, db.waitFlush(false)
	}
	return res, nil
}

// SetTokens is Set under the default policy, for the Redis front's HSET.
func (db *DB) SetTokens(key string, tokens bucket.Tokens) error {
	_, err := db.Set(key, "", tokens)
	return err
}

// Keys lists the keys that have a bucket, in byte order: those that start
// with prefix and sort after after, at most limit (<= 0 means 100, at most
// 10 000) of them. next is the last key returned when there may be more,
// else "". Each call reads every key in memory: it is for administrators,
// not the request path.
func (db *DB) Keys(prefix, after string, limit int) (keys []string, next string, err error) {
	if db.closed.Load() {
		return nil, "", bucket.ErrClosed
	}
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 10_000)
	now := db.now().UnixNano()
	for i := range db.table.shards {
		s := &db.table.shards[i]
		s.mu.Lock()
		for _, m := range s.m {
			for k, e := range m {
				if k > after && strings.HasPrefix(k, prefix) && e.liveAt(now) {
					keys = append(keys, k)
				}
			}
		}
		s.mu.Unlock()
	}
	slices.Sort(keys)
	if len(keys) > limit {
		keys = keys[:limit]
		next = keys[limit-1]
	}
	return keys, next, nil
}

// liveAt reports whether some bucket of e may not be full at t (Unix ns).
func (e *entry) liveAt(t int64) bool {
	for _, b := range e.subs {
		if t < b.fullAt {
			return true
		}
	}
	return false
}
