package storage_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

func TestStatsCountKeysWritesAndFailures(t *testing.T) {
	c := storetest.NewClock(storetest.T0)
	opts := testOptions(c)
	opts.MaxKeys = 256 // one key per shard
	db := mustOpen(t, opts)
	st := db.Stats()
	assert.Equal(t, storage.Stats{LastSave: st.LastSave, Healthy: true}, st, "a new DB")

	keys := storage.KeysInOneShard(db, 3)
	take(t, db, def, keys[0], slow, tok)
	take(t, db, def, keys[0], slow, tok)    // the same key: not created again
	take(t, db, gold, keys[0], slow, tok)   // another bucket of the same key
	take(t, db, def, keys[1], slow, 10*tok) // refused: nothing created
	st = db.Stats()
	assert.Equal(t, 1, st.Keys)
	assert.EqualValues(t, 1, st.KeysCreated)
	assert.Zero(t, st.LogWrites, "nothing written before a flush")

	require.NoError(t, db.Save())
	st = db.Stats()
	assert.EqualValues(t, 1, st.LogWrites)
	assert.Positive(t, st.LogBytes)
	assert.EqualValues(t, 1, st.Checkpoints)
	assert.Positive(t, st.CheckpointBytes)
	assert.Zero(t, st.LogErrors+st.CheckpointErrors)
	assert.True(t, st.Healthy)

	// Keys that land in a full shard evict one another.
	take(t, db, def, keys[2], slow, tok)
	st = db.Stats()
	assert.EqualValues(t, 1, st.Evicted)
	assert.EqualValues(t, 2, st.KeysCreated)
	assert.Equal(t, 1, st.Keys)

	d := breakDisk(db)
	require.Error(t, db.Save())
	st = db.Stats()
	assert.EqualValues(t, 2, st.Checkpoints)
	assert.EqualValues(t, 1, st.CheckpointErrors)
	assert.False(t, st.Healthy)
	d.fail.Store(false)
	require.NoError(t, db.Save())
	assert.True(t, db.Stats().Healthy)
}
