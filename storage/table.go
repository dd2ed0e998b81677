package storage

import (
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bucketd/bucketd/bucket"
)

// shardCount is the number of independently locked parts of the table, so
// that takes on different keys rarely wait for each other.
const shardCount = 256

// entry is one bucket: the limits it was last changed under and a state per
// limit. A key with no entry has a full bucket.
type entry struct {
	key     string        // owned copy of the key
	policy  bucket.Policy // owned copy of the limits
	states  []bucket.State
	one     [1]bucket.State // backing array of states for one limit
	updated int64           // Unix ns of the last change
	fullAt  int64           // Unix ns from which every limit is full
}

func (e *entry) stateSlice(n int) []bucket.State {
	if n == 1 {
		return e.one[:]
	}
	return make([]bucket.State, n)
}

// shard is one part of the table.
type shard struct {
	mu sync.Mutex // guards m and dirty
	m  map[string]*entry
	// dirty holds the keys changed since the last flush: those in m are
	// written, the others deleted.
	dirty map[string]struct{}
	_     [64]byte // keep shards on separate cache lines
}

// table is the in-memory state of every bucket that is not full.
type table struct {
	seed   maphash.Seed
	shards [shardCount]shard
}

func newTable() *table {
	t := &table{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = make(map[string]*entry)
		t.shards[i].dirty = make(map[string]struct{})
	}
	return t
}

func (t *table) shard(key string) *shard {
	return &t.shards[maphash.String(t.seed, key)%shardCount]
}

// sameLimits reports whether a and b have equal limits.
func sameLimits(a, b []bucket.Limit) bool {
	return slices.Equal(a, b)
}

// takeLocked takes cost from key's bucket under p at now. It reports whether
// the bucket changed, in which case key is marked dirty, and whether its
// entry was created. each receives the per-limit decisions when not nil.
// s.mu must be held.
func (s *shard) takeLocked(key string, p bucket.Policy, now time.Time, cost bucket.Tokens, each []bucket.Decision) (d bucket.Decision, changed, created bool) {
	e := s.m[key]
	var buf [bucket.MaxLimits]bucket.State
	states := buf[:len(p.Limits)]
	fitStates(states, e, p, now)
	d = p.Take(states, now, cost, each)
	if !d.Allowed || cost <= 0 {
		return d, false, false
	}
	t := now.UnixNano()
	if e == nil {
		e = &entry{key: strings.Clone(key)}
		s.m[e.key] = e
		created = true
	}
	if e.policy.Name != p.Name || !sameLimits(e.policy.Limits, p.Limits) {
		e.policy = bucket.Policy{Name: p.Name, Limits: slices.Clone(p.Limits)}
		e.states = e.stateSlice(len(p.Limits))
	}
	copy(e.states, states)
	e.updated = t
	e.fullAt = t + int64(d.ResetAfter)
	if e.fullAt < t { // saturate
		e.fullAt = 1<<63 - 1
	}
	s.dirty[e.key] = struct{}{}
	return d, true, created
}

// fitStates fills dst (one state per limit of p) from e's stored states: a
// missing bucket is full, and a bucket last changed under other limits keeps
// its tokens where it can (the limits apply to it from now on, clamped to
// the new capacities; limits it did not have start full).
func fitStates(dst []bucket.State, e *entry, p bucket.Policy, now time.Time) {
	if e == nil {
		for i, l := range p.Limits {
			dst[i] = bucket.Full(l, now)
		}
		return
	}
	if len(e.states) == len(dst) {
		copy(dst, e.states)
		return
	}
	for i, l := range p.Limits {
		if i < len(e.states) {
			dst[i] = e.states[i]
		} else {
			dst[i] = bucket.Full(l, now)
		}
	}
}

// peek returns e's snapshot at now.
func (e *entry) snapshot(now time.Time) bucket.Snapshot {
	states := slices.Clone(e.states)
	snap := bucket.Snapshot{Policy: e.policy, UpdatedAt: time.Unix(0, e.updated)}
	var each []bucket.Decision
	if len(e.policy.Limits) > 1 {
		each = make([]bucket.Decision, len(e.policy.Limits))
		snap.Limits = each
	}
	snap.Decision = e.policy.Take(states, now, 0, each)
	return snap
}

// isFull reports whether every limit of e is full at now.
func (e *entry) isFull(now time.Time) bool {
	for i, l := range e.policy.Limits {
		if e.states[i].UntilFull(l, now) > 0 {
			return false
		}
	}
	return true
}

// sweepLocked drops the entries that have refilled to capacity, marking
// them dirty so that the flush deletes them from disk too. s.mu must be held.
func (s *shard) sweepLocked(now time.Time) (dropped int) {
	t := now.UnixNano()
	for k, e := range s.m {
		if t >= e.fullAt && e.isFull(now) {
			delete(s.m, k)
			s.dirty[k] = struct{}{}
			dropped++
		}
	}
	return dropped
}
