package storage_test

import (
	"bytes"
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

// TestRefilledBucketIsFullUnderOtherLimits checks that a bucket that has
// refilled, but is still in memory until the next sweep, is taken as full
// under any limits, as a swept one is: under a larger capacity too, where
// carrying its tokens would make it less than full.
func TestRefilledBucketIsFullUnderOtherLimits(t *testing.T) {
	ten := []bucket.Limit{{Capacity: 10 * tok, Rate: bucket.PerSecond(1)}}
	for _, sweep := range []bool{false, true} {
		t.Run(fmt.Sprint("swept ", sweep), func(t *testing.T) {
			c := storetest.NewClock(t0)
			db := mustOpen(t, testOptions(c))
			take(t, db, def, "k", five, tok) // full again 3 s later
			c.Advance(3 * time.Second)
			if sweep {
				require.NoError(t, db.Save())
				require.Zero(t, storage.TableLen(db))
			} else {
				require.Equal(t, 1, storage.TableLen(db), "not swept yet")
			}
			_, ok, err := db.Peek(def, "k", ten)
			require.NoError(t, err)
			assert.False(t, ok, "no bucket")
			d := take(t, db, def, "k", ten, 0)
			assert.Equal(t, 10*tok, d.Remaining, "full under the new limits")
			assert.Zero(t, d.ResetAfter)
			d = take(t, db, def, "k", ten, tok)
			assert.Equal(t, 9*tok, d.Remaining)
		})
	}
}

func TestPeekSnapshot(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpen(t, testOptions(c))
	take(t, db, def, "one", five, tok)
	take(t, db, def, "two", two, tok)
	c.Advance(time.Second)

	snap, ok := peek(t, db, def, "one")
	require.True(t, ok)
	assert.Equal(t, bucket.Snapshot{
		Policy:    bucket.Policy{Limits: five},
		Decision:  bucket.Decision{Allowed: true, Limit: 5 * tok, Remaining: 4*tok + tok/3, ResetAfter: 2 * time.Second},
		UpdatedAt: t0,
	}, snap, "one limit: no per-limit decisions")

	snap, ok = peek(t, db, def, "two")
	require.True(t, ok)
	assert.Equal(t, two, snap.Policy.Limits)
	assert.Equal(t, []bucket.Decision{
		{Allowed: true, Limit: 3 * tok, Remaining: 3 * tok},
		{Allowed: true, Limit: 4 * tok, Remaining: 3*tok + tok/15, ResetAfter: 14 * time.Second},
	}, snap.Limits)
}

// TestLimitsKeptPerBucket checks that every bucket keeps the limits it
// was taken under, however they are shared in memory.
func TestLimitsKeptPerBucket(t *testing.T) {
	db := mustOpen(t, testOptions(storetest.NewClock(t0)))
	a := bucket.Limit{Capacity: 5 * tok, Rate: bucket.PerSecond(1)}
	b := bucket.Limit{Capacity: 9 * tok, Rate: bucket.PerSecond(1)}
	most := make([]bucket.Limit, bucket.MaxLimits)
	for i := range most {
		most[i] = bucket.Limit{Capacity: bucket.Tokens(i+1) * tok, Rate: bucket.PerSecond(1)}
	}
	sets := map[string][]bucket.Limit{
		"a":        {a},
		"ab":       {a, b},
		"ba":       {b, a},
		"b":        {b},
		"aa":       {a, a},
		"the most": most,
	}
	for k, ls := range sets {
		d := take(t, db, def, k, ls, tok/2)
		require.True(t, d.Allowed, k)
	}
	for k, ls := range sets {
		snap, ok := peek(t, db, def, k)
		require.True(t, ok, k)
		assert.Equal(t, ls, snap.Policy.Limits, k)
	}
}

func TestScanReturnsEachKeyOnce(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpen(t, testOptions(c))
	const n = 1000
	for i := range n {
		take(t, db, def, "key:"+itoa(i), five, tok)
		if i%3 == 0 {
			take(t, db, cell, "key:"+itoa(i), five, tok) // a key with two buckets is one key
		}
	}
	require.Equal(t, n, dbLen(t, db))

	for _, count := range []int{-1, 0, 1, 10, 100, n, 10 * n} {
		t.Run(fmt.Sprint("count ", count), func(t *testing.T) {
			seen := make(map[string]int)
			var cursor uint64
			calls := 0
			for {
				keys, next, err := db.Scan(cursor, count)
				require.NoError(t, err)
				calls++
				require.LessOrEqual(t, calls, 256, "the scan does not end")
				for _, k := range keys {
					seen[k]++
				}
				if next == 0 {
					break
				}
				assert.GreaterOrEqual(t, len(keys), max(count, 1), "a page before the last has at least count keys")
				assert.Greater(t, next, cursor, "the cursor moves forward")
				cursor = next
			}
			assert.Len(t, seen, n, "every key")
			for k, times := range seen {
				assert.Equal(t, 1, times, "key %q: nothing changed, so exactly once", k)
			}
			if count < n/10 {
				assert.Greater(t, calls, 1, "more than one page")
			}
		})
	}

	keys, next, err := db.Scan(1<<20, 10)
	require.NoError(t, err)
	assert.Empty(t, keys, "a cursor past the end")
	assert.Zero(t, next)
}

func TestOverridesAreDurableOnReturn(t *testing.T) {
	c := storetest.NewClock(t0)
	path := filepath.Join(t.TempDir(), "bucketd.db")
	db := mustOpenAt(t, path, testOptions(c)) // only Save and Close flush buckets
	stored := func() map[string][]byte {
		out := map[string][]byte{}
		require.NoError(t, storage.Bolt(db).View(func(tx *bolt.Tx) error {
			return tx.Bucket(storage.OverridesName).ForEach(func(k, v []byte) error {
				v, err := storage.Unseal(k, v)
				if err != nil {
					return err
				}
				out[string(k)] = bytes.Clone(v)
				return nil
			})
		}))
		return out
	}
	require.NoError(t, db.PutOverride(storage.Override{NS: gold, Key: "joe", Limits: two}))
	got := stored()
	require.Contains(t, got, "gold\x00joe", "on disk when PutOverride returns")
	rs, err := storage.DecodeRecord(got["gold\x00joe"])
	require.NoError(t, err)
	assert.Equal(t, two, rs[0].Limits)

	require.NoError(t, db.PutOverride(storage.Override{NS: def, Key: "ann", Limits: five}))
	require.NoError(t, db.DeleteOverride(gold, "joe"))
	assert.Equal(t, []string{"default\x00ann"}, keysOf(stored()), "gone when DeleteOverride returns")

	// An unreadable override is damage: refused, or dropped by Repair.
	require.NoError(t, db.Close())
	bdb, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, bdb.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(storage.OverridesName)
		if err := b.Put([]byte("no-separator"), storage.EncodeRecord(storage.Record{NS: def, Limits: five, States: make([]bucket.State, 1)})); err != nil {
			return err
		}
		return b.Put([]byte("default\x00bad"), []byte("garbage"))
	}))
	require.NoError(t, bdb.Close())
	_, err = storage.Open(path, testOptions(c))
	require.ErrorIs(t, err, storage.ErrDamaged, "an override without its checksum is damage")
	assert.Contains(t, err.Error(), path)
	assert.Contains(t, err.Error(), "override of key")

	// --repair drops them, naming each.
	var logs logBuffer
	opts := testOptions(c)
	opts.Logger = logs.logger()
	opts.Repair = true
	db = mustOpenAt(t, path, opts)
	os, err := db.Overrides()
	require.NoError(t, err)
	assert.Equal(t, []storage.Override{{NS: def, Key: "ann", Limits: five}}, os)
	assert.Equal(t, 2, strings.Count(logs.String(), "storage: repair: dropped override"))
	assert.Contains(t, logs.String(), `key \"bad\" under policy \"default\"`)
}

func keysOf[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestOverrideKeys(t *testing.T) {
	db := mustOpen(t, testOptions(storetest.NewClock(t0)))
	long := strings.Repeat("k", bolt.MaxKeySize-len("gold")-1)
	tests := []struct {
		name    string
		ns      storage.Namespace
		key     string
		wantErr error
	}{
		{"longest key with the policy name", gold, long, nil},
		{"a byte longer", gold, long + "k", bucket.ErrInvalid},
		{"a NUL in the key", gold, "a\x00b", nil},
		{"a NUL in the policy name", storage.PolicyNS("a\x00b"), "k", bucket.ErrInvalid},
		{"a policy name starting with NUL", storage.PolicyNS("\x00b"), "k", bucket.ErrInvalid},
	}
	for _, tt := range tests {
		err := db.PutOverride(storage.Override{NS: tt.ns, Key: tt.key, Limits: five})
		assert.ErrorIs(t, err, tt.wantErr, tt.name)
		if tt.wantErr != nil {
			assert.NotErrorIs(t, err, bucket.ErrNotDurable, tt.name)
		}
		if tt.name == "a byte longer" {
			assert.Contains(t, err.Error(), fmt.Sprintf("want at most %d bytes", len(long)))
		}
	}
	os, err := db.Overrides()
	require.NoError(t, err)
	var got []string
	for _, o := range os {
		got = append(got, fmt.Sprintf("%q/%d bytes", o.NS.Name, len(o.Key)))
	}
	assert.ElementsMatch(t, []string{fmt.Sprintf("%q/%d bytes", "gold", len(long)), `"gold"/3 bytes`}, got, "read back as written")
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
	for _, mode := range []storage.SyncMode{storage.SyncInterval, storage.SyncAlways} {
		for _, tt := range tests {
			t.Run(mode.String()+" "+tt.name, func(t *testing.T) {
				t.Parallel()
				opts := testOptions(storetest.NewClock(t0))
				opts.Sync = mode
				db := mustOpen(t, opts)
				take(t, db, def, "other", five, tok)

				ops := map[string]func() error{
					"Take":      func() error { _, err := db.Take(def, tt.key, five, tok, nil); return err },
					"Take cell": func() error { _, err := db.Take(cell, tt.key, five, tok, nil); return err },
					"Set":       func() error { _, err := db.Set(gold, tt.key, five, tok, nil); return err },
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

func TestParseSyncMode(t *testing.T) {
	tests := []struct {
		in      string
		want    storage.SyncMode
		wantErr bool
	}{
		{"interval", storage.SyncInterval, false},
		{"always", storage.SyncAlways, false},
		{"", 0, true},
		{"Always", 0, true},
	}
	for _, tt := range tests {
		m, err := storage.ParseSyncMode(tt.in)
		if tt.wantErr {
			assert.Error(t, err, "%q", tt.in)
			continue
		}
		require.NoError(t, err, "%q", tt.in)
		assert.Equal(t, tt.want, m)
		assert.Equal(t, tt.in, m.String())
	}
}

func TestAccessors(t *testing.T) {
	for _, mode := range []storage.SyncMode{storage.SyncInterval, storage.SyncAlways} {
		path := filepath.Join(t.TempDir(), "bucketd.db")
		c := storetest.NewClock(t0)
		db := mustOpenAt(t, path, storage.Options{Sync: mode, Clock: c})
		assert.Equal(t, mode, db.SyncMode())
		assert.Equal(t, path, db.Path())
		assert.Equal(t, t0, db.LastSave(), "as of Open")
		c.Advance(time.Minute)
		take(t, db, def, "k", five, tok)
		require.NoError(t, db.Save())
		assert.Equal(t, t0.Add(time.Minute), db.LastSave())
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, 0o600))
		return p
	}
	notDir := write("file", []byte("x"))

	// A valid bbolt file of another program.
	foreign := filepath.Join(dir, "foreign.db")
	bdb, err := bolt.Open(foreign, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, bdb.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("other"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	}))
	require.NoError(t, bdb.Close())

	tests := []struct {
		name    string
		path    string
		wantIs  error  // nil: any error
		wantMsg string // a part of the error text
	}{
		{"garbage", write("garbage.db", bytes.Repeat([]byte("this is not a database. "), 1000)), storage.ErrNotDatabase, "garbage.db is not a bucketd database"},
		{"short", write("short.db", []byte("hello")), storage.ErrNotDatabase, "short.db is not a bucketd database"},
		{"one page", write("page.db", bytes.Repeat([]byte{0xAB}, 4096)), storage.ErrNotDatabase, "page.db is not a bucketd database"},
		{"page and a half", write("page15.db", bytes.Repeat([]byte{0}, 6000)), storage.ErrNotDatabase, "page15.db is not a bucketd database"},
		{"zeros", write("zeros.db", make([]byte, 64<<10)), storage.ErrNotDatabase, "zeros.db is not a bucketd database"},
		{"empty", write("empty.db", nil), storage.ErrNotDatabase, "empty.db is not a bucketd database: it is empty (0 bytes)"},
		{"another program's bbolt file", foreign, storage.ErrNotDatabase, "foreign.db is not a bucketd database (a bbolt file of some other program)"},
		{"directory missing", filepath.Join(dir, "missing", "bucketd.db"), fs.ErrNotExist, "data directory"},
		{"directory is a file", filepath.Join(notDir, "bucketd.db"), nil, "is not a directory"},
		{"data file is a directory", dir, nil, dir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, statErr := os.ReadFile(tt.path)
			db, err := storage.Open(tt.path, storage.Options{})
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
			if statErr == nil {
				after, err := os.ReadFile(tt.path)
				require.NoError(t, err)
				assert.Equal(t, before, after, "a refused file is left as it was")
			}
		})
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 8, "no file created beside the refused ones")
}

func TestOpenEmptyFileIsRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bucketd.db")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	db, err := storage.Open(path, storage.Options{})
	if db != nil {
		db.Close()
	}
	require.ErrorIs(t, err, storage.ErrNotDatabase)
	assert.Contains(t, err.Error(), "it is empty (0 bytes)")
	assert.Contains(t, err.Error(), "remove it to start with no buckets", "the message says what to do")
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Zero(t, fi.Size(), "left untouched")

	// A path with no file is a new database.
	fresh := filepath.Join(dir, "fresh.db")
	db = mustOpenAt(t, fresh, storage.Options{})
	assert.Zero(t, dbLen(t, db))
	require.NoError(t, db.Close())
	fi, err = os.Stat(fresh)
	require.NoError(t, err)
	assert.Positive(t, fi.Size())
	db = mustOpenAt(t, fresh, storage.Options{})
	assert.Zero(t, dbLen(t, db), "and opens again")
}

func TestOpenReadOnlyDirectory(t *testing.T) {
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	require.NoError(t, os.Mkdir(ro, 0o500))
	t.Cleanup(func() { _ = os.Chmod(ro, 0o700) })
	path := filepath.Join(ro, "bucketd.db")

	// Root (as in CI containers) may write whatever the mode says.
	probe := filepath.Join(ro, "probe")
	if f, err := os.Create(probe); err == nil {
		f.Close()
		require.NoError(t, os.Remove(probe))
		t.Skip("the directory's mode does not stop this user")
	}

	db, err := storage.Open(path, storage.Options{})
	if db != nil {
		db.Close()
	}
	require.Error(t, err)
	assert.ErrorIs(t, err, fs.ErrPermission)
	assert.Contains(t, err.Error(), path)
}

func TestOpenInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bucketd.db")
	first := mustOpenAt(t, path, storage.Options{})
	take(t, first, def, "k", slow, tok)

	// bbolt's flock belongs to the open file description, so a second Open
	// in this process waits for it as another process would.
	db, err := storage.Open(path, storage.Options{LockTimeout: 50 * time.Millisecond})
	if db != nil {
		db.Close()
	}
	require.Error(t, err)
	assert.ErrorIs(t, err, storage.ErrInUse)
	assert.Contains(t, err.Error(), "bucketd.db is in use by another process")

	// The default wait is a second, not forever.
	opened := make(chan error, 1)
	go func() {
		db, err := storage.Open(path, storage.Options{})
		if db != nil {
			db.Close()
		}
		opened <- err
	}()
	assert.ErrorIs(t, await(t, opened, "Open of a file in use, with the default LockTimeout"), storage.ErrInUse)

	// The first DB is unharmed, and once it closes the file opens.
	take(t, first, def, "k", slow, tok)
	require.NoError(t, first.Close())
	db = mustOpenAt(t, path, storage.Options{LockTimeout: 50 * time.Millisecond})
	assert.Equal(t, 1, dbLen(t, db))
	snap, ok := peek(t, db, def, "k")
	require.True(t, ok)
	assert.Equal(t, 3*tok, snap.Remaining)
}
