package bucket_test

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

// pstep is one take in a policy step table: the combined decision it must
// return and each limit's own.
type pstep struct {
	at   time.Time
	cost bucket.Tokens
	want bucket.Decision
	each []bucket.Decision
}

// runPolicy takes each step in turn from the states s under p, checks the
// decisions and that a denied take or a peek changes no state, and returns
// the last states.
func runPolicy(t *testing.T, p bucket.Policy, s []bucket.State, steps []pstep) []bucket.State {
	t.Helper()
	require.NoError(t, p.Validate())
	require.Len(t, s, len(p.Limits))
	for i, st := range steps {
		before := append([]bucket.State(nil), s...)
		each := make([]bucket.Decision, len(p.Limits))
		d := p.Take(s, st.at, st.cost, each)
		assert.Equal(t, st.want, d, "step %d: take %s at t0+%v", i, st.cost, st.at.Sub(t0))
		assert.Equal(t, st.each, each, "step %d: each limit's decision", i)
		assert.Equal(t, combine(each), d, "step %d: the combined decision is the documented combination of each", i)
		if !d.Allowed || st.cost <= 0 {
			assert.Equal(t, before, s, "step %d: a denied take or a peek changes no state", i)
		}
		for j, l := range p.Limits {
			checkState(t, l, s[j])
			if d.Allowed && st.cost > 0 {
				want, _ := before[j].Take(l, st.at, st.cost)
				assert.Equal(t, want, s[j], "step %d: an allowed take debits every limit", i)
			}
		}
		if !d.Allowed && d.RetryAfter != bucket.Never {
			// The combined RetryAfter is exact: the take succeeds then and
			// not a nanosecond earlier.
			retry := append([]bucket.State(nil), before...)
			assert.True(t, p.Take(retry, st.at.Add(d.RetryAfter), st.cost, nil).Allowed, "step %d: at now+RetryAfter", i)
			retry = append(retry[:0], before...)
			assert.False(t, p.Take(retry, st.at.Add(d.RetryAfter-1), st.cost, nil).Allowed, "step %d: at now+RetryAfter-1ns", i)
		}
	}
	return s
}

// combine is the combined decision as Policy.Take documents it.
func combine(each []bucket.Decision) bucket.Decision {
	out := bucket.Decision{Allowed: true}
	for i, d := range each {
		out.Allowed = out.Allowed && d.Allowed
		if i == 0 || d.Remaining < out.Remaining {
			out.Limit, out.Remaining = d.Limit, d.Remaining
		}
		if d.RetryAfter == bucket.Never || out.RetryAfter == bucket.Never {
			out.RetryAfter = bucket.Never
		} else {
			out.RetryAfter = max(out.RetryAfter, d.RetryAfter)
		}
		out.ResetAfter = max(out.ResetAfter, d.ResetAfter)
	}
	return out
}

func TestPolicyTake(t *testing.T) {
	t.Parallel()
	burst := bucket.Limit{Capacity: 2 * tok, Rate: bucket.PerSecond(1)}
	quota := bucket.Limit{Capacity: 3 * tok, Rate: bucket.Every(10 * time.Second)}
	p := bucket.Policy{Name: "api", Limits: []bucket.Limit{burst, quota}}
	type dec = bucket.Decision
	s := runPolicy(t, p, []bucket.State{bucket.Full(burst, t0), bucket.Full(quota, t0)}, []pstep{
		{t0, tok,
			dec{Allowed: true, Limit: 2 * tok, Remaining: tok, ResetAfter: 10 * time.Second},
			[]dec{
				{Allowed: true, Limit: 2 * tok, Remaining: tok, ResetAfter: time.Second},
				{Allowed: true, Limit: 3 * tok, Remaining: 2 * tok, ResetAfter: 10 * time.Second},
			}},
		{t0, tok,
			dec{Allowed: true, Limit: 2 * tok, Remaining: 0, ResetAfter: 20 * time.Second},
			[]dec{
				{Allowed: true, Limit: 2 * tok, Remaining: 0, ResetAfter: 2 * time.Second},
				{Allowed: true, Limit: 3 * tok, Remaining: tok, ResetAfter: 20 * time.Second},
			}},
		// The burst denies it. The quota would allow it, but nothing is
		// taken, so its decision describes the bucket as it is.
		{t0, tok,
			dec{Limit: 2 * tok, Remaining: 0, RetryAfter: time.Second, ResetAfter: 20 * time.Second},
			[]dec{
				{Limit: 2 * tok, Remaining: 0, RetryAfter: time.Second, ResetAfter: 2 * time.Second},
				{Allowed: true, Limit: 3 * tok, Remaining: tok, ResetAfter: 20 * time.Second},
			}},
		{t1, tok,
			dec{Allowed: true, Limit: 2 * tok, Remaining: 0, ResetAfter: 29 * time.Second},
			[]dec{
				{Allowed: true, Limit: 2 * tok, Remaining: 0, ResetAfter: 2 * time.Second},
				{Allowed: true, Limit: 3 * tok, Remaining: tok / 10, ResetAfter: 29 * time.Second},
			}},
		// The quota denies it; the burst holds a token it keeps.
		{t2, tok,
			dec{Limit: 3 * tok, Remaining: tok / 5, RetryAfter: 8 * time.Second, ResetAfter: 28 * time.Second},
			[]dec{
				{Allowed: true, Limit: 2 * tok, Remaining: tok, ResetAfter: time.Second},
				{Limit: 3 * tok, Remaining: tok / 5, RetryAfter: 8 * time.Second, ResetAfter: 28 * time.Second},
			}},
		// Above every capacity.
		{t2, 5 * tok,
			dec{Limit: 3 * tok, Remaining: tok / 5, RetryAfter: never, ResetAfter: 28 * time.Second},
			[]dec{
				{Limit: 2 * tok, Remaining: tok, RetryAfter: never, ResetAfter: time.Second},
				{Limit: 3 * tok, Remaining: tok / 5, RetryAfter: never, ResetAfter: 28 * time.Second},
			}},
		// Above one capacity: Never wins over any finite wait.
		{t2, 5 * tok / 2,
			dec{Limit: 3 * tok, Remaining: tok / 5, RetryAfter: never, ResetAfter: 28 * time.Second},
			[]dec{
				{Limit: 2 * tok, Remaining: tok, RetryAfter: never, ResetAfter: time.Second},
				{Limit: 3 * tok, Remaining: tok / 5, RetryAfter: 23 * time.Second, ResetAfter: 28 * time.Second},
			}},
		{t2, 0,
			dec{Allowed: true, Limit: 3 * tok, Remaining: tok / 5, ResetAfter: 28 * time.Second},
			[]dec{
				{Allowed: true, Limit: 2 * tok, Remaining: tok, ResetAfter: time.Second},
				{Allowed: true, Limit: 3 * tok, Remaining: tok / 5, ResetAfter: 28 * time.Second},
			}},
		{t10, tok,
			dec{Allowed: true, Limit: 3 * tok, Remaining: 0, ResetAfter: 30 * time.Second},
			[]dec{
				{Allowed: true, Limit: 2 * tok, Remaining: tok, ResetAfter: time.Second},
				{Allowed: true, Limit: 3 * tok, Remaining: 0, ResetAfter: 30 * time.Second},
			}},
	})
	assert.Equal(t, []bucket.State{{Tokens: tok, At: t10.UnixNano()}, {Tokens: 0, At: t10.UnixNano()}}, s)
}

func TestPolicyTakeNeverInAnyPosition(t *testing.T) {
	t.Parallel()
	small := bucket.Limit{Capacity: tok, Rate: bucket.PerSecond(1)}
	large := bucket.Limit{Capacity: 10 * tok, Rate: bucket.PerSecond(1)}
	for _, limits := range [][]bucket.Limit{{small, large}, {large, small}, {large, small, large}} {
		p := bucket.Policy{Name: "p", Limits: limits}
		s := make([]bucket.State, len(limits))
		for i, l := range limits {
			s[i] = bucket.Set(l, t0, 0)
		}
		before := append([]bucket.State(nil), s...)
		d := p.Take(s, t0, 2*tok, nil)
		assert.False(t, d.Allowed)
		assert.Equal(t, bucket.Never, d.RetryAfter, "%d limits", len(limits))
		assert.Equal(t, before, s)
	}
}

func TestPolicyTakeNoPartialDebit(t *testing.T) {
	t.Parallel()
	// Every limit but the last allows the take: none is debited.
	var limits []bucket.Limit
	var s []bucket.State
	for i := range bucket.MaxLimits {
		l := bucket.Limit{Capacity: bucket.Tokens(i+1) * tok, Rate: bucket.PerSecond(int64(i + 1))}
		limits = append(limits, l)
		s = append(s, bucket.Full(l, t0))
	}
	s[len(s)-1] = bucket.Set(limits[len(s)-1], t0, tok/2)
	p := bucket.Policy{Name: "many", Limits: limits}
	require.NoError(t, p.Validate())
	before := append([]bucket.State(nil), s...)
	each := make([]bucket.Decision, len(limits))
	d := p.Take(s, t0, tok, each)
	assert.False(t, d.Allowed)
	assert.Equal(t, before, s)
	assert.Equal(t, combine(each), d)
	for i, e := range each[:len(each)-1] {
		assert.True(t, e.Allowed, "limit %d", i)
		assert.Equal(t, limits[i].Capacity, e.Remaining, "limit %d holds what it held", i)
	}
	// Half a token at 16 tokens a second is 31.25 ms away.
	assert.Equal(t, 31250*time.Microsecond, d.RetryAfter)
	assert.True(t, p.Take(s, t0.Add(d.RetryAfter), tok, nil).Allowed)
	for i, l := range limits {
		assert.Equal(t, before[i].Available(l, t0.Add(d.RetryAfter))-tok, s[i].Tokens, "limit %d debited once", i)
	}
}

func TestPolicyTakeOneLimit(t *testing.T) {
	t.Parallel()
	l := bucket.Limit{Capacity: 3 * tok, Rate: bucket.Every(2 * time.Second)}
	p := bucket.Policy{Name: "one", Limits: []bucket.Limit{l}}
	s := []bucket.State{bucket.Full(l, t0)}
	ref := bucket.Full(l, t0)
	for i, at := range []time.Time{t0, t0, t0, t0, t1, t3, t2, t10} {
		var want bucket.Decision
		ref, want = ref.Take(l, at, tok)
		each := []bucket.Decision{{}}
		if i%2 == 0 {
			each = nil
		}
		d := p.Take(s, at, tok, each)
		assert.Equal(t, want, d, "take %d", i)
		assert.Equal(t, ref, s[0], "take %d", i)
		if each != nil {
			assert.Equal(t, want, each[0], "take %d", i)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	ok := bucket.Limit{Capacity: tok, Rate: bucket.PerSecond(1)}
	many := func(n int) []bucket.Limit {
		ls := make([]bucket.Limit, n)
		for i := range ls {
			ls[i] = ok
		}
		return ls
	}
	tests := []struct {
		name    string
		p       bucket.Policy
		wantErr string // "" for valid
	}{
		{"one limit", bucket.Policy{Name: "default", Limits: many(1)}, ""},
		{"most limits", bucket.Policy{Name: "default", Limits: many(bucket.MaxLimits)}, ""},
		{"shadow", bucket.Policy{Name: "new", Limits: many(2), Shadow: true}, ""},
		{"no name", bucket.Policy{Limits: many(1)}, "policy has no name"},
		{"no limits", bucket.Policy{Name: "empty"}, `policy "empty" has no limits`},
		{"too many limits", bucket.Policy{Name: "big", Limits: many(bucket.MaxLimits + 1)}, `policy "big" has 17 limits, more than the maximum of 16`},
		{"invalid limit", bucket.Policy{Name: "bad", Limits: []bucket.Limit{ok, {Capacity: 0, Rate: ok.Rate}}}, `policy "bad" limit 2: capacity 0 must be positive`},
		{"zero rate", bucket.Policy{Name: "bad", Limits: []bucket.Limit{{Capacity: tok}}}, `policy "bad" limit 1: rate 0/0s: tokens must be positive`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.p.Validate()
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Equal(t, tt.wantErr, err.Error())
			assert.True(t, errors.Is(err, bucket.ErrInvalid), "%v does not wrap ErrInvalid", err)
		})
	}
}

func TestPolicyCapacity(t *testing.T) {
	t.Parallel()
	l := func(c bucket.Tokens) bucket.Limit { return bucket.Limit{Capacity: c, Rate: bucket.PerSecond(1)} }
	assert.Equal(t, 5*tok, bucket.Policy{Limits: []bucket.Limit{l(5 * tok)}}.Capacity())
	assert.Equal(t, tok/4, bucket.Policy{Limits: []bucket.Limit{l(5 * tok), l(tok / 4), l(bucket.MaxTokens)}}.Capacity())
	assert.Equal(t, bucket.MaxTokens, bucket.Policy{Limits: []bucket.Limit{l(bucket.MaxTokens)}}.Capacity())
}

func TestPolicyTakeRandom(t *testing.T) {
	t.Parallel()
	// Policy.Take against its definition in terms of State.Take.
	p := bucket.Policy{Name: "mix", Limits: []bucket.Limit{
		{Capacity: 3 * tok, Rate: bucket.PerSecond(2)},
		{Capacity: 10*tok + 1, Rate: bucket.Rate{Tokens: 7*tok + 3, Per: 11 * time.Second}},
		{Capacity: tok / 2, Rate: bucket.Rate{Tokens: 2*tok + 13, Per: 1_000_003_000}},
	}}
	require.NoError(t, p.Validate())
	r := rand.New(rand.NewPCG(7, 11))
	s := make([]bucket.State, len(p.Limits))
	for i, l := range p.Limits {
		s[i] = bucket.Set(l, t0, bucket.Tokens(r.Int64N(int64(l.Capacity)+1)))
	}
	now := t0
	var allowedCount int
	for step := range 20_000 {
		now = now.Add(time.Duration(r.Int64N(int64(400*time.Millisecond))) - 50*time.Millisecond)
		cost := bucket.Tokens(r.Int64N(int64(tok / 2)))
		switch step % 10 {
		case 0:
			cost = 0
		case 1:
			cost = 3 * tok // above one capacity
		}
		want := make([]bucket.Decision, len(p.Limits))
		next := make([]bucket.State, len(p.Limits))
		allowed := true
		for i, l := range p.Limits {
			next[i], want[i] = s[i].Take(l, now, cost)
			allowed = allowed && want[i].Allowed
		}
		if !allowed {
			for i, l := range p.Limits {
				next[i] = s[i]
				if want[i].Allowed { // nothing was taken: the bucket as it is
					_, want[i] = s[i].Take(l, now, 0)
				}
			}
		}
		each := make([]bucket.Decision, len(p.Limits))
		d := p.Take(s, now, cost, each)
		require.Equal(t, allowed, d.Allowed, "step %d", step)
		require.Equal(t, want, each, "step %d", step)
		require.Equal(t, combine(want), d, "step %d", step)
		require.Equal(t, next, s, "step %d", step)
		if allowed && cost > 0 {
			allowedCount++
		}
	}
	// A fair mix of both outcomes.
	assert.Greater(t, allowedCount, 20_000/5)
	assert.Less(t, allowedCount, 20_000*3/5)
	t.Logf("%d of 20000 takes allowed", allowedCount)
}
