package storage_test

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

// TestTakeBatchConcurrent races batches over many shards (keys in every
// order, repeated) with single takes, Len and Clear, for the race detector
// and for deadlocks (a batch locks many shards, as Clear does); then, with
// no Clear, it checks that a hot key's capacity is allowed exactly across
// batches and takes.
func TestTakeBatchConcurrent(t *testing.T) {
	clock := storetest.NewClock(storetest.T0)
	db := mustOpen(t, storage.Options{Clock: clock})
	limits := []bucket.Limit{{Capacity: 500 * tok, Rate: bucket.Every(time.Hour)}}
	run := func(clear bool) int64 {
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for g := range 6 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), 9))
				for range 60 {
					switch {
					case g == 0 && clear:
						assert.NoError(t, db.Clear())
						_, err := db.Len()
						assert.NoError(t, err)
					case g == 1:
						d, err := db.Take(cell, "hot", limits, tok, nil)
						if assert.NoError(t, err) && d.Allowed {
							allowed.Add(1)
						}
					default:
						reqs := make([]storage.TakeReq, 1+rng.IntN(40))
						for i := range reqs {
							key := "hot"
							if rng.IntN(3) > 0 {
								key = "k" + strconv.Itoa(rng.IntN(300))
							}
							reqs[i] = storage.TakeReq{Key: key, Limits: limits, Cost: tok}
						}
						for i, r := range db.TakeBatch(cell, reqs, nil) {
							if assert.NoError(t, r.Err) && r.Allowed && reqs[i].Key == "hot" {
								allowed.Add(1)
							}
						}
					}
				}
			})
		}
		wg.Wait()
		return allowed.Load()
	}
	run(true)
	require.NoError(t, db.Clear())
	allowed := run(false)
	d, err := db.Take(cell, "hot", limits, 0, nil)
	require.NoError(t, err)
	assert.Equal(t, int64(500), allowed+d.Remaining.Whole(), "each allowed take of hot took one token")
}
