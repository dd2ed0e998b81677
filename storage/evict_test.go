package storage_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

var evictLimit = []bucket.Limit{{Capacity: 5 * bucket.Token, Rate: bucket.Every(time.Hour)}}

func openEvicting(t *testing.T, maxKeys int) (*storage.DB, *storetest.Clock, string) {
	t.Helper()
	c := storetest.NewClock(storetest.T0)
	path := filepath.Join(t.TempDir(), "bucketd.db")
	db, err := storage.Open(path, storage.Options{Clock: c, MaxKeys: maxKeys, SyncInterval: time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db, c, path
}

// TestEvictsTheKeyClosestToFull: with room for 3 keys a shard, a fourth
// key in the shard evicts the one that has spent the least, since
// resetting it gives away the fewest tokens.
func TestEvictsTheKeyClosestToFull(t *testing.T) {
	db, _, _ := openEvicting(t, 3*storage.ShardCount)
	keys := storage.KeysInOneShard(db, 4)
	spend := []bucket.Tokens{3, 1, 5} // keys[1] is closest to full
	for i, n := range spend {
		_, err := db.Take(storage.PolicyNS("p"), keys[i], evictLimit, n*bucket.Token, nil)
		require.NoError(t, err)
	}
	assert.Zero(t, db.Evicted())
	_, err := db.Take(storage.PolicyNS("p"), keys[3], evictLimit, bucket.Token, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), db.Evicted())
	for i, k := range keys {
		_, ok, err := db.Peek(storage.PolicyNS("p"), k, nil)
		require.NoError(t, err)
		assert.Equal(t, i != 1, ok, "key %d (%s)", i, k)
	}
}

// TestEvictsAFullKeyFirst: a key that has refilled but is not swept yet
// goes before any live key.
func TestEvictsAFullKeyFirst(t *testing.T) {
	db, c, _ := openEvicting(t, 2*storage.ShardCount)
	keys := storage.KeysInOneShard(db, 3)
	_, err := db.Take(storage.PolicyNS("p"), keys[0], evictLimit, bucket.Token, nil) // full in 1h
	require.NoError(t, err)
	c.Advance(time.Hour)
	_, err = db.Take(storage.PolicyNS("p"), keys[1], evictLimit, 5*bucket.Token, nil)
	require.NoError(t, err)
	_, err = db.Take(storage.PolicyNS("p"), keys[2], evictLimit, 5*bucket.Token, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), db.Evicted())
	for _, k := range keys[1:] {
		_, ok, err := db.Peek(storage.PolicyNS("p"), k, nil)
		require.NoError(t, err)
		assert.True(t, ok, k)
	}
}

// TestMaxKeysUnderAKeyFlood: 20 000 new keys against a bound of 1 000
// keep the store at most at the bound (rounded up to the shards), every
// key beyond it evicting one, and the evictions survive a restart.
func TestMaxKeysUnderAKeyFlood(t *testing.T) {
	const bound, flood = 1000, 20_000
	db, c, path := openEvicting(t, bound)
	for i := range flood {
		_, err := db.Take(storage.CellNS, fmt.Sprintf("flood:%d", i), evictLimit, bucket.Token, nil)
		require.NoError(t, err)
	}
	n, err := db.Len()
	require.NoError(t, err)
	perShard := (bound + storage.ShardCount - 1) / storage.ShardCount
	assert.LessOrEqual(t, n, perShard*storage.ShardCount)
	assert.Greater(t, n, bound/2, "the shards fill about evenly")
	assert.Equal(t, uint64(flood-n), db.Evicted(), "every key beyond the bound evicted one")
	require.NoError(t, db.Close())

	db2, err := storage.Open(path, storage.Options{Clock: c, MaxKeys: bound, SyncInterval: time.Hour})
	require.NoError(t, err)
	defer db2.Close()
	n2, err := db2.Len()
	require.NoError(t, err)
	assert.Equal(t, n, n2, "the evictions were journaled")
}

// TestNoBoundNoEviction: MaxKeys 0 evicts nothing.
func TestNoBoundNoEviction(t *testing.T) {
	db, _, _ := openEvicting(t, 0)
	for i := range 2000 {
		_, err := db.Take(storage.CellNS, fmt.Sprintf("k%d", i), evictLimit, bucket.Token, nil)
		require.NoError(t, err)
	}
	n, err := db.Len()
	require.NoError(t, err)
	assert.Equal(t, 2000, n)
	assert.Zero(t, db.Evicted())
}
