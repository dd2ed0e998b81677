package storage

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/bucketd/bucketd/bucket"
)

// sweepEvery is about how often the flusher drops the buckets that have
// refilled. Until then a full bucket waits in memory, answering as full:
// every read treats it as absent.
const sweepEvery = 5 * time.Second

// maxDrift is how far the wall clock may drift from the timeline before a
// flush with no changed page writes the offset anyway: a restart may be off
// by that much of refill.
const maxDrift = int64(time.Millisecond)

// maxBackoff is the longest wait between retries of a failing flush.
const maxBackoff = 30 * time.Second

// flushWait is a flush that callers wait for.
type flushWait struct {
	done  chan struct{}
	err   error
	sweep bool // guarded by DB.mu
}

// flusher writes changed buckets every interval, and whenever a caller
// waits for a flush. After a failed interval flush the next one waits twice
// as long, up to maxBackoff (a caller that waits is served at once,
// whatever the backoff); each failure is logged once, with the number of
// failures in a row, and so is the recovery. It returns when the DB closes.
func (db *DB) flusher() {
	defer close(db.done)
	ticksPerSweep := max(1, int(sweepEvery/db.every))
	ticks, failures := 0, 0
	tick := db.clock.After(db.every)
	for {
		sweep, timed := false, false
		select {
		case <-db.stop:
			return
		case <-tick:
			ticks++
			sweep = ticks%ticksPerSweep == 0
			timed = true
		case <-db.kick:
		}
		db.mu.Lock()
		w := db.pending
		db.pending = nil
		if w != nil && w.sweep {
			sweep = true
		}
		db.mu.Unlock()
		err := db.flush(sweep)
		if w != nil {
			w.err = err
			close(w.done)
		}
		wait := db.every
		rearm := timed || err != nil
		switch {
		case err != nil:
			failures++
			wait = min(db.every<<min(failures, 16), maxBackoff)
			db.log.Error("storage: flush failed; changes stay in memory and will be retried",
				"failures", failures, "retry_in", wait, "err", err)
		case failures > 0:
			db.log.Info("storage: flush recovered", "failures", failures)
			failures = 0
			rearm = true // the interval from now, not what is left of the backoff
		}
		if rearm {
			tick = db.clock.After(wait)
		}
	}
}

// durable returns nil under SyncInterval. Under SyncAlways it waits until a
// flush that starts after this call has written every change made before
// it, and returns its failure wrapped in bucket.ErrNotDurable.
func (db *DB) durable() error {
	if db.sync != SyncAlways {
		return nil
	}
	if err := db.waitFlush(false); err != nil {
		return fmt.Errorf("%w: %w", bucket.ErrNotDurable, err)
	}
	return nil
}

// waitFlush waits until a flush that starts after this call has written
// everything changed before it. With sweep, that flush also drops the
// buckets that have refilled; takes leave that to the interval, since it
// visits every bucket.
func (db *DB) waitFlush(sweep bool) error {
	db.mu.Lock()
	if db.finalized {
		err := db.finalErr
		db.mu.Unlock()
		return err
	}
	w := db.pending
	if w == nil {
		w = &flushWait{done: make(chan struct{})}
		db.pending = w
	}
	w.sweep = w.sweep || sweep
	db.mu.Unlock()
	select {
	case db.kick <- struct{}{}:
	default:
	}
	<-w.done
	return w.err
}

// pageWrite is one page to write: arena[off:end], or a delete if empty.
type pageWrite struct {
	id       uint16
	off, end int
}

// pageKey is a page's bbolt key: its id, big-endian, so that a flush puts
// pages in key order.
func pageKey(id uint16) []byte { return []byte{byte(id >> 8), byte(id)} }

// flush writes every changed page in one transaction, with the timeline's
// offset to wall time, after dropping the buckets that have refilled if
// sweep is set. Shard locks are held only while pages are copied out, never
// during the write. On failure the pages stay dirty, to be written by the
// next flush, and Health reports the failure until a flush succeeds.
func (db *DB) flush(sweep bool) error {
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	writes := db.writes[:0]
	arena := db.arena[:0]
	defer func() { // keep the buffers for the next flush, unless one was huge
		if cap(arena) <= 64<<20 {
			db.arena, db.writes = arena[:0], writes[:0]
		}
	}()
	for i := range db.table.shards {
		s := &db.table.shards[i]
		s.mu.Lock()
		if sweep {
			s.sweepLocked(db.now())
		}
		for pg := range pagesPerShard {
			if s.dirty&(1<<pg) == 0 {
				continue
			}
			off := len(arena)
			arena = s.appendPage(arena, pg)
			writes = append(writes, pageWrite{id: uint16(i*pagesPerShard + pg), off: off, end: len(arena)})
		}
		s.dirty = 0
		s.mu.Unlock()
	}
	wall := db.clock.Wall().UnixNano()
	off := db.wallOffset()
	drift := off - db.savedOffset
	// The offset is written with the pages; alone, only when it moved by
	// more than the drift of a slewing clock, or when the DB closes.
	if len(writes) == 0 && db.health.Load() == nil && (drift == 0 || !db.closed.Load() && drift > -maxDrift && drift < maxDrift) {
		db.lastSave.Store(wall)
		return nil
	}
	offset := binary.LittleEndian.AppendUint64(nil, uint64(off))
	err := db.disk.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(metaName).Put(clockKey, offset); err != nil {
			return err
		}
		b := tx.Bucket(pagesName)
		for _, w := range writes {
			var err error
			if w.off == w.end {
				err = b.Delete(pageKey(w.id))
			} else {
				err = b.Put(pageKey(w.id), arena[w.off:w.end])
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		for _, w := range writes { // keep them for the next flush
			s := &db.table.shards[int(w.id)/pagesPerShard]
			s.mu.Lock()
			s.markLocked(int(w.id) % pagesPerShard)
			s.mu.Unlock()
		}
		err = fmt.Errorf("storage: flush: %w", err)
		db.health.Store(&err)
		return err
	}
	db.savedOffset = off
	db.health.Store(nil)
	db.lastSave.Store(wall)
	return nil
}

// Close stops the background flusher, writes every change, and closes the
// file. Every method but Close then fails with bucket.ErrClosed. Close is
// idempotent, and returns the same error each time.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.closed.Store(true)
		close(db.stop)
		<-db.done
		db.mu.Lock()
		w := db.pending
		db.pending = nil
		err := db.flush(true)
		db.finalized, db.finalErr = true, err
		db.mu.Unlock()
		if w != nil {
			w.err = err
			close(w.done)
		}
		if cerr := db.bolt.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("storage: close: %w", cerr)
		}
		db.closeErr = err
	})
	return db.closeErr
}

// Save implements Store: it writes every change now, sweeping the buckets
// that have refilled, and waits for it.
func (db *DB) Save() error {
	if db.closed.Load() {
		return bucket.ErrClosed
	}
	if err := db.waitFlush(true); err != nil {
		return fmt.Errorf("%w: %w", bucket.ErrNotDurable, err)
	}
	return nil
}

// Health implements Store.
func (db *DB) Health() error {
	if db.closed.Load() {
		return bucket.ErrClosed
	}
	if p := db.health.Load(); p != nil {
		return fmt.Errorf("%w: %w", bucket.ErrNotDurable, *p)
	}
	return nil
}

// LastSave implements Store.
func (db *DB) LastSave() time.Time { return time.Unix(0, db.lastSave.Load()) }
