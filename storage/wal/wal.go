package wal

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Errors of the log, for errors.Is.
var (
	// ErrClosed is returned by the methods of a closed Log.
	ErrClosed = errors.New("log closed")
	// ErrCorrupt is returned for a segment file that is not a segment, or
	// damage that is not a torn tail: records that were acknowledged are
	// lost, and the caller should refuse to start.
	ErrCorrupt = errors.New("log corrupt")
	// ErrVersion is returned for a segment of a newer format version than
	// this package knows; it is never written to.
	ErrVersion = errors.New("unsupported log format version")
	// ErrTooLarge is returned by Append for a payload over MaxPayload.
	ErrTooLarge = errors.New("record too large")
)

// Default option values.
const (
	// DefaultWindow is the Window of a zero Options: 200µs.
	DefaultWindow = 200 * time.Microsecond
	// DefaultMaxGroupBytes is the MaxGroupBytes of a zero Options: 1 MiB.
	DefaultMaxGroupBytes = 1 << 20
)

// Options configure a Log. The zero value is valid.
type Options struct {
	// Window is the longest that the leader of a group commit waits for
	// more records before it writes and syncs, so that even one core forms
	// groups. The wait ends early once as many records are pending as the
	// last group held, or MaxGroupBytes, and there is none when the leader
	// already waited for an earlier group (see the package documentation).
	// 0 means DefaultWindow (200µs); a negative Window never waits. Go's
	// timers may fire up to about 1ms late when the process is idle.
	Window time.Duration
	// MaxGroupBytes ends the leader's wait once that many bytes of records
	// are pending. 0 (or less) means DefaultMaxGroupBytes (1 MiB).
	MaxGroupBytes int
	// NextSeq is the first seq that the caller's checkpoint does not cover
	// (0: none is covered). An empty log starts at NextSeq (or 1). If the
	// log on disk ends before NextSeq-1 (it was lost, or it ends before a
	// checkpoint), Open starts a new segment at NextSeq, so that new
	// records never take seqs that the checkpoint covers. Open removes the
	// segments that hold only records below NextSeq, as RemoveBefore does.
	NextSeq uint64
	// Logger receives warnings (a tail cut at Open, a failed close of a
	// rotated segment). nil discards them.
	Logger *slog.Logger
	// Preallocate, when positive, makes the log write that many zero bytes
	// ahead of its records: a new segment is created with them, and a
	// group that reaches past them writes as many more after its records,
	// with the same write and fdatasync. A group that overwrites zeros
	// does not change the file's length or allocate blocks, so its
	// fdatasync commits no metadata: on ext4 this made a group's sync about
	// twice as fast. It costs the bytes of the zeros, once. Replay and Open
	// take zeros after the last record for the end of the segment, not
	// for damage. 0 writes no zeros.
	Preallocate int64
	// OpenFile opens an existing segment file at path for writing; nil
	// means the operating system's files. Tests of a user of the log pass
	// files whose writes or syncs fail.
	OpenFile func(path string) (File, error)
}

// Log is a write-ahead log open for appending. Its methods are safe for
// concurrent use.
type Log struct {
	dir      string
	window   time.Duration
	maxGroup int
	logger   *slog.Logger
	open     opener
	// zeros is Options.Preallocate zero bytes, or nil.
	zeros []byte

	// adminMu serializes Rotate, RemoveBefore and Close: the changes of the
	// set of segment files. It is taken before mu.
	adminMu sync.Mutex

	mu   sync.Mutex // guards the fields below
	cond sync.Cond  // on mu; broadcast when a group ends
	// leading is set while a leader gathers or writes a group (or Rotate
	// or Close works as one). Only the leader uses f, cur.size, timer and
	// the group's buffer outside mu.
	leading bool
	timer   *time.Timer
	// gather is closed by Append to end a leader's window early, once
	// maxGroup bytes or gatherTarget records are pending.
	gather       chan struct{}
	gatherTarget int
	closed       bool
	next         uint64 // seq of the next Append
	synced       uint64 // every record up to synced is durable
	// buf holds the frames of the records after synced that are not in
	// flight (a group being written), in order of seq; free holds empty
	// chunks for it to reuse.
	buf     records
	free    [][]byte
	pending int // records in buf
	// wrote is how many bytes at the front of buf WriteOut wrote: they are
	// in the file, up to cur.size, but not synced.
	wrote     int
	inflight  int // bytes of the group being written
	lastGroup int // records in the last group written
	// failGen counts failed groups; failSeq is the last seq of the latest
	// one and failErr its error.
	failGen  uint64
	failSeq  uint64
	failErr  error
	dirDirty bool    // the name of the current segment may not be durable yet: sync dir before acknowledging
	f        file    // the current segment's file; nil once closed
	cur      segment // the current segment; size is its good length (synced, or written by WriteOut)
	// zeroed is the length of the current segment's file: the bytes from
	// cur.size to zeroed are zero. Only the leader uses it outside mu.
	zeroed   int64
	old      []segment // older segments, oldest first
	oldBytes int64     // the sum of old's sizes

	stats counters // for Stats
}

// Open opens the log in dir, creating dir and a first segment if there are
// none. It scans the last segment, which it appends to, and cuts a torn
// tail there as Replay does; it does not read older segments (Replay
// checks them). A segment of another kind or version fails with an error
// wrapping ErrCorrupt or ErrVersion and is not written. One Log at a time
// may use dir: the package takes no lock, so the caller ensures it (the
// store does by holding its data file's lock).
func Open(dir string, opts Options) (*Log, error) {
	if opts.OpenFile != nil {
		return open(dir, opts, opts.OpenFile)
	}
	return open(dir, opts, openOS)
}

// open is Open with the way to open the current segment for writing.
func open(dir string, opts Options, openFile opener) (*Log, error) {
	l := &Log{
		dir:      dir,
		window:   opts.Window,
		maxGroup: opts.MaxGroupBytes,
		logger:   opts.Logger,
		open:     openFile,
		timer:    time.NewTimer(time.Hour),
	}
	l.timer.Stop()
	l.cond.L = &l.mu
	if l.window == 0 {
		l.window = DefaultWindow
	}
	if l.maxGroup <= 0 {
		l.maxGroup = DefaultMaxGroupBytes
	}
	if l.logger == nil {
		l.logger = slog.New(slog.DiscardHandler)
	}
	if opts.Preallocate > 0 {
		l.zeros = make([]byte, opts.Preallocate)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("wal: open: %w", err)
	}
	if err := removeTemps(dir); err != nil {
		return nil, fmt.Errorf("wal: open: %w", err)
	}
	segs, err := listSegments(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: open: %w", err)
	}
	l.next = max(opts.NextSeq, 1)
	fresh := true // a new segment must start at l.next
	zeroed := int64(0)
	if len(segs) > 0 {
		last := &segs[len(segs)-1]
		path := filepath.Join(dir, segmentName(last.first))
		res, err := scanSegment(path, last.first, nil)
		if err != nil {
			return nil, fmt.Errorf("wal: open %s: %w", path, err)
		}
		if res.damaged() {
			if err := cutTail(path, res, l.logger); err != nil {
				return nil, err
			}
		}
		last.size = max(res.good, int64(headerLen))
		zeroed = last.size
		if res.padded {
			zeroed = res.size
		}
		if res.last+1 >= l.next {
			l.next, fresh = res.last+1, false
		}
	}
	var f file
	if fresh {
		if f, err = createSegment(dir, l.next, l.zeros, openFile); err == nil {
			if err = syncDir(dir); err != nil {
				_ = f.Close() // nothing was written through f
			}
		}
		segs = append(segs, segment{first: l.next, size: int64(headerLen)})
		zeroed = int64(headerLen + len(l.zeros))
	} else {
		f, err = openFile(filepath.Join(dir, segmentName(segs[len(segs)-1].first)))
	}
	if err != nil {
		return nil, fmt.Errorf("wal: open: %w", err)
	}
	l.f = f
	l.zeroed = zeroed
	l.synced = l.next - 1
	l.cur, l.old = segs[len(segs)-1], segs[:len(segs)-1]
	for _, s := range l.old {
		l.oldBytes += s.size
	}
	if opts.NextSeq > 0 {
		if err := l.RemoveBefore(opts.NextSeq); err != nil {
			_ = f.Close() // nothing was written: the removal error is the one to report
			return nil, err
		}
	}
	return l, nil
}

// Append adds a record holding a copy of payload (at most MaxPayload bytes)
// to the pending records and returns its seq. It does no I/O: Sync or
// Flush makes the record durable. It fails with ErrClosed once the log is
// closed, and ErrTooLarge for a payload over MaxPayload.
func (l *Log) Append(payload []byte) (uint64, error) {
	if len(payload) > MaxPayload {
		return 0, fmt.Errorf("wal: append %d bytes: %w", len(payload), ErrTooLarge)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, fmt.Errorf("wal: append: %w", ErrClosed)
	}
	seq := l.next
	l.next++
	l.free = l.buf.add(seq, payload, l.free)
	l.pending++
	if l.gather != nil && (l.buf.n >= l.maxGroup || l.pending >= l.gatherTarget) {
		close(l.gather)
		l.gather = nil
	}
	return seq, nil
}

// Sync returns once every record up to seq is written and synced, joining
// a group commit (see the package documentation). If the group's write or
// sync fails, it returns that error, and the records stay pending for a
// later Sync or Flush to write again. Sync(0) returns nil at once; a seq
// that Append has not returned yet is an error.
func (l *Log) Sync(seq uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("wal: sync: %w", ErrClosed)
	}
	if seq >= l.next {
		return fmt.Errorf("wal: sync %d: beyond the last appended seq, %d", seq, l.next-1)
	}
	return l.syncLocked(seq, true)
}

// Flush writes and syncs every pending record now, without a gathering
// window (after waiting for a group being written).
func (l *Log) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("wal: flush: %w", ErrClosed)
	}
	return l.syncLocked(l.next-1, false)
}

// syncLocked waits until seq is durable, leading a group when none is
// being written. A leader that waited for an earlier group does not wait
// for window.
func (l *Log) syncLocked(seq uint64, window bool) error {
	gen := l.failGen
	for {
		switch {
		case l.synced >= seq:
			return nil
		case l.failGen != gen && seq <= l.failSeq:
			return l.failErr
		case l.f == nil:
			return fmt.Errorf("wal: sync: %w", ErrClosed)
		case !l.leading:
			// Every record after synced is pending now: the group covers seq.
			l.leading = true
			err := l.writeLocked(window)
			l.leading = false
			l.cond.Broadcast()
			return err
		}
		window = false
		l.cond.Wait()
	}
}

// writeLocked writes and syncs every pending record as one group. If
// window is set, it first waits for up to l.window, until as many records
// are pending as the last group held, or l.maxGroup bytes. The caller holds
// mu and has set leading; mu is released during the wait and the I/O.
func (l *Log) writeLocked(window bool) error {
	if window && l.window > 0 && l.pending < l.lastGroup && l.buf.n < l.maxGroup {
		gather := make(chan struct{})
		l.gather, l.gatherTarget = gather, l.lastGroup
		l.mu.Unlock()
		l.timer.Reset(l.window)
		select {
		case <-l.timer.C:
		case <-gather:
			l.timer.Stop()
		}
		l.mu.Lock()
		l.gather = nil
	}
	if l.buf.n == 0 {
		return nil
	}
	// The group is every pending record; the first wrote bytes of them are
	// in the file already (WriteOut), and only need the sync.
	data, n, end, off, f, wrote := l.buf, l.pending, l.next-1, l.cur.size, l.f, l.wrote
	base := off - int64(wrote) // the synced length, where the group starts
	l.buf, l.pending, l.wrote = records{}, 0, 0
	l.inflight = data.n - wrote
	dir := ""
	if l.dirDirty {
		dir = l.dir
	}
	pad := l.padPast(off + int64(data.n-wrote))
	l.mu.Unlock()
	start := time.Now()
	err := writeSync(f, data.from(wrote), pad, off, base, dir)
	l.stats.note(data.n-wrote+len(pad), time.Since(start), err)
	l.mu.Lock()
	l.inflight = 0
	if err != nil {
		// The file was truncated back to base, or is unknown past it.
		l.zeroed, l.cur.size = base, base
		// Put the group back ahead of the records appended since: the next
		// group writes it again, at the same offset, the bytes that
		// WriteOut wrote too (after a failed fdatasync the kernel may have
		// dropped them).
		data.chunks = append(data.chunks, l.buf.chunks...)
		data.n += l.buf.n
		l.buf = data
		l.pending += n
		l.failGen++
		l.failSeq, l.failErr = end, err
		return err
	}
	l.cur.size += int64(data.n - wrote)
	l.zeroed = max(l.zeroed, l.cur.size+int64(len(pad)))
	l.synced, l.lastGroup = end, n
	if dir != "" {
		l.dirDirty = false
	}
	l.free = data.recycle(l.free)
	return nil
}

// padPast returns the zeros to write after records that end at offset end
// of the current segment: Options.Preallocate bytes when end reaches past
// the zeros the file has, else none. The caller holds mu.
func (l *Log) padPast(end int64) []byte {
	if end > l.zeroed {
		return l.zeros
	}
	return nil
}

// writeSync writes the chunks of data one after the other from offset off
// of f, and pad after them, and syncs f, then syncs dir unless it is
// empty. If that fails, it truncates f back to base (at most off: the
// synced length), so that f keeps no bytes of the failed group when it can.
func writeSync(f file, data [][]byte, pad []byte, off, base int64, dir string) error {
	err := writeAt(f, data, pad, off)
	if err == nil {
		err = f.Sync()
	}
	if err == nil && dir != "" {
		err = syncDir(dir)
	}
	if err != nil {
		err = fmt.Errorf("wal: write group: %w", truncateAfter(f, base, err))
	}
	return err
}

// writeAt writes the chunks of data one after the other from offset off of
// f, and pad after them.
func writeAt(f file, data [][]byte, pad []byte, off int64) error {
	for _, c := range data {
		if _, err := f.WriteAt(c, off); err != nil {
			return err
		}
		off += int64(len(c))
	}
	if len(pad) > 0 {
		_, err := f.WriteAt(pad, off)
		return err
	}
	return nil
}

// truncateAfter truncates f back to size after the write error err, and
// returns err with the truncation's error, if any.
func truncateAfter(f file, size int64, err error) error {
	if terr := f.Truncate(size); terr != nil {
		err = errors.Join(err, fmt.Errorf("truncate back to %d bytes: %w", size, terr))
	}
	return err
}

// Size returns the bytes of all live segments, with the records pending
// and being written.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.oldBytes + l.cur.size + int64(l.buf.n-l.wrote+l.inflight)
}

// LastSeq returns the seq of the last record appended (durable or not), 0
// if the log has none.
func (l *Log) LastSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next - 1
}

// Close refuses new Appends and Syncs, writes and syncs the pending
// records, and closes the current segment. Records that fail to be written
// then are lost (their Syncs get the error). Closing a closed Log returns
// nil.
func (l *Log) Close() error {
	l.adminMu.Lock()
	defer l.adminMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	for l.leading {
		l.cond.Wait()
	}
	l.leading = true
	err := l.writeLocked(false)
	f := l.f
	l.f = nil
	l.mu.Unlock()
	cerr := f.Close()
	l.mu.Lock()
	l.leading = false
	l.cond.Broadcast()
	if err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("wal: close: %w", cerr)
	}
	return nil
}
