package storage

import (
	"sync/atomic"
	"time"
)

// Stats are a DB's counts since Open, for monitoring. Every count only
// grows; Keys is a level.
type Stats struct {
	// Keys is the number of keys held in memory, summed from the shards'
	// map sizes (no key is read): a key whose buckets have all refilled
	// stays counted until the next sweep drops it, within about 5 s.
	// Options.MaxKeys bounds it.
	Keys int
	// KeysCreated counts the keys added by takes and sets (not those
	// loaded at Open).
	KeysCreated uint64
	// Evicted counts the keys evicted for Options.MaxKeys.
	Evicted uint64
	// LogWrites counts the write-ahead log's group writes (one write and
	// one fdatasync each), LogErrors those that failed, LogBytes their
	// bytes and LogDuration the time they took, failed or not. Under
	// SyncInterval, LogBytes, LogErrors and LogDuration count the writes
	// out between the syncs too.
	LogWrites   uint64
	LogErrors   uint64
	LogBytes    uint64
	LogDuration time.Duration
	// Checkpoints counts the checkpoints written into the data file,
	// CheckpointErrors those that failed, CheckpointBytes the bytes of the
	// pages they wrote and CheckpointDuration the time they took.
	Checkpoints        uint64
	CheckpointErrors   uint64
	CheckpointBytes    uint64
	CheckpointDuration time.Duration
	// LastSave is when changes last reached the disk (LastSave).
	LastSave time.Time
	// Healthy is Health() == nil: the store is open and its last writes
	// succeeded.
	Healthy bool
}

// counters are the counts of Stats that the DB keeps itself.
type counters struct {
	created            atomic.Uint64
	checkpoints        atomic.Uint64
	checkpointErrors   atomic.Uint64
	checkpointBytes    atomic.Uint64
	checkpointDuration atomic.Int64
}

func (c *counters) noteCheckpoint(bytes int, d time.Duration, err error) {
	c.checkpoints.Add(1)
	c.checkpointDuration.Add(int64(d))
	if err != nil {
		c.checkpointErrors.Add(1)
		return
	}
	c.checkpointBytes.Add(uint64(bytes))
}

// Stats returns the DB's counts. It locks each shard in turn only to read
// its map sizes, so it costs the same however many keys there are, and
// may be called after Close.
func (db *DB) Stats() Stats {
	n := 0
	for i := range db.table.shards {
		s := &db.table.shards[i]
		s.mu.Lock()
		n += s.lenLocked()
		s.mu.Unlock()
	}
	ws := db.wal.Stats()
	return Stats{
		Keys:               n,
		KeysCreated:        db.stats.created.Load(),
		Evicted:            db.evicted.Load(),
		LogWrites:          ws.Writes,
		LogErrors:          ws.Errors,
		LogBytes:           ws.Bytes,
		LogDuration:        ws.Duration,
		Checkpoints:        db.stats.checkpoints.Load(),
		CheckpointErrors:   db.stats.checkpointErrors.Load(),
		CheckpointBytes:    db.stats.checkpointBytes.Load(),
		CheckpointDuration: time.Duration(db.stats.checkpointDuration.Load()),
		LastSave:           db.LastSave(),
		Healthy:            db.Health() == nil,
	}
}
