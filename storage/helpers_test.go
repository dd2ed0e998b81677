package storage_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

// t0 is the wall time every test starts at.
var t0 = storetest.T0

const tok = bucket.Token

var (
	// five is the original service's limit: 5 tokens, one every 3 s.
	five = []bucket.Limit{{Capacity: 5 * tok, Rate: bucket.Every(3 * time.Second)}}
	// crawl earns one micro-token an hour: too slow to matter in a test.
	crawl = bucket.Rate{Tokens: bucket.Micro, Per: time.Hour}
	// slow is 5 tokens that refill at a crawl.
	slow = []bucket.Limit{{Capacity: 5 * tok, Rate: crawl}}
	// hundred is 100 tokens that refill at a crawl.
	hundred = []bucket.Limit{{Capacity: 100 * tok, Rate: crawl}}
	// two is a policy of two limits: a burst of 3, and 4 a minute.
	two = []bucket.Limit{
		{Capacity: 3 * tok, Rate: bucket.PerSecond(1)},
		{Capacity: 4 * tok, Rate: bucket.Rate{Tokens: 4 * tok, Per: time.Minute}},
	}
	def  = storage.PolicyNS("default")
	gold = storage.PolicyNS("gold")
	cell = storage.CellNS
)

// testOptions are the options of most tests: the clock c, and an interval
// long enough that only Save and Close flush.
func testOptions(c *storetest.Clock) storage.Options {
	return storage.Options{Clock: c, SyncInterval: time.Hour}
}

// mustOpen opens a new DB in a fresh directory and closes it at the end of
// the test.
func mustOpen(t testing.TB, opts storage.Options) *storage.DB {
	t.Helper()
	return mustOpenAt(t, filepath.Join(t.TempDir(), "bucketd.db"), opts)
}

// mustOpenAt opens the DB at path and closes it at the end of the test.
func mustOpenAt(t testing.TB, path string, opts storage.Options) *storage.DB {
	t.Helper()
	db, err := storage.Open(path, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// take takes cost from (ns, key) under limits and fails the test on error.
func take(t testing.TB, db *storage.DB, ns storage.Namespace, key string, limits []bucket.Limit, cost bucket.Tokens) bucket.Decision {
	t.Helper()
	d, err := db.Take(ns, key, limits, cost, nil)
	require.NoError(t, err)
	return d
}

// peek returns (ns, key)'s bucket under its stored limits.
func peek(t testing.TB, db *storage.DB, ns storage.Namespace, key string) (bucket.Snapshot, bool) {
	t.Helper()
	snap, ok, err := db.Peek(ns, key, nil)
	require.NoError(t, err)
	return snap, ok
}

// dbLen returns db.Len() and fails the test on error.
func dbLen(t testing.TB, db *storage.DB) int {
	t.Helper()
	n, err := db.Len()
	require.NoError(t, err)
	return n
}

// pageRecords returns every key's record in the pages of tx.
func pageRecords(tx *bolt.Tx) (map[string][]byte, error) {
	recs := make(map[string][]byte)
	b := tx.Bucket(storage.PagesName)
	if b == nil {
		return nil, fmt.Errorf("the file has no %q bucket", storage.PagesName)
	}
	err := b.ForEach(func(id, stored []byte) error {
		page, err := storage.Unseal(id, stored)
		if err != nil {
			return err
		}
		return storage.DecodePage(page, func(k, rec []byte) error {
			recs[string(k)] = bytes.Clone(rec)
			return nil
		})
	})
	return recs, err
}

// onDisk returns the records db has committed.
func onDisk(t testing.TB, db *storage.DB) map[string][]byte {
	t.Helper()
	var recs map[string][]byte
	err := storage.Bolt(db).View(func(tx *bolt.Tx) (err error) {
		recs, err = pageRecords(tx)
		return err
	})
	require.NoError(t, err)
	return recs
}

// readRecord returns key's committed record; nil if there is none. Unlike
// onDisk it may be called from any goroutine, and in a require.Eventually.
func readRecord(db *storage.DB, key string) ([]byte, error) {
	var v []byte
	err := storage.Bolt(db).View(func(tx *bolt.Tx) error {
		recs, err := pageRecords(tx)
		v = recs[key]
		return err
	})
	return v, err
}

// viewFile runs f in a read transaction of the closed data file at path.
func viewFile(t testing.TB, path string, f func(tx *bolt.Tx) error) {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	require.NoError(t, err)
	defer bdb.Close()
	require.NoError(t, bdb.View(f))
}

// fileRecords returns the records of the closed data file at path.
func fileRecords(t testing.TB, path string) map[string][]byte {
	t.Helper()
	var recs map[string][]byte
	viewFile(t, path, func(tx *bolt.Tx) (err error) {
		recs, err = pageRecords(tx)
		return err
	})
	return recs
}

// diskState decodes key's record and returns its bucket in ns.
func diskState(t testing.TB, recs map[string][]byte, key string, ns storage.Namespace) storage.Record {
	t.Helper()
	v, ok := recs[key]
	require.True(t, ok, "no record of %q on disk", key)
	rs, err := storage.DecodeRecord(v)
	require.NoError(t, err)
	for _, r := range rs {
		if r.NS == ns {
			return r
		}
	}
	require.Failf(t, "no bucket on disk", "%q has no bucket in %s", key, ns)
	return storage.Record{}
}

// diskTokens returns the tokens of the first limit of key's bucket in ns,
// as stored (not refilled).
func diskTokens(t testing.TB, recs map[string][]byte, key string, ns storage.Namespace) bucket.Tokens {
	t.Helper()
	return diskState(t, recs, key, ns).States[0].Tokens
}

// onDiskTokens is diskTokens of key's committed record, for polling: ok is
// false while there is none.
func onDiskTokens(db *storage.DB, key string, ns storage.Namespace) (bucket.Tokens, bool) {
	v, err := readRecord(db, key)
	if err != nil || v == nil {
		return 0, false
	}
	rs, err := storage.DecodeRecord(v)
	if err != nil {
		return 0, false
	}
	for _, r := range rs {
		if r.NS == ns {
			return r.States[0].Tokens, true
		}
	}
	return 0, false
}

// commits returns the id of db's last committed write transaction; bbolt
// adds one per commit.
func commits(t testing.TB, db *storage.DB) int {
	t.Helper()
	var id int
	require.NoError(t, storage.Bolt(db).View(func(tx *bolt.Tx) error {
		id = tx.ID()
		return nil
	}))
	return id
}

// wallOffset returns the offset from the pages' timeline to wall time that
// tx's file holds, and whether it holds one.
func wallOffset(tx *bolt.Tx) (time.Duration, bool) {
	v := tx.Bucket(storage.MetaName).Get(storage.ClockKey)
	if len(v) != 8 {
		return 0, false
	}
	return time.Duration(int64(binary.LittleEndian.Uint64(v))), true
}

// dbWallOffset is wallOffset of db's committed file.
func dbWallOffset(t testing.TB, db *storage.DB) (d time.Duration, ok bool) {
	t.Helper()
	require.NoError(t, storage.Bolt(db).View(func(tx *bolt.Tx) error {
		d, ok = wallOffset(tx)
		return nil
	}))
	return d, ok
}

// waitTimers waits until n timers are armed on c: the flusher has armed its
// next tick, so that advancing the clock fires it.
func waitTimers(t testing.TB, c *storetest.Clock, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return c.Timers() == n }, 10*time.Second, time.Millisecond,
		"the flusher did not arm its timer (%d armed, want %d)", c.Timers(), n)
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

// errDisk is the failure of a faultyDisk.
var errDisk = errors.New("disk on fire")

// faultyDisk is the DB's disk, whose writes fail with errDisk while fail is
// set.
type faultyDisk struct {
	next  storage.Disk
	fail  atomic.Bool
	calls atomic.Int64 // Update calls, failed or not
}

// breakDisk puts a faultyDisk, failing, under db.
func breakDisk(db *storage.DB) *faultyDisk {
	d := &faultyDisk{}
	d.fail.Store(true)
	d.next = storage.SetDisk(db, d)
	return d
}

func (d *faultyDisk) Update(f func(*bolt.Tx) error) error {
	d.calls.Add(1)
	if d.fail.Load() {
		return errDisk
	}
	return d.next.Update(f)
}

// gateDisk is the DB's disk, whose next write waits, once entered, until
// the test opens the gate: before its commit, or after it with afterCommit.
type gateDisk struct {
	next        storage.Disk
	afterCommit bool
	armed       atomic.Bool
	entered     chan struct{} // receives when a write waits at the gate
	gate        chan struct{} // closed to let it through
	open        func()
}

// gateWrites puts a gateDisk under db that stops the next write before its
// commit; the gate opens at the end of the test at the latest, before db
// closes.
func gateWrites(t testing.TB, db *storage.DB) *gateDisk { return gateAt(t, db, false) }

// gateAt puts a gateDisk under db that stops the next write before its
// commit, or after it.
func gateAt(t testing.TB, db *storage.DB, afterCommit bool) *gateDisk {
	d := &gateDisk{afterCommit: afterCommit, entered: make(chan struct{}, 1), gate: make(chan struct{})}
	d.open = sync.OnceFunc(func() { close(d.gate) })
	d.armed.Store(true)
	d.next = storage.SetDisk(db, d)
	t.Cleanup(d.open)
	return d
}

func (d *gateDisk) Update(f func(*bolt.Tx) error) error {
	if !d.armed.CompareAndSwap(true, false) {
		return d.next.Update(f)
	}
	var err error
	if d.afterCommit {
		err = d.next.Update(f)
	}
	d.entered <- struct{}{}
	<-d.gate
	if !d.afterCommit {
		err = d.next.Update(f)
	}
	return err
}

// wait is the bound of every wait for another goroutine: reached only when
// the test fails.
const wait = 10 * time.Second

// await waits for ch to receive, failing the test with what after wait.
func await[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		require.FailNow(t, "timed out", "waiting for %s", what)
		panic("unreachable")
	}
}

// within runs f in another goroutine and fails the test if it does not
// return within the bound: what is blocked.
func within(t testing.TB, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	await(t, done, what)
}

func itoa(i int) string { return strconv.Itoa(i) }
