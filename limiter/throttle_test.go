package limiter_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/limiter"
	"github.com/bucketd/bucketd/storage/storetest"
)

// cellLimit is CL.THROTTLE k 99 1 60: a capacity of 100, one token a minute.
var cellLimit = bucket.Limit{Capacity: tok(100), Rate: bucket.Every(time.Minute)}

func TestThrottleSteps(t *testing.T) {
	l, _, c := newLimiter(t)
	lim := bucket.Limit{Capacity: tok(2), Rate: bucket.PerSecond(1)}
	steps := []struct {
		advance time.Duration
		cost    bucket.Tokens
		want    bucket.Decision
	}{
		{0, tok(1), bucket.Decision{Allowed: true, Limit: tok(2), Remaining: tok(1), ResetAfter: time.Second}},
		{0, tok(1), bucket.Decision{Allowed: true, Limit: tok(2), Remaining: 0, ResetAfter: 2 * time.Second}},
		{0, tok(1), bucket.Decision{Limit: tok(2), RetryAfter: time.Second, ResetAfter: 2 * time.Second}},
		{time.Second, 0, bucket.Decision{Allowed: true, Limit: tok(2), Remaining: tok(1), ResetAfter: time.Second}},
		{0, tok(3), bucket.Decision{Limit: tok(2), Remaining: tok(1), RetryAfter: bucket.Never, ResetAfter: time.Second}},
	}
	for i, s := range steps {
		c.Advance(s.advance)
		assert.Equal(t, s.want, throttle(t, l, "k", lim, s.cost), "step %d", i)
	}
}

// TestThrottleHasItsOwnBucket is the scenario: CL.THROTTLE and a
// take under the default policy on one key never see each other's tokens.
func TestThrottleHasItsOwnBucket(t *testing.T) {
	l, _, _ := newLimiter(t)

	d := throttle(t, l, "k", cellLimit, tok(50))
	require.True(t, d.Allowed)
	assert.Equal(t, tok(50), d.Remaining)
	assert.Equal(t, tok(100), d.Limit)

	res := take(t, l, "k", "", tok(1))
	require.True(t, res.Allowed)
	assert.Equal(t, tok(4), res.Remaining, "the default policy's bucket started full: CL.THROTTLE did not touch it")
	assert.Equal(t, tok(5), res.Limit)

	d = throttle(t, l, "k", cellLimit, 0)
	assert.Equal(t, tok(50), d.Remaining, "not 4: the take did not touch CL.THROTTLE's bucket")
	assert.Equal(t, tok(100), d.Limit)

	res = take(t, l, "k", "", 0)
	assert.Equal(t, tok(4), res.Remaining)
	assert.Equal(t, tok(5), res.Limit)

	assert.Equal(t, bucket.Counts{Allowed: 1}, l.CellCounts())
	assert.Equal(t, bucket.Counts{Allowed: 1}, counts(t, l, bucket.DefaultPolicy))
}

// TestThrottleCarriesTimeUntilFull calls CL.THROTTLE on one key with other
// limits: the bucket keeps the instant at which it is full, not its tokens.
func TestThrottleCarriesTimeUntilFull(t *testing.T) {
	l, _, _ := newLimiter(t)
	ten := bucket.Limit{Capacity: tok(10), Rate: bucket.PerSecond(1)}
	d := throttle(t, l, "k", ten, tok(4))
	require.Equal(t, tok(6), d.Remaining)
	require.Equal(t, 4*time.Second, d.ResetAfter)

	steps := []struct {
		name string
		lim  bucket.Limit
		want bucket.Decision
	}{
		{"a bigger capacity: 4 s short of 100, not 6 tokens", bucket.Limit{Capacity: tok(100), Rate: bucket.PerSecond(1)},
			bucket.Decision{Allowed: true, Limit: tok(100), Remaining: tok(96), ResetAfter: 4 * time.Second}},
		{"a faster rate: 4 s is 8 tokens short", bucket.Limit{Capacity: tok(10), Rate: bucket.PerSecond(2)},
			bucket.Decision{Allowed: true, Limit: tok(10), Remaining: tok(2), ResetAfter: 4 * time.Second}},
		{"back under the first limit", ten,
			bucket.Decision{Allowed: true, Limit: tok(10), Remaining: tok(6), ResetAfter: 4 * time.Second}},
	}
	for _, s := range steps {
		assert.Equal(t, s.want, throttle(t, l, "k", s.lim, 0), s.name)
	}

	// A take under other limits stores them, from the carried time.
	d = throttle(t, l, "k", bucket.Limit{Capacity: tok(100), Rate: bucket.PerSecond(1)}, tok(1))
	assert.Equal(t, bucket.Decision{Allowed: true, Limit: tok(100), Remaining: tok(95), ResetAfter: 5 * time.Second}, d)
	assert.Equal(t, tok(5), throttle(t, l, "k", ten, 0).Remaining)
}

func TestThrottleNegativeCostGivesBack(t *testing.T) {
	l, _, _ := newLimiter(t)
	ten := bucket.Limit{Capacity: tok(10), Rate: slow}
	throttle(t, l, "k", ten, tok(5))

	d := throttle(t, l, "k", ten, -tok(2))
	assert.True(t, d.Allowed)
	assert.Equal(t, tok(7), d.Remaining)
	assert.Equal(t, tok(7), throttle(t, l, "k", ten, 0).Remaining, "the give-back was stored")

	d = throttle(t, l, "k", ten, -tok(100))
	assert.Equal(t, tok(10), d.Remaining, "never above the capacity")
	assert.Zero(t, d.ResetAfter)
	_, ok, err := l.Inspect("k")
	require.NoError(t, err)
	assert.False(t, ok, "given back to full: no bucket")

	d = throttle(t, l, "new", ten, -tok(1))
	assert.Equal(t, tok(10), d.Remaining, "a key with no bucket is full already")
	n, err := l.Len()
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, bucket.Counts{Allowed: 1}, l.CellCounts(), "give-backs are not takes")

	// A give-back reaches CL.THROTTLE's bucket alone.
	take(t, l, "k", "", tok(3))
	throttle(t, l, "k", ten, tok(1))
	throttle(t, l, "k", ten, -tok(1))
	assert.Equal(t, tok(2), take(t, l, "k", "", 0).Remaining)
}

func TestThrottleInvalid(t *testing.T) {
	l, _, _ := newLimiter(t)
	tests := []struct {
		name string
		key  string
		lim  bucket.Limit
	}{
		{"zero limit", "k", bucket.Limit{}},
		{"zero rate", "k", bucket.Limit{Capacity: tok(1)}},
		{"empty key", "", limiter.DefaultLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l.Throttle(tt.key, tt.lim, tok(1))
			assert.ErrorIs(t, err, bucket.ErrInvalid)
		})
	}
	assert.Equal(t, bucket.Counts{}, l.CellCounts(), "refused input is not counted")
}

// TestInspectOneReadPath checks that Inspect shows the bucket a take sees:
// CL.THROTTLE's while the key has no other, then the default policy's,
// under the limits in force.
func TestInspectOneReadPath(t *testing.T) {
	l, _, c := newLimiter(t)

	_, ok, err := l.Inspect("k")
	require.NoError(t, err)
	assert.False(t, ok, "a key never taken has no bucket")

	throttle(t, l, "k", cellLimit, tok(50))
	v, ok, err := l.Inspect("k")
	require.NoError(t, err)
	require.True(t, ok)
	assert.True(t, v.Cell)
	assert.Empty(t, v.Policy)
	assert.Equal(t, tok(50), v.Remaining)
	assert.Equal(t, tok(100), v.Limit)
	assert.Equal(t, 50*time.Minute, v.ResetAfter)
	assert.Equal(t, []bucket.Limit{cellLimit}, v.Snapshot.Policy.Limits, "the limits of its last call")
	assert.Equal(t, storetest.T0, v.UpdatedAt)

	// agree checks that Inspect shows the default policy's bucket, as a
	// take of 0 sees it.
	agree := func(name string, remaining bucket.Tokens, limit bucket.Tokens) {
		t.Helper()
		res := take(t, l, "k", "", 0)
		v, ok, err := l.Inspect("k")
		require.NoError(t, err, name)
		require.True(t, ok, name)
		assert.False(t, v.Cell, name)
		assert.Equal(t, bucket.DefaultPolicy, v.Policy, name)
		assert.Equal(t, res.Decision, v.Decision, name)
		assert.Equal(t, res.Policy.Limits, v.Snapshot.Policy.Limits, name)
		assert.Equal(t, remaining, v.Remaining, name)
		assert.Equal(t, limit, v.Limit, name)
	}

	take(t, l, "k", "", tok(1))
	agree("after a take under the default policy", tok(4), tok(5))

	require.NoError(t, l.SetPolicies("", []bucket.Policy{
		{Name: bucket.DefaultPolicy, Limits: []bucket.Limit{{Capacity: tok(10), Rate: bucket.Every(time.Minute)}}},
	}))
	agree("after a reload, at once", tok(4), tok(10))
	take(t, l, "k", "", tok(1))
	c.Advance(30 * time.Second)
	agree("after a reload and a take, 30 s on", tok(3)+bucket.Token/2, tok(10))

	n, err := l.Len()
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	keys, _, err := l.Keys("", "", 0)
	require.NoError(t, err)
	assert.Equal(t, []string{"k"}, keys)

	// Both buckets refill: the default's in 6.5 min, CL.THROTTLE's in 50.
	c.Advance(50 * time.Minute)
	_, ok, err = l.Inspect("k")
	require.NoError(t, err)
	assert.False(t, ok, "every bucket refilled")
	n, err = l.Len()
	require.NoError(t, err)
	assert.Zero(t, n)
	keys, next, err := l.Keys("", "", 0)
	require.NoError(t, err)
	assert.Empty(t, keys)
	assert.Empty(t, next)
	scanned, cursor, err := l.Scan(0, 1<<20)
	require.NoError(t, err)
	assert.Empty(t, scanned)
	assert.Zero(t, cursor)
}

// TestInspectFallsBackWhenTheDefaultRefills shows a key's other buckets
// once its default policy's bucket is full again: policies by name, then
// CL.THROTTLE's.
func TestInspectFallsBackWhenTheDefaultRefills(t *testing.T) {
	l, _, c := newLimiter(t)
	require.NoError(t, l.SetPolicies("", tiers()))
	throttle(t, l, "k", cellLimit, tok(100)) // full in 100 min
	take(t, l, "k", "trial", tok(1))         // in 1 h
	take(t, l, "k", "api", tok(1))           // in 14.4 min; "api" sorts before "default"
	take(t, l, "k", "", tok(1))

	steps := []struct {
		name   string
		do     func()
		policy string
		cell   bool
	}{
		{"the default policy's bucket first", func() {}, bucket.DefaultPolicy, false},
		{"the default's refilled: then policies by name", func() { c.Advance(3 * time.Second) }, "api", false},
		{"api's reset: the next by name", func() {
			_, err := l.Reset("k", "api")
			require.NoError(t, err)
		}, "trial", false},
		{"a reload removed trial: its bucket stays", func() {
			require.NoError(t, l.SetPolicies("", tiers()[:1]))
		}, "trial", false},
		{"trial's refilled: CL.THROTTLE's", func() { c.Advance(time.Hour) }, "", true},
	}
	for _, s := range steps {
		s.do()
		v, ok, err := l.Inspect("k")
		require.NoError(t, err, s.name)
		require.True(t, ok, s.name)
		assert.Equal(t, s.policy, v.Policy, s.name)
		assert.Equal(t, s.cell, v.Cell, s.name)
		if s.policy == "trial" {
			assert.Equal(t, tiers()[1].Limits, v.Snapshot.Policy.Limits, s.name)
		}
	}
}

// TestTakeAgreesWithInspectWhileAReloadIsNotYetTaken reloads the default
// policy to a slower rate and reads the key before any take under the new
// limits: a take of 0, Inspect and Len must tell one story, and it must
// not depend on whether a sweep has run.
func TestTakeAgreesWithInspectWhileAReloadIsNotYetTaken(t *testing.T) {
	seen := map[bool]bucket.Decision{} // by sweep
	for _, sweep := range []bool{false, true} {
		l, _, c := newLimiter(t)
		take(t, l, "k", "", tok(1)) // 4 of 5, full in 3 s under the old limit
		require.NoError(t, l.SetDefaultLimit(bucket.Limit{Capacity: tok(10), Rate: bucket.Every(time.Minute)}))
		c.Advance(30 * time.Second)
		if sweep {
			require.NoError(t, l.Save())
		}
		res := take(t, l, "k", "", 0)
		seen[sweep] = res.Decision
		v, ok, err := l.Inspect("k")
		require.NoError(t, err)
		n, err := l.Len()
		require.NoError(t, err)
		exists := res.ResetAfter > 0
		assert.Equal(t, exists, ok, "sweep %v: a take of 0 says %+v; Inspect says ok=%v", sweep, res.Decision, ok)
		assert.Equal(t, map[bool]int{true: 1}[exists], n, "sweep %v: Len", sweep)
		if ok {
			assert.Equal(t, res.Decision, v.Decision, "sweep %v", sweep)
		}
	}
	assert.Equal(t, seen[false], seen[true], "a take of 0 must not depend on a sweep")
}
