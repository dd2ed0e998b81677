package bucket

import (
	"math"
	"math/bits"
	"time"
)

// Give returns the state after n tokens are given back to the bucket at now
// (a refund, or redis-cell's negative quantity): the bucket refilled to now,
// plus n, never above the capacity. n <= 0 changes nothing. The decision is
// a peek at the new state.
func (s State) Give(l Limit, now time.Time, n Tokens) (State, Decision) {
	if n <= 0 {
		_, d := s.Take(l, now, 0)
		return s, d
	}
	t := now.UnixNano()
	r := s.refill(l, t)
	if r.Tokens > l.Capacity-n { // n > 0, so no overflow
		r = State{Tokens: l.Capacity, At: r.At}
	} else {
		r.Tokens += n
	}
	_, d := r.Take(l, now, 0)
	return r, d
}

// Give gives n tokens back to every limit's bucket at now: s has one state
// per limit of p, and is updated in place. each, when not nil, receives each
// limit's peek afterwards. The decision combines them as Take does.
func (p Policy) Give(s []State, now time.Time, n Tokens, each []Decision) Decision {
	for i, l := range p.Limits {
		s[i], _ = s[i].Give(l, now, n)
	}
	return p.Take(s, now, 0, each)
}

// Carry says what a bucket keeps when it is next taken under limits other
// than those it was stored with.
type Carry uint8

const (
	// CarryTokens keeps the state as stored: the tokens held at its
	// instant, clamped to the new capacity, earning at the new rate from
	// that instant on. Policies use it: a reload or an override never
	// resets anyone. It is the zero value.
	CarryTokens Carry = iota
	// CarryTime keeps the time until the bucket is full, as GCRA (redis-cell)
	// does: it stores only the instant at which the bucket is full, so
	// calling it with other limits reinterprets that instant.
	CarryTime
)

// Refit returns s, stored under the limit from, as a state under the limit
// to at now, keeping what c says. A state under the same limit is returned
// unchanged.
func (s State) Refit(from, to Limit, now time.Time, c Carry) State {
	if from == to {
		return s
	}
	if c == CarryTokens {
		// Take clamps a state above the capacity and drops a remainder
		// from another rate; that is the carry of tokens.
		return s
	}
	return UntilFullState(to, now, s.UntilFull(from, now))
}

// UntilFullState returns the state under l at now whose time until full is
// d: the tokens l earns in d short of its capacity. A d longer than an empty
// bucket takes to fill is a bucket in debt: empty, at an instant after now,
// so that it earns nothing before it and is full after d. The result's time
// until full is d to the nanosecond, except where d is so long that the
// instant would overflow.
func UntilFullState(l Limit, now time.Time, d time.Duration) State {
	t := now.UnixNano()
	if d <= 0 {
		return State{Tokens: l.Capacity, At: t}
	}
	per, n := uint64(l.Rate.Per), uint64(l.Rate.Tokens)
	// The deficit is d×n micro-tokens×Per; in micro-tokens, rounded up,
	// with the part not yet whole kept as Rem.
	hi, lo := bits.Mul64(uint64(d), n)
	if hi < per {
		q, r := bits.Div64(hi, lo, per)
		if r != 0 {
			q++
		}
		if q <= uint64(l.Capacity) {
			rem := uint64(0)
			if r != 0 {
				rem = per - r
			}
			return State{Tokens: l.Capacity - Tokens(q), At: t, Rem: rem}
		}
	}
	// In debt: empty at t+extra, where extra is d less the window.
	extra := d - l.Window()
	at := t + int64(extra)
	if at < t { // overflow: saturate
		at = math.MaxInt64
	}
	return State{At: at}
}
