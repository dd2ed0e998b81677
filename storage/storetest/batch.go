package storetest

// The cases of TakeBatch: a batch is its takes one after the other.

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
)

// batchVsTakes runs reqs as one batch on keys prefixed "b:", and one by
// one with Take on the same keys prefixed "s:", in ns at the same instant,
// and requires the same outcomes, and then the same buckets. It returns
// the batch's outcomes.
func (e *env) batchVsTakes(ns storage.Namespace, reqs []storage.TakeReq) []storage.TakeResult {
	e.t.Helper()
	batch := make([]storage.TakeReq, len(reqs))
	for i, q := range reqs {
		batch[i] = q
		batch[i].Key = "b:" + q.Key
	}
	got := e.s.TakeBatch(ns, batch, nil)
	require.Len(e.t, got, len(reqs))
	for i, q := range reqs {
		d, err := e.s.Take(ns, "s:"+q.Key, q.Limits, q.Cost, nil)
		require.Equal(e.t, err == nil, got[i].Err == nil, "take %d (%s, cost %s): batch error %v, take error %v", i, q.Key, q.Cost, got[i].Err, err)
		if err != nil {
			continue
		}
		require.Equal(e.t, d, got[i].Decision, "take %d (%s, cost %s)", i, q.Key, q.Cost)
	}
	for _, q := range reqs {
		if q.Key == "" {
			continue
		}
		b, bok, err := e.s.Peek(ns, "b:"+q.Key, nil)
		require.NoError(e.t, err)
		s, sok, err := e.s.Peek(ns, "s:"+q.Key, nil)
		require.NoError(e.t, err)
		require.Equal(e.t, sok, bok, "%s exists", q.Key)
		require.Equal(e.t, s.Decision, b.Decision, "%s now", q.Key)
		require.Equal(e.t, s.Policy.Limits, b.Policy.Limits, "%s's limits", q.Key)
	}
	return got
}

func testBatchRepeatedKey(t *testing.T, e *env) {
	reqs := make([]storage.TakeReq, 7)
	for i := range reqs {
		reqs[i] = storage.TakeReq{Key: "joe", Limits: five, Cost: tok}
	}
	got := e.batchVsTakes(cell, reqs)
	for i := range 5 {
		require.NoError(t, got[i].Err)
		assert.True(t, got[i].Allowed, "take %d", i+1)
		assert.Equal(t, bucket.Tokens(4-i)*tok, got[i].Remaining, "take %d", i+1)
	}
	for i := 5; i < 7; i++ {
		assert.False(t, got[i].Allowed, "take %d: the bucket is empty", i+1)
		assert.Equal(t, 3*time.Second, got[i].RetryAfter)
	}
}

func testBatchMixed(t *testing.T, e *env) {
	for _, ns := range []storage.Namespace{free, cell} {
		e.batchVsTakes(ns, []storage.TakeReq{
			{Key: "a", Limits: five, Cost: 3 * tok},
			{Key: "b", Limits: ten, Cost: tok},
			{Key: "a", Limits: ten, Cost: tok},      // refitted to other limits
			{Key: "a", Limits: two, Cost: tok},      // and to two
			{Key: "b", Limits: ten, Cost: 0},        // a peek
			{Key: "b", Limits: ten, Cost: -5 * tok}, // a give back, to full
			{Key: "c", Limits: five, Cost: -tok},    // a give back to no bucket
			{Key: "c", Limits: five, Cost: 6 * tok},
			{Key: "a", Limits: five, Cost: 5 * tok},
		})
		e.clock.Advance(4 * time.Second)
		e.batchVsTakes(ns, []storage.TakeReq{
			{Key: "a", Limits: five, Cost: tok},
			{Key: "d", Limits: two, Cost: 3 * tok},
			{Key: "d", Limits: two, Cost: tok},
		})
	}
	assert.Equal(t, 4, e.len(), "b:a, s:a, b:d and s:d are not full; b and c are")
	assert.Equal(t, []storage.TakeResult{{Decision: bucket.Decision{Allowed: true, Limit: 10 * tok, Remaining: 9 * tok, RetryAfter: 0, ResetAfter: time.Second}}},
		e.s.TakeBatch(free, []storage.TakeReq{{Key: "new", Limits: ten, Cost: tok}}, nil))
}

func testBatchInvalid(t *testing.T, e *env) {
	bad := []bucket.Limit{{Capacity: 0, Rate: bucket.PerSecond(1)}}
	prior := []storage.TakeResult{{Err: fmt.Errorf("kept")}}
	got := e.s.TakeBatch(free, []storage.TakeReq{
		{Key: "k", Limits: five, Cost: tok},
		{Key: "", Limits: five, Cost: tok},
		{Key: "k", Limits: nil, Cost: tok},
		{Key: "k", Limits: bad, Cost: tok},
		{Key: "k", Limits: make([]bucket.Limit, bucket.MaxLimits+1), Cost: tok},
		{Key: "k", Limits: five, Cost: tok},
	}, prior)
	require.Len(t, got, 7, "appended to out")
	assert.EqualError(t, got[0].Err, "kept")
	require.NoError(t, got[1].Err)
	assert.Equal(t, 4*tok, got[1].Remaining)
	for i := 2; i <= 5; i++ {
		assert.ErrorIs(t, got[i].Err, bucket.ErrInvalid, "take %d", i-1)
	}
	require.NoError(t, got[6].Err, "an invalid take fails alone")
	assert.Equal(t, 3*tok, got[6].Remaining)

	got = e.s.TakeBatch(storage.PolicyNS(""), []storage.TakeReq{{Key: "k", Limits: five, Cost: tok}}, nil)
	require.Len(t, got, 1)
	assert.ErrorIs(t, got[0].Err, bucket.ErrInvalid, "a bad namespace")
	assert.Empty(t, e.s.TakeBatch(free, nil, nil), "an empty batch")
	assert.Equal(t, 1, e.len())
}

// testBatchRandom is a property test: a batch of random takes (few keys,
// so that keys repeat; every limits and costs, peeks and gives back too)
// has the outcomes and leaves the buckets of the same takes one by one.
func testBatchRandom(t *testing.T, e *env) {
	rng := rand.New(rand.NewPCG(8, 8))
	limits := [][]bucket.Limit{five, ten, two}
	nss := []storage.Namespace{free, cell}
	for round := range 30 {
		n := 1 + rng.IntN(40)
		reqs := make([]storage.TakeReq, n)
		for i := range reqs {
			reqs[i] = storage.TakeReq{
				Key:    fmt.Sprintf("k%d", rng.IntN(8)),
				Limits: limits[rng.IntN(len(limits))],
				Cost:   bucket.Tokens(rng.IntN(9)-2) * tok / 2,
			}
		}
		e.batchVsTakes(nss[round%2], reqs)
		e.clock.Advance(time.Duration(rng.IntN(4000)) * time.Millisecond)
	}
}
