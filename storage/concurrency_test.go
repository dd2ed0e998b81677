package storage_test

import (
	"bytes"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

var syncModes = []storage.SyncMode{storage.SyncInterval, storage.SyncAlways}

// TestTakesExactUnderContention takes from a few keys, in two namespaces,
// from many goroutines at once: each bucket allows exactly its capacity,
// and the disk ends up holding what memory does.
func TestTakesExactUnderContention(t *testing.T) {
	for _, mode := range syncModes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			c := storetest.NewClock(t0) // frozen: nothing refills
			db := mustOpen(t, storage.Options{Clock: c, Sync: mode})

			// Every goroutine takes from every bucket (16 keys, 2
			// namespaces) 4 times, each from its own starting bucket:
			// per bucket 128 takes for 100 tokens.
			const keys, goroutines, rounds = 16, 32, 4
			nss := []storage.Namespace{def, cell}
			var allowed [2][keys]atomic.Int64
			start := make(chan struct{})
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					<-start
					for n := range 2 * keys * rounds {
						b := (g + n) % (2 * keys)
						ns, k := b%2, b/2
						d, err := db.Take(nss[ns], "key:"+itoa(k), hundred, tok, nil)
						if !assert.NoError(t, err) {
							return
						}
						if d.Allowed {
							allowed[ns][k].Add(1)
						}
					}
				})
			}
			close(start)
			wg.Wait()
			for ns := range 2 {
				for k := range keys {
					assert.Equal(t, int64(100), allowed[ns][k].Load(), "%s key:%d: exactly the capacity", nss[ns], k)
				}
			}
			assert.Equal(t, keys, dbLen(t, db))

			require.NoError(t, db.Save())
			recs := onDisk(t, db)
			for k := range keys {
				for _, ns := range nss {
					assert.Equal(t, bucket.Tokens(0), diskTokens(t, recs, "key:"+itoa(k), ns))
				}
			}
		})
	}
}

// TestShardsAreIndependent holds the lock of one key's shard and works on
// a key of another shard: with one lock for the table it would block.
func TestShardsAreIndependent(t *testing.T) {
	db := mustOpen(t, testOptions(storetest.NewClock(t0)))
	shard := func(k string) uint16 { return storage.PageOf(db, k) / storage.PagesPerShard }
	other := ""
	for i := 0; other == ""; i++ {
		require.Less(t, i, 10_000)
		if k := "key:" + itoa(i); shard(k) != shard("held") {
			other = k
		}
	}

	unlock := storage.LockShard(db, "held")
	within(t, "work on another shard", func() {
		d, err := db.Take(def, other, five, tok, nil)
		assert.NoError(t, err)
		assert.True(t, d.Allowed)
		_, ok, err := db.Peek(def, other, nil)
		assert.NoError(t, err)
		assert.True(t, ok)
		_, err = db.Set(def, other, five, 2*tok, nil)
		assert.NoError(t, err)
		_, err = db.Reset(def, other)
		assert.NoError(t, err)
	})
	unlock()
	d := take(t, db, def, "held", five, tok)
	assert.True(t, d.Allowed)
}

// TestSyncAlwaysConcurrent checks, under free scheduling, that every take
// is in the log's files when it returns. (That takes share a write and an
// fdatasync is storage/wal's TestGroupCommitConcurrent.)
func TestSyncAlwaysConcurrent(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpenAt(t, fastDir(t)+"/bucketd.db", storage.Options{Clock: c, Sync: storage.SyncAlways})

	const goroutines, each = 64, 20
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			<-start
			key := "key:" + itoa(g) // only this goroutine changes it
			for range each {
				d, err := db.Take(cell, key, hundred, tok, nil)
				if !assert.NoError(t, err) || !assert.True(t, d.Allowed) {
					return
				}
				rec, ok := storage.JournalOf(db, cell, key) // what this take wrote
				if !assert.True(t, ok, key) {
					return
				}
				frames, err := logFrames(db)
				if !assert.NoError(t, err) {
					return
				}
				assert.True(t, slices.ContainsFunc(frames, func(f frame) bool { return bytes.Equal(f.payload, rec) }),
					"%s with %s tokens is in the log when Take returns", key, d.Remaining)
			}
		})
	}
	close(start)
	wg.Wait()
	want := buckets(t, db)
	require.Len(t, want, goroutines)
	assert.Equal(t, want, afterCrash(t, db, c.Wall()))
}

// TestCloseWhileTaking closes the DB under concurrent takes: every take
// either succeeds (and is then in the file) or fails with ErrClosed.
func TestCloseWhileTaking(t *testing.T) {
	for _, mode := range syncModes {
		t.Run(mode.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bucketd.db")
			c := storetest.NewClock(t0)
			db := mustOpenAt(t, path, storage.Options{Clock: c, Sync: mode})

			const goroutines = 16
			var taken [goroutines]atomic.Int64
			start := make(chan struct{})
			mid := make(chan struct{})
			midway := sync.OnceFunc(func() { close(mid) }) // goroutine 0 has taken 10, or has stopped
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					if g == 0 {
						defer midway()
					}
					<-start
					for range 100 {
						_, err := db.Take(def, "key:"+itoa(g), hundred, tok, nil)
						if err != nil {
							assert.ErrorIs(t, err, bucket.ErrClosed)
							return
						}
						if taken[g].Add(1) == 10 && g == 0 {
							midway()
						}
					}
				})
			}
			close(start)
			<-mid // close mid-stream
			require.NoError(t, db.Close())
			wg.Wait()

			recs := fileRecords(t, path)
			for g := range goroutines {
				if n := taken[g].Load(); n > 0 {
					assert.Equal(t, bucket.Tokens(100-n)*tok, diskTokens(t, recs, "key:"+itoa(g), def), "key:%d", g)
				}
			}
		})
	}
}

// TestClearUnderTakes races takes with Clear, for the race detector:
// afterwards memory and disk agree.
func TestClearUnderTakes(t *testing.T) {
	for _, mode := range syncModes {
		t.Run(mode.String(), func(t *testing.T) {
			c := storetest.NewClock(t0)
			path := filepath.Join(t.TempDir(), "bucketd.db")
			db := mustOpenAt(t, path, storage.Options{Clock: c, Sync: mode})
			const goroutines, each = 8, 200
			var wg sync.WaitGroup
			var done atomic.Bool
			for g := range goroutines {
				wg.Go(func() {
					for i := range each {
						_, err := db.Take(def, itoa(g)+":"+itoa(i), five, tok, nil)
						assert.NoError(t, err)
					}
				})
			}
			var clears sync.WaitGroup
			clears.Go(func() {
				for !done.Load() {
					assert.NoError(t, db.Clear())
				}
			})
			wg.Wait()
			done.Store(true)
			clears.Wait()
			n := dbLen(t, db)
			assert.Equal(t, storage.TableLen(db), n)
			require.NoError(t, db.Close())
			assert.Len(t, fileRecords(t, path), n, "the file holds what memory did")
		})
	}
}
