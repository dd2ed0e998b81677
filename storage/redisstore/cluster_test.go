package redisstore_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/redisstore"
	"github.com/bucketd/bucketd/storage/redisstore/redistest"
)

const tok = bucket.Token

// TestCluster runs the store on a three-master Redis Cluster: keys spread
// over the nodes, Scan and Len see every node, and concurrent multi-limit
// takes stay atomic (one script on the node of the key's hash tag).
func TestCluster(t *testing.T) {
	addrs := redistest.StartCluster(t)
	st, err := redisstore.Open("redis+cluster://"+strings.Join(addrs, ","), redisstore.Options{Timeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	free := storage.PolicyNS("free")
	hour := []bucket.Limit{{Capacity: 5 * tok, Rate: bucket.Every(time.Hour)}}

	const keys = 300
	for i := range keys {
		_, err := st.Take(free, "user:"+strconv.Itoa(i), hour, tok, nil)
		require.NoError(t, err)
	}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		n, err := c.DBSize(context.Background()).Result()
		c.Close()
		require.NoError(t, err)
		assert.Greater(t, n, int64(keys/10), "node %s holds its share of the keys", a)
	}
	n, err := st.Len()
	require.NoError(t, err)
	assert.Equal(t, keys, n)
	seen := map[string]bool{}
	var cursor uint64
	for range 10_000 {
		ks, next, err := st.Scan(cursor, 20)
		require.NoError(t, err)
		for _, k := range ks {
			seen[k] = true
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	assert.Len(t, seen, keys, "a scan visits every master")

	// Two limits of one bucket, hammered from many goroutines: all or
	// nothing, so exactly the smaller capacity is allowed, and the other
	// limit lost exactly as much.
	two := []bucket.Limit{
		{Capacity: 30 * tok, Rate: bucket.Every(time.Hour)},
		{Capacity: 20 * tok, Rate: bucket.Every(time.Hour)},
	}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				d, err := st.Take(free, "hot", two, tok, nil)
				if assert.NoError(t, err) && d.Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	assert.EqualValues(t, 20, allowed.Load())
	snap, ok, err := st.Peek(free, "hot", two)
	require.NoError(t, err)
	require.True(t, ok)
	require.Len(t, snap.Limits, 2)
	assert.EqualValues(t, 10, snap.Limits[0].Remaining.Whole(), "the first limit lost exactly the allowed takes")
	assert.EqualValues(t, 0, snap.Limits[1].Remaining.Whole())

	// A key's namespaces live on one node: Namespaces and Reset of all.
	_, err = st.Take(storage.CellNS, "hot", hour, tok, nil)
	require.NoError(t, err)
	nss, err := st.Namespaces("hot")
	require.NoError(t, err)
	assert.Equal(t, []storage.Namespace{free, storage.CellNS}, nss)
	was, err := st.Reset(storage.AllNamespaces, "hot")
	require.NoError(t, err)
	assert.True(t, was)
	nss, err = st.Namespaces("hot")
	require.NoError(t, err)
	assert.Empty(t, nss)
	require.NoError(t, st.Clear())
	n, err = st.Len()
	require.NoError(t, err)
	assert.Zero(t, n)
}

var evalshaRE = regexp.MustCompile(`(?m)^cmdstat_(\w+):calls=(\d+)`)

// commandCalls returns Redis's calls per command (INFO commandstats).
func commandCalls(t *testing.T, c *redis.Client) map[string]int {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	require.NoError(t, err)
	out := map[string]int{}
	for _, m := range evalshaRE.FindAllStringSubmatch(info, -1) {
		out[m[1]], _ = strconv.Atoi(m[2])
	}
	return out
}

// TestOneRoundTripPerTake counts, with Redis's INFO commandstats, the
// commands a take costs: one EVALSHA, nothing else, whether it is allowed,
// refused, a peek or a give.
func TestOneRoundTripPerTake(t *testing.T) {
	srv := redistest.Start(t)
	st, err := redisstore.Open(srv.URL, redisstore.Options{Timeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: srv.Addr})
	defer c.Close()
	two := []bucket.Limit{
		{Capacity: 3 * tok, Rate: bucket.PerSecond(1)},
		{Capacity: 100 * tok, Rate: bucket.Rate{Tokens: 100 * tok, Per: time.Hour}},
	}
	before := commandCalls(t, c)
	const takes = 40
	for i := range takes {
		cost := []bucket.Tokens{tok, 2 * tok, 0, -tok}[i%4]
		_, err := st.Take(storage.PolicyNS("free"), "k"+strconv.Itoa(i%5), two, cost, nil)
		require.NoError(t, err)
	}
	after := commandCalls(t, c)
	delta := map[string]int{}
	for cmd, n := range after {
		if d := n - before[cmd]; d != 0 && cmd != "info" {
			delta[cmd] = d
		}
	}
	// commandstats also counts the commands the script runs inside Redis;
	// those are no round trips.
	inScript := map[string]bool{"time": true, "hgetall": true, "hset": true, "hdel": true, "del": true,
		"pexpire": true, "pttl": true, "sadd": true, "srem": true}
	assert.Equal(t, takes, delta["evalsha"], "one EVALSHA per take")
	for cmd := range delta {
		assert.True(t, cmd == "evalsha" || inScript[cmd], "a take sent %s", cmd)
	}
	t.Logf("commands per %d takes: %v", takes, delta)
}
