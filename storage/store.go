// Package storage holds bucket state: the Store interface that every engine
// implements, and the embedded engine, DB: a sharded in-memory table of the
// buckets that are not full, persisted in a bbolt file.
//
// A store knows limits, never policies. A bucket is identified by a
// namespace and a key; each take is given the limits to apply, and applies
// them atomically, all or nothing, across the limits of one bucket. Which
// limits apply (policies, overrides, reloads, shadow mode, counts) is the
// limiter's business (package limiter).
//
// There is one definition of "the bucket now": its stored state refilled to
// the current instant. Take (a cost of 0 peeks), Peek, Set, Namespaces,
// Scan and Len all answer from it, and a full bucket does not exist,
// whether or not it has been swept from memory yet.
//
// The conformance suite in package storetest holds the behaviour every
// engine must show.
package storage

import (
	"time"

	"github.com/bucketd/bucketd/bucket"
)

// Store is a bucket store. Its methods are safe for concurrent use. Every
// method but Close fails with an error wrapping bucket.ErrClosed once the
// store is closed. String arguments are only read during the call: a store
// that keeps one copies it.
type Store interface {
	// Take takes cost tokens at once from every limit of (ns, key)'s
	// bucket, or from none when any refuses (bucket.Policy.Take). A cost of
	// 0 peeks and changes nothing; a negative cost gives -cost tokens back,
	// never above a capacity. A bucket stored under other limits is first
	// refitted to these as ns.Carry() says. each, if not nil, has
	// len(limits) elements and receives each limit's decision.
	//
	// A take that changes a bucket under SyncAlways returns once the change
	// is durable; if that fails, the error wraps bucket.ErrNotDurable and
	// the take stays made (it reaches the disk with a later write). Invalid
	// input (limits, key, namespace) wraps bucket.ErrInvalid.
	Take(ns Namespace, key string, limits []bucket.Limit, cost bucket.Tokens, each []bucket.Decision) (bucket.Decision, error)
	// TakeBatch makes the takes of reqs in ns, each as Take with each nil,
	// in their order: the result is that of the takes one after the other
	// (a key repeated in reqs is taken in its order). The embedded engine
	// makes the batch one step, at one instant, that no other change comes
	// between; another engine may be as between Takes. It appends
	// reqs[i]'s outcome to out, in order, and returns it; each outcome's
	// Err is what Take would have returned for it (invalid input fails
	// that take alone).
	TakeBatch(ns Namespace, reqs []TakeReq, out []TakeResult) []TakeResult
	// Peek returns (ns, key)'s bucket now, under limits (refitted as Take
	// does), or under its stored limits when limits is nil. It reports
	// false, and a zero Snapshot, when the bucket is full: a full bucket
	// does not exist. The Snapshot's Policy.Name is empty.
	Peek(ns Namespace, key string, limits []bucket.Limit) (bucket.Snapshot, bool, error)
	// Set makes (ns, key)'s bucket hold tokens now under limits, clamped to
	// [0, capacity] per limit, and returns a peek at it (each as in Take).
	// Setting it full removes it. Durability is as for Take.
	Set(ns Namespace, key string, limits []bucket.Limit, tokens bucket.Tokens, each []bucket.Decision) (bucket.Decision, error)
	// Reset makes (ns, key)'s bucket full (removes it), or every bucket of
	// key when ns is AllNamespaces, and reports whether one was not full.
	Reset(ns Namespace, key string) (bool, error)
	// Namespaces returns the namespaces in which key has a bucket that is
	// not full, in Namespace.Compare order.
	Namespaces(key string) ([]Namespace, error)
	// Scan returns some keys that have a bucket that is not full, starting
	// at cursor (0 to begin), and the cursor to go on from; next == 0 ends
	// the scan. Every key that has such a bucket for the whole scan is
	// returned at least once. It returns about count keys, maybe more.
	Scan(cursor uint64, count int) (keys []string, next uint64, err error)
	// Len returns the number of keys that have a bucket that is not full.
	Len() (int, error)
	// Clear removes every bucket (overrides stay).
	Clear() error

	// Overrides returns every stored override.
	Overrides() ([]Override, error)
	// PutOverride stores o, replacing any override of (o.NS, o.Key); it is
	// durable before it returns.
	PutOverride(o Override) error
	// DeleteOverride removes the override of (ns, key), if any; it is
	// durable before it returns.
	DeleteOverride(ns Namespace, key string) error

	// Save makes every change durable now.
	Save() error
	// Health returns nil while changes reach the disk. After a failed
	// write it returns that failure, wrapping bucket.ErrNotDurable, until a
	// write succeeds again; after Close, bucket.ErrClosed.
	Health() error
	// LastSave is when every change made before it was last durable.
	LastSave() time.Time
	// Close makes every change durable and releases the store. It is
	// idempotent.
	Close() error
}

// TakeReq is one take of a batch (Store.TakeBatch): cost tokens from
// key's bucket under limits.
type TakeReq struct {
	Key    string
	Limits []bucket.Limit
	Cost   bucket.Tokens
}

// TakeResult is the outcome of one take of a batch: its decision, or the
// error Take would have returned (the decision of a take that changed the
// bucket stays with an error wrapping bucket.ErrNotDurable).
type TakeResult struct {
	bucket.Decision
	Err error
}

// Override is one key's own limits under one namespace: a premium customer's
// higher capacity under a policy, say.
type Override struct {
	NS     Namespace
	Key    string
	Limits []bucket.Limit
}

// Clock is a store's time source. Elapsed time within a run is measured
// with Mono, so that a step of the wall clock (NTP, a VM restored from a
// snapshot) neither freezes nor refills a bucket; Wall is read only to
// persist instants and to restore them across restarts.
type Clock interface {
	// Wall returns the wall-clock time.
	Wall() time.Time
	// Mono returns the time elapsed since an arbitrary origin fixed for the
	// clock's life; it never goes backwards.
	Mono() time.Duration
	// After sends the time on the channel once Mono has advanced by d, as
	// time.After does.
	After(d time.Duration) <-chan time.Time
}

// SystemClock returns the machine's clock: time.Now for Wall, and its
// monotonic reading for Mono.
func SystemClock() Clock { return systemClock{origin: time.Now()} }

type systemClock struct{ origin time.Time }

func (c systemClock) Wall() time.Time     { return time.Now().Round(0) }
func (c systemClock) Mono() time.Duration { return time.Since(c.origin) }

// wallMono returns Wall (in Unix ns) and Mono of one reading of the clock.
func (c systemClock) wallMono() (int64, time.Duration) {
	t := time.Now()
	return t.UnixNano(), t.Sub(c.origin)
}

// wallMonoClock is a Clock that reads Wall and Mono at once, cheaper than
// one after the other on the hot path of a take.
type wallMonoClock interface {
	wallMono() (wall int64, mono time.Duration)
}

func (c systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
