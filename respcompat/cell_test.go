package respcompat

import (
	"testing"
	"time"

	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests of CL.THROTTLE's own buckets (redis-cell's namespace, apart
// from every policy's). cell returns the command on key "k" with max_burst,
// 1 token a minute, and quantity.
func cell(maxBurst, quantity int64) []any {
	return []any{"CL.THROTTLE", "k", maxBurst, 1, 60, quantity}
}

// A key's CL.THROTTLE bucket and its policy buckets never draw on each
// other, and HGETALL shows the default policy's bucket exactly as a take of
// 0 sees it; a key with only a CL.THROTTLE bucket shows that one.
func TestThrottleHasItsOwnBucket(t *testing.T) {
	t.Parallel()
	st := newStack(t, storage.Options{}) // the default policy: 5 tokens, one every 3 s
	ts := serve(t, st, st.lim, Config{})
	c := ts.client(t)
	ctx := ctxT(t)
	do := func(args ...any) []any {
		t.Helper()
		v, err := c.Do(ctx, args...).Slice()
		require.NoError(t, err, "%v", args)
		return v
	}
	take := func(args ...any) []any { return do(append([]any{"BUCKET.TAKE", "k"}, args...)...) }

	assert.Equal(t, i64s(0, 100, 50, -1, 3000), do(cell(99, 50)...), "50 of 100, full in 50 min")
	assert.Equal(t, append(i64s(1, 5, 4, 0, 3000), "default"), take(), "the policy's bucket is full: 4 of 5 left")
	assert.Equal(t, i64s(0, 100, 50, -1, 3000), do(cell(99, 0)...), "still 50 of 100, not the policy's 4")

	// HGETALL shows the default policy's bucket, as a take of 0 does.
	peek := take(0)
	assert.Equal(t, append(i64s(1, 5, 4, 0, 3000), "default"), peek)
	assert.Equal(t, map[string]string{
		"tokens": "4", "capacity": "5", "rate": "1/3s",
		"updated_at_ms": ms(storetest.T0), "full_in_ms": "3000", "policy": "default",
	}, c.HGetAll(ctx, "k").Val())

	// A key used only by CL.THROTTLE shows its bucket, under the limit of
	// its last call.
	assert.Equal(t, i64s(0, 100, 50, -1, 3000), do("CL.THROTTLE", "j", 99, 1, 60, 50))
	assert.Equal(t, map[string]string{
		"tokens": "50", "capacity": "100", "rate": "1/m",
		"updated_at_ms": ms(storetest.T0), "full_in_ms": "3000000", "policy": "(cl.throttle)",
	}, c.HGetAll(ctx, "j").Val())
	assert.Equal(t, "hash", c.Type(ctx, "j").Val())
	assert.Equal(t, 3000*time.Second, c.TTL(ctx, "j").Val())

	// Once k's policy bucket is full again (3 s), k shows its CL.THROTTLE
	// bucket, which has earned 3/60 of a token meanwhile.
	ts.clock.Advance(3 * time.Second)
	assert.Equal(t, []any{"50.05", "100", "(cl.throttle)"}, c.HMGet(ctx, "k", "tokens", "capacity", "policy").Val())
	assert.Equal(t, int64(2), c.DBSize(ctx).Val(), "k and j")

	// DEL resets both of a key's buckets.
	require.NoError(t, c.Do(ctx, "BUCKET.TAKE", "k").Err())
	assert.Equal(t, int64(1), c.Del(ctx, "k").Val())
	assert.Equal(t, append(i64s(1, 5, 5, 0, 0), "default"), take(0))
	assert.Equal(t, i64s(0, 100, 100, -1, 0), do(cell(99, 0)...))
}

// Called with other limits, a CL.THROTTLE bucket keeps its time until full,
// not its token count, as redis-cell does: it stores only the instant at
// which the key is full.
func TestThrottleCarriesTimeUntilFull(t *testing.T) {
	t.Parallel()
	runSteps(t, []step{
		{0, cell(99, 50), i64s(0, 100, 50, -1, 3000)},
		// Full in 50 min under a limit of 5 a minute is in debt: empty,
		// earning its first token after 46 min. A carry of the tokens would
		// answer 5 left and full now.
		{0, cell(4, 0), i64s(0, 5, 0, -1, 3000)},
		{0, cell(4, 1), i64s(1, 5, 0, 2760, 3000)},
		{0, cell(99, 0), i64s(0, 100, 50, -1, 3000)}, // neither changed the bucket
		// 46 min later the first token under 5 a minute is there; taken,
		// the bucket is empty under that limit, full in 5 min.
		{46 * time.Minute, cell(4, 1), i64s(0, 5, 0, -1, 300)},
		// And 5 min from full under 100 a minute is 95 left.
		{46 * time.Minute, cell(99, 0), i64s(0, 100, 95, -1, 300)},
	})
}

// A negative quantity gives tokens back, as redis-cell allows, never above
// the limit: a bucket given back to full is gone, as every full bucket is.
func TestThrottleGivesBack(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	c := ts.client(t)
	ctx := ctxT(t)
	do := func(args ...any) []any {
		t.Helper()
		v, err := c.Do(ctx, args...).Slice()
		require.NoError(t, err, "%v", args)
		return v
	}
	assert.Equal(t, i64s(0, 5, 2, -1, 180), do(cell(4, 3)...))
	assert.Equal(t, i64s(0, 5, 4, -1, 60), do(cell(4, -2)...))
	assert.Equal(t, "4", c.HGet(ctx, "k", "tokens").Val())
	assert.Equal(t, i64s(0, 5, 5, -1, 0), do(cell(4, -10)...), "never above the limit")
	assert.Equal(t, int64(0), c.Exists(ctx, "k").Val(), "full: no bucket")
	assert.Equal(t, int64(0), c.DBSize(ctx).Val())
	assert.Equal(t, i64s(0, 5, 4, -1, 60), do(cell(4, 1)...), "a take after it starts from 5")
}

// CL.THROTTLE's takes are counted apart from every policy's: INFO
// policies shows cl_throttle:allowed=N,denied=M. Peeks and give-backs are
// not takes.
func TestThrottleIsCounted(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	c := ts.client(t)
	ctx := ctxT(t)
	for _, q := range []int64{1, 1, 1, 0, -1, 1, 5} { // limit 2: allowed twice, then denied, allowed, denied
		require.NoError(t, c.Do(ctx, "CL.THROTTLE", "x", 1, 1, 60, q).Err())
	}
	info := c.Info(ctx, "policies").Val()
	assert.Contains(t, info, "\r\ncl_throttle:allowed=3,denied=2\r\n")
	assert.Contains(t, info, "\r\npolicy_default:allowed=0,denied=0,shadow=0\r\n", "no policy counts them")
}
