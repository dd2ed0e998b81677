package wal

import (
	"sync/atomic"
	"time"
)

// Stats counts the log's group writes since Open: each is one write and one
// fdatasync of every record pending (see the package documentation).
type Stats struct {
	// Writes counts the groups written, failed or not.
	Writes uint64
	// Errors counts the groups whose write or sync failed.
	Errors uint64
	// Bytes is the sum of the groups' sizes, failed or not: what was handed
	// to the disk.
	Bytes uint64
	// Duration is the time spent in the writes and syncs, failed or not.
	Duration time.Duration
}

// counters are a Log's Stats, updated without its lock.
type counters struct {
	writes, errors, bytes atomic.Uint64
	nanos                 atomic.Int64
}

func (c *counters) note(n int, d time.Duration, err error) {
	c.writes.Add(1)
	c.bytes.Add(uint64(n))
	c.nanos.Add(int64(d))
	if err != nil {
		c.errors.Add(1)
	}
}

// Stats returns the log's counts since Open. It takes no lock.
func (l *Log) Stats() Stats {
	return Stats{
		Writes:   l.stats.writes.Load(),
		Errors:   l.stats.errors.Load(),
		Bytes:    l.stats.bytes.Load(),
		Duration: time.Duration(l.stats.nanos.Load()),
	}
}
