package bucket_test

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

// tok is one whole token, to write amounts as 3 * tok or tok / 4.
const tok = bucket.Token

// Named instants for the step tables. They are never written.
var (
	t0    = time.Unix(1_700_000_000, 0)
	t0_5  = t0.Add(500 * time.Millisecond)
	t1    = t0.Add(1 * time.Second)
	t1_5  = t0.Add(1500 * time.Millisecond)
	t2    = t0.Add(2 * time.Second)
	t3    = t0.Add(3 * time.Second)
	t5    = t0.Add(5 * time.Second)
	t6    = t0.Add(6 * time.Second)
	t9    = t0.Add(9 * time.Second)
	t10   = t0.Add(10 * time.Second)
	tMin  = time.Unix(0, math.MinInt64) // the earliest instant a State can hold
	tMax  = time.Unix(0, math.MaxInt64) // the latest
	year  = 365 * 24 * time.Hour
	never = bucket.Never
)

// step is one take in a step table, and the decision it must return.
type step struct {
	at   time.Time
	cost bucket.Tokens
	want bucket.Decision
}

// run takes each step in turn from s under l, checks every decision and the
// invariants of every state (see checkTake), and returns the last state.
func run(t *testing.T, l bucket.Limit, s bucket.State, steps []step) bucket.State {
	t.Helper()
	require.NoError(t, l.Validate())
	for i, st := range steps {
		next, d := s.Take(l, st.at, st.cost)
		assert.Equal(t, st.want, d, "step %d: take %s at t0+%v", i, st.cost, st.at.Sub(t0))
		checkTake(t, l, s, next, st.at, st.cost, d)
		s = next
	}
	return s
}

// checkTake checks what must hold of any take: before.Take(l, now, cost)
// returned after and d.
func checkTake(t *testing.T, l bucket.Limit, before, after bucket.State, now time.Time, cost bucket.Tokens, d bucket.Decision) {
	t.Helper()
	checkState(t, l, after)
	assert.Equal(t, l.Capacity, d.Limit, "Limit")
	assert.GreaterOrEqual(t, d.ResetAfter, time.Duration(0), "ResetAfter")
	assert.Equal(t, after.UntilFull(l, now), d.ResetAfter, "ResetAfter is UntilFull of the new state")
	checkResetAfter(t, l, after, now, d.ResetAfter)
	if !d.Allowed || cost <= 0 {
		assert.Equal(t, before, after, "a denied take or a peek changes nothing")
	}
	if d.Allowed {
		assert.Zero(t, d.RetryAfter, "RetryAfter of an allowed take")
		assert.Equal(t, after.Available(l, now), d.Remaining, "Remaining after an allowed take")
		if cost > 0 {
			assert.Equal(t, before.Available(l, now)-cost, d.Remaining, "an allowed take removes exactly cost")
		}
		return
	}
	assert.Equal(t, before.Available(l, now), d.Remaining, "Remaining of a denied take")
	if cost > l.Capacity {
		assert.Equal(t, never, d.RetryAfter, "a cost above the capacity is never allowed")
		return
	}
	assert.Less(t, d.Remaining, cost, "denied with enough tokens")
	assert.Positive(t, d.RetryAfter, "RetryAfter of a denied take")
	checkRetryAfter(t, l, before, now, cost, d.RetryAfter)
}

// checkState checks the invariants of a state: 0 <= Tokens <= Capacity and
// Rem < Per.
func checkState(t *testing.T, l bucket.Limit, s bucket.State) {
	t.Helper()
	assert.GreaterOrEqual(t, s.Tokens, bucket.Tokens(0), "tokens below zero: %+v", s)
	assert.LessOrEqual(t, s.Tokens, l.Capacity, "tokens above the capacity: %+v", s)
	assert.Less(t, s.Rem, uint64(l.Rate.Per), "remainder of a whole micro-token or more: %+v", s)
}

// fits reports whether now+d is an instant a State can hold.
func fits(now time.Time, d time.Duration) bool {
	return d >= 0 && now.UnixNano() <= math.MaxInt64-int64(d)
}

// checkRetryAfter checks that retry is exact: the take of cost from s
// succeeds at now+retry and fails a nanosecond earlier.
func checkRetryAfter(t *testing.T, l bucket.Limit, s bucket.State, now time.Time, cost bucket.Tokens, retry time.Duration) {
	t.Helper()
	if retry == math.MaxInt64 || !fits(now, retry) { // saturated: no instant to try
		return
	}
	_, d := s.Take(l, now.Add(retry), cost)
	assert.True(t, d.Allowed, "take %s at now+RetryAfter (%v) is denied", cost, retry)
	if retry > 0 {
		_, d = s.Take(l, now.Add(retry-1), cost)
		assert.False(t, d.Allowed, "take %s at now+RetryAfter-1ns (%v) is allowed", cost, retry-1)
	}
}

// checkResetAfter checks that reset is exact: s is full at now+reset and not
// a nanosecond earlier.
func checkResetAfter(t *testing.T, l bucket.Limit, s bucket.State, now time.Time, reset time.Duration) {
	t.Helper()
	if reset == math.MaxInt64 || !fits(now, reset) {
		return
	}
	assert.Equal(t, l.Capacity, s.Available(l, now.Add(reset)), "not full at now+ResetAfter (%v)", reset)
	if reset > 0 {
		assert.Less(t, s.Available(l, now.Add(reset-1)), l.Capacity, "full at now+ResetAfter-1ns (%v)", reset-1)
	}
}

func TestTakeBurstAndRefill(t *testing.T) {
	t.Parallel()
	l := bucket.Limit{Capacity: 3 * tok, Rate: bucket.PerSecond(1)}
	s := run(t, l, bucket.Full(l, t0), []step{
		{t0, tok, bucket.Decision{Allowed: true, Limit: 3 * tok, Remaining: 2 * tok, ResetAfter: time.Second}},
		{t0, 2 * tok, bucket.Decision{Allowed: true, Limit: 3 * tok, Remaining: 0, ResetAfter: 3 * time.Second}},
		{t0, tok, bucket.Decision{Limit: 3 * tok, Remaining: 0, RetryAfter: time.Second, ResetAfter: 3 * time.Second}},
		{t0_5, tok, bucket.Decision{Limit: 3 * tok, Remaining: tok / 2, RetryAfter: 500 * time.Millisecond, ResetAfter: 2500 * time.Millisecond}},
		{t1, tok, bucket.Decision{Allowed: true, Limit: 3 * tok, Remaining: 0, ResetAfter: 3 * time.Second}},
		{t3, 3 * tok, bucket.Decision{Limit: 3 * tok, Remaining: 2 * tok, RetryAfter: time.Second, ResetAfter: time.Second}},
		// Refill stops at the capacity: ten idle seconds earn 3 tokens, not 10.
		{t10, 0, bucket.Decision{Allowed: true, Limit: 3 * tok, Remaining: 3 * tok}},
		{t10, 3 * tok, bucket.Decision{Allowed: true, Limit: 3 * tok, Remaining: 0, ResetAfter: 3 * time.Second}},
		{t10, tok / 1_000_000, bucket.Decision{Limit: 3 * tok, RetryAfter: time.Microsecond, ResetAfter: 3 * time.Second}},
	})
	assert.Equal(t, bucket.State{Tokens: 0, At: t10.UnixNano()}, s)
}

func TestTakeContinuousRefill(t *testing.T) {
	t.Parallel()
	// An empty bucket of 1/3s holds 0.5 tokens 1.5 s later.
	l := bucket.Limit{Capacity: tok, Rate: bucket.Every(3 * time.Second)}
	empty := bucket.Set(l, t0, 0)
	assert.Equal(t, tok/2, empty.Available(l, t1_5))
	assert.Equal(t, tok/6, empty.Available(l, t0_5), "0.5 s earns 1/6 token, rounded down to the micro-token")
	assert.Equal(t, 3*time.Second, empty.UntilFull(l, t0))

	run(t, l, empty, []step{
		{t1_5, tok / 4, bucket.Decision{Allowed: true, Limit: tok, Remaining: tok / 4, ResetAfter: 2250 * time.Millisecond}},
		{t1_5, tok / 2, bucket.Decision{Limit: tok, Remaining: tok / 4, RetryAfter: 750 * time.Millisecond, ResetAfter: 2250 * time.Millisecond}},
		{t2, tok / 2, bucket.Decision{Limit: tok, Remaining: tok/4 + tok/6, RetryAfter: 250 * time.Millisecond, ResetAfter: 1750 * time.Millisecond}},
		{t3, tok / 2, bucket.Decision{Allowed: true, Limit: tok, Remaining: tok / 4, ResetAfter: 2250 * time.Millisecond}},
	})

	// The part of a micro-token earned but not yet whole is carried from
	// take to take, not lost: 1 token every 3 s is 1 micro-token every 3 µs,
	// so 3000 takes 1 µs apart earn exactly 1000 micro-tokens although each
	// step earns only a third of one.
	s := bucket.Set(l, t0, tok/2)
	for i := 1; i <= 3000; i++ {
		var d bucket.Decision
		s, d = s.Take(l, t0.Add(time.Duration(i)*time.Microsecond), bucket.Micro)
		require.True(t, d.Allowed, "take %d", i)
		checkState(t, l, s)
	}
	assert.Equal(t, tok/2-3000+1000, s.Tokens)
	assert.Zero(t, s.Rem)
}

func TestTakeFractionalAndLargeCosts(t *testing.T) {
	t.Parallel()
	l := bucket.Limit{Capacity: 10 * tok, Rate: bucket.PerSecond(2)}
	run(t, l, bucket.Full(l, t0), []step{
		{t0, tok / 4, bucket.Decision{Allowed: true, Limit: 10 * tok, Remaining: 10*tok - tok/4, ResetAfter: 125 * time.Millisecond}},
		{t0, 5*tok/2 + tok/4, bucket.Decision{Allowed: true, Limit: 10 * tok, Remaining: 7 * tok, ResetAfter: 1500 * time.Millisecond}},
		{t0, 7 * tok, bucket.Decision{Allowed: true, Limit: 10 * tok, Remaining: 0, ResetAfter: 5 * time.Second}},
		{t1, 5 * tok / 2, bucket.Decision{Limit: 10 * tok, Remaining: 2 * tok, RetryAfter: 250 * time.Millisecond, ResetAfter: 4 * time.Second}},
		{t1_5, 5 * tok / 2, bucket.Decision{Allowed: true, Limit: 10 * tok, Remaining: tok / 2, ResetAfter: 4750 * time.Millisecond}},
		{t6, 10 * tok, bucket.Decision{Limit: 10 * tok, Remaining: 9*tok + tok/2, RetryAfter: 250 * time.Millisecond, ResetAfter: 250 * time.Millisecond}},
		{t9, 10 * tok, bucket.Decision{Allowed: true, Limit: 10 * tok, Remaining: 0, ResetAfter: 5 * time.Second}},
	})
}

func TestTakeDeniedConsumesNothing(t *testing.T) {
	t.Parallel()
	// A client that retries too early does not push its retry time back.
	l := bucket.Limit{Capacity: 2 * tok, Rate: bucket.Every(2 * time.Second)}
	s := run(t, l, bucket.Set(l, t0, 0), []step{
		{t0, tok, bucket.Decision{Limit: 2 * tok, RetryAfter: 2 * time.Second, ResetAfter: 4 * time.Second}},
		{t0_5, tok, bucket.Decision{Limit: 2 * tok, Remaining: tok / 4, RetryAfter: 1500 * time.Millisecond, ResetAfter: 3500 * time.Millisecond}},
		{t1, tok, bucket.Decision{Limit: 2 * tok, Remaining: tok / 2, RetryAfter: time.Second, ResetAfter: 3 * time.Second}},
		{t1_5, 2 * tok, bucket.Decision{Limit: 2 * tok, Remaining: 3 * tok / 4, RetryAfter: 2500 * time.Millisecond, ResetAfter: 2500 * time.Millisecond}},
		{t2, tok, bucket.Decision{Allowed: true, Limit: 2 * tok, Remaining: 0, ResetAfter: 4 * time.Second}},
	})
	assert.Equal(t, bucket.State{At: t2.UnixNano()}, s)
}

func TestTakeAboveCapacity(t *testing.T) {
	t.Parallel()
	l := bucket.Limit{Capacity: 5 * tok, Rate: bucket.PerSecond(1)}
	full := bucket.Full(l, t0)
	s := run(t, l, full, []step{
		{t0, 5*tok + 1, bucket.Decision{Limit: 5 * tok, Remaining: 5 * tok, RetryAfter: never}},
		{t0, 100 * tok, bucket.Decision{Limit: 5 * tok, Remaining: 5 * tok, RetryAfter: never}},
		{t0, bucket.MaxTokens, bucket.Decision{Limit: 5 * tok, Remaining: 5 * tok, RetryAfter: never}},
		{t0, 2 * tok, bucket.Decision{Allowed: true, Limit: 5 * tok, Remaining: 3 * tok, ResetAfter: 2 * time.Second}},
		{t1, 6 * tok, bucket.Decision{Limit: 5 * tok, Remaining: 4 * tok, RetryAfter: never, ResetAfter: time.Second}},
		{t1, 5 * tok, bucket.Decision{Limit: 5 * tok, Remaining: 4 * tok, RetryAfter: time.Second, ResetAfter: time.Second}},
	})
	assert.Equal(t, bucket.State{Tokens: 3 * tok, At: t0.UnixNano()}, s)
	// No wait makes it possible.
	_, d := full.Take(l, tMax, 5*tok+1)
	assert.False(t, d.Allowed)
	assert.Equal(t, never, d.RetryAfter)
}

func TestTakeZeroCostPeeks(t *testing.T) {
	t.Parallel()
	l := bucket.Limit{Capacity: 4 * tok, Rate: bucket.PerSecond(1)}
	s := bucket.Set(l, t0, tok)
	run(t, l, s, []step{
		{t0, 0, bucket.Decision{Allowed: true, Limit: 4 * tok, Remaining: tok, ResetAfter: 3 * time.Second}},
		{t2, 0, bucket.Decision{Allowed: true, Limit: 4 * tok, Remaining: 3 * tok, ResetAfter: time.Second}},
		{t9, 0, bucket.Decision{Allowed: true, Limit: 4 * tok, Remaining: 4 * tok}},
		// A negative cost is a peek too: it never adds tokens.
		{t1, -3 * tok, bucket.Decision{Allowed: true, Limit: 4 * tok, Remaining: 2 * tok, ResetAfter: 2 * time.Second}},
	})
}

func TestTakeClockBackwards(t *testing.T) {
	t.Parallel()
	l := bucket.Limit{Capacity: 3 * tok, Rate: bucket.PerSecond(1)}
	s := run(t, l, bucket.Set(l, t5, 0), []step{
		// At t2 the state is 3 s in the future: t2 earns nothing, and the
		// durations count from t2, so they are 3 s longer than from t5.
		{t2, tok, bucket.Decision{Limit: 3 * tok, RetryAfter: 4 * time.Second, ResetAfter: 6 * time.Second}},
		{t5, tok, bucket.Decision{Limit: 3 * tok, RetryAfter: time.Second, ResetAfter: 3 * time.Second}},
		{t6, tok, bucket.Decision{Allowed: true, Limit: 3 * tok, Remaining: 0, ResetAfter: 3 * time.Second}},
		{t0, 0, bucket.Decision{Allowed: true, Limit: 3 * tok, Remaining: 0, ResetAfter: 9 * time.Second}},
		{t9, 2 * tok, bucket.Decision{Allowed: true, Limit: 3 * tok, Remaining: tok, ResetAfter: 2 * time.Second}},
		// An allowed take in the past spends what the bucket held at its
		// own instant and leaves that instant in place.
		{t3, tok, bucket.Decision{Allowed: true, Limit: 3 * tok, Remaining: 0, ResetAfter: 9 * time.Second}},
		{t10, tok, bucket.Decision{Allowed: true, Limit: 3 * tok, Remaining: 0, ResetAfter: 3 * time.Second}},
	})
	assert.Equal(t, bucket.State{At: t10.UnixNano()}, s)

	// A full bucket in the future is full now: nothing to wait for.
	full := bucket.Full(l, t5)
	run(t, l, full, []step{
		{t2, 0, bucket.Decision{Allowed: true, Limit: 3 * tok, Remaining: 3 * tok}},
		{t2, 4 * tok, bucket.Decision{Limit: 3 * tok, Remaining: 3 * tok, RetryAfter: never}},
		{t2, tok, bucket.Decision{Allowed: true, Limit: 3 * tok, Remaining: 2 * tok, ResetAfter: 4 * time.Second}},
	})
	assert.Zero(t, full.UntilFull(l, t2))
	assert.Equal(t, 3*tok, full.Available(l, t2))

	// A clock that jitters back and forth earns only the time it moved
	// forward in all: instants t0+i µs for even i, 10 µs earlier for odd i,
	// reach t0+998µs at most, which earns 998 micro-tokens and no more.
	s = bucket.Set(l, t0, 0)
	var allowed bucket.Tokens
	for i := range 1000 {
		now := t0.Add(time.Duration(i) * time.Microsecond)
		if i%2 == 1 {
			now = now.Add(-10 * time.Microsecond)
		}
		next, d := s.Take(l, now, bucket.Micro)
		checkTake(t, l, s, next, now, bucket.Micro, d)
		if d.Allowed {
			allowed += bucket.Micro
		}
		s = next
	}
	assert.Equal(t, 998*bucket.Micro, allowed)
	assert.Equal(t, bucket.State{At: t0.Add(998 * time.Microsecond).UnixNano()}, s)
}

func TestTakeOddStates(t *testing.T) {
	t.Parallel()
	l := bucket.Limit{Capacity: 3 * tok, Rate: bucket.PerSecond(1)}
	tests := []struct {
		name  string
		s     bucket.State
		steps []step
	}{
		{
			// A capacity that shrank under a stored state: taken as full.
			name: "more tokens than the capacity",
			s:    bucket.State{Tokens: 10 * tok, At: t0.UnixNano()},
			steps: []step{
				{t0, 0, bucket.Decision{Allowed: true, Limit: 3 * tok, Remaining: 3 * tok}},
				{t0, 4 * tok, bucket.Decision{Limit: 3 * tok, Remaining: 3 * tok, RetryAfter: never}},
				{t1, tok, bucket.Decision{Allowed: true, Limit: 3 * tok, Remaining: 2 * tok, ResetAfter: time.Second}},
			},
		},
		{
			// A corrupt store: never below empty.
			name: "negative tokens",
			s:    bucket.State{Tokens: -5 * tok, At: t0.UnixNano(), Rem: 7},
			steps: []step{
				{t0, tok, bucket.Decision{Limit: 3 * tok, RetryAfter: time.Second, ResetAfter: 3 * time.Second}},
				{t1, tok, bucket.Decision{Allowed: true, Limit: 3 * tok, Remaining: 0, ResetAfter: 3 * time.Second}},
			},
		},
		{
			// A rate that changed under a stored remainder: the remainder
			// is dropped.
			name: "remainder of a whole micro-token",
			s:    bucket.State{Tokens: tok, At: t0.UnixNano(), Rem: uint64(time.Hour)},
			steps: []step{
				{t0, 2 * tok, bucket.Decision{Limit: 3 * tok, Remaining: tok, RetryAfter: time.Second, ResetAfter: 2 * time.Second}},
				{t1, 2 * tok, bucket.Decision{Allowed: true, Limit: 3 * tok, Remaining: 0, ResetAfter: 3 * time.Second}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// A denied take returns the odd state itself, so check only
			// the decisions here.
			s := tt.s
			for i, st := range tt.steps {
				next, d := s.Take(l, st.at, st.cost)
				assert.Equal(t, st.want, d, "step %d", i)
				if d.Allowed && st.cost > 0 {
					checkState(t, l, next)
				} else {
					assert.Equal(t, s, next)
				}
				s = next
			}
		})
	}
}

func TestFullSetAvailableUntilFull(t *testing.T) {
	t.Parallel()
	l := bucket.Limit{Capacity: 4 * tok, Rate: bucket.Every(2 * time.Second)}
	assert.Equal(t, bucket.State{Tokens: 4 * tok, At: t0.UnixNano()}, bucket.Full(l, t0))
	assert.Equal(t, bucket.State{Tokens: tok, At: t1.UnixNano()}, bucket.Set(l, t1, tok))
	assert.Equal(t, bucket.State{Tokens: 0, At: t1.UnixNano()}, bucket.Set(l, t1, -tok), "clamped to empty")
	assert.Equal(t, bucket.State{Tokens: 4 * tok, At: t1.UnixNano()}, bucket.Set(l, t1, 9*tok), "clamped to the capacity")
	assert.Equal(t, 8*time.Second, l.Window())

	s := bucket.Set(l, t0, tok)
	for _, tt := range []struct {
		at        time.Time
		available bucket.Tokens
		untilFull time.Duration
	}{
		{tMin, tok, math.MaxInt64}, // behind by more than a time.Duration: saturated
		{t0.Add(-time.Hour), tok, time.Hour + 6*time.Second},
		{t0, tok, 6 * time.Second},
		{t1, tok + tok/2, 5 * time.Second},
		{t0.Add(6*time.Second - 1), 4*tok - 1, 1},
		{t6, 4 * tok, 0},
		{tMax, 4 * tok, 0},
	} {
		assert.Equal(t, tt.available, s.Available(l, tt.at), "Available at t0+%v", tt.at.Sub(t0))
		assert.Equal(t, tt.untilFull, s.UntilFull(l, tt.at), "UntilFull at t0+%v", tt.at.Sub(t0))
	}
}

// ceilDiv returns ceil(a/b) saturated at math.MaxInt64, for a >= 0, b > 0.
func ceilDiv(a, b *big.Int) time.Duration {
	q, r := new(big.Int).QuoRem(a, b, new(big.Int))
	if r.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return math.MaxInt64
	}
	return time.Duration(q.Int64())
}

func TestExtremes(t *testing.T) {
	t.Parallel()
	require.Equal(t, int64(math.MinInt64), tMin.UnixNano())
	require.Equal(t, int64(math.MaxInt64), tMax.UnixNano())
	maxDur := time.Duration(math.MaxInt64)
	tests := []struct {
		name   string
		l      bucket.Limit
		window time.Duration
	}{
		{"0.001 at 1/year", bucket.Limit{Capacity: tok / 1000, Rate: bucket.Every(year)}, year / 1000},
		{"0.001 at 1e9/s", bucket.Limit{Capacity: tok / 1000, Rate: bucket.PerSecond(1e9)}, 1},
		{"1 at 1/year", bucket.Limit{Capacity: tok, Rate: bucket.Every(year)}, year},
		{"1e12 at 1/year", bucket.Limit{Capacity: bucket.MaxTokens, Rate: bucket.Every(year)}, maxDur},
		{"1e12 at 1e9/s", bucket.Limit{Capacity: bucket.MaxTokens, Rate: bucket.PerSecond(1e9)}, 1000 * time.Second},
		{"1e12 at 1e12 per 1000s", bucket.Limit{Capacity: bucket.MaxTokens, Rate: bucket.Rate{Tokens: bucket.MaxTokens, Per: 1000 * time.Second}}, 1000 * time.Second},
		{"1e12 at 1/ns", bucket.Limit{Capacity: bucket.MaxTokens, Rate: bucket.Rate{Tokens: tok, Per: 1}}, 1000 * time.Second},
		{"1e12 at 1e-6/ns", bucket.Limit{Capacity: bucket.MaxTokens, Rate: bucket.Rate{Tokens: bucket.Micro, Per: 1}}, 1e18},
		{"1e-6 at 1e-6 per 292 years", bucket.Limit{Capacity: bucket.Micro, Rate: bucket.Rate{Tokens: bucket.Micro, Per: maxDur}}, maxDur},
		{"1e12 at 1e-6 per 292 years", bucket.Limit{Capacity: bucket.MaxTokens, Rate: bucket.Rate{Tokens: bucket.Micro, Per: maxDur}}, maxDur},
		{"1e12 at 1e12 per 292 years", bucket.Limit{Capacity: bucket.MaxTokens, Rate: bucket.Rate{Tokens: bucket.MaxTokens, Per: maxDur}}, maxDur},
		{"1e-6 at 1e12 per 1000s", bucket.Limit{Capacity: bucket.Micro, Rate: bucket.Rate{Tokens: bucket.MaxTokens, Per: 1000 * time.Second}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := tt.l
			require.NoError(t, l.Validate())
			assert.Equal(t, tt.window, l.Window(), "Window")
			want := ceilDiv(
				new(big.Int).Mul(big.NewInt(int64(l.Capacity)), big.NewInt(int64(l.Rate.Per))),
				big.NewInt(int64(l.Rate.Tokens)))
			assert.Equal(t, want, l.Window(), "Window is ceil(Capacity*Per/Tokens)")

			c := l.Capacity
			instants := []time.Time{tMin, tMin.Add(1), t0, t0.Add(1), t0.Add(time.Second), t0.Add(year), tMax.Add(-1), tMax}
			costs := []bucket.Tokens{0, bucket.Micro, c / 2, c - 1, c, c + 1, bucket.MaxTokens, math.MaxInt64}
			for _, start := range []time.Time{tMin, t0, tMax} {
				for _, s0 := range []bucket.State{bucket.Full(l, start), bucket.Set(l, start, 0), bucket.Set(l, start, c/2)} {
					// Every pair of instants, forwards and backwards, and
					// every cost: no panic, no state out of range, exact
					// durations.
					for _, a := range instants {
						for _, ca := range costs {
							s1, d := s0.Take(l, a, ca)
							checkTake(t, l, s0, s1, a, ca, d)
							for _, b := range instants {
								for _, cb := range []bucket.Tokens{bucket.Micro, c / 2, c, c + 1} {
									s2, d := s1.Take(l, b, cb)
									checkTake(t, l, s1, s2, b, cb, d)
								}
							}
						}
					}
				}
			}
			// The whole range of time earns no more than the capacity.
			s, _ := bucket.Set(l, tMin, 0).Take(l, tMax, 0)
			assert.LessOrEqual(t, s.Available(l, tMax), c)
			s, d := bucket.Set(l, tMin, 0).Take(l, tMax, c)
			earned := new(big.Int).Mul(new(big.Int).SetUint64(math.MaxUint64), big.NewInt(int64(l.Rate.Tokens)))
			enough := earned.Cmp(new(big.Int).Mul(big.NewInt(int64(c)), big.NewInt(int64(l.Rate.Per)))) >= 0
			assert.Equal(t, enough, d.Allowed, "2^64-1 ns earn the capacity")
			checkState(t, l, s)
		})
	}
}

func TestTakeRandomSequences(t *testing.T) {
	t.Parallel()
	// Rates whose micro-tokens mostly take a fractional number of
	// nanoseconds, checked step by step for exact durations.
	tests := []struct {
		name string
		l    bucket.Limit
	}{
		{"5 at 1 per 3s", bucket.Limit{Capacity: 5 * tok, Rate: bucket.Every(3 * time.Second)}},
		{"7.000001 at 3.000007 per 13s", bucket.Limit{Capacity: 7*tok + 1, Rate: bucket.Rate{Tokens: 3*tok + 7, Per: 13 * time.Second}}},
		{"0.333333 at 0.000011 per 97ns", bucket.Limit{Capacity: tok / 3, Rate: bucket.Rate{Tokens: 11, Per: 97}}},
		{"1000 at 0.999999 per 1.000003ms", bucket.Limit{Capacity: 1000 * tok, Rate: bucket.Rate{Tokens: 999_999, Per: 1_000_003}}},
	}
	for i, tt := range tests {
		l := tt.l
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, l.Validate())
			r := rand.New(rand.NewPCG(1, uint64(i)))
			s, now := bucket.Set(l, t0, 0), t0
			window := int64(l.Window())
			for range 10_000 {
				now = now.Add(time.Duration(r.Int64N(window/4+2) - window/20)) // mostly forwards
				cost := bucket.Tokens(r.Int64N(int64(l.Capacity) + int64(l.Capacity)/8 + 1))
				next, d := s.Take(l, now, cost)
				checkTake(t, l, s, next, now, cost, d)
				s = next
			}
		})
	}
}
