// Package limiter is what a take means. It stands between the fronts (HTTP,
// RESP) and a storage.Store, and owns everything that is not bucket state:
//
//   - policies: named sets of limits, one of them the default, replaced
//     whole by a reload;
//   - per-key overrides of a policy's limits, persisted through the store;
//   - counts of allowed and refused takes, per policy and for CL.THROTTLE;
//   - shadow policies, whose refusals are counted and logged, not enforced;
//   - redis-cell's CL.THROTTLE, whose buckets live in a namespace of their
//     own (storage.CellNS), apart from every policy's.
//
// A policy's buckets are in the namespace storage.PolicyNS(name): a take
// resolves the policy (and the key's override) to limits and asks the store
// to take them. So every read, a take of 0, a peek, HGETALL, answers from
// the store's one definition of the bucket now, under the limits in force.
//
// A Limiter is safe for concurrent use.
package limiter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
)

// DefaultLimit is the original service's limit: 5 tokens, one every 3 s.
var DefaultLimit = bucket.Limit{Capacity: 5 * bucket.Token, Rate: bucket.Every(3e9)}

// Options configure a Limiter. The zero value is valid.
type Options struct {
	// Default is the single limit of the default policy when no policies
	// file defines it (the flags); zero means DefaultLimit.
	Default bucket.Limit
	// Logger receives shadow refusals; nil discards.
	Logger *slog.Logger
	// Top configures the window of the keys refused most (Top).
	Top TopOptions
	// OnStoreError is what a take does when the store is unavailable
	// (bucket.ErrStoreUnavailable), for policies that do not say and for
	// CL.THROTTLE: bucket.FailClosed (also for FailDefault) or FailOpen.
	OnStoreError bucket.FailMode
}

// Limiter applies policies, overrides and CL.THROTTLE's limits to the
// buckets of a store.
type Limiter struct {
	store storage.Store
	log   *slog.Logger

	policies atomic.Pointer[table] // swapped whole on every change
	cell     counter               // CL.THROTTLE's counts
	interned sync.Map              // bucket.Limit -> []bucket.Limit of it: CL.THROTTLE's and RLS rules' limits
	failMode bucket.FailMode       // Options.OnStoreError
	storeErr storeErrCounts        // takes the store could not serve
	internN  atomic.Int64
	mu       sync.Mutex // serializes changes of policies and overrides
	rls      rls        // Envoy's rate limit service: rls.go
	top      *top       // the keys refused most
	txn      txnState   // stripe locks and watchers: txn.go
}

// New returns a limiter over store, with the default policy alone and the
// overrides the store holds.
func New(store storage.Store, opts Options) (*Limiter, error) {
	if opts.Default == (bucket.Limit{}) {
		opts.Default = DefaultLimit
	}
	if err := opts.Default.Validate(); err != nil {
		return nil, fmt.Errorf("limiter: default limit: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	l := &Limiter{store: store, log: opts.Logger, top: newTop(opts.Top), failMode: opts.OnStoreError}
	t := newTable(opts.Default)
	os, err := store.Overrides()
	if err != nil {
		return nil, fmt.Errorf("limiter: %w", err)
	}
	for _, o := range os {
		if o.NS.Kind == storage.KindPolicy {
			t.overrides[overrideKey{o.NS.Name, o.Key}] = slices.Clone(o.Limits)
		}
	}
	l.policies.Store(t)
	return l, nil
}

// take takes cost tokens from key's bucket under the named policy ("" is
// the default), with the key's override if it has one. A cost of 0 peeks
// and is not counted. A cost above the policy's capacity is a denial whose
// RetryAfter is bucket.Never, not an error. The error wraps
// bucket.ErrUnknownPolicy, bucket.ErrInvalid (a negative cost, a bad key),
// bucket.ErrClosed, or bucket.ErrNotDurable: then the take was made and is
// counted, but is not yet on disk. When the store is unavailable, the
// policy's failure mode decides (see StoreErrors): an error wrapping
// bucket.ErrStoreUnavailable, or an allowed take.
func (l *Limiter) take(key, policy string, cost bucket.Tokens) (bucket.Result, error) {
	if cost < 0 {
		return bucket.Result{}, fmt.Errorf("cost %s is negative: %w", cost, bucket.ErrInvalid)
	}
	pe, err := l.policies.Load().resolve(key, policy)
	if err != nil {
		return bucket.Result{}, err
	}
	res := bucket.Result{Policy: pe.public()}
	if len(pe.Limits) > 1 {
		res.Limits = make([]bucket.Decision, len(pe.Limits))
	}
	res.Decision, err = l.store.Take(storage.PolicyNS(pe.Name), key, pe.Limits, cost, res.Limits)
	if err != nil && errors.Is(err, bucket.ErrStoreUnavailable) {
		return l.storeFailed(res, pe.OnStoreError, pe.Capacity(), cost, err)
	}
	if cost > 0 && (err == nil || errors.Is(err, bucket.ErrNotDurable)) {
		pe.c.count(res.Allowed)
		if !res.Allowed {
			l.top.refused(pe.Name, key)
		}
		if !res.Allowed && pe.Shadow {
			l.log.LogAttrs(context.Background(), slog.LevelInfo, "shadow policy refused a take; allowed",
				slog.String("policy", pe.Name), slog.String("key", key), slog.String("cost", cost.String()),
				slog.Duration("retry_after", res.RetryAfter))
		}
	}
	return res, err
}

// throttle takes cost tokens from key's CL.THROTTLE bucket under the limit
// lim, given by the caller: redis-cell's command. The bucket is apart from
// every policy's. Called with other limits than last time, the bucket keeps
// its time until full, as redis-cell does. A cost of 0 peeks; a negative
// cost gives tokens back, never above the capacity. Takes (cost > 0) are
// counted (CellCounts). Errors are as for Take.
func (l *Limiter) throttle(key string, lim bucket.Limit, cost bucket.Tokens) (bucket.Decision, error) {
	if err := lim.Validate(); err != nil { // before it can take a place in the cache
		return bucket.Decision{}, err
	}
	d, err := l.store.Take(storage.CellNS, key, l.intern(lim), cost, nil)
	return l.throttled(key, lim, cost, d, err)
}

// throttled completes a CL.THROTTLE of cost from key under lim whose take
// the store answered with d and err: a store that is unavailable fails as
// the default says, and a take that was made is counted, and its refusal
// noted for the top keys.
func (l *Limiter) throttled(key string, lim bucket.Limit, cost bucket.Tokens, d bucket.Decision, err error) (bucket.Decision, error) {
	if err != nil && errors.Is(err, bucket.ErrStoreUnavailable) {
		res, err := l.storeFailed(bucket.Result{}, bucket.FailDefault, lim.Capacity, cost, err)
		return res.Decision, err
	}
	if cost > 0 && (err == nil || errors.Is(err, bucket.ErrNotDurable)) {
		l.cell.count(d.Allowed)
		if !d.Allowed {
			l.top.refused("", key)
		}
	}
	return d, err
}

// maxInterned is the most distinct CL.THROTTLE limits kept for reuse.
const maxInterned = 4096

// intern returns a one-limit slice of lim that nobody changes, shared by
// every call with that limit, so that a call allocates none.
func (l *Limiter) intern(lim bucket.Limit) []bucket.Limit {
	if v, ok := l.interned.Load(lim); ok {
		return v.([]bucket.Limit)
	}
	if l.internN.Load() >= maxInterned {
		return []bucket.Limit{lim}
	}
	v, loaded := l.interned.LoadOrStore(lim, []bucket.Limit{lim})
	if !loaded {
		l.internN.Add(1)
	}
	return v.([]bucket.Limit)
}

// CellCounts returns the counts of CL.THROTTLE's takes since start.
func (l *Limiter) CellCounts() bucket.Counts { return l.cell.load() }

// View is one bucket of a key, as it is now.
type View struct {
	// Policy names the policy of a policy's bucket; "" for CL.THROTTLE's.
	Policy string
	// Cell is set for CL.THROTTLE's bucket.
	Cell bool
	// RLS is the domain of an Envoy rate limit service bucket; its Policy
	// is then RLSPolicyPrefix+RLS.
	RLS string
	// Snapshot is the bucket now, under the limits in force: the policy's
	// (with the key's override), or for CL.THROTTLE's bucket, those of its
	// last call.
	bucket.Snapshot
}

// inspect returns the bucket of key a Redis client's HGETALL shows: its
// bucket under the default policy when that is not full, or else its first
// bucket that is not full, in storage.Namespace order (policies by name,
// then CL.THROTTLE's, then Envoy RLS domains'). It reports false when every
// bucket of key is full.
func (l *Limiter) inspect(key string) (View, bool, error) {
	t := l.policies.Load()
	if v, ok, err := l.view(t, storage.PolicyNS(t.def), key); ok || err != nil {
		return v, ok, err
	}
	nss, err := l.store.Namespaces(key)
	if err != nil {
		return View{}, false, err
	}
	for _, ns := range nss {
		if v, ok, err := l.view(t, ns, key); ok || err != nil {
			return v, ok, err
		}
	}
	return View{}, false, nil
}

// view peeks at (ns, key) under the limits in force for it.
func (l *Limiter) view(t *table, ns storage.Namespace, key string) (View, bool, error) {
	var limits []bucket.Limit // the stored ones: CL.THROTTLE's, or a removed policy's
	v := View{Cell: ns.Kind == storage.KindCell}
	if ns.Kind == storage.KindPolicy {
		v.Policy = ns.Name
		if pe, err := t.resolve(key, ns.Name); err == nil {
			limits = pe.Limits
		}
	}
	if ns.Kind == storage.KindRLS { // under its stored limit: the rule's, as last taken
		v.RLS, v.Policy = ns.Name, RLSPolicyPrefix+ns.Name
	}
	snap, ok, err := l.store.Peek(ns, key, limits)
	if !ok || err != nil {
		return View{}, false, err
	}
	snap.Policy.Name = v.Policy
	v.Snapshot = snap
	return v, true, nil
}

// Ready returns nil while the store is open and its changes reach the
// disk; otherwise why not (bucket.ErrClosed, bucket.ErrNotDurable).
func (l *Limiter) Ready() error { return l.store.Health() }

// counter counts decisions. A policy's survives reloads that keep its name.
type counter struct {
	allowed atomic.Uint64
	denied  atomic.Uint64
}

func (c *counter) count(allowed bool) {
	if allowed {
		c.allowed.Add(1)
	} else {
		c.denied.Add(1)
	}
}

func (c *counter) load() bucket.Counts {
	return bucket.Counts{Allowed: c.allowed.Load(), Denied: c.denied.Load()}
}
