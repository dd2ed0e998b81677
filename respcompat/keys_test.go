package respcompat

import (
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/bucketd/bucketd/storage"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKeyspace(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	c := ts.client(t)
	ctx := ctxT(t)

	assert.Zero(t, c.DBSize(ctx).Val())
	assert.Equal(t, redis.Nil, c.RandomKey(ctx).Err())
	for _, k := range []string{"user:1", "user:2", "user:10", "admin:1", "a*b"} {
		require.NoError(t, c.Do(ctx, "BUCKET.TAKE", k).Err())
	}
	assert.Equal(t, int64(5), c.DBSize(ctx).Val())
	assert.Contains(t, []string{"user:1", "user:2", "user:10", "admin:1", "a*b"}, c.RandomKey(ctx).Val())

	keysOf := func(pattern string) []string {
		k, err := c.Keys(ctx, pattern).Result()
		require.NoError(t, err, pattern)
		sort.Strings(k)
		return k
	}
	assert.Equal(t, []string{"a*b", "admin:1", "user:1", "user:10", "user:2"}, keysOf("*"))
	assert.Equal(t, []string{"user:1", "user:10", "user:2"}, keysOf("user:*"))
	assert.Equal(t, []string{"user:1", "user:2"}, keysOf("user:?"))
	assert.Equal(t, []string{"a*b"}, keysOf(`a\*b`))
	assert.Equal(t, []string{"a*b", "admin:1"}, keysOf("a*"))
	assert.Empty(t, keysOf("nobody"))

	// A full SCAN, a few keys at a time, returns every key that matches,
	// each once.
	var scanned []string
	var cursor uint64
	for range 1000 {
		keys, next, err := c.Scan(ctx, cursor, "user:*", 2).Result()
		require.NoError(t, err)
		scanned = append(scanned, keys...)
		if next == 0 {
			break
		}
		cursor = next
	}
	sort.Strings(scanned)
	assert.Equal(t, []string{"user:1", "user:10", "user:2"}, scanned)
	keys, _, err := c.ScanType(ctx, 0, "", 100, "hash").Result()
	require.NoError(t, err)
	assert.Len(t, keys, 5)
	keys, _, err = c.ScanType(ctx, 0, "", 100, "string").Result()
	require.NoError(t, err)
	assert.Empty(t, keys)

	assert.Equal(t, int64(3), c.Exists(ctx, "user:1", "user:1", "nobody", "user:2").Val(), "a key given twice counts twice")
	assert.Equal(t, int64(2), c.Del(ctx, "user:1", "nobody", "user:2").Val())
	assert.Equal(t, int64(1), c.Unlink(ctx, "user:10").Val())
	assert.Equal(t, int64(2), c.DBSize(ctx).Val())
	require.NoError(t, c.FlushDB(ctx).Err())
	assert.Zero(t, c.DBSize(ctx).Val())
	require.NoError(t, c.Do(ctx, "BUCKET.TAKE", "x").Err())
	require.NoError(t, c.FlushAllAsync(ctx).Err())
	assert.Zero(t, c.DBSize(ctx).Val())
}

func TestKeyspaceErrors(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	rc := ts.raw(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"SCAN", "x"}, "-ERR invalid cursor\r\n"},
		{[]string{"SCAN", "-1"}, "-ERR invalid cursor\r\n"},
		{[]string{"SCAN", "18446744073709551616"}, "-ERR invalid cursor\r\n"},
		{[]string{"SCAN", "0", "COUNT"}, "-ERR syntax error\r\n"},
		{[]string{"SCAN", "0", "COUNT", "0"}, "-ERR syntax error\r\n"},
		{[]string{"SCAN", "0", "COUNT", "x"}, "-ERR value is not an integer or out of range\r\n"},
		{[]string{"SCAN", "0", "MATCH"}, "-ERR syntax error\r\n"},
		{[]string{"SCAN", "0", "FOO", "bar"}, "-ERR syntax error\r\n"},
		{[]string{"SCAN", "0", "NOVALUES"}, "-ERR syntax error\r\n"},
		{[]string{"SCAN", "0", "count", "1000000000", "match", "*", "type", "HASH"}, "*2\r\n$1\r\n0\r\n*0\r\n"},
		{[]string{"SCAN"}, "-ERR wrong number of arguments for 'scan' command\r\n"},
		{[]string{"KEYS"}, "-ERR wrong number of arguments for 'keys' command\r\n"},
		{[]string{"EXISTS"}, "-ERR wrong number of arguments for 'exists' command\r\n"},
		{[]string{"DEL"}, "-ERR wrong number of arguments for 'del' command\r\n"},
		{[]string{"TYPE", "a", "b"}, "-ERR wrong number of arguments for 'type' command\r\n"},
		{[]string{"TTL"}, "-ERR wrong number of arguments for 'ttl' command\r\n"},
		{[]string{"DBSIZE", "x"}, "-ERR wrong number of arguments for 'dbsize' command\r\n"},
		{[]string{"RANDOMKEY"}, "$-1\r\n"},
		{[]string{"FLUSHDB", "x"}, "-ERR syntax error\r\n"},
		{[]string{"FLUSHALL", "SYNC", "ASYNC"}, "-ERR syntax error\r\n"},
		{[]string{"FLUSHALL", "sync"}, "+OK\r\n"},
		{[]string{"TYPE", "x"}, "+none\r\n"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, rc.do(tt.args...), "%q", tt.args)
	}
}

// DBSIZE, EXISTS, KEYS, SCAN and TYPE answer from one definition of the
// bucket now: at the instant a bucket is full, all of them drop it at once.
// No sweep runs in this test (the store sweeps on its interval flush, here
// an hour away), so a count of buckets kept until a sweep would show.
func TestKeyspaceAgreesAtEveryInstant(t *testing.T) {
	t.Parallel()
	st := newStack(t, storage.Options{SyncInterval: time.Hour})
	require.NoError(t, st.lim.SetPolicies("default", testPolicies))
	ts := serve(t, st, st.lim, Config{})
	c := ts.client(t)
	ctx := ctxT(t)

	all := []string{"a", "b", "c"}
	require.NoError(t, c.Do(ctx, "BUCKET.TAKE", "a").Err())          // full in 3 s
	require.NoError(t, c.Do(ctx, "BUCKET.TAKE", "b", "2").Err())     // full in 6 s
	require.NoError(t, c.Do(ctx, "CL.THROTTLE", "c", 0, 1, 9).Err()) // full in 9 s
	agree := func(at string, want ...string) {
		t.Helper()
		assert.Equal(t, int64(len(want)), c.DBSize(ctx).Val(), "DBSIZE at %s", at)
		assert.ElementsMatch(t, want, c.Keys(ctx, "*").Val(), "KEYS at %s", at)
		var scanned []string
		var cursor uint64
		for range 1000 {
			page, next, err := c.Scan(ctx, cursor, "", 1).Result()
			require.NoError(t, err)
			scanned = append(scanned, page...)
			if cursor = next; cursor == 0 {
				break
			}
		}
		assert.ElementsMatch(t, want, scanned, "SCAN at %s", at)
		assert.Equal(t, int64(len(want)), c.Exists(ctx, all...).Val(), "EXISTS at %s", at)
		for _, k := range all {
			typ := "none"
			if slices.Contains(want, k) {
				typ = "hash"
			}
			assert.Equal(t, typ, c.Type(ctx, k).Val(), "TYPE %s at %s", k, at)
		}
	}
	agree("0", "a", "b", "c")
	ts.clock.Advance(3*time.Second - time.Nanosecond)
	agree("3 s less 1 ns", "a", "b", "c")
	ts.clock.Advance(time.Nanosecond)
	agree("3 s", "b", "c")
	ts.clock.Advance(3 * time.Second)
	agree("6 s", "c")
	ts.clock.Advance(3 * time.Second)
	agree("9 s")
}
