package wal

import (
	"fmt"
	"slices"
	"time"
)

// WriteOut writes the pending records to the current segment without
// syncing them, and returns once they are written. Written, they survive a
// crash of the process (the operating system holds them), but not of the
// machine until a Sync, Flush, Rotate or Close syncs them; until then they
// stay in memory too, so that if that sync fails they are written again.
// It waits for a group being written, and never gathers. If the write
// fails, the segment is truncated back to where it started, and the
// records stay pending.
func (l *Log) WriteOut() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.leading && !l.closed {
		l.cond.Wait()
	}
	if l.closed || l.f == nil {
		return fmt.Errorf("wal: write out: %w", ErrClosed)
	}
	if l.buf.n == l.wrote {
		return nil
	}
	l.leading = true
	defer func() {
		l.leading = false
		l.cond.Broadcast()
	}()
	// Appends go on meanwhile: they add to the end of the last chunk, or
	// add chunks, never touching the bytes written here. They do change
	// the last chunk's slice header, so the write uses a copy of them.
	data := slices.Clone(l.buf.from(l.wrote))
	n, off, f := l.buf.n-l.wrote, l.cur.size, l.f
	pad := l.padPast(off + int64(n))
	l.mu.Unlock()
	start := time.Now()
	err := writeAt(f, data, pad, off)
	if err != nil {
		err = truncateAfter(f, off, err)
	}
	l.stats.noteOut(n+len(pad), time.Since(start), err)
	l.mu.Lock()
	if err != nil {
		l.zeroed = off
		return fmt.Errorf("wal: write out: %w", err)
	}
	l.cur.size += int64(n)
	l.wrote += n
	l.zeroed = max(l.zeroed, l.cur.size+int64(len(pad)))
	return nil
}
