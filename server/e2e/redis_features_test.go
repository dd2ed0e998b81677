package e2e_test

import (
	"context"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/storage/redisstore/redistest"
)

// TestRedisStoreFeatures: the fronts' features on the Redis store, through
// two instances: what one does, the other sees. RESP (HGETALL, HSET, KEYS,
// SCAN, DBSIZE, DEL, CL.THROTTLE, FLUSHALL, INFO) and the JSON API
// (peek, set tokens, overrides, reset).
func TestRedisStoreFeatures(t *testing.T) {
	srv := redistest.Start(t)
	args := []string{"--store", srv.URL, "--store-timeout", "2s", "--capacity", "10", "--rate", "1/h",
		"--overrides-refresh", "50ms"}
	a, b := startBinary(t, args...), startBinary(t, args...)
	ctx := context.Background()
	client := func(addr string) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
		t.Cleanup(func() { c.Close() })
		return c
	}
	ra, rb := client(a.respAddr), client(b.respAddr)

	for _, k := range []string{"ann", "bob", "cy"} {
		code, _ := get(t, "http://"+a.httpAddr+"/"+k)
		require.Equal(t, 200, code)
	}
	keys, err := rb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	sort.Strings(keys)
	assert.Equal(t, []string{"ann", "bob", "cy"}, keys, "KEYS through the other instance")
	scanned, _, err := rb.Scan(ctx, 0, "*", 100).Result()
	require.NoError(t, err)
	assert.Len(t, scanned, 3)
	n, err := rb.DBSize(ctx).Result()
	require.NoError(t, err)
	assert.EqualValues(t, 3, n)
	h, err := rb.HGetAll(ctx, "ann").Result()
	require.NoError(t, err)
	assert.Equal(t, "10", h["capacity"])
	assert.True(t, strings.HasPrefix(h["tokens"], "9"), h["tokens"])

	// HSET through b, peek through a's JSON API.
	require.NoError(t, rb.HSet(ctx, "ann", "tokens", "2").Err())
	assert.True(t, strings.HasPrefix(peek(t, a.httpAddr, "ann"), "2"))
	// Set tokens and reset through the JSON API of a; b sees it.
	code, body := do(t, "PUT", "http://"+a.httpAddr+"/v1/buckets/bob/tokens", "", `{"tokens": 4}`)
	require.Equal(t, 200, code, body)
	tok, err := rb.HGet(ctx, "bob", "tokens").Result()
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(tok, "4"), tok)
	code, body = do(t, "DELETE", "http://"+a.httpAddr+"/v1/buckets/bob", "", "")
	require.Equal(t, 200, code, body)
	ex, err := rb.Exists(ctx, "bob").Result()
	require.NoError(t, err)
	assert.Zero(t, ex, "reset through a, gone through b")
	del, err := rb.Del(ctx, "cy").Result()
	require.NoError(t, err)
	assert.EqualValues(t, 1, del)

	// CL.THROTTLE: one bucket for both instances.
	for i, c := range []*redis.Client{ra, rb, ra} {
		v, err := c.Do(ctx, "CL.THROTTLE", "th", "1", "1", "3600").Slice()
		require.NoError(t, err)
		want := int64(0)
		if i == 2 {
			want = 1 // a burst of 2 (max_burst 1 + 1) is spent
		}
		assert.Equal(t, want, v[0], "call %d", i)
	}

	// An override set through a applies through b after its refresh.
	code, body = do(t, "PUT", "http://"+a.httpAddr+"/v1/overrides/vip", "", `{"limits":[{"capacity":"100","rate":"1/h"}]}`)
	require.Equal(t, 200, code, body)
	require.Eventually(t, func() bool {
		code, body := get(t, "http://"+b.httpAddr+"/v1/overrides/vip")
		return code == 200 && strings.Contains(body, "100")
	}, 10*time.Second, 20*time.Millisecond, "the override reaches the other instance")
	code, body = do(t, "POST", "http://"+b.httpAddr+"/v1/take", "", `{"key":"vip","cost":50}`)
	assert.Equal(t, 200, code, body)

	info, err := rb.Info(ctx, "bucketd").Result()
	require.NoError(t, err)
	assert.Contains(t, info, "store_status:ok")
	assert.Contains(t, info, "store_errors_refused:0")

	require.NoError(t, ra.FlushAll(ctx).Err())
	n, err = rb.DBSize(ctx).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "FLUSHALL through a empties the shared store")
	assert.Equal(t, 0, a.stop(t, syscall.SIGTERM))
	assert.Equal(t, 0, b.stop(t, syscall.SIGTERM))
}
