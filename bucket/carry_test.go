package bucket_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

// Limits of the carry tests.
var (
	perSec  = bucket.Limit{Capacity: 5 * tok, Rate: bucket.PerSecond(1)}
	every3s = bucket.Limit{Capacity: 5 * tok, Rate: bucket.Every(3 * time.Second)}
	hundred = bucket.Limit{Capacity: 100 * tok, Rate: bucket.Every(time.Minute)}
	fiveMin = bucket.Limit{Capacity: 5 * tok, Rate: bucket.Every(time.Minute)}
	// odd earns 3 tokens every 11 s: most durations leave a remainder.
	odd = bucket.Limit{Capacity: 7 * tok, Rate: bucket.Rate{Tokens: 3 * tok, Per: 11 * time.Second}}
	// tiniest earns a micro-token every 292 years, and holds one.
	tiniest = bucket.Limit{Capacity: bucket.Micro, Rate: bucket.Rate{Tokens: bucket.Micro, Per: math.MaxInt64}}
	// slowest holds the most and earns the least: its window is longer
	// than any time.Duration.
	slowest = bucket.Limit{Capacity: bucket.MaxTokens, Rate: bucket.Rate{Tokens: bucket.Micro, Per: math.MaxInt64}}
	// fastest holds the most and earns the most: a window of 1000 s.
	fastest = bucket.Limit{Capacity: bucket.MaxTokens, Rate: bucket.PerSecond(1_000_000_000)}
	// blink holds a micro-token and fills in a nanosecond.
	blink = bucket.Limit{Capacity: bucket.Micro, Rate: bucket.PerSecond(1_000_000_000)}
)

// checkPeek checks that d is a peek at s under l at now.
func checkPeek(t *testing.T, l bucket.Limit, s bucket.State, now time.Time, d bucket.Decision, msg string) {
	t.Helper()
	_, want := s.Take(l, now, 0)
	assert.Equal(t, want, d, "%s: the decision is a peek at the new state", msg)
}

func TestGive(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		l     bucket.Limit
		s     bucket.State
		at    time.Time
		n     bucket.Tokens
		want  bucket.State
		wantD bucket.Decision
	}{
		{"refill then add", perSec, bucket.State{Tokens: tok, At: t0.UnixNano()}, t2, tok,
			bucket.State{Tokens: 4 * tok, At: t2.UnixNano()},
			bucket.Decision{Allowed: true, Limit: 5 * tok, Remaining: 4 * tok, ResetAfter: time.Second}},
		{"up to the capacity", perSec, bucket.State{Tokens: 2 * tok, At: t0.UnixNano()}, t0, 3 * tok,
			bucket.State{Tokens: 5 * tok, At: t0.UnixNano()},
			bucket.Decision{Allowed: true, Limit: 5 * tok, Remaining: 5 * tok}},
		{"clamped at the capacity", perSec, bucket.State{Tokens: 3 * tok, At: t0.UnixNano()}, t1, 3 * tok,
			bucket.State{Tokens: 5 * tok, At: t1.UnixNano()},
			bucket.Decision{Allowed: true, Limit: 5 * tok, Remaining: 5 * tok}},
		{"full stays full", perSec, bucket.Full(perSec, t0), t3, tok,
			bucket.State{Tokens: 5 * tok, At: t3.UnixNano()},
			bucket.Decision{Allowed: true, Limit: 5 * tok, Remaining: 5 * tok}},
		// 1 s of 1 token every 3 s earns 333 333 micro-tokens and a third
		// of one, kept as the remainder: with it the bucket is full 11 s
		// later to the nanosecond.
		{"the remainder is kept", every3s, bucket.State{At: t0.UnixNano()}, t1, tok,
			bucket.State{Tokens: tok + 333_333, At: t1.UnixNano(), Rem: uint64(time.Second)},
			bucket.Decision{Allowed: true, Limit: 5 * tok, Remaining: tok + 333_333, ResetAfter: 11 * time.Second}},
		{"full drops the remainder", every3s, bucket.State{Tokens: 4 * tok, At: t0.UnixNano()}, t1, tok,
			bucket.State{Tokens: 5 * tok, At: t1.UnixNano()},
			bucket.Decision{Allowed: true, Limit: 5 * tok, Remaining: 5 * tok}},
		{"a micro-token", perSec, bucket.State{At: t0.UnixNano()}, t0, bucket.Micro,
			bucket.State{Tokens: bucket.Micro, At: t0.UnixNano()},
			bucket.Decision{Allowed: true, Limit: 5 * tok, Remaining: bucket.Micro, ResetAfter: 5*time.Second - time.Microsecond}},
		{"zero is a peek", perSec, bucket.State{Tokens: tok, At: t0.UnixNano()}, t2, 0,
			bucket.State{Tokens: tok, At: t0.UnixNano()},
			bucket.Decision{Allowed: true, Limit: 5 * tok, Remaining: 3 * tok, ResetAfter: 2 * time.Second}},
		{"negative is a peek", perSec, bucket.State{Tokens: tok, At: t0.UnixNano()}, t2, -tok,
			bucket.State{Tokens: tok, At: t0.UnixNano()},
			bucket.Decision{Allowed: true, Limit: 5 * tok, Remaining: 3 * tok, ResetAfter: 2 * time.Second}},
		// A clock behind the state earns nothing: the tokens are added to
		// what the state holds at its own instant.
		{"clock behind the state", perSec, bucket.State{Tokens: tok, At: t2.UnixNano()}, t1, tok,
			bucket.State{Tokens: 2 * tok, At: t2.UnixNano()},
			bucket.Decision{Allowed: true, Limit: 5 * tok, Remaining: 2 * tok, ResetAfter: 4 * time.Second}},
		// A bucket in debt (empty until t10) holds the tokens given at
		// once, and is full sooner by what they earn: 14 s, not 15.
		{"in debt", perSec, bucket.State{At: t10.UnixNano()}, t0, tok,
			bucket.State{Tokens: tok, At: t10.UnixNano()},
			bucket.Decision{Allowed: true, Limit: 5 * tok, Remaining: tok, ResetAfter: 14 * time.Second}},
		{"the most to the largest", bucket.Limit{Capacity: bucket.MaxTokens, Rate: bucket.PerSecond(1)}, bucket.State{At: t0.UnixNano()}, t0, bucket.MaxTokens,
			bucket.State{Tokens: bucket.MaxTokens, At: t0.UnixNano()},
			bucket.Decision{Allowed: true, Limit: bucket.MaxTokens, Remaining: bucket.MaxTokens}},
		{"no overflow", perSec, bucket.State{Tokens: tok, At: t0.UnixNano()}, t0, math.MaxInt64,
			bucket.State{Tokens: 5 * tok, At: t0.UnixNano()},
			bucket.Decision{Allowed: true, Limit: 5 * tok, Remaining: 5 * tok}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, d := tt.s.Give(tt.l, tt.at, tt.n)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.wantD, d)
			checkState(t, tt.l, got)
			checkPeek(t, tt.l, got, tt.at, d, tt.name)
			if tt.n > 0 {
				assert.GreaterOrEqual(t, got.Available(tt.l, tt.at), min(tt.s.Available(tt.l, tt.at)+min(tt.n, tt.l.Capacity), tt.l.Capacity),
					"at least what the bucket held plus n, up to the capacity")
			}
		})
	}
}

func TestPolicyGive(t *testing.T) {
	t.Parallel()
	// A burst of 3, and 4 a minute.
	p := bucket.Policy{Name: "two", Limits: []bucket.Limit{
		{Capacity: 3 * tok, Rate: bucket.PerSecond(1)},
		{Capacity: 4 * tok, Rate: bucket.Rate{Tokens: 4 * tok, Per: time.Minute}},
	}}
	start := []bucket.State{{At: t0.UnixNano()}, {Tokens: tok, At: t0.UnixNano()}}
	tests := []struct {
		name string
		n    bucket.Tokens
		want []bucket.State
	}{
		// At t1 the burst holds 1, the minute 1 and 1/15: each gets 2.
		{"each limit gets n", 2 * tok, []bucket.State{
			{Tokens: 3 * tok, At: t1.UnixNano()},
			{Tokens: 3*tok + 66_666, At: t1.UnixNano(), Rem: 40 * uint64(time.Second)},
		}},
		{"each clamped to its own capacity", 3 * tok, []bucket.State{
			{Tokens: 3 * tok, At: t1.UnixNano()},
			{Tokens: 4 * tok, At: t1.UnixNano()},
		}},
		{"zero is a peek", 0, start},
		{"negative is a peek", -tok, start},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := append([]bucket.State(nil), start...)
			each := make([]bucket.Decision, 2)
			d := p.Give(s, t1, tt.n, each)
			assert.Equal(t, tt.want, s, "the states are given in place")
			for i, l := range p.Limits {
				checkState(t, l, s[i])
				checkPeek(t, l, s[i], t1, each[i], fmt.Sprint("limit ", i))
			}
			peek := append([]bucket.State(nil), s...)
			wantEach := make([]bucket.Decision, 2)
			assert.Equal(t, p.Take(peek, t1, 0, wantEach), d, "the combined decision is a peek")
			assert.Equal(t, wantEach, each)
			assert.Equal(t, combine(each), d)

			again := append([]bucket.State(nil), start...)
			assert.Equal(t, d, p.Give(again, t1, tt.n, nil), "each may be nil")
			assert.Equal(t, s, again)
		})
	}
}

// stateUnder returns states of l at now, from full to deep in debt.
func statesUnder(l bucket.Limit, now time.Time) map[string]bucket.State {
	t := now.UnixNano()
	per := uint64(l.Rate.Per)
	return map[string]bucket.State{
		"full":            bucket.Full(l, now),
		"empty":           {At: t},
		"half":            {Tokens: l.Capacity / 2, At: t},
		"one short":       {Tokens: l.Capacity - bucket.Micro, At: t},
		"with remainder":  {Tokens: l.Capacity / 3, At: t, Rem: per - 1},
		"refilling":       {Tokens: l.Capacity / 4, At: t - int64(time.Second)},
		"in debt":         {At: t + int64(time.Minute)},
		"deep in debt":    {At: t + int64(1000*time.Hour)},
		"debt and tokens": {Tokens: l.Capacity / 2, At: t + int64(time.Second), Rem: per / 2},
	}
}

func TestRefitSameLimitUnchanged(t *testing.T) {
	t.Parallel()
	for _, l := range []bucket.Limit{perSec, every3s, odd, tiniest, slowest, fastest, blink} {
		for name, s := range statesUnder(l, t0) {
			for _, c := range []bucket.Carry{bucket.CarryTokens, bucket.CarryTime} {
				assert.Equal(t, s, s.Refit(l, l, t5, c), "%v %s carry %d", l, name, c)
			}
		}
	}
}

func TestRefitCarryTokens(t *testing.T) {
	t.Parallel()
	// The state is kept as it is: Take reads its tokens under the new
	// limit, clamped to a smaller capacity, at the new rate from then on.
	s := bucket.State{Tokens: 4 * tok, At: t0.UnixNano(), Rem: 7}
	for _, to := range []bucket.Limit{hundred, fiveMin, perSec, odd, blink} {
		assert.Equal(t, s, s.Refit(every3s, to, t0, bucket.CarryTokens), "to %v", to)
	}
	_, d := s.Refit(every3s, hundred, t0, bucket.CarryTokens).Take(hundred, t0, 0)
	assert.Equal(t, 4*tok, d.Remaining, "a larger capacity: the tokens held")
	_, d = s.Refit(every3s, bucket.Limit{Capacity: 2 * tok, Rate: bucket.PerSecond(1)}, t0, bucket.CarryTokens).
		Take(bucket.Limit{Capacity: 2 * tok, Rate: bucket.PerSecond(1)}, t0, 0)
	assert.Equal(t, 2*tok, d.Remaining, "a smaller capacity: clamped")
}

func TestRefitCarryTime(t *testing.T) {
	t.Parallel()
	// Exact states for a few, redis-cell's example first: 50 of 100 taken
	// at one a minute is 50 minutes from full; under 5 at one a minute it
	// is empty for 45 minutes, then fills in 5.
	tests := []struct {
		name     string
		from, to bucket.Limit
		s        bucket.State
		want     bucket.State
	}{
		{"debt beyond the new window", hundred, fiveMin, bucket.State{Tokens: 50 * tok, At: t0.UnixNano()},
			bucket.State{At: t0.Add(45 * time.Minute).UnixNano()}},
		{"within the new window", fiveMin, hundred, bucket.State{Tokens: 2 * tok, At: t0.UnixNano()},
			bucket.State{Tokens: 97 * tok, At: t0.UnixNano()}},
		{"exactly the new window", bucket.Limit{Capacity: 10 * tok, Rate: bucket.PerSecond(1)}, perSec,
			bucket.State{Tokens: 5 * tok, At: t0.UnixNano()}, bucket.State{At: t0.UnixNano()}},
		{"full", hundred, fiveMin, bucket.Full(hundred, t0), bucket.Full(fiveMin, t0)},
		// A nanosecond from full under a token a second is a micro-token
		// short, with all but a nanosecond's worth of it earned.
		{"a nanosecond", every3s, perSec, bucket.State{Tokens: 5*tok - bucket.Micro, At: t0.UnixNano(), Rem: uint64(3*time.Second) - 1000},
			bucket.State{Tokens: 5*tok - bucket.Micro, At: t0.UnixNano(), Rem: uint64(time.Second) - 1_000_000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.s.Refit(tt.from, tt.to, t0, bucket.CarryTime)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.s.UntilFull(tt.from, t0), got.UntilFull(tt.to, t0))
		})
	}

	// Every pair of limits, from every kind of state: the time until full
	// is kept to the nanosecond, and the state is one of the new limit.
	limits := map[string]bucket.Limit{
		"perSec": perSec, "every3s": every3s, "hundred": hundred, "fiveMin": fiveMin, "odd": odd,
		"tiniest": tiniest, "slowest": slowest, "fastest": fastest, "blink": blink,
	}
	for fromName, from := range limits {
		for toName, to := range limits {
			for name, s := range statesUnder(from, t0) {
				got := s.Refit(from, to, t0, bucket.CarryTime)
				checkState(t, to, got)
				want := s.UntilFull(from, t0)
				if overflows(to, t0.UnixNano(), want) {
					assert.Equal(t, bucket.State{At: math.MaxInt64}, got, "%s -> %s, %s: saturated", fromName, toName, name)
					continue
				}
				assert.Equal(t, want, got.UntilFull(to, t0), "%s -> %s, %s", fromName, toName, name)
				// And back: the time until full survives the round trip.
				back := got.Refit(to, from, t0, bucket.CarryTime)
				assert.Equal(t, want, back.UntilFull(from, t0), "%s -> %s -> %s, %s", fromName, toName, fromName, name)
			}
		}
	}
}

func TestUntilFullState(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		l    bucket.Limit
		d    time.Duration
		want bucket.State
	}{
		{"zero is full", perSec, 0, bucket.Full(perSec, t0)},
		{"negative is full", perSec, -time.Second, bucket.Full(perSec, t0)},
		{"whole tokens", perSec, 2 * time.Second, bucket.State{Tokens: 3 * tok, At: t0.UnixNano()}},
		{"the whole window", perSec, 5 * time.Second, bucket.State{At: t0.UnixNano()}},
		{"beyond the window", perSec, time.Hour, bucket.State{At: t0.Add(time.Hour - 5*time.Second).UnixNano()}},
		// 1 s at 3 tokens every 11 s is 3/11 of a token: 272 727.27
		// micro-tokens, rounded up, with 8/11 of one already earned.
		{"a remainder", odd, time.Second, bucket.State{Tokens: 7*tok - 272_728, At: t0.UnixNano(), Rem: 8 * uint64(time.Second)}},
		{"the longest", perSec, math.MaxInt64, bucket.State{At: t0.UnixNano() + math.MaxInt64 - int64(5*time.Second)}},
		{"the slowest", slowest, math.MaxInt64, bucket.State{Tokens: bucket.MaxTokens - 1, At: t0.UnixNano()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "the longest" { // t0 + MaxInt64 overflows; at instant 0 it does not
				got := bucket.UntilFullState(tt.l, time.Unix(0, 0), tt.d)
				assert.Equal(t, bucket.State{At: math.MaxInt64 - int64(5*time.Second)}, got)
				assert.Equal(t, tt.d, got.UntilFull(tt.l, time.Unix(0, 0)))
				got = bucket.UntilFullState(tt.l, t0, tt.d)
				assert.Equal(t, bucket.State{At: math.MaxInt64}, got, "an instant past the last saturates")
				return
			}
			got := bucket.UntilFullState(tt.l, t0, tt.d)
			assert.Equal(t, tt.want, got)
			checkState(t, tt.l, got)
			assert.Equal(t, max(tt.d, 0), got.UntilFull(tt.l, t0))
		})
	}
}

// overflows reports whether the state d from full under l at now is in a
// debt whose instant is past the last a State can hold.
func overflows(l bucket.Limit, now int64, d time.Duration) bool {
	w := l.Window()
	return d > w && now > math.MaxInt64-int64(d-w)
}

func FuzzRefit(f *testing.F) {
	add := func(l bucket.Limit, now time.Time, d time.Duration, to bucket.Limit, s bucket.State) {
		f.Add(int64(l.Capacity-1), int64(l.Rate.Tokens-1), int64(l.Rate.Per-1), now.UnixNano(), int64(d),
			int64(to.Capacity-1), int64(to.Rate.Tokens-1), int64(to.Rate.Per-1), int64(s.Tokens), s.At, s.Rem)
	}
	add(hundred, t0, 50*time.Minute, fiveMin, bucket.State{Tokens: 50 * tok, At: t0.UnixNano()})
	add(perSec, t0, time.Nanosecond, every3s, bucket.State{Tokens: 4 * tok, At: t0.UnixNano(), Rem: 1})
	add(odd, tMin, time.Second, blink, bucket.State{At: tMax.UnixNano()})
	add(slowest, tMax, math.MaxInt64, tiniest, bucket.State{Tokens: bucket.MaxTokens / 2, At: tMin.UnixNano()})
	add(fastest, time.Unix(0, 0), -time.Second, slowest, bucket.Full(fastest, t0))
	add(tiniest, t0, math.MaxInt64, fastest, bucket.State{At: t0.UnixNano() + int64(year)})

	f.Fuzz(func(t *testing.T, capacity, tokens, per, now, d, toCapacity, toTokens, toPer, sTokens, sAt int64, sRem uint64) {
		l := fuzzLimit(capacity, tokens, per)
		require.NoError(t, l.Validate())
		at := time.Unix(0, now)
		dur := time.Duration(d)

		s := bucket.UntilFullState(l, at, dur)
		checkState(t, l, s)
		switch {
		case dur <= 0:
			require.Equal(t, bucket.Full(l, at), s)
		case overflows(l, now, dur):
			require.Equal(t, bucket.State{At: math.MaxInt64}, s, "d %v under %+v at %d", dur, l, now)
		default:
			require.Equal(t, dur, s.UntilFull(l, at), "d %v under %+v at %d: %+v", dur, l, now, s)
		}

		// Refit a state of l to another limit: CarryTime keeps the time
		// until full, CarryTokens the state; neither panics.
		to := fuzzLimit(toCapacity, toTokens, toPer)
		require.NoError(t, to.Validate())
		from := bucket.State{
			Tokens: bucket.Tokens(uint64(sTokens) % uint64(l.Capacity+1)),
			At:     sAt,
			Rem:    sRem % uint64(l.Rate.Per),
		}
		require.Equal(t, from, from.Refit(l, to, at, bucket.CarryTokens))
		require.Equal(t, from, from.Refit(l, l, at, bucket.CarryTime))
		got := from.Refit(l, to, at, bucket.CarryTime)
		checkState(t, to, got)
		want := from.UntilFull(l, at)
		if !overflows(to, now, want) {
			require.Equal(t, want, got.UntilFull(to, at), "refit %+v from %+v to %+v at %d: %+v", from, l, to, now, got)
		}
		if t.Failed() {
			t.FailNow()
		}
	})
}
