package limiter_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/limiter"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

// allBuckets gives key a bucket under api, under the default policy and
// under CL.THROTTLE.
func allBuckets(t *testing.T, l *limiter.Limiter, key string) {
	t.Helper()
	take(t, l, key, "api", tok(1))
	take(t, l, key, "", tok(1))
	throttle(t, l, key, cellLimit, tok(1))
}

func TestResetOnePolicy(t *testing.T) {
	l, _, _ := newLimiter(t)
	require.NoError(t, l.SetPolicies("", tiers()))
	allBuckets(t, l, "k")

	ok, err := l.Reset("k", "api")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, tok(10), take(t, l, "k", "api", 0).Remaining, "api's bucket is full")
	assert.Equal(t, tok(4), take(t, l, "k", "", 0).Remaining, "the default's is not touched")
	assert.Equal(t, tok(99), throttle(t, l, "k", cellLimit, 0).Remaining, "nor CL.THROTTLE's")

	ok, err = l.Reset("k", "api")
	require.NoError(t, err)
	assert.False(t, ok, "full already")
}

func TestResetEveryNamespace(t *testing.T) {
	l, _, _ := newLimiter(t)
	require.NoError(t, l.SetPolicies("", tiers()))
	allBuckets(t, l, "k")
	allBuckets(t, l, "other")

	ok, err := l.Reset("k", "")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, tok(10), take(t, l, "k", "api", 0).Remaining)
	assert.Equal(t, tok(5), take(t, l, "k", "", 0).Remaining)
	assert.Equal(t, tok(100), throttle(t, l, "k", cellLimit, 0).Remaining, "CL.THROTTLE's bucket too")
	_, ok, err = l.Inspect("k")
	require.NoError(t, err)
	assert.False(t, ok)
	n, err := l.Len()
	require.NoError(t, err)
	assert.Equal(t, 1, n, "only other is left")
	assert.Equal(t, tok(99), throttle(t, l, "other", cellLimit, 0).Remaining, "other keys are not touched")

	ok, err = l.Reset("k", "")
	require.NoError(t, err)
	assert.False(t, ok, "full already")
}

// TestResetUnknownPolicy is the DELETE /v1/buckets/k?policy=gold,
// which must be a 404, not {"deleted":false}.
func TestResetUnknownPolicy(t *testing.T) {
	l, _, _ := newLimiter(t)
	require.NoError(t, l.SetPolicies("", tiers()))
	allBuckets(t, l, "k")
	take(t, l, "k", "trial", tok(1))
	require.NoError(t, l.SetPolicies("", tiers()[:1])) // "trial" is gone; its bucket stays

	for _, name := range []string{"gold", "trial"} {
		ok, err := l.Reset("k", name)
		assert.ErrorIs(t, err, bucket.ErrUnknownPolicy, "Reset(k, %q)", name)
		assert.False(t, ok)
	}
	assert.Equal(t, tok(9), take(t, l, "k", "api", 0).Remaining, "nothing was reset")
	assert.Equal(t, tok(4), take(t, l, "k", "", 0).Remaining)
	assert.Equal(t, tok(99), throttle(t, l, "k", cellLimit, 0).Remaining)
	v, ok, err := l.Inspect("k")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, bucket.DefaultPolicy, v.Policy)
}

func TestDelete(t *testing.T) {
	l, _, c := newLimiter(t)
	for _, k := range []string{"a", "b", "c"} {
		take(t, l, k, "", tok(1))
	}
	throttle(t, l, "cell", cellLimit, tok(1)) // a key with CL.THROTTLE's bucket alone
	take(t, l, "slow", "", tok(5))

	tests := []struct {
		keys []string
		want int
	}{
		{nil, 0},
		{[]string{"a", "b", "nope"}, 2},
		{[]string{"a", "b"}, 0},
		{[]string{"c", "c"}, 1},
		{[]string{"cell"}, 1},
	}
	for _, tt := range tests {
		n, err := l.Delete(tt.keys...)
		require.NoError(t, err)
		assert.Equal(t, tt.want, n, "Delete(%q)", tt.keys)
	}
	keys, _, err := l.Keys("", "", 0)
	require.NoError(t, err)
	assert.Equal(t, []string{"slow"}, keys)

	c.Advance(15 * time.Second)
	n, err := l.Delete("slow")
	require.NoError(t, err)
	assert.Zero(t, n, "a bucket that has refilled is not counted, swept or not")

	res := take(t, l, "a", "", tok(5))
	assert.True(t, res.Allowed, "a deleted bucket starts full")
}

func TestSet(t *testing.T) {
	tests := []struct {
		name   string
		taken  bucket.Tokens // taken from the bucket first; 0 for no bucket
		set    bucket.Tokens
		want   bucket.Tokens
		wantOK bool // whether a bucket is left
	}{
		{"grant on a new key", 0, tok(2), tok(2), true},
		{"drain on a new key", 0, 0, 0, true},
		{"grant", tok(4), tok(3), tok(3), true},
		{"drain", tok(1), 0, 0, true},
		{"negative clamps to empty", tok(1), -tok(7), 0, true},
		{"fraction", tok(1), bucket.Token / 4, bucket.Token / 4, true},
		{"full removes the bucket", tok(3), tok(5), tok(5), false},
		{"more than full clamps and removes the bucket", tok(3), tok(500), tok(5), false},
		{"full on a new key stores nothing", 0, tok(5), tok(5), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, _, c := newLimiter(t)
			if tt.taken > 0 {
				take(t, l, "k", "", tt.taken)
			}
			c.Advance(time.Second)
			res, err := l.Set("k", "", tt.set)
			require.NoError(t, err)
			assert.Equal(t, tt.want, res.Remaining, "Set returns a peek")
			assert.Equal(t, tok(5), res.Limit)
			assert.Equal(t, bucket.Policy{Name: bucket.DefaultPolicy, Limits: []bucket.Limit{limiter.DefaultLimit}}, res.Policy)
			assert.Equal(t, res.Decision, take(t, l, "k", "", 0).Decision, "the peek is what a take of 0 sees")

			v, ok, err := l.Inspect("k")
			require.NoError(t, err)
			require.Equal(t, tt.wantOK, ok)
			n, err := l.Len()
			require.NoError(t, err)
			if !tt.wantOK {
				assert.Zero(t, n)
				return
			}
			assert.Equal(t, 1, n)
			assert.Equal(t, tt.want, v.Remaining)
			assert.Equal(t, storetest.T0.Add(time.Second), v.UpdatedAt)
		})
	}
}

func TestSetUnderAPolicy(t *testing.T) {
	l, _, _ := newLimiter(t)
	require.NoError(t, l.SetPolicies("", tiers()))
	res, err := l.Set("k", "api", tok(20))
	require.NoError(t, err)
	require.Len(t, res.Limits, 2)
	assert.Equal(t, tok(10), res.Limits[0].Remaining, "clamped to the burst's capacity")
	assert.Equal(t, tok(20), res.Limits[1].Remaining)
	assert.Equal(t, "api", res.Policy.Name)

	require.NoError(t, l.SetOverride(bucket.Override{Key: "vip", Policy: "api", Limits: premium}))
	res, err = l.Set("vip", "api", tok(50))
	require.NoError(t, err)
	assert.Nil(t, res.Limits)
	assert.Equal(t, tok(50), res.Remaining, "under the key's override")
	assert.Equal(t, tok(100), res.Limit)

	assert.Equal(t, bucket.Counts{}, counts(t, l, "api"), "a set is not a take")
}

func TestSetTokens(t *testing.T) {
	l, _, _ := newLimiter(t)
	steps := []struct {
		set  bucket.Tokens
		want bucket.Tokens
		ok   bool
	}{
		{tok(2), tok(2), true},
		{-tok(7), 0, true},
		{tok(500), 0, false}, // clamped to 5: full, no bucket
	}
	for _, s := range steps {
		require.NoError(t, l.SetTokens("k", s.set))
		v, ok, err := l.Inspect("k")
		require.NoError(t, err)
		require.Equal(t, s.ok, ok, "SetTokens(%s)", s.set)
		assert.Equal(t, s.want, v.Remaining, "SetTokens(%s)", s.set)
	}
	require.NoError(t, l.SetTokens("k", tok(1)))
	assert.Equal(t, tok(1), take(t, l, "k", "", 0).Remaining, "under the default policy")
	assert.Equal(t, tok(100), throttle(t, l, "k", cellLimit, 0).Remaining, "not CL.THROTTLE's bucket")
}

func TestKeysPaginates(t *testing.T) {
	l, _, _ := newLimiter(t)
	var want []string
	for i := range 25 {
		want = append(want, fmt.Sprintf("user:%02d", i))
	}
	// Byte order, not the order of a locale: "B" < "a" < "é".
	want = append(want, "user:B", "user:a", "user:é")
	for _, k := range want {
		take(t, l, k, "", tok(1))
	}
	throttle(t, l, "user:a", cellLimit, tok(1)) // two buckets, listed once
	take(t, l, "other", "", tok(1))
	take(t, l, "user", "", tok(1))
	require.True(t, slices.IsSorted(want))

	for _, limit := range []int{1, 7, 10, 28, 100} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			var all []string
			after := ""
			for pages := 0; ; pages++ {
				require.Less(t, pages, 100, "the pages do not end")
				keys, next, err := l.Keys("user:", after, limit)
				require.NoError(t, err)
				assert.LessOrEqual(t, len(keys), limit)
				all = append(all, keys...)
				if next == "" {
					break
				}
				assert.Equal(t, keys[len(keys)-1], next)
				after = next
			}
			assert.Equal(t, want, all, "every key once, in byte order")
		})
	}

	keys, next, err := l.Keys("user:", "user:05", 3)
	require.NoError(t, err)
	assert.Equal(t, []string{"user:06", "user:07", "user:08"}, keys)
	assert.Equal(t, "user:08", next)

	keys, next, err = l.Keys("user:", "user:a", 2)
	require.NoError(t, err)
	assert.Equal(t, []string{"user:é"}, keys)
	assert.Empty(t, next, "the last page")

	keys, _, err = l.Keys("", "", 0)
	require.NoError(t, err)
	assert.Len(t, keys, len(want)+2, "limit 0 is 100; every prefix")
	assert.Equal(t, "other", keys[0])
}

func TestKeysLimitIsCapped(t *testing.T) {
	l, _, _ := newLimiter(t)
	const n = 10_001
	for i := range n {
		take(t, l, fmt.Sprintf("k%05d", i), "", tok(1))
	}
	keys, next, err := l.Keys("", "", 1_000_000)
	require.NoError(t, err)
	assert.Len(t, keys, 10_000)
	assert.Equal(t, "k09999", next)
	keys, next, err = l.Keys("", next, 1_000_000)
	require.NoError(t, err)
	assert.Equal(t, []string{"k10000"}, keys)
	assert.Empty(t, next)
}

func TestScanCoversEveryKey(t *testing.T) {
	l, _, _ := newLimiter(t)
	const n = 1000
	for i := range n {
		take(t, l, fmt.Sprint("key:", i), "", tok(1))
	}
	seen := map[string]bool{}
	var cursor uint64
	for calls := 0; ; calls++ {
		require.Less(t, calls, n, "the scan does not end")
		keys, next, err := l.Scan(cursor, 10)
		require.NoError(t, err)
		for _, k := range keys {
			seen[k] = true
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	assert.Len(t, seen, n)
}

func TestFlushAllSaveLastSave(t *testing.T) {
	l, db, c := newLimiter(t)
	require.NoError(t, l.SetPolicies("", tiers()))
	allBuckets(t, l, "k")
	c.Advance(time.Second)
	require.NoError(t, l.Save())
	assert.Equal(t, storetest.T0.Add(time.Second), l.LastSave())

	require.NoError(t, l.FlushAll())
	n, err := l.Len()
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, tok(5), take(t, l, "k", "", 0).Remaining)

	l, _ = restart(t, db, c)
	n, err = l.Len()
	require.NoError(t, err)
	assert.Zero(t, n, "the flush reached the disk")
}

func TestReady(t *testing.T) {
	l, db, _ := newLimiter(t)
	assert.NoError(t, l.Ready())
	take(t, l, "k", "", tok(1))
	require.NoError(t, db.Close())

	assert.ErrorIs(t, l.Ready(), bucket.ErrClosed)
	ops := []struct {
		name string
		do   func() error
	}{
		{"Take", func() error { _, err := l.Take("k", "", tok(1)); return err }},
		{"Take peek", func() error { _, err := l.Take("k", "", 0); return err }},
		{"Throttle", func() error { _, err := l.Throttle("k", cellLimit, tok(1)); return err }},
		{"Inspect", func() error { _, _, err := l.Inspect("k"); return err }},
		{"Set", func() error { _, err := l.Set("k", "", 0); return err }},
		{"Reset", func() error { _, err := l.Reset("k", ""); return err }},
		{"Delete", func() error { _, err := l.Delete("k"); return err }},
		{"Keys", func() error { _, _, err := l.Keys("", "", 0); return err }},
		{"Scan", func() error { _, _, err := l.Scan(0, 10); return err }},
		{"Len", func() error { _, err := l.Len(); return err }},
		{"FlushAll", l.FlushAll},
		{"Save", l.Save},
		{"SetOverride", func() error { return l.SetOverride(bucket.Override{Key: "k", Limits: premium}) }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			assert.ErrorIs(t, op.do(), bucket.ErrClosed)
		})
	}
	assert.Equal(t, bucket.Counts{Allowed: 1}, counts(t, l, bucket.DefaultPolicy), "failed takes are not counted")
	assert.Equal(t, bucket.Counts{}, l.CellCounts())
	assert.Empty(t, l.Overrides(), "a failed SetOverride changes nothing")
}

// diskFullOn is the real store, whose resets of one key report that their
// write failed (after making them, as the real store does under --sync
// always). Only storage can make a real commit fail; this wrapper keeps
// every other behaviour the real store's.
type diskFullOn struct {
	*storage.DB
	key string
}

func (d diskFullOn) Reset(ns storage.Namespace, key string) (bool, error) {
	ok, err := d.DB.Reset(ns, key)
	if err == nil && key == d.key {
		err = fmt.Errorf("%w: write bucketd.db: no space left on device", bucket.ErrNotDurable)
	}
	return ok, err
}

// TestDeleteGoesOnWhenAResetIsNotDurable: DEL k1 k2 k3 with k2's write
// failing resets all three, counts them, and reports the failure.
func TestDeleteGoesOnWhenAResetIsNotDurable(t *testing.T) {
	_, db, _ := newLimiter(t)
	l, err := limiter.New(diskFullOn{DB: db, key: "k2"}, limiter.Options{})
	require.NoError(t, err)
	for _, k := range []string{"k1", "k2", "k3"} {
		take(t, l, k, "", tok(1))
	}
	n, err := l.Delete("k1", "k2", "k3")
	assert.ErrorIs(t, err, bucket.ErrNotDurable)
	assert.Equal(t, 3, n, "every key was reset")
	left, err := l.Len()
	require.NoError(t, err)
	assert.Zero(t, left)
}
