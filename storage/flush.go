package storage

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"runtime"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/bucketd/bucketd/bucket"
)

// sweepEvery is about how often the flusher drops the buckets that have
// refilled. Until then a full bucket waits in memory, answering as full:
// every read treats it as absent.
const sweepEvery = 5 * time.Second

// maxBackoff is the longest wait between retries of a failing flush.
const maxBackoff = 30 * time.Second

// logWriteEvery is how often, under SyncInterval, the log's pending records
// are written to its file (without a sync) between the syncs of every
// SyncInterval, when that is longer. Written, they survive a crash of the
// process (SIGKILL, the OOM killer, a panic): the operating system holds
// them. A crash of the machine loses what was not synced.
const logWriteEvery = 100 * time.Millisecond

// flushWait is a flush that callers wait for.
type flushWait struct {
	done  chan struct{}
	err   error
	sweep bool // guarded by DB.mu
}

// flusher writes changed buckets every interval, and whenever a caller
// waits for a flush; under SyncInterval it also writes the log out every
// logWriteEvery between them. After a failed interval flush the next one
// waits twice as long, up to maxBackoff (a caller that waits is served at
// once, whatever the backoff); each failure is logged once, with the
// number of failures in a row, and so is the recovery. It returns when the
// DB closes.
func (db *DB) flusher() {
	defer close(db.done)
	ticksPerSweep := max(1, int(sweepEvery/db.every))
	ticks, failures := 0, 0
	var hold time.Duration // after failures, checkpoints wait until the clock's Mono reaches it
	step := db.every
	if db.sync == SyncInterval {
		step = min(db.every, logWriteEvery)
	}
	flushed := db.clock.Mono() // when the last timed flush ended
	tick := db.clock.After(step)
	for {
		sweep, timed := false, false
		select {
		case <-db.stop:
			return
		case <-tick:
			if db.clock.Mono()-flushed < db.every {
				db.writeOut()
				tick = db.clock.After(step)
				continue
			}
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
		// The log is written every interval, whatever the backoff: only
		// checkpoints back off.
		err := db.flush(sweep, w != nil, w != nil || db.clock.Mono() >= hold)
		switch {
		case err != nil:
			failures++
			wait := min(db.every<<min(failures, 16), maxBackoff)
			hold = db.clock.Mono() + wait
			db.log.Error("storage: flush failed; changes stay in memory and will be retried",
				"failures", failures, "retry_in", wait, "err", err)
		case failures > 0 && db.health.Load() == nil && db.logErr.Load() == nil:
			db.log.Info("storage: flush recovered", "failures", failures)
			failures, hold = 0, 0
		}
		if w != nil { // after the backoff is set: a waiter may move the clock next
			w.err = err
			close(w.done)
		}
		if timed { // the next interval counts from the end of this flush
			flushed = db.clock.Mono()
			tick = db.clock.After(step)
		}
	}
}

// writeOut writes the log's pending records out without a sync (see
// logWriteEvery). A failure is reported by Health until a flush succeeds.
func (db *DB) writeOut() {
	if err := db.wal.WriteOut(); err != nil {
		db.noteLog(err)
	}
}

// journalLocked appends the record p of a change to the write-ahead log
// and returns its sequence number; the shard whose change it is must be
// locked, so that the log holds a key's changes in the order they were
// made. It does no I/O.
func (db *DB) journalLocked(p []byte) (uint64, error) {
	return db.wal.Append(p)
}

// durable returns nil under SyncInterval, where the flusher writes the log
// every interval. Under SyncAlways it returns once the record seq (and every
// one before it) is on disk: takes that arrive together share one write and
// one fdatasync. A failure wraps bucket.ErrNotDurable; the record stays in
// the log's memory, and a later write carries it.
func (db *DB) durable(seq uint64, err error) error {
	if err == nil && db.sync == SyncAlways {
		err = db.wal.Sync(seq)
		db.noteLog(err)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", bucket.ErrNotDurable, err)
	}
	return nil
}

// noteLog records the outcome of a write of the log for Health.
func (db *DB) noteLog(err error) {
	if err != nil {
		err = fmt.Errorf("storage: write-ahead log: %w", err)
		db.logErr.Store(&err)
		return
	}
	if db.logErr.Load() != nil {
		db.logErr.Store(nil)
	}
	db.lastSave.Store(db.clock.Wall().UnixNano())
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

// pageWrite is one page to write: arena[off:end], sealed, or a delete if
// empty.
type pageWrite struct {
	id       uint16
	off, end int
}

// pageKey is a page's bbolt key: its id, big-endian, so that a flush puts
// pages in key order.
func pageKey(id uint16) []byte { return []byte{byte(id >> 8), byte(id)} }

// flush writes the log's pending records and syncs them. With force, after
// a failed checkpoint (this is its retry), or when the log has outgrown
// the live state (liveState) or Options.MaxLogBytes, it then makes a
// checkpoint; otherwise, with sweep, it drops from memory the buckets that
// have refilled.
func (db *DB) flush(sweep, force, checkpoints bool) error {
	err := db.wal.Flush()
	db.noteLog(err)
	if err != nil {
		return err
	}
	if !checkpoints {
		if sweep {
			db.sweep()
		}
		return nil
	}
	// The live state is measured (it locks every shard) only for a log past
	// the size any checkpoint waits for.
	size := db.wal.Size()
	if force || db.health.Load() != nil || size > db.maxLog || size > min(minCheckpointLog, db.maxLog) && size > db.liveState() {
		return db.checkpointNow(sweep)
	}
	if sweep {
		db.sweep()
	}
	return nil
}

// minCheckpointLog is the size the log may reach before a checkpoint
// however small the live state.
const minCheckpointLog = 4 << 20

// sweep drops the buckets that have refilled from memory, one shard at a
// time, and marks their pages for the next checkpoint. No record is
// written: a refilled bucket is absent however it is read or replayed.
func (db *DB) sweep() {
	for i := range db.table.shards {
		s := &db.table.shards[i]
		s.mu.Lock()
		s.sweepLocked(db.now(), db.table.specs)
		s.mu.Unlock()
		runtime.Gosched() // on one core, let waiting takes run between shards
	}
}

// checkpointNow writes every changed page into bbolt, with the timeline's
// offset to wall time and the log's first sequence number that the pages
// do not hold, then deletes the log's segments that the pages hold. The
// log is rotated first, so every record before the new segment is a change
// the pages then hold (a change made later may be in both: replaying it
// changes nothing). Shard locks are held only while a shard's pages are
// copied out, never during a write. On failure the pages not written stay
// dirty and the log keeps every segment, to be written by the next
// checkpoint, and Health reports the failure until one succeeds.
//
// The pages go in transactions of about checkpointBatch bytes, the
// sequence number in the last, so that a checkpoint of millions of buckets
// neither holds them all in memory at once nor stalls takes for one long
// commit; a small one is one transaction. A crash between two leaves some
// pages newer than the sequence number says: the log from that number,
// which is all kept until the last transaction commits, replays every
// change since onto them, and a record holds a bucket's whole state, so
// the result is the same. Pages of two timelines must not mix, though:
// when the offset to wall time has moved since the pages were written (a
// restart, a step of the wall clock), every page goes in one transaction.
func (db *DB) checkpointNow(sweep bool) (err error) {
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	start, written := db.clock.Mono(), 0
	defer func() { db.stats.noteCheckpoint(written, db.clock.Mono()-start, err) }()
	next, err := db.wal.Rotate()
	db.noteLog(err)
	if err != nil {
		return err
	}
	logSynced := db.clock.Mono() // Rotate wrote and synced it
	logWritten := logSynced
	off := db.wallOffset()
	limit := db.batchBytes
	if d := off - db.pagesOffset; d > maxOffsetDrift || d < -maxOffsetDrift {
		limit = math.MaxInt
	}
	writes := db.writes[:0]
	arena := db.arena[:0]
	defer func() { // keep the buffers for the next checkpoint, unless one was huge
		if cap(arena) <= keptBuffer {
			db.arena, db.writes = arena[:0], writes[:0]
		}
	}()
	paged := 0 // the buckets the pages hold once written
	for i := range db.table.shards {
		s := &db.table.shards[i]
		from := len(writes) // writes[from:] are this shard's
		s.mu.Lock()
		if sweep {
			s.sweepLocked(db.now(), db.table.specs)
		}
		paged += s.nrec
		if s.dirty != 0 {
			pages := &db.pageBuf
			for pg := range pages {
				pages[pg] = pages[pg][:0]
			}
			s.appendPages(pages, s.dirty, db.table.specs) // one pass over the shard
			for pg := range pagesPerShard {
				if s.dirty&(1<<pg) == 0 {
					continue
				}
				start, id := len(arena), uint16(i*pagesPerShard+pg)
				if len(pages[pg]) > 0 { // room for the seal, put once the shard is unlocked
					arena = append(arena, pages[pg]...)
					arena = append(arena, make([]byte, sealSize)...)
				}
				writes = append(writes, pageWrite{id: id, off: start, end: len(arena)})
				if cap(pages[pg]) > keptBuffer {
					pages[pg] = nil // after a huge shard, do not keep its buffer
				}
			}
		}
		s.dirty = 0
		s.mu.Unlock()
		for _, w := range writes[from:] { // sealed here: bbolt takes them as they are
			if w.end > w.off {
				putSeal(arena[w.off:w.end], pageKey(w.id))
			}
		}
		runtime.Gosched() // on one core, let waiting takes run between shards
		last := i == shardCount-1
		if !last && len(arena) < limit {
			continue
		}
		if err := db.writePages(writes, arena, off, next, last); err != nil {
			err = fmt.Errorf("storage: checkpoint: %w", err)
			db.health.Store(&err)
			return err
		}
		db.pagesOffset = off
		written += len(arena)
		writes, arena = writes[:0], arena[:0]
		// The flusher writes the log out and syncs it, but not while it
		// makes this checkpoint (about half a second at a million buckets):
		// do it here, so that a crash loses no more than at other times.
		if now := db.clock.Mono(); db.sync == SyncInterval && now-logSynced >= db.every {
			db.noteLog(db.wal.Flush())
			logSynced, logWritten = now, now
		} else if db.sync == SyncInterval && now-logWritten >= logWriteEvery {
			db.writeOut()
			logWritten = now
		}
	}
	db.checkpoint = next
	db.pagedBuckets.Store(int64(paged))
	db.health.Store(nil)
	if err := db.wal.RemoveBefore(next); err != nil {
		db.log.Warn("storage: could not remove the log segments a checkpoint holds; they are kept", "err", err)
	}
	return nil
}

// checkpointBatch is about the most bytes of pages a checkpoint writes in
// one transaction: 128 KiB. bbolt's commit of a batch takes the CPU until
// it is done, so the batch bounds how long takes on one core wait for it.
// With checkpoints back to back at 950 000 buckets on one pinned core, the
// p99 of takes was about 20 ms with 4 MiB batches, 10 ms with 512 KiB and
// 1-2 ms with 128 KiB; a whole checkpoint took about as long (0.43-0.56 s
// against 0.43-0.44 s) and wrote 17 % more bytes (README, Performance).
const checkpointBatch = 128 << 10

// keptBuffer is the largest buffer a checkpoint keeps for the next one.
const keptBuffer = 4 << 20

// maxOffsetDrift is how far the offset from the timeline to wall time may
// move between checkpoints that write their pages in several transactions:
// a crash between two may leave pages of the older offset read with the
// newer one, off by this much at most.
const maxOffsetDrift = int64(time.Millisecond)

// writePages writes the pages of writes (their bytes in arena) in one
// transaction, with the wall offset off; with last, also the log's first
// sequence number next that the pages do not hold. On failure it marks the
// pages dirty again. flushMu must be held.
func (db *DB) writePages(writes []pageWrite, arena []byte, off int64, next uint64, last bool) error {
	offset := binary.LittleEndian.AppendUint64(nil, uint64(off))
	seq := binary.LittleEndian.AppendUint64(nil, next)
	err := db.disk.Update(func(tx *bolt.Tx) error {
		sl, err := newSealer(tx)
		if err != nil {
			return err
		}
		meta := tx.Bucket(metaName)
		if err := meta.Put(clockKey, offset); err != nil {
			return err
		}
		if last {
			if err := meta.Put(checkpointKey, seq); err != nil {
				return err
			}
		}
		b := tx.Bucket(pagesName)
		for _, w := range writes {
			var err error
			if w.off == w.end {
				err = sl.delete(b, &sl.d.pages, pageKey(w.id))
			} else {
				err = sl.putSealed(b, &sl.d.pages, pageKey(w.id), arena[w.off:w.end])
			}
			if err != nil {
				return err
			}
		}
		return sl.done()
	})
	if err != nil {
		for _, w := range writes { // keep them for the next checkpoint
			s := &db.table.shards[int(w.id)/pagesPerShard]
			s.mu.Lock()
			s.markLocked(int(w.id) % pagesPerShard)
			s.mu.Unlock()
		}
		return err
	}
	for _, w := range writes {
		n := int32(w.end - w.off) // the seal included
		db.liveBytes.Add(int64(n - db.pageBytes[w.id]))
		db.pageBytes[w.id] = n
	}
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
		err := db.flush(true, true, true)
		db.table.free()
		db.finalized, db.finalErr = true, err
		db.mu.Unlock()
		if w != nil {
			w.err = err
			close(w.done)
		}
		// The log is closed even when the checkpoint failed: it holds
		// every change, and the next Open replays it.
		if cerr := db.wal.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("storage: close: %w", cerr)
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
	if p := db.logErr.Load(); p != nil {
		return fmt.Errorf("%w: %w", bucket.ErrNotDurable, *p)
	}
	if p := db.health.Load(); p != nil {
		return fmt.Errorf("%w: %w", bucket.ErrNotDurable, *p)
	}
	return nil
}

// LastSave implements Store.
func (db *DB) LastSave() time.Time { return time.Unix(0, db.lastSave.Load()) }

// Backup writes a consistent copy of the state, as one data file, to w: it
// makes a checkpoint, then copies the file as of that checkpoint in a read
// transaction, while takes go on. Starting bucketd on the copy (without a
// log beside it) restores every bucket and override as of the checkpoint.
func (db *DB) Backup(w io.Writer) (int64, error) {
	if err := db.Save(); err != nil {
		return 0, err
	}
	var n int64
	err := db.bolt.View(func(tx *bolt.Tx) (err error) {
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("storage: backup: %w", err)
	}
	return n, nil
}
