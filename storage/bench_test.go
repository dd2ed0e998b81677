package storage_test

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

// fast is a limit no benchmark exhausts, so that every take is allowed and
// changes its bucket: the path that costs the most.
var fast = []bucket.Limit{{Capacity: 1_000_000_000 * tok, Rate: bucket.PerSecond(1_000_000_000)}}

const benchKeys = 100_000

func benchKeyNames() []string {
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = "user:" + itoa(i)
	}
	return keys
}

func BenchmarkTakeOneKey(b *testing.B) {
	db := mustOpen(b, storage.Options{}) // the system clock and the real flusher
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.Take(def, "hot", fast, tok, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTakeParallel(b *testing.B) {
	for _, populated := range []bool{false, true} {
		name := "empty"
		if populated {
			name = "populated"
		}
		b.Run(name, func(b *testing.B) {
			db := mustOpen(b, storage.Options{})
			keys := benchKeyNames()
			if populated {
				for _, k := range keys {
					_, err := db.Take(def, k, fast, tok, nil)
					require.NoError(b, err)
				}
			}
			benchTakeParallel(b, db, keys)
		})
	}
}

// benchTakeParallel takes one token per op from keys, each goroutine
// walking them from its own random start.
func benchTakeParallel(b *testing.B, db *storage.DB, keys []string) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(keys))
		for pb.Next() {
			i = (i + 7919) % len(keys) // a prime stride: spread over shards
			if _, err := db.Take(def, keys[i], fast, tok, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkTakeSyncAlwaysParallel(b *testing.B) {
	db := mustOpen(b, storage.Options{Sync: storage.SyncAlways})
	keys := benchKeyNames()
	b.SetParallelism(32) // many clients waiting on the disk at once
	benchTakeParallel(b, db, keys)
	b.StopTimer()
	// How many takes share an fdatasync: storage/wal's BenchmarkAppendSync.
}

// BenchmarkFlush times one flush of 100 000 changed buckets: "insert" of
// keys new to the file (a burst of new clients, or the first flush after a
// Clear), "update" of keys already in it (the steady state).
func BenchmarkFlush(b *testing.B) {
	for _, insert := range []bool{true, false} {
		name := "update"
		if insert {
			name = "insert"
		}
		b.Run(name, func(b *testing.B) {
			// A clock that does not move: nothing refills, so every take
			// changes its bucket; and only Save flushes.
			c := storetest.NewClock(t0)
			db := mustOpen(b, storage.Options{Clock: c, SyncInterval: time.Hour})
			keys := benchKeyNames()
			dirty := func() {
				for _, k := range keys {
					if _, err := db.Take(def, k, fast, tok, nil); err != nil {
						b.Fatal(err)
					}
				}
			}
			timeSaves(b, db, benchKeys, "ns/key", func() {
				if insert {
					require.NoError(b, db.Clear())
					require.NoError(b, db.Save())
				}
				dirty()
			})
		})
	}
}

// BenchmarkTake1M takes one token per op from random keys of a store of
// a million buckets, on one goroutine; it reports the Go heap per bucket
// after a collection (the table itself is outside the heap).
func BenchmarkTake1M(b *testing.B) {
	const n = 1_000_000
	db := mustOpen(b, storage.Options{}) // the log written every second, as bucketd does
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "k:" + itoa(i)
		if _, err := db.Take(cell, keys[i], fast, tok, nil); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap := float64(ms.HeapAlloc) / n
	rng := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := db.Take(cell, keys[rng.IntN(n)], fast, tok, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(heap, "heap-B/bucket")
}

// BenchmarkTakeBatch1M is BenchmarkTake1M in batches of 16 takes, as
// pipelined CL.THROTTLEs (redis-benchmark -P 16) reach the store; an op is
// one take.
func BenchmarkTakeBatch1M(b *testing.B) {
	const n, batch = 1_000_000, 16
	db := mustOpen(b, storage.Options{})
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "k:" + itoa(i)
		if _, err := db.Take(cell, keys[i], fast, tok, nil); err != nil {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	reqs := make([]storage.TakeReq, batch)
	var out []storage.TakeResult
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		for j := range reqs {
			reqs[j] = storage.TakeReq{Key: keys[rng.IntN(n)], Limits: fast, Cost: tok}
		}
		out = db.TakeBatch(cell, reqs, out[:0])
		for _, r := range out {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
}

// BenchmarkCheckpoint1M times a checkpoint (Save) of a million changed
// buckets, as a checkpoint under uniform churn over a million keys writes
// them: every page changed. It reports ns per bucket; the log is written
// once an hour, so only Save writes.
func BenchmarkCheckpoint1M(b *testing.B) {
	const n = 1_000_000
	c := storetest.NewClock(t0)
	db := mustOpen(b, storage.Options{Clock: c, SyncInterval: time.Hour})
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "k:" + itoa(i)
	}
	dirty := func() {
		for _, k := range keys {
			if _, err := db.Take(cell, k, fast, tok, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	timeSaves(b, db, n, "ns/bucket", dirty)
}

// timeSaves times b.N Saves of db, each after prepare (untimed), which
// changes n buckets; it reports the time per bucket as unit. Before the
// first, prepare runs once and Save writes every key, so that the file
// has grown to fit.
func timeSaves(b *testing.B, db *storage.DB, n int, unit string, prepare func()) {
	prepare()
	require.NoError(b, db.Save())
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		prepare()
		b.StartTimer()
		if err := db.Save(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), unit)
}
