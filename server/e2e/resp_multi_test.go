package e2e_test

import (
	"context"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMultiAgainstHTTPTakes: go-redis clients run MULTI, 50 BUCKET.TAKE k,
// EXEC while HTTP clients GET /k, on the binary, under a limit that
// refills less than a token during the test: exactly the capacity is
// allowed over both fronts, and within each EXEC each allowed take leaves
// exactly one token less than the one before (no HTTP take came between).
func TestMultiAgainstHTTPTakes(t *testing.T) {
	const capacity = 2700 // 100 less than the takes: tokens last nearly to the end
	p := startBinary(t, "--data", filepath.Join(t.TempDir(), "b.db"), "--capacity", "2700", "--rate", "1/1000d")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const respClients, httpClients, rounds, perTx = 4, 8, 10, 50
	var allowed, interleaved atomic.Int64
	var wg sync.WaitGroup
	for range respClients {
		rdb := redis.NewClient(&redis.Options{Addr: p.respAddr})
		defer rdb.Close()
		wg.Go(func() {
			for range rounds {
				cmds := make([]*redis.Cmd, perTx)
				_, err := rdb.TxPipelined(ctx, func(pl redis.Pipeliner) error {
					for i := range cmds {
						cmds[i] = pl.Do(ctx, "BUCKET.TAKE", "k")
					}
					return nil
				})
				if !assert.NoError(t, err) {
					return
				}
				prev := int64(-1)
				for _, c := range cmds {
					r := c.Val().([]any)
					if r[0] != int64(1) {
						continue
					}
					allowed.Add(1)
					if prev >= 0 && r[2] != prev-1 {
						interleaved.Add(1)
					}
					prev = r[2].(int64)
				}
			}
		})
	}
	client := &http.Client{Timeout: 30 * time.Second}
	for range httpClients {
		wg.Go(func() {
			for range 100 {
				resp, err := client.Get("http://" + p.httpAddr + "/k")
				if !assert.NoError(t, err) {
					return
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					allowed.Add(1)
				case http.StatusTooManyRequests:
				default:
					t.Errorf("GET /k: %d", resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	require.Equal(t, int64(capacity), allowed.Load(), "exactly the capacity, of %d takes", respClients*rounds*perTx+httpClients*100)
	t.Logf("allowed %d, interleaved %d", allowed.Load(), interleaved.Load())
	assert.Zero(t, interleaved.Load(), "an HTTP take came between the two takes of an EXEC")
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}
