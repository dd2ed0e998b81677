package limiter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/rlsconfig"
	"github.com/bucketd/bucketd/storage"
)

// This file is Envoy's rate limit service (RLS) in limiter terms. A
// request names a domain and carries descriptors; each descriptor is
// matched against the domain's rules (package rlsconfig), and a matched
// rule is a token bucket in the store: namespace storage.RLSNS(domain), key
// rlsconfig.Match.Key ("key1_value1.key2_value2"), limit
// RateLimit.Limit() (capacity requests_per_unit, earning requests_per_unit
// per unit).
//
// All or nothing: the store's Take is atomic for one bucket only, so a
// request with several buckets takes them one at a time, in the order of
// its descriptors, and when one refuses it gives back (a negative take) to
// those it has taken, and takes none of the rest. What this guarantees:
//
//   - an OVER_LIMIT answer leaves every bucket as if the request had not
//     been made, except for the refill the give-back cannot return above a
//     capacity (a bucket that refilled to full between the take and the
//     give-back stays full);
//   - an OK answer took from every limited bucket;
//   - no bucket ever goes below zero or above its capacity.
//
// What it does not guarantee is isolation: between a take and its
// give-back another request can see the tokens as taken and be refused.
// That request would have been refused had the two arrived in the other
// order, so a limit is never exceeded; it can only be, briefly, stricter.

// RLSRequest is a ShouldRateLimit call.
type RLSRequest struct {
	Domain      string
	Descriptors []RLSDescriptor
	// HitsAddend is the cost of each descriptor that gives none; 0 means 1,
	// as Envoy and envoyproxy/ratelimit take it.
	HitsAddend uint64
}

// RLSDescriptor is one descriptor of a request.
type RLSDescriptor struct {
	Entries []rlsconfig.Entry
	// Limit, when not nil, is Envoy's per-descriptor limit override: it is
	// used instead of the configuration's rules, under the key
	// rlsconfig.DescriptorKey(Entries).
	Limit *rlsconfig.RateLimit
	// HitsAddend, when not nil, is this descriptor's cost; 0 checks
	// without taking.
	HitsAddend *uint64
}

// RLSStatus is the outcome for one descriptor.
type RLSStatus struct {
	// Over is set when the descriptor is over its limit (and the rule is
	// not in shadow mode).
	Over bool
	// Rule is the rule that applied; nil when none did (no limit, a rule
	// replaced by another, or no rule matched).
	Rule *rlsconfig.Rule
	// Key is the bucket's key in the domain's namespace ("" with no bucket).
	Key string
	// Unlimited is set for a rule that is unlimited.
	Unlimited bool
	// Shadow is set when a shadow-mode rule refused: answered OK, counted.
	Shadow bool
	// Limit is the bucket's limit; zero for no bucket.
	Limit bucket.Limit
	// Decision is the bucket after the request: Remaining tokens,
	// ResetAfter (until full), RetryAfter (until this cost fits, when
	// over; bucket.Never when it never will).
	bucket.Decision
}

// RLSResult is a ShouldRateLimit answer.
type RLSResult struct {
	// Over is the overall code: set when a descriptor is over its limit,
	// or every quota-mode descriptor of the request is.
	Over     bool
	Statuses []RLSStatus
}

// RLSCounts are a domain's decisions since start, counted per descriptor
// that has a bucket and a cost (a check, hits_addend 0, is not counted).
type RLSCounts struct {
	// Allowed counts descriptors of requests answered OK.
	Allowed uint64
	// Denied counts descriptors of requests answered OVER_LIMIT, those
	// within their own limit included (they were given back).
	Denied uint64
	// ShadowDenied counts refusals of shadow-mode rules, answered OK (they
	// are not in Allowed).
	ShadowDenied uint64
}

type rlsCounter struct{ allowed, denied, shadow atomic.Uint64 }

// rls is the limiter's RLS state.
type rls struct {
	config atomic.Pointer[rlsconfig.Config]
	counts sync.Map // domain -> *rlsCounter
}

// SetRLSConfig puts c in force for every request that starts after it
// returns; nil is an empty configuration. Buckets keep their tokens: a rule
// whose limit changed refits them (storage.KindRLS carries tokens).
func (l *Limiter) SetRLSConfig(c *rlsconfig.Config) { l.rls.config.Store(c) }

// RLSConfig returns the configuration in force; nil for none.
func (l *Limiter) RLSConfig() *rlsconfig.Config { return l.rls.config.Load() }

// RLSCounts returns the counts of domain's decisions since start.
func (l *Limiter) RLSCounts(domain string) RLSCounts {
	v, ok := l.rls.counts.Load(domain)
	if !ok {
		return RLSCounts{}
	}
	c := v.(*rlsCounter)
	return RLSCounts{Allowed: c.allowed.Load(), Denied: c.denied.Load(), ShadowDenied: c.shadow.Load()}
}

func (l *Limiter) rlsCounter(domain string) *rlsCounter {
	if v, ok := l.rls.counts.Load(domain); ok {
		return v.(*rlsCounter)
	}
	v, _ := l.rls.counts.LoadOrStore(domain, new(rlsCounter))
	return v.(*rlsCounter)
}

// maxHits bounds a cost, in whole tokens: more than any capacity, and small
// enough that a cost in micro-tokens fits an int64.
const maxHits = uint64(bucket.MaxTokens/bucket.Token) + 1

// ShouldRateLimit decides req, all or nothing (see the top of this file),
// as envoyproxy/ratelimit decides it: descriptors that match no rule, or
// whose rule another matched rule replaces, are OK without a limit;
// unlimited rules are OK and keep no bucket; shadow-mode rules are taken
// from but never refuse; a quota-mode rule makes the request over its
// limit only when every quota-mode rule of the request refuses. The error
// wraps bucket.ErrInvalid for an empty domain, no descriptors, a
// descriptor without entries or an invalid limit override; or is the
// store's (bucket.ErrClosed; bucket.ErrNotDurable, with the result made).
func (l *Limiter) ShouldRateLimit(req RLSRequest) (RLSResult, error) {
	switch {
	case req.Domain == "":
		return RLSResult{}, fmt.Errorf("rate limit domain must not be empty: %w", bucket.ErrInvalid)
	case len(req.Descriptors) == 0:
		return RLSResult{}, fmt.Errorf("rate limit descriptor list must not be empty: %w", bucket.ErrInvalid)
	}
	cfg := l.rls.config.Load()
	res := RLSResult{Statuses: make([]RLSStatus, len(req.Descriptors))}
	costs := make([]bucket.Tokens, len(req.Descriptors))
	var replaced map[string]bool
	for i, d := range req.Descriptors {
		if len(d.Entries) == 0 {
			return RLSResult{}, fmt.Errorf("descriptor %d has no entries: %w", i, bucket.ErrInvalid)
		}
		st := &res.Statuses[i]
		if d.Limit != nil {
			rl := *d.Limit
			rl.Name, rl.Replaces, rl.Unlimited = "", nil, false
			st.Rule = &rlsconfig.Rule{Domain: req.Domain, Path: rlsconfig.DescriptorKey(d.Entries), RateLimit: rl}
			st.Key = st.Rule.Path
			if lim, ok := rl.Limit(); ok {
				if err := lim.Validate(); err != nil {
					return RLSResult{}, fmt.Errorf("descriptor %d: limit override: %w", i, err)
				}
			} else if rl.Unit.Duration() == 0 {
				return RLSResult{}, fmt.Errorf("descriptor %d: limit override without a unit: %w", i, bucket.ErrInvalid)
			}
		} else {
			m := cfg.Match(req.Domain, d.Entries)
			st.Rule, st.Key = m.Rule, m.Key
		}
		if st.Rule != nil {
			for _, r := range st.Rule.Replaces {
				if replaced == nil {
					replaced = map[string]bool{}
				}
				replaced[r] = true
			}
		}
		n := max(req.HitsAddend, 1)
		if d.HitsAddend != nil {
			n = *d.HitsAddend
		}
		costs[i] = bucket.Tokens(min(n, maxHits)) * bucket.Token
	}
	for i := range res.Statuses {
		st := &res.Statuses[i]
		switch {
		case st.Rule == nil:
		case st.Rule.Unlimited:
			st.Unlimited = true
		case st.Rule.Name != "" && replaced[st.Rule.Name]:
			st.Rule, st.Key = nil, ""
		default:
			st.Limit, _ = st.Rule.Limit()
		}
	}
	// The buckets' stripes are held for writing while they are taken and
	// any given back, so no other client sees tokens that a refused
	// request takes and gives back: all or nothing, and isolated.
	keys := make([]string, 0, len(res.Statuses))
	for _, st := range res.Statuses {
		if st.Rule != nil && !st.Unlimited {
			keys = append(keys, st.Key)
		}
	}
	defer l.txn.lock(keys, false)()
	res, err := l.takeRLS(req.Domain, res, costs)
	for i, st := range res.Statuses {
		if st.Allowed && st.Rule != nil && !st.Unlimited && !res.Over && i < len(costs) && costs[i] > 0 {
			l.txn.touch(st.Key)
		}
	}
	return res, err
}

// takeRLS takes costs from the buckets of res's statuses, all or nothing.
func (l *Limiter) takeRLS(domain string, res RLSResult, costs []bucket.Tokens) (RLSResult, error) {
	ns := storage.RLSNS(domain)
	taken := make([]bool, len(res.Statuses))
	stop := false // an enforced refusal: take no more, only look
	var durable error
	quota, quotaOver := 0, 0
	for i := range res.Statuses {
		st := &res.Statuses[i]
		if st.Rule == nil || st.Unlimited {
			continue
		}
		cost := costs[i]
		if st.Limit == (bucket.Limit{}) { // requests_per_unit: 0
			st.Decision = bucket.Decision{RetryAfter: bucket.Never}
			st.Allowed = cost == 0
		} else {
			c := cost
			if stop {
				c = 0
			}
			d, err := l.store.Take(ns, st.Key, l.intern(st.Limit), c, nil)
			if err != nil && !errors.Is(err, bucket.ErrNotDurable) {
				return RLSResult{}, errors.Join(err, l.giveBack(ns, res, costs, taken))
			}
			durable = cmpErr(durable, err)
			if stop && cost > d.Remaining {
				d.Allowed = false
				d.RetryAfter = retryAfter(st.Limit, d.Remaining, cost)
			}
			st.Decision = d
			taken[i] = d.Allowed && c > 0
		}
		switch {
		case st.Allowed:
		case st.Rule.ShadowMode:
			st.Shadow = true
		case st.Rule.QuotaMode:
			st.Over = true
		default:
			st.Over = true
			res.Over = true
			stop = true
		}
		if st.Rule.QuotaMode && !st.Rule.ShadowMode {
			quota++
			if !st.Allowed {
				quotaOver++
			}
		}
	}
	if quota > 0 && quota == quotaOver {
		res.Over = true
	}
	if res.Over {
		err := l.giveBack(ns, res, costs, taken)
		if err != nil && !errors.Is(err, bucket.ErrNotDurable) {
			return RLSResult{}, err
		}
		durable = cmpErr(durable, err)
	}
	c := l.rlsCounter(domain)
	for i, st := range res.Statuses {
		if st.Rule == nil || st.Unlimited || costs[i] == 0 {
			continue
		}
		switch {
		case st.Shadow:
			c.shadow.Add(1)
			l.top.refused("rls:"+domain, st.Key)
			l.log.LogAttrs(context.Background(), slog.LevelDebug, "shadow rls rule refused a descriptor; allowed",
				slog.String("domain", domain), slog.String("key", st.Key), slog.String("rule", st.Rule.Path))
		case st.Allowed && !res.Over:
			c.allowed.Add(1)
		default:
			c.denied.Add(1)
			if st.Over {
				l.top.refused("rls:"+domain, st.Key)
			}
		}
	}
	return res, durable
}

// giveBack returns their cost to the buckets taken from, and updates their
// statuses to the bucket after it. It gives back to every one it can: the
// error joins those that failed, and wraps only bucket.ErrNotDurable when
// every give-back was made.
func (l *Limiter) giveBack(ns storage.Namespace, res RLSResult, costs []bucket.Tokens, taken []bool) error {
	var errs, durable error
	for i, ok := range taken {
		if !ok {
			continue
		}
		st := &res.Statuses[i]
		d, err := l.store.Take(ns, st.Key, l.intern(st.Limit), -costs[i], nil)
		if err != nil && !errors.Is(err, bucket.ErrNotDurable) {
			errs = errors.Join(errs, err)
			continue
		}
		durable = cmpErr(durable, err)
		taken[i] = false
		st.Remaining, st.ResetAfter = d.Remaining, d.ResetAfter
	}
	return cmpErr(errs, durable)
}

// retryAfter returns how long until cost fits a bucket of limit lim that
// holds remaining tokens now (to the micro-token: the fraction earned
// towards the next one is not known here), bucket.Never when cost is more
// than the capacity.
func retryAfter(lim bucket.Limit, remaining, cost bucket.Tokens) time.Duration {
	epoch := time.Unix(0, 0)
	_, d := bucket.State{Tokens: remaining, At: epoch.UnixNano()}.Take(lim, epoch, cost)
	return d.RetryAfter
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// RLSPolicyPrefix begins the policy name a View of an RLS bucket shows
// (HGETALL's policy field, /v1/buckets): "rls:" and the domain. A policies
// file cannot name a policy so (policy names have no ':').
const RLSPolicyPrefix = "rls:"
