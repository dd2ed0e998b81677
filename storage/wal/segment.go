package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Segment files.
const (
	segmentExt = ".wal"
	tmpExt     = ".tmp"
	nameDigits = 16 // hexadecimal digits of the first seq in a segment's name
	version    = 1  // the format version this package reads and writes
)

// magic opens every segment; the version byte follows it.
var magic = []byte("bucketd wal")

// headerLen is the length of a segment's file header: magic, version.
var headerLen = len(magic) + 1

// header returns the file header of a segment of this format version.
func header() []byte {
	return append(slices.Clip(magic), version)
}

// file is what a Log needs of its current segment. Open uses *os.File
// through osFile; tests in this package substitute counting and failing
// implementations.
type file = File

// File is a segment file open for writing, as Options.OpenFile returns it.
type File interface {
	// WriteAt writes all of p at offset off, or returns an error.
	WriteAt(p []byte, off int64) (int, error)
	// Sync makes the written bytes durable (fdatasync).
	Sync() error
	// Truncate sets the file's length to size bytes.
	Truncate(size int64) error
	Close() error
}

// opener opens an existing segment file for writing.
type opener func(path string) (file, error)

// osFile is a file on disk whose Sync is fdatasync where the platform has it.
type osFile struct{ *os.File }

func (f osFile) Sync() error { return datasync(f.File) }

// openOS is the opener of real segment files.
func openOS(path string) (file, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// segment is a segment file: the first seq it may hold, and its length in
// bytes.
type segment struct {
	first uint64
	size  int64
}

// segmentName returns the file name of the segment whose first seq is first.
func segmentName(first uint64) string {
	return fmt.Sprintf("%0*x%s", nameDigits, first, segmentExt)
}

// parseSegmentName returns the first seq of a segment file name, and false
// if name is not a segment's name.
func parseSegmentName(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, segmentExt)
	if !ok || len(base) != nameDigits {
		return 0, false
	}
	n, err := strconv.ParseUint(base, 16, 64)
	return n, err == nil
}

// listSegments returns dir's segments in order of first seq, with their
// sizes. A missing dir holds no segment.
func listSegments(dir string) ([]segment, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var segs []segment
	for _, e := range entries {
		first, ok := parseSegmentName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		segs = append(segs, segment{first: first, size: info.Size()})
	}
	// ReadDir sorts by name, and names are fixed-width hexadecimal, but
	// sort by number so that this does not depend on it.
	slices.SortFunc(segs, func(a, b segment) int {
		switch {
		case a.first < b.first:
			return -1
		case a.first > b.first:
			return 1
		}
		return 0
	})
	return segs, nil
}

// checkHeader checks a segment's first bytes (all of them if the file is
// shorter than a header). It reports torn == true when the file is shorter
// than a header and holds a prefix of one (a segment whose creation was cut
// short), and an error wrapping ErrCorrupt or ErrVersion when the file is of
// another kind or a newer format.
func checkHeader(b []byte) (torn bool, err error) {
	if len(b) < headerLen {
		if bytes.HasPrefix(header(), b) {
			return true, nil
		}
		return false, fmt.Errorf("%w: not a bucketd wal segment (%d bytes, no header)", ErrCorrupt, len(b))
	}
	if !bytes.Equal(b[:len(magic)], magic) {
		return false, fmt.Errorf("%w: not a bucketd wal segment (bad magic)", ErrCorrupt)
	}
	switch v := b[len(magic)]; {
	case v > version:
		return false, fmt.Errorf("%w: format version %d is newer than this bucketd's (%d)", ErrVersion, v, version)
	case v < version:
		return false, fmt.Errorf("%w: unknown format version %d", ErrCorrupt, v)
	}
	return false, nil
}

// createSegment creates the empty segment whose first seq is first, whole:
// it writes the header, then pad, to a temporary file, syncs it, opens it with
// openFile and renames it into place, so that a segment file never exists
// without its whole header. The caller syncs dir to make the new name
// durable. On error, dir holds no new segment.
func createSegment(dir string, first uint64, pad []byte, openFile opener) (_ file, err error) {
	path := filepath.Join(dir, segmentName(first))
	tmp := path + tmpExt
	defer func() {
		if err != nil {
			_ = os.Remove(tmp) // best effort: the next Open removes a stale .tmp
		}
	}()
	if err := writeHeaderFile(tmp, pad); err != nil {
		return nil, err
	}
	f, err := openFile(tmp)
	if err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = f.Close() // nothing was written through f
		return nil, err
	}
	return f, nil
}

// writeHeaderFile creates the file path holding a segment header and pad,
// synced.
func writeHeaderFile(path string, pad []byte) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(header())
	if err == nil && len(pad) > 0 {
		_, err = f.Write(pad)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeTemps removes the temporary files of segment creations that a crash
// interrupted.
func removeTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), tmpExt)
		if _, seg := parseSegmentName(base); ok && seg {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// syncDir makes the creations, renames and removals of files in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
