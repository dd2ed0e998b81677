package respcompat

import (
	"strconv"
	"testing"
	"time"

	"github.com/bucketd/bucketd/storage/storetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func TestBucketAsHash(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	c := ts.client(t)
	ctx := ctxT(t)

	// An absent key is a missing hash.
	all, err := c.HGetAll(ctx, "joe").Result()
	require.NoError(t, err)
	assert.Empty(t, all)
	assert.Equal(t, redis.Nil, c.HGet(ctx, "joe", "tokens").Err())
	assert.Equal(t, []any{nil, nil}, c.HMGet(ctx, "joe", "tokens", "rate").Val())
	assert.False(t, c.HExists(ctx, "joe", "tokens").Val())
	assert.Zero(t, c.HLen(ctx, "joe").Val())
	assert.Empty(t, c.HKeys(ctx, "joe").Val())
	assert.Empty(t, c.HVals(ctx, "joe").Val())
	assert.Zero(t, c.HStrLen(ctx, "joe", "tokens").Val())
	assert.Equal(t, "none", c.Type(ctx, "joe").Val())
	assert.Equal(t, time.Duration(-2), c.TTL(ctx, "joe").Val())
	assert.Equal(t, time.Duration(-2), c.PTTL(ctx, "joe").Val())
	assert.Zero(t, c.Exists(ctx, "joe").Val())

	// One take: 14 of 15 tokens, full again in 3 s.
	require.NoError(t, c.Do(ctx, "BUCKET.TAKE", "joe").Err())
	want := map[string]string{
		"tokens": "14", "capacity": "15", "rate": "1/3s",
		"updated_at_ms": ms(storetest.T0), "full_in_ms": "3000", "policy": "default",
	}
	assert.Equal(t, want, c.HGetAll(ctx, "joe").Val())
	assert.Equal(t, "hash", c.Type(ctx, "joe").Val())
	assert.Equal(t, int64(1), c.Exists(ctx, "joe").Val())
	assert.Equal(t, int64(6), c.HLen(ctx, "joe").Val())
	assert.Equal(t, []string{"tokens", "capacity", "rate", "updated_at_ms", "full_in_ms", "policy"}, c.HKeys(ctx, "joe").Val())
	assert.Equal(t, []string{"14", "15", "1/3s", ms(storetest.T0), "3000", "default"}, c.HVals(ctx, "joe").Val())

	// The fields are computed when read: 1.5 s later it holds 14.5.
	ts.clock.Advance(1500 * time.Millisecond)
	assert.Equal(t, "14.5", c.HGet(ctx, "joe", "tokens").Val())
	assert.Equal(t, []any{"14.5", "1500", nil}, c.HMGet(ctx, "joe", "tokens", "full_in_ms", "nope").Val())
	assert.True(t, c.HExists(ctx, "joe", "rate").Val())
	assert.False(t, c.HExists(ctx, "joe", "Rate").Val(), "fields are case-sensitive")
	assert.Equal(t, redis.Nil, c.HGet(ctx, "joe", "nope").Err())
	assert.Equal(t, int64(4), c.HStrLen(ctx, "joe", "rate").Val())
	assert.Equal(t, 2*time.Second, c.TTL(ctx, "joe").Val(), "1.5 s rounds up to 2")
	assert.Equal(t, 1500*time.Millisecond, c.PTTL(ctx, "joe").Val())

	// HSET sets the tokens, clamped to [0, capacity]. A full bucket does
	// not exist: setting it full removes it.
	tests := []struct {
		value  string
		fields []any // tokens and full_in_ms; nil for no bucket
		exists int64
	}{
		{"2.25", []any{"2.25", "38250"}, 1},
		{"100", []any{nil, nil}, 0},
		{"0", []any{"0", "45000"}, 1},
		{"15", []any{nil, nil}, 0},
		{"-5", []any{"0", "45000"}, 1},
		{"+3", []any{"3", "36000"}, 1},
		{"0.000001", []any{"0.000001", "45000"}, 1},
	}
	for _, tt := range tests {
		n, err := c.HSet(ctx, "joe", "tokens", tt.value).Result()
		require.NoError(t, err, tt.value)
		assert.Zero(t, n, "HSET replies 0: the field already exists")
		assert.Equal(t, tt.fields, c.HMGet(ctx, "joe", "tokens", "full_in_ms").Val(), tt.value)
		assert.Equal(t, tt.exists, c.Exists(ctx, "joe").Val(), tt.value)
	}
	require.NoError(t, c.HMSet(ctx, "joe", "tokens", "7").Err())
	assert.Equal(t, "7", c.HGet(ctx, "joe", "tokens").Val())

	// HSET on a new key makes it under the default policy.
	require.NoError(t, c.HSet(ctx, "ann", "tokens", "1").Err())
	assert.Equal(t, []any{"1", "15", "default"}, c.HMGet(ctx, "ann", "tokens", "capacity", "policy").Val())

	// HSCAN returns every field at once.
	keys, cursor, err := c.HScan(ctx, "joe", 0, "*_ms", 0).Result()
	require.NoError(t, err)
	assert.Zero(t, cursor)
	assert.Equal(t, []string{"updated_at_ms", ms(storetest.T0.Add(1500 * time.Millisecond)), "full_in_ms", "24000"}, keys)
	keys, _, err = c.HScanNoValues(ctx, "joe", 0, "", 100).Result()
	require.NoError(t, err)
	assert.Len(t, keys, 6)
}

func TestHashErrors(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	rc := ts.raw(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"HSET", "joe", "capacity", "3"}, "-ERR field 'capacity' is read-only: only 'tokens' can be set\r\n"},
		{[]string{"HSET", "joe", "rate", "1/s"}, "-ERR field 'rate' is read-only: only 'tokens' can be set\r\n"},
		{[]string{"HSET", "joe", "color", "red"}, "-ERR unknown field 'color': only 'tokens' can be set\r\n"},
		{[]string{"HSET", "joe", "tokens", "abc"}, "-ERR value is not a valid float\r\n"},
		{[]string{"HSET", "joe", "tokens", "1e3"}, "-ERR value is not a valid float\r\n"},
		{[]string{"HSET", "joe", "tokens", "0.0000001"}, "-ERR value is not a valid float\r\n"},
		{[]string{"HSET", "joe", "tokens", ""}, "-ERR value is not a valid float\r\n"},
		{[]string{"HSET", "joe", "tokens", "1", "capacity", "2"}, "-ERR field 'capacity' is read-only: only 'tokens' can be set\r\n"},
		{[]string{"HSET", "joe", "tokens"}, "-ERR wrong number of arguments for 'hset' command\r\n"},
		{[]string{"HSET", "joe", "tokens", "1", "x"}, "-ERR wrong number of arguments for 'hset' command\r\n"},
		{[]string{"HMSET", "joe", "tokens", "1", "x"}, "-ERR wrong number of arguments for 'hmset' command\r\n"},
		{[]string{"HGET", "joe"}, "-ERR wrong number of arguments for 'hget' command\r\n"},
		{[]string{"HGETALL"}, "-ERR wrong number of arguments for 'hgetall' command\r\n"},
		{[]string{"HMGET", "joe"}, "-ERR wrong number of arguments for 'hmget' command\r\n"},
		{[]string{"HSCAN", "joe", "x"}, "-ERR invalid cursor\r\n"},
		{[]string{"HSCAN", "joe", "0", "TYPE", "hash"}, "-ERR syntax error\r\n"},
		{[]string{"HSCAN", "joe", "0", "COUNT", "0"}, "-ERR syntax error\r\n"},
		{[]string{"HSCAN", "joe", "0"}, "*2\r\n$1\r\n0\r\n*0\r\n"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, rc.do(tt.args...), "%q", tt.args)
	}
	assert.Zero(t, ts.size(t), "no failed HSET made a bucket")
}

// A policy of several limits shows the limit with the fewest tokens; TTL
// waits for every limit to be full.
func TestMultiLimitHash(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	c := ts.client(t)
	ctx := ctxT(t)
	// daily: 10 tokens at 1/s, and 20 a day.
	require.NoError(t, c.Do(ctx, "BUCKET.TAKE", "k", "5", "POLICY", "daily").Err())
	want := map[string]string{
		"tokens": "5", "capacity": "10", "rate": "1/s",
		"updated_at_ms": ms(storetest.T0), "full_in_ms": "5000", "policy": "daily",
	}
	assert.Equal(t, want, c.HGetAll(ctx, "k").Val())
	assert.Equal(t, 21600*time.Second, c.TTL(ctx, "k").Val(), "5 of 20 a day take 6 h")

	// 9 s later the first limit is full again; ten more takes empty it.
	ts.clock.Advance(9 * time.Second)
	require.NoError(t, c.Do(ctx, "BUCKET.TAKE", "k", "10", "POLICY", "daily").Err())
	assert.Equal(t, []any{"0", "10"}, c.HMGet(ctx, "k", "tokens", "capacity").Val())

	// 10 s later it is full, and the daily limit, with 5 and a bit, shows.
	ts.clock.Advance(10 * time.Second)
	want = map[string]string{
		"tokens": "5.004398", "capacity": "20", "rate": "20/d",
		"updated_at_ms": ms(storetest.T0.Add(9 * time.Second)), "full_in_ms": "64781000", "policy": "daily",
	}
	assert.Equal(t, want, c.HGetAll(ctx, "k").Val())
}
