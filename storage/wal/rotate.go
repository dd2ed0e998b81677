package wal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// Rotate flushes the pending records, then starts a new segment and returns
// its first seq: every record below it is in an older segment and synced,
// so that a checkpoint of the state up to that seq minus one lets
// RemoveBefore(that seq) delete them. If the current segment holds no record,
// Rotate only returns its first seq. Appends and Syncs go on during a
// Rotate; Syncs wait for the new segment.
func (l *Log) Rotate() (uint64, error) {
	l.adminMu.Lock()
	defer l.adminMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, fmt.Errorf("wal: rotate: %w", ErrClosed)
	}
	for l.leading {
		l.cond.Wait()
	}
	l.leading = true
	defer func() {
		l.leading = false
		l.cond.Broadcast()
	}()
	if err := l.writeLocked(false); err != nil {
		return 0, err
	}
	first := l.synced + 1
	if first == l.cur.first {
		return first, nil
	}
	l.mu.Unlock()
	f, err := createSegment(l.dir, first, l.zeros, l.open)
	var dirErr error
	if err == nil {
		dirErr = syncDir(l.dir)
	}
	l.mu.Lock()
	if err != nil {
		return 0, fmt.Errorf("wal: rotate: %w", err)
	}
	// The new segment's name exists: records after first must go to it,
	// never to the old segment. If its name is not durable yet, the next
	// group syncs dir before it acknowledges a record.
	prev, prevSize, padded := l.f, l.cur.size, l.zeroed > l.cur.size
	l.old = append(l.old, l.cur)
	l.oldBytes += l.cur.size
	l.cur, l.f = segment{first: first, size: int64(headerLen)}, f
	l.zeroed = int64(headerLen + len(l.zeros))
	l.dirDirty = dirErr != nil
	l.mu.Unlock()
	if padded {
		// Its zeros are of no more use. Left there (if this fails, or by a
		// crash), they are read as the end of the segment.
		if err := prev.Truncate(prevSize); err != nil {
			l.logger.Warn("wal: trim a rotated segment's preallocated zeros", "err", err)
		}
	}
	if err := prev.Close(); err != nil {
		// Its records are synced: the new segment is in use all the same.
		l.logger.Warn("wal: close a rotated segment", "err", err)
	}
	l.mu.Lock()
	return first, nil
}

// RemoveBefore deletes the segments all of whose records are below seq
// (a segment is, when the one after it starts at or before seq), oldest
// first, and syncs the directory. It never deletes the current segment.
func (l *Log) RemoveBefore(seq uint64) error {
	l.adminMu.Lock()
	defer l.adminMu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return fmt.Errorf("wal: remove: %w", ErrClosed)
	}
	n := 0
	for n < len(l.old) && l.firstAfter(n) <= seq {
		n++
	}
	doomed := slices.Clone(l.old[:n])
	l.mu.Unlock()

	var err error
	removed := 0
	for _, s := range doomed {
		if err = os.Remove(filepath.Join(l.dir, segmentName(s.first))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			break
		}
		err = nil
		removed++
	}
	if removed > 0 {
		err = errors.Join(err, syncDir(l.dir))
	}
	l.mu.Lock()
	for _, s := range l.old[:removed] {
		l.oldBytes -= s.size
	}
	l.old = slices.Delete(l.old, 0, removed)
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("wal: remove: %w", err)
	}
	return nil
}

// firstAfter returns the first seq of the segment after old[i]. mu is held.
func (l *Log) firstAfter(i int) uint64 {
	if i+1 < len(l.old) {
		return l.old[i+1].first
	}
	return l.cur.first
}
