package storage_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

// waitOnDisk waits until key's committed bucket in ns holds want tokens.
func waitOnDisk(t *testing.T, db *storage.DB, key string, ns storage.Namespace, want bucket.Tokens) {
	t.Helper()
	require.Eventually(t, func() bool {
		got, ok := onDiskTokens(db, key, ns)
		return ok && got == want
	}, wait, time.Millisecond, "%s's bucket in %s never reached the disk with %s tokens", key, ns, want)
}

func TestIntervalFlushWritesOnItsTimer(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpen(t, storage.Options{Clock: c, SyncInterval: time.Second})
	waitTimers(t, c, 1)

	take(t, db, def, "k", slow, tok)
	c.Advance(time.Second - 1)
	assert.Equal(t, 1, c.Timers(), "the interval has not passed")
	assert.Empty(t, onDisk(t, db), "a take does not touch the disk")

	c.Advance(1)
	waitOnDisk(t, db, "k", def, 4*tok)

	// And again on the next interval.
	waitTimers(t, c, 1)
	take(t, db, def, "k", slow, tok)
	c.Advance(time.Second)
	waitOnDisk(t, db, "k", def, 3*tok)
}

func TestSaveWritesWithoutTheTimer(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpen(t, storage.Options{Clock: c, SyncInterval: time.Second})
	before := commits(t, db)
	take(t, db, def, "k", slow, tok)
	require.NoError(t, db.Save())
	assert.Equal(t, 4*tok, diskTokens(t, onDisk(t, db), "k", def))
	assert.Equal(t, before+1, commits(t, db), "one flush is one commit")
	assert.Equal(t, t0, db.LastSave())
}

func TestIntervalFlushSweepsRefilledBuckets(t *testing.T) {
	// Every fifth interval flush (5 s of 1 s) drops the buckets that have
	// refilled, from memory and from the file.
	c := storetest.NewClock(t0)
	db := mustOpen(t, storage.Options{Clock: c, SyncInterval: time.Second})
	waitTimers(t, c, 1)
	take(t, db, def, "quick", five, tok) // full 3 s later
	take(t, db, def, "slow", slow, tok)
	for i := 1; i <= 4; i++ {
		c.Advance(time.Second)
		waitOnDisk(t, db, "quick", def, 4*tok)
		waitTimers(t, c, 1)
	}
	assert.Equal(t, 2, storage.TableLen(db), "not swept before the fifth interval")
	assert.Equal(t, 1, dbLen(t, db), "but a full bucket is not counted")
	c.Advance(time.Second)
	require.Eventually(t, func() bool {
		v, err := readRecord(db, "quick")
		return err == nil && v == nil
	}, wait, time.Millisecond, "the refilled bucket is dropped from the file")
	assert.Equal(t, 1, storage.TableLen(db), "and from memory")
	assert.Equal(t, 4*tok, diskTokens(t, onDisk(t, db), "slow", def))
}

func TestIntervalFlushFailureIsRetriedWithBackoff(t *testing.T) {
	c := storetest.NewClock(t0)
	var logs logBuffer
	db := mustOpen(t, storage.Options{Clock: c, SyncInterval: time.Second, Logger: logs.logger()})
	disk := breakDisk(db)
	waitTimers(t, c, 1)
	require.NoError(t, db.Health())

	take(t, db, def, "k", slow, tok)
	c.Advance(time.Second) // the first interval flush fails
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "failures=1") && c.Timers() == 1
	}, wait, time.Millisecond, "the failure is logged and a retry armed")
	err := db.Health()
	require.ErrorIs(t, err, bucket.ErrNotDurable)
	assert.ErrorIs(t, err, errDisk)
	assert.Contains(t, err.Error(), "storage: flush: disk on fire")
	assert.Contains(t, logs.String(), "retry_in=2s")
	assert.Equal(t, int64(1), disk.calls.Load())
	assert.Equal(t, t0, db.LastSave(), "nothing saved since Open")

	// The retry waits twice the interval.
	c.Advance(time.Second)
	assert.Equal(t, 1, c.Timers(), "no retry after one interval")
	assert.Equal(t, int64(1), disk.calls.Load())
	c.Advance(time.Second)
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "failures=2") && c.Timers() == 1
	}, wait, time.Millisecond, "the second failure is logged and a retry armed")
	assert.Equal(t, int64(2), disk.calls.Load())
	assert.Contains(t, logs.String(), "retry_in=4s")

	// Then four times; this one succeeds and writes what failed.
	disk.fail.Store(false)
	c.Advance(2 * time.Second)
	assert.Equal(t, 1, c.Timers(), "no retry after two intervals")
	assert.Equal(t, int64(2), disk.calls.Load())
	require.ErrorIs(t, db.Health(), bucket.ErrNotDurable, "still failing until a write succeeds")
	c.Advance(2 * time.Second)
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "flush recovered") && c.Timers() == 1
	}, wait, time.Millisecond, "the recovery is logged")
	require.NoError(t, db.Health())
	assert.Equal(t, 4*tok, diskTokens(t, onDisk(t, db), "k", def), "the retry wrote the change that failed")
	assert.Equal(t, t0.Add(7*time.Second), db.LastSave(), "when the retry succeeded")

	log := logs.String()
	assert.Equal(t, 2, strings.Count(log, "flush failed"), "each failure logged once:\n%s", log)
	assert.Equal(t, 1, strings.Count(log, "flush recovered"), "the recovery logged once:\n%s", log)
	assert.Contains(t, log, `msg="storage: flush recovered" failures=2`)

	// Back to the interval.
	take(t, db, def, "k", slow, tok)
	c.Advance(time.Second)
	waitOnDisk(t, db, "k", def, 3*tok)
}

func TestBackoffIsCapped(t *testing.T) {
	c := storetest.NewClock(t0)
	var logs logBuffer
	db := mustOpen(t, storage.Options{Clock: c, SyncInterval: 10 * time.Second, Logger: logs.logger()})
	breakDisk(db)
	take(t, db, def, "k", slow, tok)
	// 10 s, then retries after 20 s, 30 s (not 40 s), 30 s.
	for i, d := range []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second, 30 * time.Second} {
		waitTimers(t, c, 1)
		c.Advance(d - 1)
		assert.Equal(t, 1, c.Timers(), "flush %d: not due %v after the last", i+1, d-1)
		c.Advance(1)
		require.Eventually(t, func() bool {
			return strings.Count(logs.String(), "flush failed") == i+1
		}, wait, time.Millisecond, "flush %d is due %v after the last", i+1, d)
	}
	assert.Contains(t, logs.String(), "retry_in=30s")
	assert.NotContains(t, logs.String(), "retry_in=40s")
}

func TestSaveDuringBackoffIsServedAtOnce(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpen(t, storage.Options{Clock: c, SyncInterval: time.Second})
	disk := breakDisk(db)
	waitTimers(t, c, 1)
	take(t, db, def, "k", slow, tok)
	c.Advance(time.Second)
	require.Eventually(t, func() bool { return disk.calls.Load() == 1 }, wait, time.Millisecond)

	// A Save is served now, whatever the backoff: the clock stays put.
	err := db.Save()
	require.ErrorIs(t, err, bucket.ErrNotDurable)
	assert.ErrorIs(t, err, errDisk)
	assert.Equal(t, int64(2), disk.calls.Load())
	disk.fail.Store(false)
	require.NoError(t, db.Save())
	assert.Equal(t, 4*tok, diskTokens(t, onDisk(t, db), "k", def))
	require.NoError(t, db.Health())
}

func TestFailedSaveArmsTheBackoff(t *testing.T) {
	c := storetest.NewClock(t0)
	var logs logBuffer
	db := mustOpen(t, storage.Options{Clock: c, SyncInterval: time.Second, Logger: logs.logger()})
	disk := breakDisk(db)
	waitTimers(t, c, 1) // the interval's tick, due at +1 s
	take(t, db, def, "k", slow, tok)
	require.ErrorIs(t, db.Save(), bucket.ErrNotDurable)

	// The retry is armed 2 s from the failure; the flusher no longer
	// heeds the interval's tick (which stays armed on the fake clock).
	waitTimers(t, c, 2)
	c.Advance(time.Second)
	assert.Equal(t, 1, c.Timers(), "the retry is not due")
	disk.fail.Store(false)
	c.Advance(time.Second)
	waitOnDisk(t, db, "k", def, 4*tok)
	assert.Equal(t, int64(2), disk.calls.Load(), "one failure, one retry")
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "flush recovered") }, wait, time.Millisecond)
}

func TestRecoveryBySaveResumesTheInterval(t *testing.T) {
	c := storetest.NewClock(t0)
	var logs logBuffer
	db := mustOpen(t, storage.Options{Clock: c, SyncInterval: time.Second, Logger: logs.logger()})
	disk := breakDisk(db)
	waitTimers(t, c, 1)
	take(t, db, def, "k", slow, tok)
	c.Advance(time.Second) // fails; the retry is due 2 s later
	require.Eventually(t, func() bool { return disk.calls.Load() == 1 && c.Timers() == 1 }, wait, time.Millisecond)

	disk.fail.Store(false)
	require.NoError(t, db.Save())
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "flush recovered") }, wait, time.Millisecond)
	// After the recovery changes are written every interval again, not
	// when what was left of the backoff has passed. (The retry's timer
	// stays armed on the fake clock, unheeded: two timers.)
	waitTimers(t, c, 2)
	take(t, db, def, "k", slow, tok)
	c.Advance(time.Second)
	waitOnDisk(t, db, "k", def, 3*tok)
}

func TestFailedFlushKeepsChangesForTheNext(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpen(t, testOptions(c))
	take(t, db, def, "a", slow, tok)
	take(t, db, cell, "b", slow, 2*tok)
	disk := breakDisk(db)

	err := db.Save()
	require.ErrorIs(t, err, bucket.ErrNotDurable)
	assert.Contains(t, err.Error(), "storage: flush: disk on fire")
	assert.Empty(t, onDisk(t, db), "the failed transaction wrote nothing")

	// A change made between the failure and the next flush joins it.
	take(t, db, def, "c", slow, 3*tok)
	disk.fail.Store(false)
	require.NoError(t, db.Save())
	recs := onDisk(t, db)
	assert.Equal(t, 4*tok, diskTokens(t, recs, "a", def))
	assert.Equal(t, 3*tok, diskTokens(t, recs, "b", cell))
	assert.Equal(t, 2*tok, diskTokens(t, recs, "c", def))
}

func TestSyncAlwaysFailedCommit(t *testing.T) {
	c := storetest.NewClock(t0)
	var logs logBuffer
	db := mustOpen(t, storage.Options{Clock: c, Sync: storage.SyncAlways, SyncInterval: time.Hour, Logger: logs.logger()})
	take(t, db, def, "gone", slow, tok)
	take(t, db, cell, "gone", slow, tok)
	disk := breakDisk(db)

	// Every change is made, then reported not durable.
	d, err := db.Take(def, "k", slow, 2*tok, nil)
	require.ErrorIs(t, err, bucket.ErrNotDurable)
	assert.ErrorIs(t, err, errDisk)
	assert.True(t, d.Allowed, "the decision is returned with the error")
	assert.Equal(t, 3*tok, d.Remaining)
	snap, ok := peek(t, db, def, "k")
	require.True(t, ok)
	assert.Equal(t, 3*tok, snap.Remaining, "the tokens stay spent")

	d, err = db.Take(def, "k", slow, tok, nil)
	require.ErrorIs(t, err, bucket.ErrNotDurable)
	assert.Equal(t, 2*tok, d.Remaining, "taken from what the failed take left")

	_, err = db.Set(gold, "k", slow, tok, nil)
	assert.ErrorIs(t, err, bucket.ErrNotDurable, "Set")
	existed, err := db.Reset(storage.AllNamespaces, "gone")
	assert.ErrorIs(t, err, bucket.ErrNotDurable, "Reset")
	assert.True(t, existed)
	require.ErrorIs(t, db.Health(), bucket.ErrNotDurable)
	assert.ErrorIs(t, db.PutOverride(storage.Override{NS: gold, Key: "k", Limits: five}), bucket.ErrNotDurable, "PutOverride")
	assert.ErrorIs(t, db.DeleteOverride(gold, "k"), bucket.ErrNotDurable, "DeleteOverride")

	// Nothing changed what the disk holds; a peek, a denied take and a
	// reset of nothing wait for no commit.
	recs := onDisk(t, db)
	assert.NotContains(t, recs, "k")
	assert.Contains(t, recs, "gone")
	calls := disk.calls.Load()
	take(t, db, def, "k", slow, 0)
	d = take(t, db, def, "k", slow, 5*tok)
	assert.False(t, d.Allowed)
	existed, err = db.Reset(def, "nobody")
	require.NoError(t, err)
	assert.False(t, existed)
	assert.Equal(t, calls, disk.calls.Load(), "no write for what changed nothing")

	// After the recovery, the changes are on disk.
	disk.fail.Store(false)
	take(t, db, cell, "other", slow, tok)
	require.NoError(t, db.Health())
	recs = onDisk(t, db)
	assert.Equal(t, 2*tok, diskTokens(t, recs, "k", def), "the failed takes were written by the next commit")
	assert.Equal(t, tok, diskTokens(t, recs, "k", gold))
	assert.NotContains(t, recs, "gone", "and the reset")
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "flush recovered") }, wait, time.Millisecond)
}

func TestCloseReportsAFailedFinalFlush(t *testing.T) {
	c := storetest.NewClock(t0)
	path := t.TempDir() + "/bucketd.db"
	db, err := storage.Open(path, testOptions(c))
	require.NoError(t, err)
	take(t, db, def, "k", slow, tok)
	breakDisk(db)
	err = db.Close()
	require.ErrorIs(t, err, errDisk)
	assert.Equal(t, err, db.Close(), "Close returns the same error each time")
	assert.ErrorIs(t, db.Health(), bucket.ErrClosed)
	assert.Empty(t, fileRecords(t, path), "nothing reached the file")
}

// TestClearHoldsNoShardLockDuringTheWrite blocks Clear's commit (under
// SyncAlways) and shows that reads and takes of every shard go on meanwhile.
func TestClearHoldsNoShardLockDuringTheWrite(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpen(t, storage.Options{Clock: c, Sync: storage.SyncAlways, SyncInterval: time.Hour})
	const n = 1000 // keys in every shard
	for i := range n {
		_, err := db.Set(def, "key:"+itoa(i), slow, 0, nil)
		require.NoError(t, err)
	}
	gate := gateWrites(t, db)

	cleared := make(chan error, 1)
	go func() { cleared <- db.Clear() }()
	await(t, gate.entered, "Clear's commit to start")

	within(t, "Len (every shard) while Clear's commit is blocked", func() {
		n, err := db.Len()
		assert.NoError(t, err)
		assert.Zero(t, n, "cleared in memory before the write")
	})
	within(t, "a peek while Clear's commit is blocked", func() {
		d, err := db.Take(def, "key:1", slow, 0, nil)
		assert.NoError(t, err)
		assert.Equal(t, 5*tok, d.Remaining)
	})
	// A take changes its bucket at once, then waits for a commit of its own.
	taken := make(chan error, 1)
	go func() {
		_, err := db.Take(def, "key:2", slow, tok, nil)
		taken <- err
	}()
	require.Eventually(t, func() bool {
		snap, ok, err := db.Peek(def, "key:2", nil)
		return err == nil && ok && snap.Remaining == 4*tok
	}, wait, time.Millisecond, "the take changed nothing while Clear's commit was blocked")
	select {
	case err := <-taken:
		t.Fatalf("a take under SyncAlways returned (%v) before its change could be committed", err)
	default:
	}

	gate.open()
	require.NoError(t, await(t, cleared, "Clear"))
	require.NoError(t, await(t, taken, "the take"))
	recs := onDisk(t, db)
	assert.Len(t, recs, 1, "the clear and the take are on disk")
	assert.Equal(t, 4*tok, diskTokens(t, recs, "key:2", def))
}

func TestFlushWritesTheWallOffset(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpen(t, testOptions(c))
	take(t, db, def, "k", slow, tok)
	require.NoError(t, db.Save())
	off, ok := dbWallOffset(t, db)
	require.True(t, ok, "written with the pages")
	assert.Zero(t, off)

	// With nothing changed, a flush writes the offset alone when it has
	// moved by MaxDrift or more since it was written; a slewing clock's
	// drift is not worth a commit.
	half := time.Duration(storage.MaxDrift) / 2
	steps := []struct {
		step  time.Duration
		write bool
		want  time.Duration // the offset on disk after the flush
	}{
		{half, false, 0},
		{half - 1, false, 0},
		{1, true, 2 * half}, // exactly MaxDrift
		{0, false, 2 * half},
		{-half, false, 2 * half},
		{-half, true, 0}, // exactly -MaxDrift
		{-time.Hour, true, -time.Hour},
		{0, false, -time.Hour},
	}
	for i, st := range steps {
		before := commits(t, db)
		c.StepWall(st.step)
		require.NoError(t, db.Save())
		wrote := commits(t, db) - before
		assert.Equal(t, st.write, wrote == 1, "step %d: %v", i, st.step)
		off, _ = dbWallOffset(t, db)
		assert.Equal(t, st.want, off, "step %d: %v", i, st.step)
	}

	// UpdatedAt is in today's wall time: an hour earlier.
	snap, ok := peek(t, db, def, "k")
	require.True(t, ok)
	assert.Equal(t, t0.Add(-time.Hour), snap.UpdatedAt)

	// The offset goes with every write of pages.
	c.StepWall(time.Minute)
	take(t, db, def, "k", slow, tok)
	require.NoError(t, db.Save())
	off, _ = dbWallOffset(t, db)
	assert.Equal(t, -59*time.Minute, off)
	assert.Equal(t, t0, time.Unix(0, diskState(t, onDisk(t, db), "k", def).Updated),
		"the pages hold instants of the timeline, not of the stepped wall clock")
}

func TestCloseWritesTheSmallestWallStep(t *testing.T) {
	c := storetest.NewClock(t0)
	path := t.TempDir() + "/bucketd.db"
	db := mustOpenAt(t, path, testOptions(c))
	take(t, db, def, "k", five, 5*tok) // empty: a token every 3 s
	require.NoError(t, db.Save())

	// A step too small for an interval flush to write is written by Close,
	// with nothing else to write.
	step := time.Duration(storage.MaxDrift) / 3
	c.StepWall(step)
	require.NoError(t, db.Save())
	require.NoError(t, db.Close())
	viewFile(t, path, func(tx *bolt.Tx) error {
		off, ok := wallOffset(tx)
		assert.True(t, ok)
		assert.Equal(t, step, off)
		return nil
	})

	// The next run counts the 3 s the bucket was closed, not 3 s and the
	// step: exactly a token.
	c.Advance(3 * time.Second)
	db = mustOpenAt(t, path, testOptions(c))
	snap, ok := peek(t, db, def, "k")
	require.True(t, ok)
	assert.Equal(t, tok, snap.Remaining)
	assert.Equal(t, 12*time.Second, snap.ResetAfter)
}
