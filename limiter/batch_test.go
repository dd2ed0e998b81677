package limiter_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/limiter"
	"github.com/bucketd/bucketd/topk"
)

// TestThrottleBatchIsThrottlesOneByOne: a batch of random CL.THROTTLEs
// (repeated keys, several limits, peeks, gives back, an invalid limit)
// has the outcomes, the counts and the refusals of the same calls one
// after the other, on a second limiter at the same instant.
func TestThrottleBatchIsThrottlesOneByOne(t *testing.T) {
	batched, _, bc := newLimiter(t)
	single, _, sc := newLimiter(t)
	rng := rand.New(rand.NewPCG(1, 2))
	limits := []bucket.Limit{
		cellLimit,
		{Capacity: tok(3), Rate: bucket.PerSecond(1)},
		{Capacity: tok(2), Rate: slow},
		{Capacity: 0, Rate: slow}, // invalid
	}
	for round := range 20 {
		reqs := make([]limiter.ThrottleReq, 1+rng.IntN(50))
		for i := range reqs {
			reqs[i] = limiter.ThrottleReq{
				Key:   fmt.Sprintf("k%d", rng.IntN(6)),
				Limit: limits[rng.IntN(len(limits))],
				Cost:  tok(int64(rng.IntN(5) - 1)),
			}
		}
		prior := []limiter.ThrottleResult{{Err: fmt.Errorf("kept")}}
		got := batched.ThrottleBatch(reqs, prior)
		require.Len(t, got, 1+len(reqs))
		assert.EqualError(t, got[0].Err, "kept", "appended to out")
		for i, q := range reqs {
			d, err := single.Throttle(q.Key, q.Limit, q.Cost)
			if err != nil {
				require.ErrorIs(t, got[1+i].Err, bucket.ErrInvalid, "round %d, take %d", round, i)
				assert.EqualError(t, got[1+i].Err, err.Error())
				continue
			}
			require.NoError(t, got[1+i].Err, "round %d, take %d", round, i)
			require.Equal(t, d, got[1+i].Decision, "round %d, take %d", round, i)
		}
		step := time.Duration(rng.IntN(3000)) * time.Millisecond
		bc.Advance(step)
		sc.Advance(step)
	}
	assert.Equal(t, single.CellCounts(), batched.CellCounts())
	assert.NotZero(t, batched.CellCounts().Denied)
	assert.Equal(t, single.Top(time.Minute, 10), batched.Top(time.Minute, 10))
}

// TestThrottleBatchRefusalsAndWatches: a batch counts its refusals in the
// top keys and dirties the watches of the keys it changed, and only those.
func TestThrottleBatchRefusalsAndWatches(t *testing.T) {
	l, _, _ := newLimiter(t)
	lim := bucket.Limit{Capacity: tok(1), Rate: slow}
	changed, peeked := l.NewWatch(), l.NewWatch()
	changed.Add("a")
	peeked.Add("b")
	got := l.ThrottleBatch([]limiter.ThrottleReq{
		{Key: "a", Limit: lim, Cost: tok(1)},
		{Key: "a", Limit: lim, Cost: tok(1)},
		{Key: "b", Limit: lim, Cost: 0},
		{Key: "a", Limit: lim, Cost: tok(1)},
	}, nil)
	require.Len(t, got, 4)
	assert.True(t, got[0].Allowed)
	assert.False(t, got[1].Allowed)
	assert.True(t, got[2].Allowed, "a peek of a full bucket")
	assert.False(t, got[3].Allowed)
	assert.True(t, changed.Dirty())
	assert.False(t, peeked.Dirty(), "a peek changes nothing")
	assert.Equal(t, []topk.Entry{{Item: topk.Item{Key: "a"}, Count: 2}}, l.Top(time.Minute, 10))
	assert.Equal(t, bucket.Counts{Allowed: 1, Denied: 2}, l.CellCounts())
	assert.Empty(t, l.ThrottleBatch(nil, nil))
}

// TestThrottleBatchAgainstTransactions races batches, whose keys come in
// every order and repeat, against transactions on some of the same keys:
// nothing deadlocks, no transaction sees a batch's
// take between two of its own, and the capacity of a key that nothing
// refills is allowed exactly.
func TestThrottleBatchAgainstTransactions(t *testing.T) {
	l, _, _ := newLimiter(t)
	const capacity = 300
	lim := bucket.Limit{Capacity: tok(capacity), Rate: slow}
	keys := []string{"hot", "a", "b", "c", "d", "e", "f", "g"}
	var allowed, interleaved atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 3))
			for range 40 {
				if g%4 == 3 {
					err := l.Atomic([]string{"hot", keys[1+rng.IntN(7)]}, false, nil, func(tx *limiter.Tx) error {
						prev := bucket.Tokens(-1)
						for range 3 {
							d, err := tx.Throttle("hot", lim, tok(1))
							if err != nil {
								return err
							}
							if d.Allowed {
								allowed.Add(1)
								if prev >= 0 && d.Remaining != prev-tok(1) {
									interleaved.Add(1)
								}
								prev = d.Remaining
							}
						}
						return nil
					})
					assert.NoError(t, err)
					continue
				}
				reqs := make([]limiter.ThrottleReq, 1+rng.IntN(16))
				for i := range reqs {
					reqs[i] = limiter.ThrottleReq{Key: keys[rng.IntN(len(keys))], Limit: lim, Cost: tok(1)}
				}
				for i, r := range l.ThrottleBatch(reqs, nil) {
					if assert.NoError(t, r.Err) && r.Allowed && reqs[i].Key == "hot" {
						allowed.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	assert.Zero(t, interleaved.Load(), "no take between those of a transaction")
	d, err := l.Throttle("hot", lim, 0)
	require.NoError(t, err)
	assert.Equal(t, int64(capacity), allowed.Load()+d.Remaining.Whole(), "every allowed take of hot took exactly one token")
}
