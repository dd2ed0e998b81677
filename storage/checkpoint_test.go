package storage_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

// TestCrashDuringACheckpoint stops a checkpoint before its commit, and
// after it, before it removes the segments that its pages hold: a crash
// at either point keeps every answered change, those made while the
// checkpoint runs too.
func TestCrashDuringACheckpoint(t *testing.T) {
	for _, tt := range []struct {
		name        string
		afterCommit bool
	}{
		{"before the commit", false},
		{"after the commit", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := storetest.NewClock(t0)
			db := mustOpenAt(t, fastDir(t)+"/bucketd.db", storage.Options{Clock: c, Sync: storage.SyncAlways, SyncInterval: time.Hour})
			take(t, db, def, "a", slow, tok)
			take(t, db, cell, "b", hundred, 10*tok)
			_, err := db.Set(gold, "a", slow, 2*tok, nil)
			require.NoError(t, err)
			pages := buckets(t, db) // what the checkpoint writes

			gate := gateAt(t, db, tt.afterCommit)
			saved := make(chan error, 1)
			go func() { saved <- db.Save() }()
			await(t, gate.entered, "the checkpoint's write")
			take(t, db, def, "a", slow, tok)
			_, err = db.Reset(cell, "b")
			require.NoError(t, err)
			take(t, db, def, "c", slow, 3*tok)
			want := buckets(t, db)
			assert.Equal(t, want, afterCrash(t, db, c.Wall()))
			if tt.afterCommit {
				assert.Equal(t, pages, inPages(t, db, c.Wall()))
				assert.Len(t, segmentNames(t, storage.WALDir(db)), 2, "the segments before the checkpoint are still there")
			} else {
				assert.Empty(t, inPages(t, db, c.Wall()))
			}

			gate.open()
			require.NoError(t, await(t, saved, "Save"))
			assert.Equal(t, want, afterCrash(t, db, c.Wall()))
			assert.Equal(t, pages, inPages(t, db, c.Wall()))
			assert.Len(t, segmentNames(t, storage.WALDir(db)), 1)
		})
	}
}

// TestLogCapMakesACheckpoint: an interval flush makes a checkpoint once the
// log holds more than Options.MaxLogBytes, and not before.
func TestLogCapMakesACheckpoint(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpen(t, storage.Options{Clock: c, SyncInterval: time.Second, MaxLogBytes: 8 << 10})
	waitTimers(t, c, 1)
	before := commits(t, db)
	for i := range 10 {
		take(t, db, def, "key:"+itoa(i), hundred, tok)
	}
	c.Advance(time.Second)
	waitTimers(t, c, 1)
	require.Less(t, storage.WALSize(db), int64(8<<10))
	assert.Equal(t, before, commits(t, db), "under the cap, no checkpoint")

	for i := 0; storage.WALSize(db) <= 8<<10; i++ {
		require.Less(t, i, 10_000)
		take(t, db, def, "key:"+itoa(i%10), hundred, tok/1000)
	}
	c.Advance(time.Second)
	waitTimers(t, c, 1)
	assert.Equal(t, before+1, commits(t, db), "past the cap, a checkpoint")
	assert.Equal(t, buckets(t, db), inPages(t, db, c.Wall()))
	assert.Len(t, segmentNames(t, storage.WALDir(db)), 1)
	assert.Less(t, storage.WALSize(db), int64(100), "a new, empty log")
}

// pagesBytes returns the bytes of every page in db's committed file.
func pagesBytes(t *testing.T, db *storage.DB) int64 {
	t.Helper()
	var n int64
	require.NoError(t, storage.Bolt(db).View(func(tx *bolt.Tx) error {
		return tx.Bucket(storage.PagesName).ForEach(func(_, v []byte) error {
			n += int64(len(v))
			return nil
		})
	}))
	return n
}

// TestLogOutgrowingTheLiveStateMakesACheckpoint: with the default cap, an
// interval flush makes a checkpoint when the log outgrows the live state
// in the pages (but not below 4 MiB), so that a restart replays no more
// than it loads.
func TestLogOutgrowingTheLiveStateMakesACheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("writes some 15 MB")
	}
	c := storetest.NewClock(t0)
	db := mustOpenAt(t, fastDir(t)+"/bucketd.db", storage.Options{Clock: c, SyncInterval: time.Second})
	waitTimers(t, c, 1)
	grow := func(limit int64) { // takes from a few keys until the log holds limit bytes
		t.Helper()
		for i := 0; storage.WALSize(db) < limit; i++ {
			require.Less(t, i, 1_000_000)
			take(t, db, def, "hot:"+itoa(i%10), hundred, tok/1000)
		}
	}
	flushed := func() int { // the commits after an interval flush
		t.Helper()
		c.Advance(time.Second)
		waitTimers(t, c, 1)
		return commits(t, db)
	}

	// A few live buckets: the log may grow to 4 MiB.
	before := commits(t, db)
	grow(4<<20 - 4<<10)
	assert.Equal(t, before, flushed(), "a log under 4 MiB")
	grow(4<<20 + 1)
	assert.Equal(t, before+1, flushed(), "a log over 4 MiB")

	// Many: the log may grow to the size of their pages.
	for i := range 100_000 {
		take(t, db, def, "key:"+itoa(i), hundred, tok)
	}
	require.NoError(t, db.Save())
	live := pagesBytes(t, db)
	require.Greater(t, live, int64(5<<20), "the test needs more live state than 4 MiB")
	before = commits(t, db)
	grow(live - 4<<10)
	assert.Equal(t, before, flushed(), "a log smaller than the pages")
	grow(live + 1)
	assert.Equal(t, before+1, flushed(), "a log larger than the pages")
	assert.Equal(t, bucket.Tokens(99*tok), buckets(t, db)[bk{def, "key:1"}].Remaining)
}

// TestCheckpointFollowsTheLiveStateAsItGrows: while new keys pour in, the
// log is measured against the live state now (the pages' size scaled by
// the buckets in memory), not as the last checkpoint wrote it, so a fill
// is not checkpointed ever sooner after the last checkpoint; and so after
// a restart, from the pages as loaded.
func TestCheckpointFollowsTheLiveStateAsItGrows(t *testing.T) {
	if testing.Short() {
		t.Skip("writes some 80 MB")
	}
	for _, restart := range []bool{false, true} {
		t.Run(map[bool]string{false: "checkpointed", true: "restarted"}[restart], func(t *testing.T) {
			c := storetest.NewClock(t0)
			path := fastDir(t) + "/bucketd.db"
			opts := storage.Options{Clock: c, SyncInterval: time.Second}
			db := mustOpenAt(t, path, opts)
			waitTimers(t, c, 1)
			const n = 100_000
			for i := range n {
				take(t, db, def, "a:"+itoa(i), hundred, tok)
			}
			require.NoError(t, db.Save())
			live := pagesBytes(t, db)
			require.Greater(t, live, int64(5<<20), "the test needs more live state than 4 MiB")
			if restart {
				require.NoError(t, db.Close())
				c = storetest.NewClock(c.Wall()) // a clock of its own: the closed flusher's tick stays armed on the old one
				opts.Clock = c
				db = mustOpenAt(t, path, opts)
				waitTimers(t, c, 1)
			}
			flushed := func() int { // the commits after an interval flush
				t.Helper()
				c.Advance(time.Second)
				waitTimers(t, c, 1)
				return commits(t, db)
			}

			// As many new keys again: the log outgrows the pages as
			// written, not the live state, twice their size now.
			for i := range n {
				take(t, db, def, "b:"+itoa(i), hundred, tok)
			}
			require.Greater(t, storage.WALSize(db), live, "the test needs a log larger than the pages")
			before := commits(t, db)
			grow := func(limit int64) { // takes from the keys there are until the log holds limit bytes
				t.Helper()
				for i := 0; storage.WALSize(db) < limit; i++ {
					require.Less(t, i, 1_000_000)
					take(t, db, def, "b:"+itoa(i%n), hundred, tok/1000)
				}
			}
			grow(2*live - 16<<10)
			assert.Equal(t, before, flushed(), "a log larger than the pages, smaller than the live state")
			grow(2*live + 16<<10)
			assert.Greater(t, flushed(), before, "a log larger than the live state")
			assert.Equal(t, bucket.Tokens(99*tok), buckets(t, db)[bk{def, "a:1"}].Remaining)
		})
	}
}
