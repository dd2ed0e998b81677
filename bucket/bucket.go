// Package bucket is the token-bucket maths of bucketd: pure functions on
// values, with time as a parameter.
//
// A Limit is a bucket of Capacity tokens that refills continuously at Rate:
// an empty bucket of rate 1/3s holds 0.5 tokens 1.5 s later. A take of cost
// tokens succeeds when the bucket holds at least cost, and then removes them;
// a denied take removes nothing. A Policy is one or more limits that a take
// must pass together.
//
// The arithmetic is exact. Tokens are integers of micro-tokens, instants
// are integer nanoseconds, and the part of a micro-token earned but not yet
// whole is carried in State.Rem, so no time is ever lost to rounding: any
// sequence of takes allows exactly what the closed form says. Products use
// 128-bit intermediates and every result saturates instead of overflowing,
// for any valid limit (capacities up to 10^12 tokens, rates from one
// micro-token in 290 years to 10^9 tokens a second).
//
// Nothing here reads a clock, locks, logs or does I/O; the caller owns the
// State values and their concurrency.
package bucket

import (
	"math"
	"math/bits"
	"time"
)

// Limit is one token bucket: it holds at most Capacity tokens and earns Rate.
// The zero value is invalid; see Validate.
type Limit struct {
	Capacity Tokens // the burst: most tokens the bucket holds; > 0
	Rate     Rate   // how fast it refills
}

// Validate reports whether l is usable: a capacity from one micro-token to
// MaxTokens and a valid rate. The error wraps ErrInvalid.
func (l Limit) Validate() error {
	if l.Capacity <= 0 {
		return invalidf("capacity %s must be positive", l.Capacity)
	}
	if l.Capacity > MaxTokens {
		return invalidf("capacity %s is more than the maximum of %s", l.Capacity, MaxTokens)
	}
	return l.Rate.Validate()
}

// Window is the time an empty bucket takes to fill, rounded up to the
// nanosecond and saturated at the largest time.Duration.
func (l Limit) Window() time.Duration {
	return l.duration(uint64(l.Capacity), 0)
}

// State is the stored state of one bucket under one Limit: it held Tokens at
// the instant At, plus Rem/Rate.Per of a micro-token earned and not yet whole.
// A missing bucket is a full one: use Full to make it.
type State struct {
	Tokens Tokens // tokens held at At, 0 <= Tokens <= Capacity
	At     int64  // the instant of Tokens, in Unix nanoseconds
	Rem    uint64 // earned fraction of a micro-token, in 1/Rate.Per units; < Rate.Per
}

// Full returns the state of a full bucket at now.
func Full(l Limit, now time.Time) State {
	return State{Tokens: l.Capacity, At: now.UnixNano()}
}

// Set returns the state of a bucket holding tokens at now, clamped to
// [0, Capacity]. It is for administrators granting or draining tokens.
func Set(l Limit, now time.Time, tokens Tokens) State {
	return State{Tokens: min(max(tokens, 0), l.Capacity), At: now.UnixNano()}
}

// Never is the RetryAfter of a decision that no wait can change: the cost is
// more than the capacity.
const Never time.Duration = -1

// Decision is the outcome of a take.
type Decision struct {
	Allowed bool
	// Limit is the capacity of the bucket that decided.
	Limit Tokens
	// Remaining is what the bucket holds after the take (before it, when
	// denied).
	Remaining Tokens
	// RetryAfter is how long until this cost could succeed: 0 when allowed,
	// Never when the cost is more than the capacity.
	RetryAfter time.Duration
	// ResetAfter is how long until the bucket is full again: 0 when it is
	// full.
	ResetAfter time.Duration
}

// Take reports whether cost tokens can be taken from the bucket at now, and
// returns the state after the take. A denied take, or a cost of 0 (a peek),
// returns s unchanged: only an allowed, non-zero take needs to be stored.
// A now earlier than s.At is taken as s.At: a clock that goes backwards
// earns nothing, and the durations of the decision still count from now.
// A state with more tokens than the capacity (a capacity that shrank) is
// taken as full.
func (s State) Take(l Limit, now time.Time, cost Tokens) (State, Decision) {
	t := now.UnixNano()
	r := s.refill(l, t)
	d := Decision{Limit: l.Capacity, Remaining: r.Tokens}
	behind := uint64(0) // how far now is behind s.At
	if t < r.At {
		behind = uint64(r.At) - uint64(t)
	}
	switch {
	case cost > l.Capacity:
		d.RetryAfter = Never
		d.ResetAfter = l.untilFull(r, behind)
		return s, d
	case cost > r.Tokens:
		d.RetryAfter = sat(behind, l.duration(uint64(cost-r.Tokens), r.Rem))
		d.ResetAfter = l.untilFull(r, behind)
		return s, d
	}
	d.Allowed = true
	if cost <= 0 {
		d.ResetAfter = l.untilFull(r, behind)
		return s, d
	}
	r.Tokens -= cost
	d.Remaining = r.Tokens
	d.ResetAfter = l.untilFull(r, behind)
	return r, d
}

// Available returns the tokens the bucket holds at now.
func (s State) Available(l Limit, now time.Time) Tokens {
	return s.refill(l, now.UnixNano()).Tokens
}

// UntilFull returns how long from now until the bucket is full; 0 if it is.
func (s State) UntilFull(l Limit, now time.Time) time.Duration {
	t := now.UnixNano()
	r := s.refill(l, t)
	behind := uint64(0)
	if t < r.At {
		behind = uint64(r.At) - uint64(t)
	}
	return l.untilFull(r, behind)
}

// untilFull returns how long until r, the state refilled to an instant
// behind r.At, is full. A full bucket needs no wait, however far behind its
// instant the clock is.
func (l Limit) untilFull(r State, behind uint64) time.Duration {
	if r.Tokens >= l.Capacity {
		return 0
	}
	return sat(behind, l.duration(uint64(l.Capacity-r.Tokens), r.Rem))
}

// refill returns the state at t (at s.At if t is earlier), with the tokens
// earned since s.At added and clamped to the capacity.
func (s State) refill(l Limit, t int64) State {
	if s.Tokens >= l.Capacity {
		return State{Tokens: l.Capacity, At: max(s.At, t)}
	}
	if s.Tokens < 0 { // only from a corrupt store; never below empty
		s.Tokens, s.Rem = 0, 0
	}
	per := uint64(l.Rate.Per)
	if s.Rem >= per { // the rate changed under a stored remainder
		s.Rem = 0
	}
	if t <= s.At {
		return s
	}
	elapsed := uint64(t) - uint64(s.At)
	// earned = elapsed*Rate.Tokens + Rem, in micro-tokens times Per.
	hi, lo := bits.Mul64(elapsed, uint64(l.Rate.Tokens))
	lo, carry := bits.Add64(lo, s.Rem, 0)
	hi += carry
	// The bucket is full when earned >= (Capacity-Tokens)*Per.
	needHi, needLo := bits.Mul64(uint64(l.Capacity-s.Tokens), per)
	if hi > needHi || (hi == needHi && lo >= needLo) {
		return State{Tokens: l.Capacity, At: t}
	}
	// earned < need < 2^63*Per, so hi < Per and the quotient fits.
	q, rem := bits.Div64(hi, lo, per)
	return State{Tokens: s.Tokens + Tokens(q), At: t, Rem: rem}
}

// duration returns how long the limit takes to earn need micro-tokens when
// rem/Per of one is already earned, rounded up to the nanosecond and
// saturated at the largest time.Duration.
func (l Limit) duration(need, rem uint64) time.Duration {
	if need == 0 {
		return 0
	}
	per, n := uint64(l.Rate.Per), uint64(l.Rate.Tokens)
	if n == 0 || per == 0 {
		return time.Duration(math.MaxInt64)
	}
	hi, lo := bits.Mul64(need, per)
	lo, borrow := bits.Sub64(lo, min(rem, per-1), 0)
	hi -= borrow
	if hi >= n {
		return time.Duration(math.MaxInt64)
	}
	q, r := bits.Div64(hi, lo, n)
	if r != 0 {
		q++
	}
	if q > math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(q)
}

// sat returns a+b saturated at the largest time.Duration.
func sat(a uint64, b time.Duration) time.Duration {
	s := a + uint64(b)
	if s < a || s > math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s)
}
