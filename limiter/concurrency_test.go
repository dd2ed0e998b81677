package limiter_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

// TestConcurrentTakesAllowExactlyTheCapacity has many goroutines take from
// one key under a policy of two limits, on a clock that does not move:
// exactly the smaller capacity is allowed, both limits are debited exactly
// that, and every take is counted once.
func TestConcurrentTakesAllowExactlyTheCapacity(t *testing.T) {
	l, _, _ := newLimiter(t)
	two := []bucket.Policy{{Name: "two", Limits: []bucket.Limit{
		{Capacity: tok(40), Rate: slow},
		{Capacity: tok(50), Rate: slow},
	}}}
	require.NoError(t, l.SetPolicies("", two))

	const goroutines, takes = 64, 8
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range takes {
				res, err := l.Take("k", "two", tok(1))
				if !assert.NoError(t, err) {
					return
				}
				assert.Len(t, res.Limits, 2)
				if res.Allowed {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()

	assert.Equal(t, int64(40), allowed.Load(), "exactly the smaller capacity")
	res := take(t, l, "k", "two", 0)
	require.Len(t, res.Limits, 2)
	assert.Equal(t, bucket.Tokens(0), res.Limits[0].Remaining)
	assert.Equal(t, tok(10), res.Limits[1].Remaining, "no refused take debited the second limit")
	assert.Equal(t, bucket.Counts{Allowed: 40, Denied: goroutines*takes - 40}, counts(t, l, "two"))
}

// TestConcurrentTakesAndReloads races takes, CL.THROTTLE, overrides and
// reloads on a few keys, for the race detector; the clock does not move,
// so the reloads' capacity (never more than 10) bounds what is allowed.
func TestConcurrentTakesAndReloads(t *testing.T) {
	l, _, _ := newLimiter(t)
	policy := func(capacity int64) []bucket.Policy {
		return []bucket.Policy{{Name: "p", Limits: []bucket.Limit{{Capacity: tok(capacity), Rate: slow}}}}
	}
	require.NoError(t, l.SetPolicies("", policy(10)))
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				switch g % 4 {
				case 0:
					assert.NoError(t, l.SetPolicies("", policy(int64(5+i%6))))
				case 1:
					_, err := l.Throttle("k", cellLimit, tok(1))
					assert.NoError(t, err)
					_, _, err = l.Inspect("k")
					assert.NoError(t, err)
					_ = l.Policies()
				default:
					res, err := l.Take("k", "p", tok(1))
					if assert.NoError(t, err) && res.Allowed {
						allowed.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	assert.LessOrEqual(t, allowed.Load(), int64(10))
	assert.Equal(t, uint64(allowed.Load()), counts(t, l, "p").Allowed)
	assert.Equal(t, bucket.Counts{Allowed: 100, Denied: 100}, l.CellCounts(), "200 takes of a capacity of 100")
}
