package storage

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

// fast is a limit no benchmark exhausts, so that every take is allowed and
// changes its bucket: the path that costs the most.
var fast = bucket.Limit{Capacity: tok(1_000_000_000), Rate: bucket.PerSecond(1_000_000_000)}

const benchKeys = 100_000

func benchKeyNames() []string {
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = fmt.Sprint("user:", i)
	}
	return keys
}

func BenchmarkTakeOneKey(b *testing.B) {
	db := mustOpen(b, Options{Default: fast}) // the real clock and flusher
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.Take("hot", "", bucket.Token); err != nil {
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
			db := mustOpen(b, Options{Default: fast})
			keys := benchKeyNames()
			if populated {
				for _, k := range keys {
					_, err := db.Take(k, "", bucket.Token)
					require.NoError(b, err)
				}
			}
			benchTakeParallel(b, db, keys)
		})
	}
}

// benchTakeParallel takes one token per op from keys, each goroutine
// walking them from its own random start.
func benchTakeParallel(b *testing.B, db *DB, keys []string) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(keys))
		for pb.Next() {
			i = (i + 7919) % len(keys) // a prime stride: spread over shards
			if _, err := db.Take(keys[i], "", bucket.Token); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkTakeSyncAlwaysParallel(b *testing.B) {
	db := mustOpen(b, Options{Default: fast, Sync: SyncAlways})
	keys := benchKeyNames()
	before := commits(b, db)
	b.SetParallelism(32) // many clients waiting on the disk at once
	benchTakeParallel(b, db, keys)
	b.StopTimer()
	b.ReportMetric(float64(commits(b, db)-before)/float64(b.N), "commits/op")
}

// BenchmarkFlush times one flush of 100 000 changed buckets: "insert" of
// keys new to the file (a burst of new clients, or the first flush after
// FlushAll), "update" of keys already in it (the steady state).
func BenchmarkFlush(b *testing.B) {
	for _, insert := range []bool{true, false} {
		name := "update"
		if insert {
			name = "insert"
		}
		b.Run(name, func(b *testing.B) {
			c := newClock(t0) // frozen: nothing refills, so every take changes its bucket
			db := mustOpen(b, Options{Default: fast, Now: c.Now, SyncInterval: time.Hour})
			keys := benchKeyNames()
			dirty := func() {
				for _, k := range keys {
					if _, err := db.Take(k, "", bucket.Token); err != nil {
						b.Fatal(err)
					}
				}
			}
			dirty()
			require.NoError(b, db.Save()) // the file holds every key, and has grown to fit
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if insert {
					require.NoError(b, db.FlushAll())
				}
				dirty()
				b.StartTimer()
				if err := db.Save(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchKeys), "ns/key")
		})
	}
}
