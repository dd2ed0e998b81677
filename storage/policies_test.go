package storage

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

// tiers are the policies of these tests: a burst and a daily quota on one
// policy, a shadow policy, and the default.
func tiers() PolicyConfig {
	return PolicyConfig{Policies: []bucket.Policy{
		{Name: "api", Limits: []bucket.Limit{
			{Capacity: tok(10), Rate: bucket.PerSecond(1)},
			{Capacity: tok(25), Rate: bucket.Rate{Tokens: tok(100), Per: 24 * time.Hour}},
		}},
		{Name: "trial", Shadow: true, Limits: []bucket.Limit{{Capacity: tok(1), Rate: bucket.Every(time.Hour)}}},
		{Name: "default", Limits: []bucket.Limit{DefaultLimit}},
	}}
}

func TestMultiLimitAtomicUnderConcurrency(t *testing.T) {
	for _, mode := range []SyncMode{SyncInterval, SyncAlways} {
		t.Run(mode.String(), func(t *testing.T) {
			c := newClock(t0)
			opts := testOptions(c)
			opts.Sync = mode
			db := mustOpen(t, opts)
			require.NoError(t, db.SetPolicies(tiers()))

			// 64 goroutines take 1 or 2 tokens from one key on a frozen clock:
			// the burst limit (10) decides; every allowed take debits both
			// limits, and no refused take debits either.
			var allowed atomic.Int64 // tokens
			var wg sync.WaitGroup
			for g := range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 4 {
						cost := tok(int64(1 + g%2))
						res, err := db.Take("k", "api", cost)
						if !assert.NoError(t, err) {
							return
						}
						if res.Allowed {
							allowed.Add(int64(cost))
						}
						assert.Len(t, res.Limits, 2)
					}
				}()
			}
			wg.Wait()
			taken := bucket.Tokens(allowed.Load())
			assert.LessOrEqual(t, taken, tok(10))
			assert.GreaterOrEqual(t, taken, tok(9), "at most a 2-token take can be refused with 1 left")

			res, err := db.Take("k", "api", 0)
			require.NoError(t, err)
			require.Len(t, res.Limits, 2)
			assert.Equal(t, tok(10)-taken, res.Limits[0].Remaining, "the burst limit was debited exactly what was allowed")
			assert.Equal(t, tok(25)-taken, res.Limits[1].Remaining, "and so was the daily quota: no partial debit")
		})
	}
}

func TestMultiLimitRefusalDebitsNothing(t *testing.T) {
	c := newClock(t0)
	db := mustOpen(t, testOptions(c))
	require.NoError(t, db.SetPolicies(tiers()))
	// Drain the daily quota to 5 with takes spread so the burst refills.
	for range 2 {
		res, err := db.Take("k", "api", tok(10))
		require.NoError(t, err)
		require.True(t, res.Allowed)
		c.Advance(10 * time.Second)
	}
	res, err := db.Take("k", "api", tok(6))
	require.NoError(t, err)
	assert.False(t, res.Allowed, "the quota holds 5: a take of 6 is refused though the burst holds 10")
	assert.True(t, res.Limits[0].Allowed)
	assert.False(t, res.Limits[1].Allowed)
	peek, err := db.Take("k", "api", 0)
	require.NoError(t, err)
	assert.Equal(t, tok(10), peek.Limits[0].Remaining, "the burst was not debited")
}

func TestShadowPolicyIsCountedNotEnforced(t *testing.T) {
	c := newClock(t0)
	db := mustOpen(t, testOptions(c))
	require.NoError(t, db.SetPolicies(tiers()))
	var decisions []bool
	for range 3 {
		res, err := db.Take("k", "trial", tok(1))
		require.NoError(t, err)
		assert.True(t, res.Policy.Shadow)
		decisions = append(decisions, res.Allowed)
	}
	assert.Equal(t, []bool{true, false, false}, decisions, "the decision is computed as if enforced; the caller allows it")
	for _, p := range db.Policies() {
		if p.Name == "trial" {
			assert.Equal(t, bucket.Counts{Allowed: 1, Denied: 2}, p.Counts)
		}
	}
}

func TestReloadKeepsBucketsAndCounts(t *testing.T) {
	c := newClock(t0)
	db := mustOpen(t, testOptions(c))
	require.NoError(t, db.SetPolicies(tiers()))
	res, err := db.Take("k", "api", tok(8))
	require.NoError(t, err)
	require.True(t, res.Allowed)

	// Reload with a smaller burst and a new policy, and without "trial".
	next := tiers()
	next.Policies[0].Limits[0].Capacity = tok(5)
	next.Policies[1] = bucket.Policy{Name: "new", Limits: []bucket.Limit{DefaultLimit}}
	require.NoError(t, db.SetPolicies(next))

	peek, err := db.Take("k", "api", 0)
	require.NoError(t, err)
	assert.Equal(t, tok(2), peek.Limits[0].Remaining, "2 tokens left: not reset to the new capacity of 5")
	assert.Equal(t, tok(5), peek.Limits[0].Limit)
	assert.Equal(t, tok(17), peek.Limits[1].Remaining, "the quota kept its 17")

	_, err = db.Take("k", "trial", tok(1))
	assert.ErrorIs(t, err, bucket.ErrUnknownPolicy, "a removed policy is gone")
	var names []string
	for _, p := range db.Policies() {
		names = append(names, p.Name)
		if p.Name == "api" {
			assert.Equal(t, uint64(1), p.Allowed, "counts go on across a reload")
		}
	}
	assert.Equal(t, []string{"api", "default", "new"}, names)

	// An invalid config changes nothing.
	bad := tiers()
	bad.Policies[0].Limits[0].Capacity = 0
	assert.ErrorIs(t, db.SetPolicies(bad), bucket.ErrInvalid)
	_, err = db.Policy("new")
	assert.NoError(t, err, "the old policies stay")
	assert.ErrorIs(t, db.SetPolicies(PolicyConfig{Default: "nope", Policies: tiers().Policies}), bucket.ErrInvalid)
}

func TestDefaultPolicyByName(t *testing.T) {
	c := newClock(t0)
	db := mustOpen(t, testOptions(c))
	cfg := tiers()
	cfg.Default = "trial"
	require.NoError(t, db.SetPolicies(cfg))
	res, err := db.Take("k", "", tok(1))
	require.NoError(t, err)
	assert.Equal(t, "trial", res.Policy.Name)

	// Without a policy named like the default, the flags' limit is it.
	require.NoError(t, db.SetPolicies(PolicyConfig{Policies: []bucket.Policy{tiers().Policies[0]}}))
	p, err := db.Policy("")
	require.NoError(t, err)
	assert.Equal(t, bucket.Policy{Name: "default", Limits: []bucket.Limit{DefaultLimit}}, p)
}

func TestPoliciesHaveSeparateBuckets(t *testing.T) {
	c := newClock(t0)
	db := mustOpen(t, testOptions(c))
	require.NoError(t, db.SetPolicies(tiers()))
	_, err := db.Take("joe", "api", tok(10))
	require.NoError(t, err)
	res, err := db.Take("joe", "", tok(5))
	require.NoError(t, err)
	assert.True(t, res.Allowed, "joe's default bucket is not joe's api bucket")

	ok, err := db.Reset("joe", "api")
	require.NoError(t, err)
	assert.True(t, ok)
	peek, err := db.Take("joe", "api", 0)
	require.NoError(t, err)
	assert.Equal(t, tok(10), peek.Remaining, "api reset")
	peek, err = db.Take("joe", "", 0)
	require.NoError(t, err)
	assert.Equal(t, tok(0), peek.Remaining, "default untouched")

	// Both buckets of one key persist in its record.
	_, err = db.Take("joe", "api", tok(3))
	require.NoError(t, err)
	path := db.Path()
	require.NoError(t, db.Close())
	db = mustOpenAt(t, path, testOptions(c))
	require.NoError(t, db.SetPolicies(tiers()))
	peek, err = db.Take("joe", "api", 0)
	require.NoError(t, err)
	assert.Equal(t, tok(7), peek.Remaining)
	peek, err = db.Take("joe", "", 0)
	require.NoError(t, err)
	assert.Equal(t, tok(0), peek.Remaining)
}

func TestOverridesPersistAcrossRestart(t *testing.T) {
	c := newClock(t0)
	path := filepath.Join(t.TempDir(), "bucketd.db")
	db := mustOpenAt(t, path, testOptions(c))
	require.NoError(t, db.SetPolicies(tiers()))

	premium := []bucket.Limit{{Capacity: tok(100), Rate: bucket.PerSecond(10)}}
	require.NoError(t, db.SetOverride(bucket.Override{Key: "vip", Policy: "api", Limits: premium}))
	require.NoError(t, db.SetOverride(bucket.Override{Key: "vip", Limits: premium}), "policy \"\" is the default")
	assert.ErrorIs(t, db.SetOverride(bucket.Override{Key: "vip", Policy: "gold", Limits: premium}), bucket.ErrUnknownPolicy)
	assert.ErrorIs(t, db.SetOverride(bucket.Override{Key: "vip", Policy: "api"}), bucket.ErrInvalid, "no limits")

	res, err := db.Take("vip", "api", tok(50))
	require.NoError(t, err)
	assert.True(t, res.Allowed, "the override's capacity of 100 applies")
	assert.Nil(t, res.Limits, "one limit: the override replaced the policy's two")
	res, err = db.Take("other", "api", tok(50))
	require.NoError(t, err)
	assert.False(t, res.Allowed, "others keep the policy")
	require.NoError(t, db.Close())

	db = mustOpenAt(t, path, testOptions(c))
	require.NoError(t, db.SetPolicies(tiers()))
	o, ok := db.Override("vip", "api")
	require.True(t, ok, "the override survived the restart")
	assert.Equal(t, premium, o.Limits)
	assert.Len(t, db.Overrides(), 2)
	res, err = db.Take("vip", "api", tok(50))
	require.NoError(t, err)
	assert.True(t, res.Allowed, "50 left of the override's 100")
	assert.Equal(t, tok(0), res.Remaining)

	deleted, err := db.DeleteOverride("vip", "api")
	require.NoError(t, err)
	assert.True(t, deleted)
	deleted, err = db.DeleteOverride("vip", "api")
	require.NoError(t, err)
	assert.False(t, deleted)
	require.NoError(t, db.Close())
	db = mustOpenAt(t, path, testOptions(c))
	_, ok = db.Override("vip", "api")
	assert.False(t, ok, "the delete survived the restart")
	assert.Len(t, db.Overrides(), 1)
	// FlushAll resets buckets but keeps overrides: they are configuration.
	require.NoError(t, db.FlushAll())
	assert.Len(t, db.Overrides(), 1)
}

func TestKeysPagination(t *testing.T) {
	c := newClock(t0)
	db := mustOpen(t, testOptions(c))
	for i := range 25 {
		_, err := db.Take(fmt.Sprintf("user:%02d", i), "", tok(1))
		require.NoError(t, err)
	}
	_, err := db.Take("other", "", tok(1))
	require.NoError(t, err)
	var all []string
	after := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		keys, next, err := db.Keys("user:", after, 10)
		require.NoError(t, err)
		all = append(all, keys...)
		if next == "" {
			break
		}
		after = next
	}
	require.Len(t, all, 25)
	for i, k := range all {
		assert.Equal(t, fmt.Sprintf("user:%02d", i), k)
	}
}

func TestShadowRefusalsAreLogged(t *testing.T) {
	var logs logBuffer
	opts := testOptions(newClock(t0))
	opts.Logger = logs.logger()
	db := mustOpen(t, opts)
	require.NoError(t, db.SetPolicies(tiers()))
	for range 2 {
		_, err := db.Take("k", "trial", tok(1))
		require.NoError(t, err)
	}
	assert.Equal(t, 1, strings.Count(logs.String(), "shadow policy refused a take"), logs.String())
	assert.Contains(t, logs.String(), "policy=trial key=k cost=1 retry_after=1h0m0s")
}
