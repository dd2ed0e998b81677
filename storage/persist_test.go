package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/bucketd/bucketd/bucket"
)

func TestSyncIntervalWritesOnlyOnFlush(t *testing.T) {
	c := newClock(t0)
	path := filepath.Join(t.TempDir(), "bucketd.db")
	db := mustOpenAt(t, path, testOptions(c))
	require.Equal(t, SyncInterval, db.SyncMode())
	assert.Equal(t, path, db.Path())
	assert.Equal(t, t0, db.LastSave())
	before := commits(t, db)

	_, err := db.Take("a", "", tok(1))
	require.NoError(t, err)
	_, err = db.Take("b", "", tok(2))
	require.NoError(t, err)
	assert.Empty(t, onDisk(t, db), "a take does not touch the disk")
	assert.Equal(t, before, commits(t, db))

	c.Advance(time.Second)
	require.NoError(t, db.Save())
	recs := onDisk(t, db)
	assert.Len(t, recs, 2)
	assert.Equal(t, tok(4), diskTokens(t, recs, "a"))
	assert.Equal(t, tok(3), diskTokens(t, recs, "b"))
	assert.Equal(t, before+1, commits(t, db), "one flush is one commit")
	assert.Equal(t, t0.Add(time.Second), db.LastSave())

	require.NoError(t, db.Save())
	assert.Equal(t, before+1, commits(t, db), "a flush with nothing to write commits nothing")

	_, err = db.Take("a", "", tok(3))
	require.NoError(t, err)
	assert.Equal(t, tok(4), diskTokens(t, onDisk(t, db), "a"), "the disk keeps the flushed state until the next flush")

	require.NoError(t, db.Close())
	recs = fileRecords(t, path)
	assert.Equal(t, tok(1)+bucket.Token/3, diskTokens(t, recs, "a"), "Close makes a final flush")

	db = mustOpenAt(t, path, testOptions(c))
	assert.Equal(t, 2, db.Len())
	snap, ok, err := db.Peek("a")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, tok(1)+bucket.Token/3, snap.Remaining)
	assert.Equal(t, t0.Add(time.Second), snap.UpdatedAt)
}

func TestSyncAlwaysDurableOnReturn(t *testing.T) {
	c := newClock(t0)
	opts := testOptions(c)
	opts.Sync = SyncAlways
	db := mustOpen(t, opts)
	require.Equal(t, SyncAlways, db.SyncMode())

	steps := []struct {
		name string
		do   func() error
		want map[string]bucket.Tokens // tokens on disk after the call returns
	}{
		{"take", func() error { _, err := db.Take("a", "", tok(1)); return err }, map[string]bucket.Tokens{"a": tok(4)}},
		{"throttle", func() error {
			_, err := db.Throttle("b", bucket.Limit{Capacity: tok(10), Rate: bucket.PerSecond(1)}, tok(10))
			return err
		}, map[string]bucket.Tokens{"a": tok(4), "b": 0}},
		{"take again", func() error { _, err := db.Take("a", "", tok(2)); return err }, map[string]bucket.Tokens{"a": tok(2), "b": 0}},
		{"set tokens", func() error { return db.SetTokens("c", tok(1)) }, map[string]bucket.Tokens{"a": tok(2), "b": 0, "c": tok(1)}},
		{"delete", func() error { _, err := db.Delete("b"); return err }, map[string]bucket.Tokens{"a": tok(2), "c": tok(1)}},
		{"set tokens to full", func() error { return db.SetTokens("c", tok(5)) }, map[string]bucket.Tokens{"a": tok(2)}},
	}
	for _, s := range steps {
		require.NoError(t, s.do(), s.name)
		recs := onDisk(t, db)
		got := make(map[string]bucket.Tokens, len(recs))
		for k := range recs {
			got[k] = diskTokens(t, recs, k)
		}
		assert.Equal(t, s.want, got, s.name)
	}

	// A denied take or a peek changes nothing and writes nothing.
	before := commits(t, db)
	res, err := db.Take("a", "", tok(5))
	require.NoError(t, err)
	require.False(t, res.Allowed)
	_, err = db.Take("a", "", 0)
	require.NoError(t, err)
	_, err = db.Delete("nope")
	require.NoError(t, err)
	assert.Equal(t, before, commits(t, db))
}

func TestCloseFlushesAndReopenLoads(t *testing.T) {
	c := newClock(t0)
	path := filepath.Join(t.TempDir(), "bucketd.db")
	db := mustOpenAt(t, path, testOptions(c))
	gold := bucket.Limit{Capacity: tok(100), Rate: bucket.Every(time.Minute)}
	want := make(map[string]bucket.Snapshot)
	for i := range 300 {
		k := fmt.Sprint("key:", i)
		if i%2 == 0 {
			_, err := db.Take(k, "", tok(1+int64(i%5)))
			require.NoError(t, err)
		} else {
			_, err := db.Throttle(k, gold, tok(int64(i%100)+1))
			require.NoError(t, err)
		}
		snap, ok, err := db.Peek(k)
		require.NoError(t, err)
		require.True(t, ok)
		want[k] = snap
	}
	require.NoError(t, db.Close())
	assert.Len(t, fileRecords(t, path), 300)

	db = mustOpenAt(t, path, testOptions(c))
	assert.Equal(t, 300, db.Len())
	for k, w := range want {
		snap, ok, err := db.Peek(k)
		require.NoError(t, err)
		require.True(t, ok, k)
		assert.Equal(t, w, snap, k)
	}
}

func TestLoadRefillsForDowntime(t *testing.T) {
	c := newClock(t0)
	path := filepath.Join(t.TempDir(), "bucketd.db")
	db := mustOpenAt(t, path, testOptions(c))
	res, err := db.Take("k", "", tok(3))
	require.NoError(t, err)
	require.Equal(t, tok(2), res.Remaining)
	require.NoError(t, db.Close())

	tests := []struct {
		down     time.Duration
		want     bucket.Tokens
		wantKept bool
	}{
		{0, tok(2), true},
		{time.Second, tok(2) + bucket.Token/3, true},
		{3 * time.Second, tok(3), true},
		{9*time.Second - time.Nanosecond, tok(5) - bucket.Micro, true},
		{9 * time.Second, 0, false},
		{10 * time.Second, 0, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("down ", tt.down), func(t *testing.T) {
			// Each reopen starts from a copy of the file closed at t0.
			cp := copyFile(t, path)
			c := newClock(t0.Add(tt.down))
			db := mustOpenAt(t, cp, testOptions(c))
			snap, ok, err := db.Peek("k")
			require.NoError(t, err)
			require.Equal(t, tt.wantKept, ok)
			if !tt.wantKept {
				assert.Equal(t, 0, db.Len())
				require.NoError(t, db.Save())
				assert.Empty(t, onDisk(t, db), "a bucket refilled while down is deleted by the first flush")
				res, err := db.Take("k", "", tok(5))
				require.NoError(t, err)
				assert.True(t, res.Allowed, "it is full")
				return
			}
			assert.Equal(t, 1, db.Len())
			assert.Equal(t, tt.want, snap.Remaining)
			res, err := db.Take("k", "", 0)
			require.NoError(t, err)
			assert.Equal(t, tt.want, res.Remaining)
			assert.Equal(t, 9*time.Second-tt.down, res.ResetAfter)
		})
	}
}

// copyFile copies the file at path into a new temporary directory.
func copyFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	cp := filepath.Join(t.TempDir(), filepath.Base(path))
	require.NoError(t, os.WriteFile(cp, b, 0o600))
	return cp
}

func TestRefilledBucketsAreDropped(t *testing.T) {
	c := newClock(t0)
	db := mustOpen(t, testOptions(c))
	for i := range 1000 {
		_, err := db.Take(fmt.Sprint("key:", i), "", tok(1+int64(i%5)))
		require.NoError(t, err)
	}
	require.NoError(t, db.Save())
	require.Len(t, onDisk(t, db), 1000)

	// Buckets that took n tokens are full 3n seconds later.
	for n := 1; n <= 5; n++ {
		c.Set(t0.Add(time.Duration(n) * 3 * time.Second))
		require.NoError(t, db.Save())
		want := 1000 - 200*n
		assert.Equal(t, want, db.Len(), "after %d s", 3*n)
		assert.Len(t, onDisk(t, db), want, "after %d s", 3*n)
		assert.Equal(t, want, tableLen(db))
	}
}

// tableLen counts the entries in db's table.
func tableLen(db *DB) int {
	n := 0
	for i := range db.table.shards {
		s := &db.table.shards[i]
		s.mu.Lock()
		for _, m := range s.m {
			n += len(m)
		}
		s.mu.Unlock()
	}
	return n
}

func TestCorruptRecordsAreSkipped(t *testing.T) {
	good := func(tokens bucket.Tokens) []byte {
		e := testEntry("default", t0.UnixNano(), []bucket.Limit{DefaultLimit}, []bucket.State{{Tokens: tokens, At: t0.UnixNano()}})
		return encode(nil, e)
	}
	badVersion := good(tok(1))
	badVersion[0] = recordVersion + 1
	recs := map[string][]byte{
		"good":        good(tok(1)),
		"also-good":   good(tok(2)),
		"bad-version": badVersion,
		"truncated":   good(tok(1))[:8],
		"one-byte":    {recordVersion},
		"empty":       {},
		"trailing":    append(good(tok(1)), 0),
		"too-many":    good(tok(6)),
		"garbage":     []byte("not a record at all"),
	}
	path := filepath.Join(t.TempDir(), "bucketd.db")
	require.NoError(t, mustOpenAt(t, path, testOptions(newClock(t0))).Close())
	bdb, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, bdb.Update(func(tx *bolt.Tx) error {
		var page []byte
		for k, v := range recs {
			page = binary.AppendUvarint(page, uint64(len(k)))
			page = append(page, k...)
			page = binary.LittleEndian.AppendUint32(page, uint32(len(v)))
			page = append(page, v...)
		}
		return tx.Bucket(pagesName).Put(pageKey(7), page)
	}))
	require.NoError(t, bdb.Close())

	var logs logBuffer
	opts := testOptions(newClock(t0))
	opts.Logger = logs.logger()
	db := mustOpenAt(t, path, opts)

	assert.Equal(t, 2, db.Len())
	for k, want := range map[string]bucket.Tokens{"good": tok(1), "also-good": tok(2)} {
		snap, ok, err := db.Peek(k)
		require.NoError(t, err)
		require.True(t, ok, k)
		assert.Equal(t, want, snap.Remaining, k)
	}
	for k := range recs {
		if strings.Contains(k, "good") {
			continue
		}
		_, ok, err := db.Peek(k)
		require.NoError(t, err)
		assert.False(t, ok, k)
		assert.Contains(t, logs.String(), "key="+k, "a warning names the skipped key")
	}
	assert.Equal(t, len(recs)-2, strings.Count(logs.String(), "level=WARN"))

	// A skipped key works as a new, full bucket, and its next flush
	// replaces the corrupt record.
	res, err := db.Take("bad-version", "", tok(5))
	require.NoError(t, err)
	assert.True(t, res.Allowed)
	require.NoError(t, db.Save())
	assert.Equal(t, bucket.Tokens(0), diskTokens(t, onDisk(t, db), "bad-version"))
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, 0o600))
		return p
	}
	notDir := write("file", []byte("x"))

	// A valid bbolt file of another program: it opens, and gets our bucket.
	foreign := filepath.Join(dir, "foreign.db")
	bdb, err := bolt.Open(foreign, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, bdb.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("other"))
		return err
	}))
	require.NoError(t, bdb.Close())

	tests := []struct {
		name    string
		path    string
		opts    Options
		wantIs  error  // nil: any error
		wantMsg string // a part of the error text
	}{
		{"garbage", write("garbage.db", bytes.Repeat([]byte("this is not a database. "), 1000)), Options{}, ErrNotDatabase, "garbage.db is not a bucketd database"},
		{"short", write("short.db", []byte("hello")), Options{}, ErrNotDatabase, "short.db is not a bucketd database"},
		{"one page", write("page.db", bytes.Repeat([]byte{0xAB}, 4096)), Options{}, ErrNotDatabase, "page.db is not a bucketd database"},
		{"page and a half", write("page15.db", bytes.Repeat([]byte{0}, 6000)), Options{}, ErrNotDatabase, "page15.db is not a bucketd database"},
		{"zeros", write("zeros.db", make([]byte, 64<<10)), Options{}, ErrNotDatabase, "zeros.db is not a bucketd database"},
		{"directory missing", filepath.Join(dir, "missing", "bucketd.db"), Options{}, fs.ErrNotExist, "data directory"},
		{"directory is a file", filepath.Join(notDir, "bucketd.db"), Options{}, nil, "is not a directory"},
		{"data file is a directory", dir, Options{}, nil, dir},
		{"invalid default limit", filepath.Join(dir, "limit.db"), Options{Default: bucket.Limit{Capacity: -1}}, bucket.ErrInvalid, "default limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := Open(tt.path, tt.opts)
			if db != nil {
				db.Close()
			}
			require.Error(t, err)
			assert.Nil(t, db)
			if tt.wantIs != nil {
				assert.ErrorIs(t, err, tt.wantIs)
			}
			assert.Contains(t, err.Error(), tt.wantMsg)
			assert.True(t, strings.HasPrefix(err.Error(), "storage: "), "error %q names the package", err)
		})
	}

	_, err = Open(foreign, Options{})
	require.ErrorIs(t, err, ErrNotDatabase, "a bbolt file of another program is refused, not written to")
	assert.Contains(t, err.Error(), "foreign.db is not a bucketd database")
}

func TestOpenZeroLengthFile(t *testing.T) {
	// bbolt initializes an empty file as a new database (a crash between
	// creating the file and writing its first pages leaves one); so does
	// Open.
	path := filepath.Join(t.TempDir(), "bucketd.db")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	db := mustOpenAt(t, path, Options{})
	assert.Equal(t, 0, db.Len())
	require.NoError(t, db.Close())
	assert.Empty(t, fileRecords(t, path))
}

func TestOpenReadOnlyDirectory(t *testing.T) {
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	require.NoError(t, os.Mkdir(ro, 0o500))
	t.Cleanup(func() { _ = os.Chmod(ro, 0o700) })
	path := filepath.Join(ro, "bucketd.db")

	// Root (as in CI containers) may write whatever the mode says; then a
	// directory that cannot hold a file is one that is a file.
	probe := filepath.Join(ro, "probe")
	if f, err := os.Create(probe); err == nil {
		f.Close()
		require.NoError(t, os.Remove(probe))
		t.Log("the directory's mode does not stop this user; using a path under a file instead")
		notDir := filepath.Join(dir, "file")
		require.NoError(t, os.WriteFile(notDir, nil, 0o600))
		path = filepath.Join(notDir, "bucketd.db")
		_, err := Open(path, Options{})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "is not a directory")
		return
	}

	db, err := Open(path, Options{})
	if db != nil {
		db.Close()
	}
	require.Error(t, err)
	assert.ErrorIs(t, err, fs.ErrPermission)
	assert.Contains(t, err.Error(), path)
}

func TestOpenInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bucketd.db")
	first := mustOpenAt(t, path, Options{})
	_, err := first.Take("k", "", tok(1))
	require.NoError(t, err)

	// bbolt's flock belongs to the open file description, so a second Open
	// in this process waits for it as another process would.
	db, err := Open(path, Options{LockTimeout: 50 * time.Millisecond})
	if db != nil {
		db.Close()
	}
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrInUse)
	assert.Contains(t, err.Error(), "bucketd.db is in use by another process")

	// The first DB is unharmed, and once it closes the file opens.
	_, err = first.Take("k", "", tok(1))
	require.NoError(t, err)
	require.NoError(t, first.Close())
	db = mustOpenAt(t, path, Options{LockTimeout: 50 * time.Millisecond})
	assert.Equal(t, 1, db.Len())
}

func TestFlushErrorKeepsChangesDirty(t *testing.T) {
	c := newClock(t0)
	db := mustOpen(t, testOptions(c))
	_, err := db.Take("a", "", tok(1))
	require.NoError(t, err)

	// Make the flush transaction fail.
	db.failFlush = func() error { return errors.New("disk on fire") }
	err = db.Save()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "storage: flush: disk on fire")
	assert.Empty(t, onDisk(t, db), "the failed transaction wrote nothing")
	sa, pg := db.table.locate("a")
	sa.mu.Lock()
	dirty := sa.dirty&(1<<pg) != 0
	sa.mu.Unlock()
	assert.True(t, dirty, "the change to a waits for the next flush")

	db.failFlush = nil
	require.NoError(t, db.Save())
	assert.Equal(t, tok(4), diskTokens(t, onDisk(t, db), "a"))
}

func TestKeyLimits(t *testing.T) {
	tests := []struct {
		name    string
		key     string
		wantErr error
	}{
		{"one byte", "k", nil},
		{"largest", strings.Repeat("k", bolt.MaxKeySize), nil},
		{"binary", "\x00\xff\n", nil},
		{"empty", "", bucket.ErrInvalid},
		{"too long", strings.Repeat("k", bolt.MaxKeySize+1), bucket.ErrInvalid},
	}
	for _, mode := range []SyncMode{SyncInterval, SyncAlways} {
		for _, tt := range tests {
			t.Run(mode.String()+" "+tt.name, func(t *testing.T) {
				t.Parallel()
				opts := testOptions(newClock(t0))
				opts.Sync = mode
				db := mustOpen(t, opts)
				_, err := db.Take("other", "", tok(1))
				require.NoError(t, err)

				ops := map[string]func() error{
					"Take":      func() error { _, err := db.Take(tt.key, "", tok(1)); return err },
					"Throttle":  func() error { _, err := db.Throttle(tt.key, DefaultLimit, tok(1)); return err },
					"SetTokens": func() error { return db.SetTokens(tt.key, tok(1)) },
				}
				for name, op := range ops {
					assert.ErrorIs(t, op(), tt.wantErr, name)
				}
				// Whatever a client sends, flushes keep working.
				require.NoError(t, db.Save())
				recs := onDisk(t, db)
				assert.Contains(t, recs, "other")
				_, ok := recs[tt.key]
				assert.Equal(t, tt.wantErr == nil, ok)
			})
		}
	}
}
