package wal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
)

// Replay reads the log in dir, segment by segment in order of seq, and
// calls fn for each record whose seq is at least from, in order of seq.
// The payload is only valid during the call: fn copies what it keeps. It
// returns the seq of the last valid record in the log (whether or not it is
// below from; 0 for a log without records), which is the LastSeq that Open
// will report. An error from fn ends the replay and is returned wrapped.
//
// Replay must not run while a Log is open on dir. It repairs the last
// segment, as Open does:
//
//   - Damage in the last segment (a record cut short, a bad length, a
//     checksum that does not match, a seq out of order) is a torn tail, left
//     by a crash during a write: the records before it are replayed, the
//     bytes from the first bad record on are copied to a file named
//     <segment>.damaged-<n> (n = 1, 2, ...), the segment is truncated to its
//     last good record, and a warning goes to logger (nil discards). A last
//     segment shorter than its header, a prefix of one (its creation was
//     cut short), counts as empty: its bytes are kept aside the same way
//     and its header is written whole.
//   - Damage in an earlier segment is not a torn tail: a segment is synced
//     whole before the next one is created, so the records after the damage
//     were acknowledged. Replay delivers the records before it, then
//     returns an error wrapping ErrCorrupt that names the file and offset,
//     and changes nothing; a caller should refuse to start.
//   - A segment file of another kind, or with a header that is damaged,
//     fails with an error wrapping ErrCorrupt, and one of a newer format
//     version with ErrVersion; such a file is never written.
//   - Every seq from from to the returned last is delivered exactly once,
//     or Replay fails: a missing segment, or an oldest segment that starts
//     after from (with from > 0), wraps ErrCorrupt. from == 0 replays from
//     the oldest record there is. Segments that hold only records below
//     from (those that a later segment follows with a first seq <= from)
//     are not read.
func Replay(dir string, from uint64, fn func(seq uint64, payload []byte) error, logger *slog.Logger) (last uint64, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	segs, err := listSegments(dir)
	if err != nil {
		return 0, fmt.Errorf("wal: replay: %w", err)
	}
	if len(segs) == 0 {
		return 0, nil
	}
	start := 0
	for start+1 < len(segs) && segs[start+1].first <= from {
		start++
	}
	if from > 0 && segs[start].first > from {
		return 0, fmt.Errorf("wal: replay: %w: records %d to %d are missing: the oldest segment, %s, starts at %d",
			ErrCorrupt, from, segs[start].first-1, segmentName(segs[start].first), segs[start].first)
	}
	deliver := func(seq uint64, payload []byte) error {
		if seq < from {
			return nil
		}
		if err := fn(seq, payload); err != nil {
			return fmt.Errorf("seq %d: %w", seq, err)
		}
		return nil
	}
	for i := start; i < len(segs); i++ {
		s := segs[i]
		path := filepath.Join(dir, segmentName(s.first))
		if i > start && s.first != last+1 {
			return last, fmt.Errorf("wal: replay: %w: %s starts at seq %d, but the segment before it ends at %d",
				ErrCorrupt, path, s.first, last)
		}
		res, err := scanSegment(path, s.first, deliver)
		if err != nil {
			return res.last, fmt.Errorf("wal: replay %s: %w", path, err)
		}
		last = res.last
		if !res.damaged() {
			continue
		}
		if i < len(segs)-1 {
			return last, fmt.Errorf("wal: replay: %w: %s: %s at offset %d, and %d later segment(s) follow: acknowledged records are lost",
				ErrCorrupt, path, res.bad, res.good, len(segs)-1-i)
		}
		if err := cutTail(path, res, logger); err != nil {
			return last, err
		}
	}
	return last, nil
}

// cutTail keeps aside the bytes of the segment at path from res.good on,
// then truncates the segment to res.good (or, for a torn header, rewrites
// the header), and syncs it.
func cutTail(path string, res scanResult, logger *slog.Logger) (err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("wal: cut tail: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("wal: cut tail: %w", cerr)
		}
	}()
	kept := ""
	if res.size > res.good {
		if kept, err = keepAside(f, path, res.good, res.size-res.good); err != nil {
			return fmt.Errorf("wal: keep damaged bytes of %s aside: %w", path, err)
		}
	}
	if err := f.Truncate(res.good); err != nil {
		return fmt.Errorf("wal: cut tail: %w", err)
	}
	if res.tornHeader {
		if _, err := f.WriteAt(header(), 0); err != nil {
			return fmt.Errorf("wal: cut tail: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("wal: cut tail: %w", err)
	}
	logger.Warn("wal: cut a torn or damaged tail", "segment", path, "offset", res.good,
		"bytes", res.size-res.good, "found", res.bad, "kept", kept)
	return nil
}

// keepAside copies n bytes of f from offset off to a new file named
// <path>.damaged-<k>, for the first k that names no file yet, and makes it
// durable. It returns the new file's path.
func keepAside(f *os.File, path string, off, n int64) (string, error) {
	var out *os.File
	var name string
	for k := 1; out == nil; k++ {
		name = path + ".damaged-" + strconv.Itoa(k)
		o, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		switch {
		case err == nil:
			out = o
		case !errors.Is(err, fs.ErrExist) || k == 1<<16:
			return "", err
		}
	}
	_, err := io.Copy(out, io.NewSectionReader(f, off, n))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	return name, err
}
