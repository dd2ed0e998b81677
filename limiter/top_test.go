package limiter_test

import (
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/limiter"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
	"github.com/bucketd/bucketd/topk"
)

// TestTopCountsRefusals: refusals of policies (shadow ones too) and of
// CL.THROTTLE are counted, under their policy; allowed takes and peeks are
// not; the window forgets them on the window's clock.
func TestTopCountsRefusals(t *testing.T) {
	c := storetest.NewClock(storetest.T0) // the store's clock and the window's
	l, err := limiter.New(openAt(t, filepath.Join(t.TempDir(), "bucketd.db"), c), limiter.Options{
		Top: limiter.TopOptions{Options: topk.Options{Interval: time.Second, Intervals: 60}, Now: c.Wall},
	})
	require.NoError(t, err)
	require.NoError(t, l.SetPolicies("", tiers()))
	for range 13 { // 10 allowed, 3 refused
		take(t, l, "alice", "api", tok(1))
	}
	take(t, l, "bob", "api", tok(1))
	take(t, l, "bob", "api", 0) // a peek
	take(t, l, "tom", "trial", tok(1))
	take(t, l, "tom", "trial", tok(1)) // shadow: refused by the limits, allowed
	lim := bucket.Limit{Capacity: tok(1), Rate: slow}
	throttle(t, l, "cell", lim, tok(1))
	throttle(t, l, "cell", lim, tok(1))
	throttle(t, l, "cell", lim, tok(1))

	assert.Equal(t, []topk.Entry{
		{Item: topk.Item{Policy: "api", Key: "alice"}, Count: 3},
		{Item: topk.Item{Policy: "", Key: "cell"}, Count: 2},
		{Item: topk.Item{Policy: "trial", Key: "tom"}, Count: 1},
	}, l.Top(time.Minute, 10))
	assert.Equal(t, time.Minute, l.TopSpan())

	c.Advance(61 * time.Second)
	assert.Empty(t, l.Top(time.Minute, 10), "a minute later, the window is empty")
}

func TestTopDefaults(t *testing.T) {
	l, _, _ := newLimiter(t)
	assert.Equal(t, 5*time.Minute, l.TopSpan())
	assert.Empty(t, l.Top(time.Minute, 10))
}

// BenchmarkTakeRefused is the refusal path under a flood, refusals counted
// in the window: parallel takes of 1000 empty buckets.
func BenchmarkTakeRefused(b *testing.B) {
	db, err := storage.Open(filepath.Join(b.TempDir(), "bucketd.db"), storage.Options{SyncInterval: noFlush})
	require.NoError(b, err)
	b.Cleanup(func() { _ = db.Close() })
	l, err := limiter.New(db, limiter.Options{Default: bucket.Limit{Capacity: bucket.Token, Rate: slow}})
	require.NoError(b, err)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
		_, err := l.Take(keys[i], "", bucket.Token)
		require.NoError(b, err)
	}
	var seed atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(7919))
		for pb.Next() {
			res, err := l.Take(keys[i%len(keys)], "", bucket.Token)
			if err != nil || res.Allowed {
				b.Fatal("want a refusal", err)
			}
			i++
		}
	})
}

// TestTopCountsRLSRefusals: a descriptor over its limit is counted under
// "rls:DOMAIN"; one that was fine, in a request refused by another, is not.
func TestTopCountsRLSRefusals(t *testing.T) {
	l, _, _ := newLimiter(t)
	l.SetRLSConfig(rlsConfig(t, "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 1}\n  - key: j\n    rate_limit: {unit: hour, requests_per_unit: 100}\n"))
	should(t, l, "d", desc("k", "a"))
	for range 3 {
		r := should(t, l, "d", desc("j", "b"), desc("k", "a"))
		require.True(t, r.Over)
	}
	top := l.Top(time.Minute, 10)
	require.Len(t, top, 1)
	assert.Equal(t, "rls:d", top[0].Item.Policy)
	assert.Equal(t, uint64(3), top[0].Count)
	assert.Equal(t, "k_a", top[0].Item.Key)
}
