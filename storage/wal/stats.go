package wal

import (
	"sync/atomic"
	"time"
)

// Stats counts the log's writes since Open: its group writes, each one
// write and one fdatasync of every record pending (see the package
// documentation), and its WriteOuts, each one write.
type Stats struct {
	// Writes counts the groups written, failed or not.
	Writes uint64
	// Errors counts the groups whose write or sync failed, and the
	// WriteOuts whose write failed.
	Errors uint64
	// Bytes is the sum of the groups' and the WriteOuts' sizes, failed or
	// not: what was handed to the operating system. A group that syncs what
	// a WriteOut wrote counts only the bytes it writes itself.
	Bytes uint64
	// Duration is the time spent in the writes and syncs, failed or not.
	Duration time.Duration
}

// counters are a Log's Stats, updated without its lock.
type counters struct {
	writes, errors, bytes atomic.Uint64
	nanos                 atomic.Int64
}

// note counts a group of n bytes.
func (c *counters) note(n int, d time.Duration, err error) {
	c.writes.Add(1)
	c.noteOut(n, d, err)
}

// noteOut counts a WriteOut of n bytes.
func (c *counters) noteOut(n int, d time.Duration, err error) {
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
