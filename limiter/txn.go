package limiter

import (
	"errors"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/topk"
)

// Transactions and watches (Redis's MULTI/EXEC and WATCH).
//
// Every operation on a key holds the read lock of the key's stripe, one of
// numStripes RWMutexes chosen by a hash of the key; operations on the
// whole store (Len, Scan, Keys, FlushAll) hold every stripe's, read locks
// to read and write locks to flush. A transaction (Atomic) declares its
// keys, or that it needs the whole store, and holds the write locks of
// their stripes, always taken in ascending order, while it runs: no other
// client, on any front, sees the state between its operations. Inside it,
// the operations of a Tx take no lock.
//
// A change of a key's state (an allowed take that spends or gives back
// tokens, a set, a reset, a flush, an override change) marks every Watch
// of that key dirty, while it still holds the stripe's lock, so that a
// transaction that finds its Watch clean under its locks knows no change
// came between. Nobody watching, a change costs one atomic load.

// numStripes is the number of stripe locks: enough that unrelated keys
// rarely share one.
const numStripes = 1024

// stripe is a lock alone on its cache line(s), so that stripes used by
// different cores do not share one.
type stripe struct {
	sync.RWMutex
	_ [64 - 24]byte
}

// txnState is a Limiter's stripes and watches. Its zero value is ready.
type txnState struct {
	stripes [numStripes]stripe
	seed    maphash.Seed
	once    sync.Once

	nwatched atomic.Int64 // keys watched, counted once per Watch
	wmu      sync.Mutex   // guards watched
	watched  map[string]map[*Watch]struct{}
}

func (t *txnState) index(key string) int {
	t.once.Do(func() { t.seed = maphash.MakeSeed() })
	return int(maphash.String(t.seed, key) % numStripes)
}

// stripe returns key's stripe. (Callers lock and defer the unlock
// themselves: a returned unlock func would cost an allocation per call.)
func (t *txnState) stripe(key string) *stripe { return &t.stripes[t.index(key)] }

// rlockAll read-locks every stripe, in order, and returns the unlock.
func (t *txnState) rlockAll() func() {
	for i := range t.stripes {
		t.stripes[i].RLock()
	}
	return func() {
		for i := range t.stripes {
			t.stripes[i].RUnlock()
		}
	}
}

// lock write-locks the stripes of keys (every stripe if all), in ascending
// order, and returns the unlock.
func (t *txnState) lock(keys []string, all bool) func() {
	var idx []int
	if all {
		idx = make([]int, numStripes)
		for i := range idx {
			idx[i] = i
		}
	} else {
		idx = make([]int, len(keys))
		for i, k := range keys {
			idx[i] = t.index(k)
		}
		slices.Sort(idx)
		idx = slices.Compact(idx)
	}
	for _, i := range idx {
		t.stripes[i].Lock()
	}
	return func() {
		for _, i := range idx {
			t.stripes[i].Unlock()
		}
	}
}

// touch marks every Watch of key dirty. The caller holds key's stripe.
func (t *txnState) touch(key string) {
	if t.nwatched.Load() == 0 {
		return
	}
	t.wmu.Lock()
	for w := range t.watched[key] {
		w.dirty.Store(true)
	}
	t.wmu.Unlock()
}

// touchPresent marks dirty the watches of the keys that have a bucket
// (that a flush is about to change), as Redis's FLUSHALL touches the
// watched keys that exist. The caller holds every stripe.
func (l *Limiter) touchPresent() {
	t := &l.txn
	if t.nwatched.Load() == 0 {
		return
	}
	t.wmu.Lock()
	defer t.wmu.Unlock()
	for k, ws := range t.watched {
		if nss, err := l.store.Namespaces(k); err == nil && len(nss) == 0 {
			continue // full everywhere: the flush changes nothing of it
		}
		for w := range ws {
			w.dirty.Store(true)
		}
	}
}

// Watch is a set of watched keys, a Redis client's WATCH: it becomes dirty
// when one of them changes. A Watch is used by one goroutine at a time.
type Watch struct {
	l     *Limiter
	keys  map[string]struct{}
	dirty atomic.Bool
}

// NewWatch returns an empty Watch on l's keys.
func (l *Limiter) NewWatch() *Watch { return &Watch{l: l} }

// Add watches keys too, from now on.
func (w *Watch) Add(keys ...string) {
	t := &w.l.txn
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if t.watched == nil {
		t.watched = make(map[string]map[*Watch]struct{})
	}
	if w.keys == nil {
		w.keys = make(map[string]struct{}, len(keys))
	}
	for _, k := range keys {
		if _, ok := w.keys[k]; ok {
			continue
		}
		w.keys[k] = struct{}{}
		ws := t.watched[k]
		if ws == nil {
			ws = make(map[*Watch]struct{}, 1)
			t.watched[k] = ws
		}
		ws[w] = struct{}{}
		t.nwatched.Add(1)
	}
}

// Len returns the number of keys watched.
func (w *Watch) Len() int { return len(w.keys) }

// Dirty reports whether a watched key changed since it was added.
func (w *Watch) Dirty() bool { return w.dirty.Load() }

// Reset stops watching every key and makes w clean (Redis's UNWATCH, and
// what EXEC and DISCARD do).
func (w *Watch) Reset() {
	if len(w.keys) > 0 {
		t := &w.l.txn
		t.wmu.Lock()
		for k := range w.keys {
			ws := t.watched[k]
			delete(ws, w)
			if len(ws) == 0 {
				delete(t.watched, k)
			}
			t.nwatched.Add(-1)
		}
		t.wmu.Unlock()
		w.keys = nil
	}
	w.dirty.Store(false)
}

// ErrWatchDirty is returned by Atomic, which ran nothing, when a key of
// its Watch changed.
var ErrWatchDirty = errors.New("limiter: a watched key changed")

// Atomic runs fn as one step: it holds the locks of keys (of the whole
// store if all) while fn runs, so that no other operation on those keys,
// from any front, comes between fn's operations. fn must use only tx, and
// only on keys (or any key if all): tx takes no lock. If w is not nil and
// dirty once the locks are held, Atomic runs nothing and returns
// ErrWatchDirty. Otherwise it returns fn's error.
func (l *Limiter) Atomic(keys []string, all bool, w *Watch, fn func(tx *Tx) error) error {
	defer l.txn.lock(keys, all)()
	if w != nil && w.Dirty() {
		return ErrWatchDirty
	}
	return fn(&Tx{l: l})
}

// Tx is the limiter inside Atomic: the same operations, taking no lock.
// It is valid only until fn returns.
type Tx struct{ l *Limiter }

// The Limiter's operations on keys, each under its stripe's read lock, and
// the same on a Tx, lock-free. Each marks the watches of a key it changed.

// changed reports whether a take of cost changed the bucket: an allowed
// take that spends or gives back tokens.
func changed(allowed bool, cost bucket.Tokens, err error) bool {
	return allowed && cost != 0 && (err == nil || errors.Is(err, bucket.ErrNotDurable))
}

// Take takes cost tokens from key's bucket under the named policy ("" is
// the default), with the key's override if it has one. A cost of 0 peeks
// and is not counted. A cost above the policy's capacity is a denial whose
// RetryAfter is bucket.Never, not an error. The error wraps
// bucket.ErrUnknownPolicy, bucket.ErrInvalid (a negative cost, a bad key),
// bucket.ErrClosed, or bucket.ErrNotDurable: then the take was made and is
// counted, but is not yet on disk.
func (l *Limiter) Take(key, policy string, cost bucket.Tokens) (bucket.Result, error) {
	s := l.txn.stripe(key)
	s.RLock()
	defer s.RUnlock()
	return (&Tx{l}).Take(key, policy, cost)
}

// Take is Limiter.Take.
func (tx *Tx) Take(key, policy string, cost bucket.Tokens) (bucket.Result, error) {
	res, err := tx.l.take(key, policy, cost)
	if changed(res.Allowed, cost, err) {
		tx.l.txn.touch(key)
	}
	return res, err
}

// Throttle takes cost tokens from key's CL.THROTTLE bucket under the limit
// lim, given by the caller: redis-cell's command. The bucket is apart from
// every policy's. Called with other limits than last time, the bucket keeps
// its time until full, as redis-cell does. A cost of 0 peeks; a negative
// cost gives tokens back, never above the capacity. Takes (cost > 0) are
// counted (CellCounts). Errors are as for Take.
func (l *Limiter) Throttle(key string, lim bucket.Limit, cost bucket.Tokens) (bucket.Decision, error) {
	s := l.txn.stripe(key)
	s.RLock()
	defer s.RUnlock()
	return (&Tx{l}).Throttle(key, lim, cost)
}

// Throttle is Limiter.Throttle.
func (tx *Tx) Throttle(key string, lim bucket.Limit, cost bucket.Tokens) (bucket.Decision, error) {
	d, err := tx.l.throttle(key, lim, cost)
	if changed(d.Allowed, cost, err) {
		tx.l.txn.touch(key)
	}
	return d, err
}

// Inspect returns the bucket of key a Redis client's HGETALL shows: its
// bucket under the default policy when that is not full, or else its first
// bucket that is not full, in storage.Namespace order (policies by name,
// then CL.THROTTLE's). It reports false when every bucket of key is full.
func (l *Limiter) Inspect(key string) (View, bool, error) {
	s := l.txn.stripe(key)
	s.RLock()
	defer s.RUnlock()
	return l.inspect(key)
}

// Inspect is Limiter.Inspect.
func (tx *Tx) Inspect(key string) (View, bool, error) { return tx.l.inspect(key) }

// Reset makes key's bucket under policy full, or every bucket of key
// (CL.THROTTLE's too) when policy is "". It reports whether one was not
// full. The error wraps bucket.ErrUnknownPolicy for a policy the server
// does not have.
func (l *Limiter) Reset(key, policy string) (bool, error) {
	s := l.txn.stripe(key)
	s.RLock()
	defer s.RUnlock()
	return (&Tx{l}).Reset(key, policy)
}

// Reset is Limiter.Reset.
func (tx *Tx) Reset(key, policy string) (bool, error) {
	ok, err := tx.l.reset(key, policy)
	if ok {
		tx.l.txn.touch(key)
	}
	return ok, err
}

// Delete resets every bucket of each key (Redis's DEL) and returns how many
// keys had one that was not full. A reset whose durability failed is made
// all the same: Delete goes on with the other keys and returns that error
// (wrapping bucket.ErrNotDurable) at the end. Each key is reset under its
// own lock: another client may see some keys reset and not yet others.
func (l *Limiter) Delete(keys ...string) (int, error) {
	n := 0
	var durable error
	for _, k := range keys {
		s := l.txn.stripe(k)
		s.RLock()
		m, err := (&Tx{l}).Delete(k)
		s.RUnlock()
		n += m
		if err != nil && !errors.Is(err, bucket.ErrNotDurable) {
			return n, err
		}
		if err != nil && durable == nil {
			durable = err
		}
	}
	return n, durable
}

// Delete is Limiter.Delete.
func (tx *Tx) Delete(keys ...string) (int, error) {
	n := 0
	var durable error
	for _, k := range keys {
		ok, err := tx.l.store.Reset(storage.AllNamespaces, k)
		if ok {
			tx.l.txn.touch(k)
		}
		if err != nil && !errors.Is(err, bucket.ErrNotDurable) {
			return n, err
		}
		if err != nil && durable == nil {
			durable = err
		}
		if ok {
			n++
		}
	}
	return n, durable
}

// Set makes key's bucket under policy ("" is the default) hold tokens now,
// clamped to each limit's capacity: an administrator's grant or drain. It
// returns a peek at the bucket. The error wraps bucket.ErrUnknownPolicy or
// bucket.ErrInvalid, or bucket.ErrNotDurable as for Take.
func (l *Limiter) Set(key, policy string, tokens bucket.Tokens) (bucket.Result, error) {
	s := l.txn.stripe(key)
	s.RLock()
	defer s.RUnlock()
	return (&Tx{l}).Set(key, policy, tokens)
}

// Set is Limiter.Set.
func (tx *Tx) Set(key, policy string, tokens bucket.Tokens) (bucket.Result, error) {
	res, err := tx.l.set(key, policy, tokens)
	if err == nil || errors.Is(err, bucket.ErrNotDurable) {
		tx.l.txn.touch(key)
	}
	return res, err
}

// SetTokens is Set under the default policy, for the Redis front's HSET.
func (l *Limiter) SetTokens(key string, tokens bucket.Tokens) error {
	_, err := l.Set(key, "", tokens)
	return err
}

// SetTokens is Limiter.SetTokens.
func (tx *Tx) SetTokens(key string, tokens bucket.Tokens) error {
	_, err := tx.Set(key, "", tokens)
	return err
}

// Keys lists the keys that have a bucket, in byte order: those that start
// with prefix and sort after after, at most limit (<= 0 means 100, at most
// 10 000) of them. next is the last key returned when there may be more,
// else "". Each call reads every key in memory: it is for administrators,
// not the request path.
func (l *Limiter) Keys(prefix, after string, limit int) (keys []string, next string, err error) {
	defer l.txn.rlockAll()()
	return l.keys(prefix, after, limit)
}

// Scan returns some keys that have a bucket, from cursor on (0 begins),
// and the cursor to go on from; next == 0 ends. See storage.Store.Scan.
func (l *Limiter) Scan(cursor uint64, count int) ([]string, uint64, error) {
	defer l.txn.rlockAll()()
	return l.store.Scan(cursor, count)
}

// Scan is Limiter.Scan.
func (tx *Tx) Scan(cursor uint64, count int) ([]string, uint64, error) {
	return tx.l.store.Scan(cursor, count)
}

// Len returns the number of keys that have a bucket that is not full.
func (l *Limiter) Len() (int, error) {
	defer l.txn.rlockAll()()
	return l.store.Len()
}

// Len is Limiter.Len.
func (tx *Tx) Len() (int, error) { return tx.l.store.Len() }

// FlushAll makes every bucket full (overrides stay).
func (l *Limiter) FlushAll() error {
	defer l.txn.lock(nil, true)()
	return (&Tx{l}).FlushAll()
}

// FlushAll is Limiter.FlushAll.
func (tx *Tx) FlushAll() error {
	tx.l.touchPresent()
	return tx.l.store.Clear()
}

// The operations that need no stripe, the same on a Tx.

// CellCounts is Limiter.CellCounts.
func (tx *Tx) CellCounts() bucket.Counts { return tx.l.CellCounts() }

// Save is Limiter.Save.
func (tx *Tx) Save() error { return tx.l.Save() }

// LastSave is Limiter.LastSave.
func (tx *Tx) LastSave() time.Time { return tx.l.LastSave() }

// Ready is Limiter.Ready.
func (tx *Tx) Ready() error { return tx.l.Ready() }

// Evicted is Limiter.Evicted.
func (tx *Tx) Evicted() uint64 { return tx.l.Evicted() }

// Policy is Limiter.Policy.
func (tx *Tx) Policy(name string) (bucket.Policy, error) { return tx.l.Policy(name) }

// Policies is Limiter.Policies.
func (tx *Tx) Policies() []bucket.PolicyInfo { return tx.l.Policies() }

// SetDefaultLimit is Limiter.SetDefaultLimit.
func (tx *Tx) SetDefaultLimit(lim bucket.Limit) error { return tx.l.SetDefaultLimit(lim) }

// Top is Limiter.Top: the window of refusals takes no key's lock.
func (tx *Tx) Top(window time.Duration, limit int) []topk.Entry { return tx.l.Top(window, limit) }

// TopSpan is Limiter.TopSpan.
func (tx *Tx) TopSpan() time.Duration { return tx.l.TopSpan() }
