package e2e_test

import (
	"context"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/storage/redisstore/redistest"
)

// TestRedisTwoInstancesShareALimit: two bucketd binaries on one Redis
// share a limit exactly: concurrent takes through both allow exactly C;
// redis-cli's HGETALL on the shared Redis and bucketd's own show the same
// bucket.
func TestRedisTwoInstancesShareALimit(t *testing.T) {
	srv := redistest.Start(t)
	args := []string{"--store", srv.URL, "--store-timeout", "2s", "--capacity", "50", "--rate", "1/h"}
	a, b := startBinary(t, args...), startBinary(t, args...)

	const workers, each = 8, 25 // 200 takes for 50 tokens
	var allowed, refused atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range workers {
		addr := a.httpAddr
		if w%2 == 1 {
			addr = b.httpAddr
		}
		wg.Go(func() {
			for range each {
				resp, err := client.Get("http://" + addr + "/shared")
				if !assert.NoError(t, err) {
					return
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					allowed.Add(1)
				case 429:
					refused.Add(1)
				default:
					t.Errorf("status %d", resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	assert.EqualValues(t, 50, allowed.Load(), "exactly the capacity, through two instances")
	assert.EqualValues(t, workers*each-50, refused.Load())

	ctx := context.Background()
	shared := redis.NewClient(&redis.Options{Network: "unix", Addr: srv.Addr})
	defer shared.Close()
	h, err := shared.HGetAll(ctx, "bucketd:{shared}:default").Result()
	require.NoError(t, err)
	own := redis.NewClient(&redis.Options{Addr: b.respAddr})
	defer own.Close()
	mine, err := own.HGetAll(ctx, "shared").Result()
	require.NoError(t, err)
	for _, f := range []string{"capacity", "rate", "updated_at_ms", "policy"} {
		assert.Equal(t, mine[f], h[f], "field %s: Redis's hash shows bucketd's", f)
	}
	// Redis's hash holds the tokens at the last change; bucketd's, now.
	assert.True(t, strings.HasPrefix(h["tokens"], "0"), h["tokens"]) // less than one token
	assert.True(t, strings.HasPrefix(mine["tokens"], "0"), mine["tokens"])
	ttl, err := shared.PTTL(ctx, "bucketd:{shared}:default").Result()
	require.NoError(t, err)
	assert.Greater(t, ttl, 49*time.Hour, "expires when full: 50 tokens at 1/h")
	assert.LessOrEqual(t, ttl, 50*time.Hour)
	assert.Equal(t, 0, a.stop(t, syscall.SIGTERM))
	assert.Equal(t, 0, b.stop(t, syscall.SIGTERM))
}

// TestRedisStoppedAndRestarted: Redis stops under load; a policy that
// fails closed answers 503 with a clear error, one that fails open
// answers 200; /readyz says 503; when Redis is back, bucketd serves again
// by itself.
func TestRedisStoppedAndRestarted(t *testing.T) {
	srv := redistest.StartTCP(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "policies.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`policies:
  strict: {capacity: 1000, rate: 1/s}
  lax: {capacity: 1000, rate: 1/s, on_store_error: open}
`), 0o600))
	p := startBinary(t, "--store", srv.URL, "--store-timeout", "100ms", "--config", cfg)
	url := func(policy string) string { return "http://" + p.httpAddr + "/k?policy=" + policy }
	statuses := func(policy string, n int) map[int]int {
		out := map[int]int{}
		for range n {
			code, body := get(t, url(policy))
			out[code]++
			if code == 503 {
				assert.Contains(t, body, "store (Redis) is unreachable")
			}
		}
		return out
	}
	assert.Equal(t, map[int]int{200: 20}, statuses("strict", 20))
	assert.Equal(t, map[int]int{200: 20}, statuses("lax", 20))

	srv.Stop()
	assert.Equal(t, map[int]int{503: 20}, statuses("strict", 20), "fails closed")
	assert.Equal(t, map[int]int{200: 20}, statuses("lax", 20), "fails open")
	code, body := get(t, "http://"+p.httpAddr+"/readyz")
	assert.Equal(t, 503, code, body)
	rc := redis.NewClient(&redis.Options{Addr: p.respAddr, Protocol: 2})
	defer rc.Close()
	err := rc.Do(context.Background(), "CL.THROTTLE", "k", "10", "1", "60").Err()
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "ERR the store (Redis) is unreachable"), err.Error())

	srv.Restart()
	// The client's pool redials on its own (within about a second of
	// failed dials); wait for the first success, then every take succeeds.
	start := time.Now()
	for {
		if code, _ := get(t, url("strict")); code == 200 {
			break
		}
		require.Less(t, time.Since(start), 10*time.Second, "bucketd did not recover")
		time.Sleep(20 * time.Millisecond) // polling for recovery, not ordering events
	}
	t.Logf("recovered %v after Redis restarted", time.Since(start))
	assert.Equal(t, map[int]int{200: 20}, statuses("strict", 20), "recovered")
	code, _ = get(t, "http://"+p.httpAddr+"/readyz")
	assert.Equal(t, 200, code)
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}

// TestRedisStoreBadURL: a store that cannot be reached at start is an
// error at start, with the password hidden.
func TestRedisStoreBadURL(t *testing.T) {
	port := redistest.FreePort(t)
	code, _, stderr := runBinary(t, t.TempDir(), nil, "--store", "redis://u:secret@127.0.0.1:"+strconv.Itoa(port), "--http-addr", "127.0.0.1:0", "--resp-addr", "")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "redis store")
	assert.NotContains(t, stderr, "secret")
	assert.True(t, strings.Contains(stderr, "u:xxxxx@"), stderr)

	code, _, stderr = runBinary(t, t.TempDir(), nil, "--on-store-error", "maybe")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, `on store error "maybe": want closed or open`)
	code, _, stderr = runBinary(t, t.TempDir(), nil, "--store", "redis://127.0.0.1:1", "--store-prefix", "a{b}")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "prefix")
}

// TestRedisRestartUnderLoad: takes keep coming from 8 clients while Redis
// is killed and started again: every answer is a decision or a 503 (never a
// 500 or a hang), the policy that fails open is never refused for the
// outage, and takes are served again after the restart, with no restart of
// bucketd.
func TestRedisRestartUnderLoad(t *testing.T) {
	srv := redistest.StartTCP(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "policies.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`policies:
  strict: {capacity: 1000000, rate: 1000/s}
  lax: {capacity: 1000000, rate: 1000/s, on_store_error: open}
`), 0o600))
	p := startBinary(t, "--store", srv.URL, "--store-timeout", "200ms", "--config", cfg)
	client := &http.Client{Timeout: 5 * time.Second}
	var mu sync.Mutex
	counts := map[string]int{} // "policy status" -> answers
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 8 {
		policy := []string{"strict", "lax"}[w%2]
		wg.Go(func() {
			for i := 0; !stop.Load() && i < 100_000; i++ {
				resp, err := client.Get("http://" + p.httpAddr + "/k" + strconv.Itoa(i%50) + "?policy=" + policy)
				if !assert.NoError(t, err) {
					return
				}
				resp.Body.Close()
				mu.Lock()
				counts[policy+" "+strconv.Itoa(resp.StatusCode)]++
				mu.Unlock()
			}
		})
	}
	snapshot := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(counts)
	}
	waitFor := func(what string, ok func(map[string]int) bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok(snapshot()) {
			require.True(t, time.Now().Before(deadline), "%s: %v", what, snapshot())
			time.Sleep(10 * time.Millisecond) // polling the counts, not ordering events
		}
	}
	waitFor("load before", func(c map[string]int) bool { return c["strict 200"] > 50 && c["lax 200"] > 50 })
	srv.Stop()
	before := snapshot()
	waitFor("503s while Redis is down", func(c map[string]int) bool { return c["strict 503"] > before["strict 503"]+20 })
	laxDuring := snapshot()["lax 200"]
	waitFor("lax allowed while Redis is down", func(c map[string]int) bool { return c["lax 200"] > laxDuring+20 })
	srv.Restart()
	after := snapshot()
	waitFor("served again", func(c map[string]int) bool { return c["strict 200"] > after["strict 200"]+50 })
	stop.Store(true)
	wg.Wait()
	final := snapshot()
	t.Logf("answers: %v", final)
	for k := range final {
		assert.Contains(t, []string{"strict 200", "strict 503", "lax 200"}, k, "an answer that is neither a decision nor the outage's 503")
	}
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}
