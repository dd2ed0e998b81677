package storage_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

// TestCheckpointInBatches: a checkpoint larger than its batch goes in
// several transactions, and a crash between two of them, with some pages
// newer than the checkpoint's sequence number, still recovers every
// answered take, since the log is replayed onto them.
func TestCheckpointInBatches(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpenAt(t, fastDir(t)+"/bucketd.db", storage.Options{Clock: c, Sync: storage.SyncAlways, SyncInterval: time.Hour})
	storage.SetCheckpointBatch(db, 1) // a transaction per shard with changes
	const n = 1000
	takeAll := func() {
		for i := range n {
			_, err := db.Take(def, "key:"+itoa(i), slow, tok, nil)
			require.NoError(t, err)
		}
	}
	all := func(tokens bucket.Tokens) map[bk]bucket.Tokens {
		m := map[bk]bucket.Tokens{}
		for i := range n {
			m[bk{def, "key:" + itoa(i)}] = tokens
		}
		return m
	}
	takeAll()
	before := commits(t, db)
	require.NoError(t, db.Save())
	assert.Greater(t, commits(t, db)-before, 100, "a transaction per shard")
	assert.Equal(t, all(4*tok), remaining(inPages(t, db, c.Wall())))

	takeAll() // 3 tokens left in every bucket, each take durable
	gate := gateAt(t, db, true)
	saved := make(chan error, 1)
	go func() { saved <- db.Save() }()
	await(t, gate.entered, "the checkpoint's first transaction to commit")
	pages := remaining(inPages(t, db, c.Wall()))
	newer := 0
	for _, v := range pages {
		if v == 3*tok {
			newer++
		}
	}
	assert.Positive(t, newer, "some pages are of the checkpoint under way")
	assert.Less(t, newer, n, "and some are not yet")
	assert.Equal(t, all(3*tok), remaining(afterCrash(t, db, c.Wall())), "a crash now keeps every answered take")
	gate.open()
	require.NoError(t, await(t, saved, "Save"))
	assert.Equal(t, all(3*tok), remaining(inPages(t, db, c.Wall())))

	// Once the wall clock steps, the pages of the new offset must not
	// mix with the old ones: one transaction.
	takeAll()
	c.StepWall(time.Hour)
	before = commits(t, db)
	require.NoError(t, db.Save())
	assert.Equal(t, before+1, commits(t, db), "one transaction after a step of the wall clock")
	assert.Equal(t, all(2*tok), remaining(inPages(t, db, c.Wall())))
}
