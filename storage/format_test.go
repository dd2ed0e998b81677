package storage_test

import (
	"crypto/sha256"
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
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

// fileFormat returns the format that the closed data file at path holds in
// its meta.
func fileFormat(t *testing.T, path string) []byte {
	t.Helper()
	var f []byte
	viewFile(t, path, func(tx *bolt.Tx) error {
		f = append(f, tx.Bucket(storage.MetaName).Get(storage.FormatKey)...)
		return nil
	})
	return f
}

// format1At is a minute after testdata/format1.db was written (see
// format1.md): its buckets refill at 1 token a day at most, so they are
// as written, to a micro-token or so.
var format1At = time.Unix(1796064951, 0).Add(time.Minute)

// TestMigrateFirstFormat opens a file that the previous release wrote
// (pages only, no log): Open migrates it to format 2, with a line at INFO,
// and its buckets are there; a second open is not a migration.
func TestMigrateFirstFormat(t *testing.T) {
	path := copyFile(t, filepath.Join("testdata", "format1.db"))
	require.Equal(t, []byte{storage.FormatPages}, fileFormat(t, path))

	var logs logBuffer
	db, err := storage.Open(path, storage.Options{Clock: storetest.NewClock(format1At), SyncInterval: time.Hour, Logger: logs.logger()})
	require.NoError(t, err)
	assert.Contains(t, logs.String(), "level=INFO")
	assert.Contains(t, logs.String(), "migrated")
	assert.Contains(t, logs.String(), "file="+path)

	// The previous release kept every bucket in the default policy's
	// namespace, CL.THROTTLE's too.
	per1000d := bucket.Limit{Capacity: 5 * tok, Rate: bucket.Every(24000 * time.Hour)}
	perDay := bucket.Limit{Capacity: 10 * tok, Rate: bucket.Every(24 * time.Hour)}
	want := map[bk]struct {
		limit  bucket.Limit
		tokens bucket.Tokens
	}{
		{def, "joe"}:  {per1000d, 3 * tok},
		{def, "ann"}:  {per1000d, tok},
		{def, "cell"}: {perDay, 7 * tok},
	}
	check := func(db *storage.DB) {
		t.Helper()
		got := buckets(t, db)
		require.Len(t, got, len(want))
		for b, w := range want {
			snap, ok := got[b]
			require.True(t, ok, "%s", b)
			assert.Equal(t, []bucket.Limit{w.limit}, snap.Policy.Limits, "%s", b)
			assert.GreaterOrEqual(t, snap.Remaining, w.tokens, "%s", b)
			assert.Less(t, snap.Remaining, w.tokens+tok/1000, "%s: refilled for a minute at most", b)
		}
	}
	check(db)
	take(t, db, def, "joe", []bucket.Limit{per1000d}, tok)
	want[bk{def, "joe"}] = struct {
		limit  bucket.Limit
		tokens bucket.Tokens
	}{per1000d, 2 * tok}
	require.NoError(t, db.Close())
	assert.Equal(t, []byte{storage.FileFormat}, fileFormat(t, path), "migrated")
	assert.DirExists(t, path+".wal")

	logs = logBuffer{}
	db, err = storage.Open(path, storage.Options{Clock: storetest.NewClock(format1At), SyncInterval: time.Hour, Logger: logs.logger()})
	require.NoError(t, err)
	defer db.Close()
	assert.NotContains(t, logs.String(), "migrated", "a file of format 2 is not migrated again")
	check(db)
}

// TestNewerFormatIsRefused opens a file of a format this bucketd does not
// know: Open refuses it, with an error that names the file and says to
// upgrade, and neither writes the file nor creates a log beside it.
func TestNewerFormatIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bucketd.db")
	db, err := storage.Open(path, testOptions(storetest.NewClock(t0)))
	require.NoError(t, err)
	take(t, db, def, "k", slow, tok)
	require.NoError(t, db.Close())
	require.NoError(t, os.RemoveAll(path+".wal"))
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	require.NoError(t, bdb.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(storage.MetaName).Put(storage.FormatKey, []byte{storage.FileFormat + 1})
	}))
	require.NoError(t, bdb.Close())
	before, err := os.ReadFile(path)
	require.NoError(t, err)
	fi, err := os.Stat(path)
	require.NoError(t, err)

	for _, mode := range syncModes {
		db, err := storage.Open(path, storage.Options{Clock: storetest.NewClock(t0), Sync: mode})
		if db != nil {
			_ = db.Close()
		}
		require.ErrorIs(t, err, storage.ErrNewerFormat, mode)
		assert.Nil(t, db)
		msg := err.Error()
		assert.Contains(t, msg, path, "the message names the file")
		assert.Contains(t, msg, fmt.Sprintf("format %d", storage.FileFormat+1))
		assert.Contains(t, msg, "upgrade")
		assert.False(t, strings.HasSuffix(msg, "."), "%q", msg)

		after, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, sha256.Sum256(before), sha256.Sum256(after), "the file is not written")
		fi2, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, fi.ModTime(), fi2.ModTime())
		_, err = os.Stat(path + ".wal")
		assert.ErrorIs(t, err, fs.ErrNotExist, "no log is created beside it")
	}
}
