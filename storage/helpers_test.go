package storage

import (
	"bytes"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/bucketd/bucketd/bucket"
)

// t0 is the instant every test starts at.
var t0 = time.Unix(1_700_000_000, 0)

// fakeClock is a clock the test moves by hand. It is safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func newClock(at time.Time) *fakeClock {
	c := &fakeClock{}
	c.Set(at)
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Set(at time.Time)        { c.ns.Store(at.UnixNano()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// testOptions are the options of most tests: the default limit (5 tokens,
// one every 3 s), the clock c, and an interval long enough that only Save
// and Close flush.
func testOptions(c *fakeClock) Options {
	return Options{Now: c.Now, SyncInterval: time.Hour}
}

// mustOpen opens a new DB in a fresh directory and closes it at the end of
// the test.
func mustOpen(t testing.TB, opts Options) *DB {
	t.Helper()
	return mustOpenAt(t, filepath.Join(t.TempDir(), "bucketd.db"), opts)
}

// mustOpenAt opens the DB at path and closes it at the end of the test.
func mustOpenAt(t testing.TB, path string, opts Options) *DB {
	t.Helper()
	db, err := Open(path, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// onDisk returns the records db has committed, read in a bbolt transaction.
func onDisk(t testing.TB, db *DB) map[string][]byte {
	t.Helper()
	var recs map[string][]byte
	err := db.bolt.View(func(tx *bolt.Tx) (err error) {
		recs, err = pageRecords(tx)
		return err
	})
	require.NoError(t, err)
	return recs
}

// pageRecords returns every key's record in the pages of tx.
func pageRecords(tx *bolt.Tx) (map[string][]byte, error) {
	recs := make(map[string][]byte)
	b := tx.Bucket(pagesName)
	if b == nil {
		return nil, fmt.Errorf("the file has no %q bucket", pagesName)
	}
	err := b.ForEach(func(_, page []byte) error {
		return decodePage(page, func(k, rec []byte) error {
			recs[string(k)] = bytes.Clone(rec)
			return nil
		})
	})
	return recs, err
}

// readRecord returns key's committed record; nil if there is none. Unlike
// onDisk it may be called from any goroutine.
func readRecord(db *DB, key string) ([]byte, error) {
	var v []byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		recs, err := pageRecords(tx)
		v = recs[key]
		return err
	})
	return v, err
}

// fileRecords returns the records of the closed data file at path.
func fileRecords(t testing.TB, path string) map[string][]byte {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	require.NoError(t, err)
	defer bdb.Close()
	var recs map[string][]byte
	err = bdb.View(func(tx *bolt.Tx) (err error) {
		recs, err = pageRecords(tx)
		return err
	})
	require.NoError(t, err)
	return recs
}

// diskTokens decodes key's committed record and returns the tokens of its
// first limit.
func diskTokens(t testing.TB, recs map[string][]byte, key string) bucket.Tokens {
	t.Helper()
	v, ok := recs[key]
	require.True(t, ok, "no record of %q on disk", key)
	e, err := decode(v)
	require.NoError(t, err)
	return e.subs[0].states[0].Tokens
}

// commits returns the id of db's last committed write transaction; bbolt
// adds one per commit.
func commits(t testing.TB, db *DB) int {
	t.Helper()
	var id int
	require.NoError(t, db.bolt.View(func(tx *bolt.Tx) error {
		id = tx.ID()
		return nil
	}))
	return id
}

// logBuffer collects what a logger writes; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// tok returns n whole tokens.
func tok(n int64) bucket.Tokens { return bucket.Tokens(n) * bucket.Token }
