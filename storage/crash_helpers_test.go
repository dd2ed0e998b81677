package storage_test

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

// What a crash would keep. A crash of the process keeps what the files
// hold: the data file as last committed, and the log's segment files as
// written (what was only appended, not yet written, is lost). The helpers
// here copy exactly that, while the DB keeps running, and open the copy.

// bk names one bucket.
type bk struct {
	ns  storage.Namespace
	key string
}

func (b bk) String() string { return b.ns.String() + " " + b.key }

// copyFiles copies what a crash of db now would leave into dir, and
// returns the path of the copied data file: the files of db's log
// directory (unless withLog is false: the pages alone, as a backup of the
// data file would be), then the data file as last committed, through a
// bbolt read transaction. The log is copied first, so that a checkpoint
// that commits between the two copies leaves pages newer than the copied
// log, never a log that starts after the pages end.
func copyFiles(db *storage.DB, dir string, withLog bool) (string, error) {
	path := filepath.Join(dir, filepath.Base(db.Path()))
	if withLog {
		if err := copyDir(storage.WALDir(db), path+".wal", nil); err != nil {
			return "", err
		}
	}
	err := storage.Bolt(db).View(func(tx *bolt.Tx) error { return tx.CopyFile(path, 0o600) })
	return path, err
}

// copyDir copies the regular files of dir src into a new directory dst;
// cut, if not nil, may change a file's bytes (by its name) on the way.
// A file removed meanwhile is skipped.
func copyDir(src, dst string, cut func(name string, b []byte) []byte) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if cut != nil {
			b = cut(e.Name(), b)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// bucketsOf returns every live bucket of db, peeked under its stored
// limits, and fails if db's Len disagrees with the keys it has.
func bucketsOf(db *storage.DB) (map[bk]bucket.Snapshot, error) {
	out := map[bk]bucket.Snapshot{}
	keys := 0
	var cursor uint64
	for i := 0; ; i++ {
		if i > 1<<20 {
			return nil, errors.New("scan does not end")
		}
		ks, next, err := db.Scan(cursor, 1000)
		if err != nil {
			return nil, err
		}
		for _, k := range ks {
			keys++
			nss, err := db.Namespaces(k)
			if err != nil {
				return nil, err
			}
			for _, ns := range nss {
				snap, ok, err := db.Peek(ns, k, nil)
				if err != nil {
					return nil, err
				}
				if ok {
					out[bk{ns, k}] = snap
				}
			}
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	if n, err := db.Len(); err != nil || n != keys {
		return nil, fmt.Errorf("Len is %d (%v), Scan has %d keys", n, err, keys)
	}
	return out, nil
}

// crashState returns the buckets that a restart at the wall time at, after
// a crash of db now, would find (see copyFiles). It may be called from any
// goroutine.
func crashState(db *storage.DB, at time.Time, withLog bool) (map[bk]bucket.Snapshot, error) {
	dir, err := os.MkdirTemp("", "crash-copy-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path, err := copyFiles(db, dir, withLog)
	if err != nil {
		return nil, err
	}
	cp, err := storage.Open(path, storage.Options{Clock: storetest.NewClock(at), SyncInterval: time.Hour})
	if err != nil {
		return nil, err
	}
	bs, err := bucketsOf(cp)
	return bs, errors.Join(err, cp.Close())
}

// afterCrash is crashState for the test goroutine.
func afterCrash(t testing.TB, db *storage.DB, at time.Time) map[bk]bucket.Snapshot {
	t.Helper()
	bs, err := crashState(db, at, true)
	require.NoError(t, err)
	return bs
}

// inPages is afterCrash without the log: what the last checkpoint holds.
func inPages(t testing.TB, db *storage.DB, at time.Time) map[bk]bucket.Snapshot {
	t.Helper()
	bs, err := crashState(db, at, false)
	require.NoError(t, err)
	return bs
}

// buckets is bucketsOf for the test goroutine.
func buckets(t testing.TB, db *storage.DB) map[bk]bucket.Snapshot {
	t.Helper()
	bs, err := bucketsOf(db)
	require.NoError(t, err)
	return bs
}

// remaining maps each bucket to its tokens (under its first limit with
// the fewest: Snapshot.Remaining).
func remaining(bs map[bk]bucket.Snapshot) map[bk]bucket.Tokens {
	out := make(map[bk]bucket.Tokens, len(bs))
	for b, s := range bs {
		out[b] = s.Remaining
	}
	return out
}

// waitDurable waits until a crash of db now would keep (ns, key)'s bucket
// with want tokens, restarting at the wall time at.
func waitDurable(t testing.TB, db *storage.DB, at time.Time, ns storage.Namespace, key string, want bucket.Tokens) {
	t.Helper()
	var last map[bk]bucket.Tokens
	var lastErr error
	require.Eventually(t, func() bool {
		bs, err := crashState(db, at, true)
		last, lastErr = remaining(bs), err
		s, ok := bs[bk{ns, key}]
		return err == nil && ok && s.Remaining == want
	}, wait, time.Millisecond, "a crash never kept %s %s with %s tokens: last copy %v (%v)", ns, key, want, last, lastErr)
}

// frame is one record of a segment file: its seq, its payload, and where
// its frame lies in the file, [off, end).
type frame struct {
	seq      uint64
	payload  []byte
	off, end int
}

// segHeaderLen is the length of a segment's header: "bucketd wal" and a
// version byte (see storage/wal/doc.go).
const segHeaderLen = 12

// frameHeaderLen is the length of a record's frame before its payload:
// length, CRC-32C, seq.
const frameHeaderLen = 16

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// readFrames returns the records of a segment file's bytes, up to the
// first that is cut short or fails its checksum.
func readFrames(b []byte) []frame {
	var out []frame
	off := segHeaderLen
	for off+frameHeaderLen <= len(b) {
		n := int(binary.LittleEndian.Uint32(b[off:]))
		end := off + frameHeaderLen + n
		if n < 0 || end > len(b) || end < off {
			break
		}
		sum := binary.LittleEndian.Uint32(b[off+4:])
		body := b[off+8 : end] // seq, then payload
		if crc32.Checksum(body, castagnoli) != sum {
			break
		}
		out = append(out, frame{seq: binary.LittleEndian.Uint64(body), payload: body[8:], off: off, end: end})
		off = end
	}
	return out
}

// segmentNames returns the names of the segment files in the log
// directory dir, oldest first.
func segmentNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		if name := e.Name(); len(name) == 16+len(".wal") && strings.HasSuffix(name, ".wal") {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// logFrames returns every record in the segment files of db's log, read
// from the files as they are now (so from any goroutine: a record being
// written may be missing).
func logFrames(db *storage.DB) ([]frame, error) {
	dir := storage.WALDir(db)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []frame
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".wal") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, readFrames(b)...)
	}
	slices.SortFunc(out, func(a, b frame) int { return cmp.Compare(a.seq, b.seq) })
	return out, nil
}
