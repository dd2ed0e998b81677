package wal

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkAppend measures Append alone: framing, checksum and copy into
// the pending group, no I/O (the log is flushed outside the timer).
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{64, 256} {
		b.Run(fmt.Sprintf("payload=%d", size), func(b *testing.B) {
			l := mustOpen(b, b.TempDir(), Options{}, nil)
			p := payloadOf(1, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := l.Append(p); err != nil {
					b.Fatal(err)
				}
				if i%(1<<12) == 0 { // about 1 MiB of 256-byte records
					b.StopTimer()
					if err := l.Flush(); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			}
		})
	}
}

// BenchmarkAppendSync measures Append then Sync on the real disk
// (b.TempDir), from one goroutine and from concurrent ones, and reports how
// many records share one fdatasync.
func BenchmarkAppendSync(b *testing.B) {
	b.Run("goroutines=1", func(b *testing.B) {
		var fk fakes
		l := mustOpen(b, b.TempDir(), Options{}, fk.open)
		p := payloadOf(1, 100)
		b.ReportAllocs()
		for b.Loop() {
			seq, err := l.Append(p)
			if err == nil {
				err = l.Sync(seq)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		reportGroups(b, &fk)
	})
	for _, bc := range []struct {
		goroutines int
		window     time.Duration
		name       string
	}{
		{32, 0, "goroutines=32"},
		{32, -1, "goroutines=32/window=none"},
		{256, 0, "goroutines=256"},
	} {
		procs := runtime.GOMAXPROCS(0)
		if bc.goroutines%procs != 0 {
			b.Skipf("GOMAXPROCS=%d does not divide %d goroutines", procs, bc.goroutines)
		}
		b.Run(bc.name, func(b *testing.B) {
			var fk fakes
			l := mustOpen(b, b.TempDir(), Options{Window: bc.window}, fk.open)
			p := payloadOf(1, 100)
			b.SetParallelism(bc.goroutines / procs)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					seq, err := l.Append(p)
					if err == nil {
						err = l.Sync(seq)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportGroups(b, &fk)
		})
	}
}

// reportGroups reports the records per fdatasync of a benchmark that
// synced each record.
func reportGroups(b *testing.B, fk *fakes) {
	_, syncs := fk.counts()
	b.ReportMetric(float64(b.N)/float64(max(syncs, 1)), "records/sync")
}

// BenchmarkReplay measures Replay of a segment of 100,000 records of 100
// bytes, the scale of a restart after a busy interval.
func BenchmarkReplay(b *testing.B) {
	dir := b.TempDir()
	l := mustOpen(b, dir, Options{}, nil)
	const records = 100_000
	p := payloadOf(1, 100)
	for range records {
		if _, err := l.Append(p); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(records * int64(recordHeaderLen+len(p)))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if _, err := Replay(dir, 0, func(uint64, []byte) error { n++; return nil }, nil); err != nil || n != records {
			b.Fatal(n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*records), "ns/record")
}
