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

// waitOnDisk waits until key's bucket in ns holds want tokens in the pages
// that a checkpoint wrote.
func waitOnDisk(t *testing.T, db *storage.DB, key string, ns storage.Namespace, want bucket.Tokens) {
	t.Helper()
	require.Eventually(t, func() bool {
		got, ok := onDiskTokens(db, key, ns)
		return ok && got == want
	}, wait, time.Millisecond, "no checkpoint wrote %s's bucket in %s with %s tokens", key, ns, want)
}

// checkpointing are the options of the tests of failing checkpoints: a
// flush every second, and a log cap so small that every flush is a
// checkpoint.
func checkpointing(c *storetest.Clock, logs *logBuffer) storage.Options {
	return storage.Options{Clock: c, SyncInterval: time.Second, MaxLogBytes: 1, Logger: logs.logger()}
}

// TestIntervalFlushWritesOnItsTimer: under SyncInterval, the log is
// written out every 100ms (a crash of the process keeps what is written)
// and synced every interval.
func TestIntervalFlushWritesOnItsTimer(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpen(t, storage.Options{Clock: c, SyncInterval: time.Second})
	waitTimers(t, c, 1)
	syncs := db.Stats().LogWrites

	take(t, db, def, "k", slow, tok)
	c.Advance(100*time.Millisecond - 1)
	assert.Equal(t, 1, c.Timers(), "no write is due yet")
	assert.Empty(t, afterCrash(t, db, c.Wall()), "a take does not touch the disk")

	c.Advance(1)
	waitDurable(t, db, c.Wall(), def, "k", 4*tok)
	assert.Equal(t, syncs, db.Stats().LogWrites, "written out, not synced")

	// The next takes are written out on the next tick, and the interval
	// ends with one sync.
	waitTimers(t, c, 1)
	take(t, db, def, "k", slow, tok)
	assert.Equal(t, map[bk]bucket.Tokens{{def, "k"}: 4 * tok}, remaining(afterCrash(t, db, c.Wall())),
		"until the next tick, a crash keeps what was written")
	c.Advance(100 * time.Millisecond)
	waitDurable(t, db, c.Wall(), def, "k", 3*tok)
	for range 7 { // to 900ms since the flusher started
		waitTimers(t, c, 1)
		c.Advance(100 * time.Millisecond)
	}
	waitTimers(t, c, 1)
	assert.Equal(t, syncs, db.Stats().LogWrites, "the interval has not passed")
	c.Advance(100 * time.Millisecond)
	require.Eventually(t, func() bool { return db.Stats().LogWrites == syncs+1 }, wait, time.Millisecond,
		"one sync once the interval passed")
	assert.Empty(t, inPages(t, db, c.Wall()), "the log holds them: a small log is not worth a checkpoint")
}

func TestSaveMakesACheckpoint(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpen(t, storage.Options{Clock: c, SyncInterval: time.Second})
	before := commits(t, db)
	take(t, db, def, "k", slow, tok)
	require.NoError(t, db.Save())
	assert.Equal(t, 4*tok, diskTokens(t, onDisk(t, db), "k", def))
	assert.Equal(t, before+1, commits(t, db), "one checkpoint is one commit")
	assert.Equal(t, t0, db.LastSave())
	assert.Equal(t, map[bk]bucket.Tokens{{def, "k"}: 4 * tok}, remaining(inPages(t, db, c.Wall())),
		"the pages alone hold the take")
	assert.Len(t, segmentNames(t, storage.WALDir(db)), 1, "the segments the pages hold are removed")
}

func TestSweepDropsRefilledBucketsWithoutWriting(t *testing.T) {
	// Every fifth interval flush (5 s of 1 s) drops the buckets that have
	// refilled from memory. It writes nothing: a refilled bucket is absent
	// however it is read or replayed.
	c := storetest.NewClock(t0)
	db := mustOpen(t, storage.Options{Clock: c, SyncInterval: time.Second})
	waitTimers(t, c, 1)
	take(t, db, def, "quick", five, tok) // full 3 s later
	take(t, db, def, "slow", slow, tok)
	for range 4 {
		c.Advance(time.Second)
		waitTimers(t, c, 1) // flushed, and the next tick armed
	}
	assert.Equal(t, 2, storage.TableLen(db), "not swept before the fifth interval")
	assert.Equal(t, 1, dbLen(t, db), "but a full bucket is not counted")
	seq, size := storage.WALLastSeq(db), storage.WALSize(db)
	c.Advance(time.Second)
	waitTimers(t, c, 1)
	assert.Equal(t, 1, storage.TableLen(db), "the refilled bucket is dropped from memory")
	assert.Equal(t, seq, storage.WALLastSeq(db), "no record")
	assert.Equal(t, size, storage.WALSize(db), "no byte written")
	assert.Equal(t, map[bk]bucket.Tokens{{def, "slow"}: 4 * tok}, remaining(afterCrash(t, db, c.Wall())))
}

func TestFailedCheckpointIsRetriedWithBackoff(t *testing.T) {
	c := storetest.NewClock(t0)
	var logs logBuffer
	db := mustOpen(t, checkpointing(c, &logs))
	disk := breakDisk(db)
	waitTimers(t, c, 1)
	require.NoError(t, db.Health())

	take(t, db, def, "k", slow, tok)
	c.Advance(time.Second) // the interval flush writes the log; its checkpoint fails
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "failures=1") && c.Timers() == 1
	}, wait, time.Millisecond, "the failure is logged and a retry armed")
	err := db.Health()
	require.ErrorIs(t, err, bucket.ErrNotDurable)
	assert.ErrorIs(t, err, errDisk)
	assert.Contains(t, err.Error(), "storage: checkpoint: disk on fire")
	assert.Contains(t, logs.String(), "retry_in=2s")
	assert.Equal(t, int64(1), disk.calls.Load())
	assert.Equal(t, t0.Add(time.Second), db.LastSave(), "the log was written")
	assert.Equal(t, map[bk]bucket.Tokens{{def, "k"}: 4 * tok}, remaining(afterCrash(t, db, c.Wall())),
		"the log holds the take: durable though the checkpoint failed")

	// The retry waits twice the interval.
	c.Advance(time.Second)
	waitTimers(t, c, 1) // the interval flush ran: "no retry after one interval"
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
	waitTimers(t, c, 1) // the interval flush ran: "no retry after two intervals"
	assert.Equal(t, int64(2), disk.calls.Load())
	require.ErrorIs(t, db.Health(), bucket.ErrNotDurable, "still failing until a checkpoint succeeds")
	c.Advance(2 * time.Second)
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "flush recovered") && c.Timers() == 1
	}, wait, time.Millisecond, "the recovery is logged")
	require.NoError(t, db.Health())
	assert.Equal(t, 4*tok, diskTokens(t, onDisk(t, db), "k", def), "the retry wrote the checkpoint that failed")
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
	opts := checkpointing(c, &logs)
	opts.SyncInterval = 10 * time.Second
	db := mustOpen(t, opts)
	disk := breakDisk(db)
	take(t, db, def, "k", slow, tok)
	// The log is written every 10 s; the checkpoint is tried at 10 s, then
	// 20 s later, then 30 s later (not 40 s: the cap), then 30 s later.
	tries := map[int]int64{1: 1, 3: 2, 6: 3, 9: 4} // interval -> checkpoints tried by then
	want := int64(0)
	for step := 1; step <= 9; step++ {
		waitTimers(t, c, 1)
		c.Advance(10 * time.Second)
		if n, ok := tries[step]; ok {
			want = n
		}
		require.Eventually(t, func() bool {
			return c.Timers() == 1 && db.LastSave().Equal(c.Wall())
		}, wait, time.Millisecond, "interval %d: the log is written", step)
		assert.Equal(t, want, disk.calls.Load(), "interval %d: checkpoints tried", step)
	}
	assert.Contains(t, logs.String(), "retry_in=30s")
	assert.NotContains(t, logs.String(), "retry_in=40s")
}

func TestSaveDuringBackoffIsServedAtOnce(t *testing.T) {
	c := storetest.NewClock(t0)
	var logs logBuffer
	db := mustOpen(t, checkpointing(c, &logs))
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

// TestFailedSaveArmsTheBackoff: a Save whose checkpoint fails arms the
// backoff, and the retry makes the checkpoint that failed, even when the
// log is too small to be due for one.
func TestFailedSaveArmsTheBackoff(t *testing.T) {
	c := storetest.NewClock(t0)
	var logs logBuffer
	db := mustOpen(t, storage.Options{Clock: c, SyncInterval: time.Second, Logger: logs.logger()})
	disk := breakDisk(db)
	waitTimers(t, c, 1)
	take(t, db, def, "k", slow, tok)
	require.ErrorIs(t, db.Save(), bucket.ErrNotDurable)

	// The retry is due 2 s after the failure: not at the first interval.
	disk.fail.Store(false)
	c.Advance(time.Second)
	require.Eventually(t, func() bool { return c.Timers() == 1 && db.LastSave().Equal(c.Wall()) }, wait, time.Millisecond)
	assert.Equal(t, int64(1), disk.calls.Load(), "the retry is not due")
	waitTimers(t, c, 1)
	c.Advance(time.Second)
	waitOnDisk(t, db, "k", def, 4*tok)
	assert.Equal(t, int64(2), disk.calls.Load(), "one failure, one retry")
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "flush recovered") }, wait, time.Millisecond)
	require.NoError(t, db.Health())
}

func TestRecoveryBySaveResumesTheInterval(t *testing.T) {
	c := storetest.NewClock(t0)
	var logs logBuffer
	db := mustOpen(t, checkpointing(c, &logs))
	disk := breakDisk(db)
	waitTimers(t, c, 1)
	take(t, db, def, "k", slow, tok)
	c.Advance(time.Second) // fails; the retry is due 2 s later
	require.Eventually(t, func() bool { return disk.calls.Load() == 1 && c.Timers() == 1 }, wait, time.Millisecond)

	disk.fail.Store(false)
	require.NoError(t, db.Save())
	// After the recovery checkpoints are made every interval again, not
	// when what was left of the backoff has passed.
	take(t, db, def, "k", slow, tok)
	waitTimers(t, c, 1)
	c.Advance(time.Second)
	waitOnDisk(t, db, "k", def, 3*tok)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "flush recovered") }, wait, time.Millisecond)
}

// TestLogIsWrittenEveryIntervalWhileCheckpointsFail: under SyncInterval a
// crash loses at most the last interval, even while checkpoints fail and
// are retried with backoff: the log, which is healthy, is still written
// every interval.
func TestLogIsWrittenEveryIntervalWhileCheckpointsFail(t *testing.T) {
	c := storetest.NewClock(t0)
	var logs logBuffer
	db := mustOpen(t, checkpointing(c, &logs))
	breakDisk(db)
	waitTimers(t, c, 1)
	take(t, db, def, "k", slow, tok)
	c.Advance(time.Second) // the checkpoint fails; the next is due 2 s later
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "failures=1") && c.Timers() == 1
	}, wait, time.Millisecond)

	take(t, db, def, "k", slow, tok)
	c.Advance(time.Second)
	waitDurable(t, db, c.Wall(), def, "k", 3*tok)
}

func TestFailedCheckpointKeepsChangesForTheNext(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpen(t, testOptions(c))
	take(t, db, def, "a", slow, tok)
	take(t, db, cell, "b", slow, 2*tok)
	disk := breakDisk(db)

	err := db.Save()
	require.ErrorIs(t, err, bucket.ErrNotDurable)
	assert.Contains(t, err.Error(), "storage: checkpoint: disk on fire")
	assert.Empty(t, onDisk(t, db), "the failed transaction wrote nothing")
	want := map[bk]bucket.Tokens{{def, "a"}: 4 * tok, {cell, "b"}: 3 * tok}
	assert.Equal(t, want, remaining(afterCrash(t, db, c.Wall())), "the log holds them")

	// A change made between the failure and the next checkpoint joins it.
	take(t, db, def, "c", slow, 3*tok)
	want[bk{def, "c"}] = 2 * tok
	disk.fail.Store(false)
	require.NoError(t, db.Save())
	recs := onDisk(t, db)
	assert.Equal(t, 4*tok, diskTokens(t, recs, "a", def))
	assert.Equal(t, 3*tok, diskTokens(t, recs, "b", cell))
	assert.Equal(t, 2*tok, diskTokens(t, recs, "c", def))
	assert.Equal(t, want, remaining(inPages(t, db, c.Wall())))
	assert.Len(t, segmentNames(t, storage.WALDir(db)), 1, "the segments kept while checkpoints failed are removed")
}

// TestSyncAlwaysTakesStayDurableWhileCheckpointsFail: under SyncAlways a
// change is durable once its record is in the log, which does not need a
// checkpoint; Health reports the failing checkpoints, and what writes the
// data file itself (an override) fails.
func TestSyncAlwaysTakesStayDurableWhileCheckpointsFail(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpen(t, storage.Options{Clock: c, Sync: storage.SyncAlways, SyncInterval: time.Hour})
	take(t, db, def, "gone", slow, tok)
	take(t, db, cell, "gone", slow, tok)
	disk := breakDisk(db)
	require.ErrorIs(t, db.Save(), bucket.ErrNotDurable)
	err := db.Health()
	require.ErrorIs(t, err, bucket.ErrNotDurable)
	assert.ErrorIs(t, err, errDisk)
	assert.Contains(t, err.Error(), "storage: checkpoint")

	d, err := db.Take(def, "k", slow, 2*tok, nil)
	require.NoError(t, err)
	assert.Equal(t, 3*tok, d.Remaining)
	_, err = db.Set(gold, "k", slow, tok, nil)
	require.NoError(t, err)
	existed, err := db.Reset(storage.AllNamespaces, "gone")
	require.NoError(t, err)
	assert.True(t, existed)
	want := map[bk]bucket.Tokens{{def, "k"}: 3 * tok, {gold, "k"}: tok}
	assert.Equal(t, want, remaining(afterCrash(t, db, c.Wall())), "every answered change is durable")
	require.ErrorIs(t, db.Health(), bucket.ErrNotDurable, "until a checkpoint succeeds")
	assert.ErrorIs(t, db.PutOverride(storage.Override{NS: gold, Key: "k", Limits: five}), bucket.ErrNotDurable, "PutOverride")
	assert.ErrorIs(t, db.DeleteOverride(gold, "k"), bucket.ErrNotDurable, "DeleteOverride")

	disk.fail.Store(false)
	require.NoError(t, db.Save())
	require.NoError(t, db.Health())
	assert.Equal(t, want, remaining(inPages(t, db, c.Wall())), "the checkpoint holds them")
}

func TestCloseReportsAFailedCheckpoint(t *testing.T) {
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
	assert.Empty(t, fileRecords(t, path), "nothing reached the pages")

	db = mustOpenAt(t, path, testOptions(c))
	assert.Equal(t, map[bk]bucket.Tokens{{def, "k"}: 4 * tok}, remaining(buckets(t, db)), "the next Open replays the log")
}

// TestCheckpointHoldsNoShardLockDuringTheWrite blocks a checkpoint's write
// and shows that reads, takes (durable under SyncAlways) and Clear, which
// locks every shard, go on meanwhile.
func TestCheckpointHoldsNoShardLockDuringTheWrite(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpenAt(t, fastDir(t)+"/bucketd.db", storage.Options{Clock: c, Sync: storage.SyncAlways, SyncInterval: time.Hour})
	const n = 1000 // keys in every shard
	for i := range n {
		_, err := db.Set(def, "key:"+itoa(i), slow, 0, nil)
		require.NoError(t, err)
	}
	gate := gateWrites(t, db)
	saved := make(chan error, 1)
	go func() { saved <- db.Save() }()
	await(t, gate.entered, "the checkpoint's write to start")

	within(t, "Len (every shard) while the checkpoint's write is blocked", func() {
		n, err := db.Len()
		assert.NoError(t, err)
		assert.Equal(t, n, 1000)
	})
	within(t, "a take while the checkpoint's write is blocked", func() {
		d, err := db.Take(def, "key:1", slow, 5*tok, nil)
		assert.NoError(t, err)
		assert.False(t, d.Allowed)
	})
	within(t, "Clear while the checkpoint's write is blocked", func() { assert.NoError(t, db.Clear()) })
	within(t, "a take after it", func() {
		d, err := db.Take(def, "key:2", slow, tok, nil)
		assert.NoError(t, err)
		assert.Equal(t, 4*tok, d.Remaining)
	})
	want := map[bk]bucket.Tokens{{def, "key:2"}: 4 * tok}
	assert.Equal(t, want, remaining(afterCrash(t, db, c.Wall())), "a crash now keeps every answered change")

	gate.open()
	require.NoError(t, await(t, saved, "Save"))
	assert.Len(t, inPages(t, db, c.Wall()), n, "the checkpoint holds the pages as they were when it began")
	assert.Equal(t, want, remaining(afterCrash(t, db, c.Wall())), "and the log what came after")
}

// TestCheckpointWritesTheWallOffset: every checkpoint writes the offset
// from the timeline of the pages' instants to wall time, however small a
// step of the wall clock, and the pages keep instants of the timeline.
func TestCheckpointWritesTheWallOffset(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpen(t, testOptions(c))
	take(t, db, def, "k", slow, tok)
	require.NoError(t, db.Save())
	off, ok := dbWallOffset(t, db)
	require.True(t, ok, "written with the pages")
	assert.Zero(t, off)

	for i, st := range []struct {
		step, want time.Duration
	}{
		{time.Microsecond, time.Microsecond},
		{-time.Microsecond, 0},
		{-time.Hour, -time.Hour},
		{0, -time.Hour},
	} {
		before := commits(t, db)
		c.StepWall(st.step)
		require.NoError(t, db.Save())
		assert.Equal(t, before+1, commits(t, db), "step %d: a checkpoint is a commit", i)
		off, _ = dbWallOffset(t, db)
		assert.Equal(t, st.want, off, "step %d: %v", i, st.step)
	}

	// UpdatedAt is in today's wall time: an hour earlier.
	snap, ok := peek(t, db, def, "k")
	require.True(t, ok)
	assert.Equal(t, t0.Add(-time.Hour), snap.UpdatedAt)

	c.StepWall(time.Minute)
	take(t, db, def, "k", slow, tok)
	require.NoError(t, db.Save())
	off, _ = dbWallOffset(t, db)
	assert.Equal(t, -59*time.Minute, off)
	assert.Equal(t, t0, time.Unix(0, diskState(t, onDisk(t, db), "k", def).Updated),
		"the pages hold instants of the timeline, not of the stepped wall clock")
	snap, ok = inPages(t, db, c.Wall())[bk{def, "k"}]
	require.True(t, ok)
	assert.Equal(t, t0.Add(-59*time.Minute), snap.UpdatedAt, "a restart maps them to wall time with the offset")
}

// TestLogHoldsWallInstants: a record holds its bucket's instants in wall
// time, so that a restart, whose timeline starts at its own wall time,
// reads them right after a step of the wall clock, and refills a bucket
// for the time the DB was down.
func TestLogHoldsWallInstants(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpen(t, storage.Options{Clock: c, Sync: storage.SyncAlways, SyncInterval: time.Hour})
	c.StepWall(-time.Hour)
	take(t, db, def, "k", five, 3*tok)
	snap, ok := afterCrash(t, db, c.Wall())[bk{def, "k"}]
	require.True(t, ok)
	assert.Equal(t, t0.Add(-time.Hour), snap.UpdatedAt)
	assert.Equal(t, 2*tok, snap.Remaining)

	snap, ok = afterCrash(t, db, c.Wall().Add(3*time.Second))[bk{def, "k"}]
	require.True(t, ok)
	assert.Equal(t, t0.Add(-time.Hour), snap.UpdatedAt)
	assert.Equal(t, 3*tok, snap.Remaining, "a token for the 3 s down")
	assert.Equal(t, 6*time.Second, snap.ResetAfter)
}

func TestCloseWritesTheSmallestWallStep(t *testing.T) {
	c := storetest.NewClock(t0)
	path := t.TempDir() + "/bucketd.db"
	db := mustOpenAt(t, path, testOptions(c))
	take(t, db, def, "k", five, 5*tok) // empty: a token every 3 s
	require.NoError(t, db.Save())

	// Close's checkpoint writes the offset, however small its step, with
	// nothing else to write.
	step := time.Microsecond
	c.StepWall(step)
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
