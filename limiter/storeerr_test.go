package limiter_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/limiter"
	"github.com/bucketd/bucketd/storage/redisstore"
	"github.com/bucketd/bucketd/storage/redisstore/redistest"
)

// TestStoreUnavailable stops a real redis-server under the Redis store:
// each policy fails as it says (or as the limiter's default), the counts
// show it, and takes work again once Redis is back, with no restart.
func TestStoreUnavailable(t *testing.T) {
	for _, def := range []bucket.FailMode{bucket.FailDefault, bucket.FailClosed, bucket.FailOpen} {
		t.Run("default "+def.String(), func(t *testing.T) {
			srv := redistest.Start(t)
			st, err := redisstore.Open(srv.URL, redisstore.Options{Timeout: 200 * time.Millisecond})
			require.NoError(t, err)
			t.Cleanup(func() { _ = st.Close() })
			l, err := limiter.New(st, limiter.Options{OnStoreError: def})
			require.NoError(t, err)
			one := []bucket.Limit{{Capacity: 2 * bucket.Token, Rate: bucket.Every(time.Hour)}}
			require.NoError(t, l.SetPolicies("", []bucket.Policy{
				{Name: "strict", Limits: one, OnStoreError: bucket.FailClosed},
				{Name: "lax", Limits: one, OnStoreError: bucket.FailOpen},
				{Name: "plain", Limits: one},
			}))
			for _, p := range []string{"strict", "lax", "plain"} {
				res, err := l.Take("k", p, bucket.Token)
				require.NoError(t, err)
				require.True(t, res.Allowed)
			}

			srv.Stop()
			_, err = l.Take("k", "strict", bucket.Token)
			assert.ErrorIs(t, err, bucket.ErrStoreUnavailable, "strict fails closed")
			res, err := l.Take("k", "lax", bucket.Token)
			require.NoError(t, err, "lax fails open")
			assert.True(t, res.Allowed)
			res, err = l.Take("k", "plain", bucket.Token)
			if def == bucket.FailOpen {
				require.NoError(t, err)
				assert.True(t, res.Allowed)
			} else {
				assert.ErrorIs(t, err, bucket.ErrStoreUnavailable, "the default is closed")
			}
			_, err = l.Throttle("k", one[0], bucket.Token)
			if def == bucket.FailOpen {
				require.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, bucket.ErrStoreUnavailable)
			}
			assert.ErrorIs(t, l.Ready(), bucket.ErrStoreUnavailable, "readiness shows it")
			want := limiter.StoreErrors{Refused: 3, Allowed: 1}
			if def == bucket.FailOpen {
				want = limiter.StoreErrors{Refused: 1, Allowed: 3}
			}
			assert.Equal(t, want, l.StoreErrors())

			srv.Restart() // an empty Redis: every bucket is full again
			require.NoError(t, l.Ready(), "recovers by itself")
			for _, p := range []string{"strict", "lax", "plain"} {
				res, err := l.Take("k", p, 2*bucket.Token)
				require.NoError(t, err, p)
				assert.True(t, res.Allowed, p)
				res, err = l.Take("k", p, bucket.Token)
				require.NoError(t, err, p)
				assert.False(t, res.Allowed, "%s: exact again", p)
			}
		})
	}
}

// TestOverridesShared: two limiters on one Redis, as two instances: an
// override set through one is in force in the other after a refresh, and
// so is its deletion.
func TestOverridesShared(t *testing.T) {
	srv := redistest.Start(t)
	open := func() *limiter.Limiter {
		st, err := redisstore.Open(srv.URL, redisstore.Options{Timeout: 5 * time.Second})
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		l, err := limiter.New(st, limiter.Options{})
		require.NoError(t, err)
		return l
	}
	a, b := open(), open()
	big := []bucket.Limit{{Capacity: 100 * bucket.Token, Rate: bucket.PerSecond(1)}}
	require.NoError(t, a.SetOverride(bucket.Override{Key: "vip", Limits: big}))
	_, ok := b.Override("vip", "")
	assert.False(t, ok, "not yet refreshed")
	changed, err := b.RefreshOverrides()
	require.NoError(t, err)
	assert.True(t, changed)
	o, ok := b.Override("vip", "")
	require.True(t, ok)
	assert.Equal(t, big, o.Limits)
	res, err := b.Take("vip", "", 50*bucket.Token)
	require.NoError(t, err)
	assert.True(t, res.Allowed, "the override's capacity, through the other instance")
	changed, err = b.RefreshOverrides()
	require.NoError(t, err)
	assert.False(t, changed)

	deleted, err := a.DeleteOverride("vip", "")
	require.NoError(t, err)
	require.True(t, deleted)
	_, err = b.RefreshOverrides()
	require.NoError(t, err)
	_, ok = b.Override("vip", "")
	assert.False(t, ok)
}
