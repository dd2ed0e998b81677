package wal

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncAll calls l.Sync for each seq from its own goroutine and returns the
// errors once every call has returned.
func syncAll(l *Log, seqs []uint64) []error {
	errs := make([]error, len(seqs))
	var wg sync.WaitGroup
	for i, seq := range seqs {
		wg.Go(func() { errs[i] = l.Sync(seq) })
	}
	wg.Wait()
	return errs
}

func seqsOf(recs []rec) []uint64 {
	seqs := make([]uint64, len(recs))
	for i, r := range recs {
		seqs[i] = r.Seq
	}
	return seqs
}

// TestGroupCommitWindow shows on a fake clock how a leader gathers a group:
// until as many records are pending as the last group held, or
// MaxGroupBytes, or for Window at most; and not at all when it waited for
// an earlier group.
func TestGroupCommitWindow(t *testing.T) {
	t.Parallel()
	const window = time.Millisecond
	tests := []struct {
		name      string
		opts      Options
		lastGroup int  // records of a first group, written by Flush
		waitFirst bool // hold the first group in its sync while the next leader comes
		leader    int  // records appended before the leader calls Sync
		later     int  // records appended while it gathers
		wantTime  time.Duration
		wantSyncs int64 // after the first group
	}{
		{name: "one writer does not wait", opts: Options{Window: window}, lastGroup: 1, leader: 1, wantSyncs: 1},
		{name: "no wait for a fresh log", opts: Options{Window: window}, leader: 1, wantSyncs: 1},
		{name: "gathers as many as the last group", opts: Options{Window: window}, lastGroup: 4, leader: 1, later: 3, wantSyncs: 1},
		{name: "the window ends it", opts: Options{Window: window}, lastGroup: 4, leader: 1, later: 2, wantTime: window, wantSyncs: 1},
		{name: "a negative window never waits", opts: Options{Window: -1}, lastGroup: 4, leader: 1, later: 2, wantSyncs: 2},
		{
			name: "MaxGroupBytes ends it", opts: Options{Window: time.Hour, MaxGroupBytes: 3 * (recordHeaderLen + 10)},
			lastGroup: 10, leader: 1, later: 2, wantSyncs: 1,
		},
		{name: "no window after waiting", opts: Options{Window: window}, lastGroup: 4, waitFirst: true, leader: 2, wantSyncs: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var fk fakes
				l := mustOpen(t, t.TempDir(), tt.opts, fk.open)
				f := fk.last()
				first := make(chan error, 1)
				if tt.waitFirst {
					f.hold = make(chan struct{})
				}
				appendAll(t, l, 0, make([]int, tt.lastGroup)...)
				go func() { first <- l.Flush() }()
				synctest.Wait()
				if !tt.waitFirst {
					require.NoError(t, <-first)
				}
				syncs := f.syncs.Load()

				recs := appendAll(t, l, 100, slices.Repeat([]int{10}, tt.leader)...)
				done := make(chan error, 1)
				go func() { done <- l.Sync(recs[len(recs)-1].Seq) }()
				synctest.Wait() // the leader gathers, or waits for the first group
				start := time.Now()
				if tt.waitFirst {
					close(f.hold)
					require.NoError(t, <-first)
				}
				recs = append(recs, appendAll(t, l, 200, slices.Repeat([]int{10}, tt.later)...)...)
				require.NoError(t, <-done)
				assert.Equal(t, tt.wantTime, time.Since(start), "time gathering")
				require.NoError(t, l.Sync(recs[len(recs)-1].Seq))
				assert.Equal(t, tt.wantSyncs, f.syncs.Load()-syncs, "syncs")
			})
		})
	}
	t.Run("32 writers, one group", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			var fk fakes
			l := mustOpen(t, t.TempDir(), Options{Window: window}, fk.open)
			const n = 32
			appendAll(t, l, 0, make([]int, n)...)
			require.NoError(t, l.Flush())
			errs := make([]error, n)
			var wg sync.WaitGroup
			start := time.Now()
			for i := range n {
				wg.Go(func() {
					seq, err := l.Append(payloadOf(i, 10))
					if err == nil {
						err = l.Sync(seq)
					}
					errs[i] = err
				})
			}
			wg.Wait()
			assert.Zero(t, time.Since(start), "no waiting out the window")
			for _, err := range errs {
				assert.NoError(t, err)
			}
			f := fk.last()
			assert.Equal(t, [2]int64{2, 2}, [2]int64{f.writes.Load(), f.syncs.Load()}, "writes, syncs")
		})
	})
}

// TestGroupCommitConcurrent runs many goroutines that append and sync on
// the real clock: every Sync succeeds and every record is replayed once.
// How many groups form depends on the scheduler (with one P and a file that
// syncs at once, each group can hold one record), so it is only logged;
// TestGroupCommitWindow's "32 writers, one group" pins grouping on a fake clock.
func TestGroupCommitConcurrent(t *testing.T) {
	t.Parallel()
	const goroutines, perGoroutine = 32, 20
	dir := t.TempDir()
	var fk fakes
	l := mustOpen(t, dir, Options{}, fk.open)
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*perGoroutine)
	for g := range goroutines {
		wg.Go(func() {
			for i := range perGoroutine {
				seq, err := l.Append(fmt.Appendf(nil, "%d/%d", g, i))
				if err == nil {
					err = l.Sync(seq)
				}
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, l.Close())
	writes, syncs := fk.counts()
	records := goroutines * perGoroutine
	t.Logf("%d records, %d writes, %d syncs: %.1f records per sync", records, writes, syncs, float64(records)/float64(syncs))

	got, last, err := replayAll(t, dir, 0, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(records), last)
	seen := map[string]int{}
	for i, r := range got {
		assert.Equal(t, uint64(i+1), r.Seq)
		seen[string(r.Payload)]++
	}
	for g := range goroutines {
		for i := range perGoroutine {
			assert.Equal(t, 1, seen[fmt.Sprintf("%d/%d", g, i)], "record %d/%d", g, i)
		}
	}
}

func TestSyncFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                                 string
		failWrites, failSyncs, failTruncates int32
		retry                                string // "sync", "flush", "rotate" or "close"
	}{
		{name: "sync fails", failSyncs: 1, retry: "sync"},
		{name: "write fails halfway", failWrites: 1, retry: "sync"},
		{name: "sync and truncate fail", failSyncs: 1, failTruncates: 1, retry: "sync"},
		{name: "write and truncate fail", failWrites: 1, failTruncates: 1, retry: "sync"},
		{name: "sync fails twice", failSyncs: 2, retry: "sync"},
		{name: "retried by Flush", failWrites: 1, failTruncates: 1, retry: "flush"},
		{name: "retried by Rotate", failSyncs: 1, failTruncates: 1, retry: "rotate"},
		{name: "retried by Close", failWrites: 1, failTruncates: 1, retry: "close"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var fk fakes
			l := mustOpen(t, dir, Options{Window: -1}, fk.open)
			want := appendAll(t, l, 0, 10, 20)
			require.NoError(t, l.Sync(2))
			good := l.Size()

			f := fk.last()
			f.failWrites.Store(tt.failWrites)
			f.failSyncs.Store(tt.failSyncs)
			f.failTruncates.Store(tt.failTruncates)
			want = append(want, appendAll(t, l, 2, 30, 0, 40)...)
			for i := range max(tt.failWrites, tt.failSyncs) {
				err := l.Sync(5)
				require.ErrorIs(t, err, errInjected)
				assert.Equal(t, i < tt.failTruncates, strings.Contains(err.Error(), "truncate back"),
					"the error names the truncation when it failed, and only then: %v", err)
			}
			if tt.failTruncates == 0 {
				assert.Equal(t, good, fileSize(t, segPath(dir, 1)), "the failed bytes are cut off")
			}
			assert.Equal(t, uint64(5), l.LastSeq())
			want = append(want, appendAll(t, l, 5, 50)...)
			switch tt.retry {
			case "sync":
				require.NoError(t, l.Sync(6))
			case "flush":
				require.NoError(t, l.Flush())
			case "rotate":
				first, err := l.Rotate()
				require.NoError(t, err)
				assert.Equal(t, uint64(7), first)
			}
			size := l.Size()
			require.NoError(t, l.Close())
			assert.Equal(t, dirSize(t, dir), size, "nothing but the records")
			assertReplays(t, dir, want)
		})
	}
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	require.NoError(t, err)
	return info.Size()
}

// TestSyncFailureWaiters shows, on a fake clock, that every waiter of a
// failed group gets its error, and that a later Sync writes the records.
func TestSyncFailureWaiters(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		var fk fakes
		l := mustOpen(t, dir, Options{}, fk.open)
		f := fk.last()
		f.failSyncs.Store(1)
		f.hold = make(chan struct{})
		want := appendAll(t, l, 0, 10, 11, 12, 13, 14, 15, 16, 17)

		var errs []error
		done := make(chan struct{})
		go func() {
			errs = syncAll(l, seqsOf(want))
			close(done)
		}()
		synctest.Wait() // one leads and is held in its sync; the others wait
		close(f.hold)
		<-done
		for i, err := range errs {
			assert.ErrorIs(t, err, errInjected, "waiter %d", i)
		}
		for i, err := range syncAll(l, seqsOf(want)) {
			assert.NoError(t, err, "waiter %d", i)
		}
		assert.Equal(t, [2]int64{2, 2}, [2]int64{f.writes.Load(), f.syncs.Load()})
		require.NoError(t, l.Close())
		assertReplays(t, dir, want)
	})
}

// TestCloseWakesWaiters closes the log while a group is being written and
// others wait: Close flushes their records, and they all return nil.
func TestCloseWakesWaiters(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		var fk fakes
		l := mustOpen(t, dir, Options{Window: -1}, fk.open)
		f := fk.last()
		f.hold = make(chan struct{})
		want := appendAll(t, l, 0, 1)
		first := make(chan error)
		go func() { first <- l.Sync(1) }()
		synctest.Wait() // the first group is held in its sync
		want = append(want, appendAll(t, l, 1, 2, 3)...)
		var errs []error
		done := make(chan struct{})
		go func() {
			errs = syncAll(l, []uint64{2, 3})
			close(done)
		}()
		synctest.Wait() // they wait for the first group
		closed := make(chan error)
		go func() { closed <- l.Close() }()
		synctest.Wait()
		close(f.hold)
		require.NoError(t, <-first)
		require.NoError(t, <-closed)
		<-done
		assert.Equal(t, []error{nil, nil}, errs)
		assertReplays(t, dir, want)
	})
}
