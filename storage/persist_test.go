package storage_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
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

func TestSyncIntervalWritesOnlyOnFlush(t *testing.T) {
	c := storetest.NewClock(t0)
	path := filepath.Join(t.TempDir(), "bucketd.db")
	db := mustOpenAt(t, path, testOptions(c))
	before := commits(t, db)

	take(t, db, def, "a", five, tok)
	take(t, db, cell, "b", five, 2*tok)
	assert.Empty(t, onDisk(t, db), "a take does not touch the disk")
	assert.Equal(t, before, commits(t, db))

	c.Advance(time.Second)
	require.NoError(t, db.Save())
	recs := onDisk(t, db)
	assert.Len(t, recs, 2)
	assert.Equal(t, 4*tok, diskTokens(t, recs, "a", def))
	assert.Equal(t, 3*tok, diskTokens(t, recs, "b", cell))
	assert.Equal(t, before+1, commits(t, db), "one flush is one commit")
	assert.Equal(t, t0.Add(time.Second), db.LastSave())

	c.Advance(time.Second)
	require.NoError(t, db.Save())
	assert.Equal(t, before+1, commits(t, db), "a flush with nothing to write commits nothing")
	assert.Equal(t, t0.Add(2*time.Second), db.LastSave(), "but everything is saved")

	take(t, db, def, "a", five, 3*tok)
	assert.Equal(t, 4*tok, diskTokens(t, onDisk(t, db), "a", def), "the disk keeps the flushed state until the next flush")

	require.NoError(t, db.Close())
	recs = fileRecords(t, path)
	assert.Equal(t, 4*tok+2*tok/3-3*tok, diskTokens(t, recs, "a", def), "Close makes a final flush")

	db = mustOpenAt(t, path, testOptions(c))
	assert.Equal(t, 2, dbLen(t, db))
	snap, ok := peek(t, db, def, "a")
	require.True(t, ok)
	assert.Equal(t, tok+2*tok/3, snap.Remaining)
	assert.Equal(t, t0.Add(2*time.Second), snap.UpdatedAt)
}

func TestSyncAlwaysDurableOnReturn(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpen(t, storage.Options{Clock: c, Sync: storage.SyncAlways, SyncInterval: time.Hour})

	type key struct {
		key string
		ns  storage.Namespace
	}
	steps := []struct {
		name string
		do   func() error
		want map[key]bucket.Tokens // tokens on disk after the call returns
	}{
		{"take", func() error { _, err := db.Take(def, "a", slow, tok, nil); return err },
			map[key]bucket.Tokens{{"a", def}: 4 * tok}},
		{"take cell", func() error { _, err := db.Take(cell, "b", hundred, 10*tok, nil); return err },
			map[key]bucket.Tokens{{"a", def}: 4 * tok, {"b", cell}: 90 * tok}},
		{"take again", func() error { _, err := db.Take(def, "a", slow, 2*tok, nil); return err },
			map[key]bucket.Tokens{{"a", def}: 2 * tok, {"b", cell}: 90 * tok}},
		{"give back", func() error { _, err := db.Take(def, "a", slow, -tok, nil); return err },
			map[key]bucket.Tokens{{"a", def}: 3 * tok, {"b", cell}: 90 * tok}},
		{"set", func() error { _, err := db.Set(gold, "a", slow, tok, nil); return err },
			map[key]bucket.Tokens{{"a", def}: 3 * tok, {"a", gold}: tok, {"b", cell}: 90 * tok}},
		{"reset", func() error { _, err := db.Reset(cell, "b"); return err },
			map[key]bucket.Tokens{{"a", def}: 3 * tok, {"a", gold}: tok}},
		{"set to full", func() error { _, err := db.Set(gold, "a", slow, 5*tok, nil); return err },
			map[key]bucket.Tokens{{"a", def}: 3 * tok}},
		{"clear", db.Clear, map[key]bucket.Tokens{}},
	}
	for _, s := range steps {
		require.NoError(t, s.do(), s.name)
		got := map[key]bucket.Tokens{}
		for k, v := range onDisk(t, db) {
			rs, err := storage.DecodeRecord(v)
			require.NoError(t, err)
			for _, r := range rs {
				got[key{k, r.NS}] = r.States[0].Tokens
			}
		}
		assert.Equal(t, s.want, got, s.name)
	}

	// What changes nothing writes nothing.
	take(t, db, def, "a", slow, tok)
	before := commits(t, db)
	d := take(t, db, def, "a", slow, 5*tok)
	require.False(t, d.Allowed)
	take(t, db, def, "a", slow, 0)
	take(t, db, def, "new", slow, -tok) // give to a full bucket
	_, err := db.Reset(def, "nope")
	require.NoError(t, err)
	peek(t, db, def, "a")
	assert.Equal(t, before, commits(t, db))
}

func TestCloseFlushesAndReopenLoads(t *testing.T) {
	c := storetest.NewClock(t0)
	path := filepath.Join(t.TempDir(), "bucketd.db")
	db := mustOpenAt(t, path, testOptions(c))
	big := []bucket.Limit{{Capacity: 100 * tok, Rate: bucket.Every(time.Minute)}}
	type bk struct {
		ns  storage.Namespace
		key string
	}
	var buckets []bk
	for i := range 300 {
		k := "key:" + itoa(i)
		switch i % 3 {
		case 0:
			take(t, db, def, k, five, bucket.Tokens(1+i%5)*tok)
			buckets = append(buckets, bk{def, k})
		case 1:
			take(t, db, cell, k, big, bucket.Tokens(i%100+1)*tok)
			buckets = append(buckets, bk{cell, k})
		case 2:
			take(t, db, gold, k, two, tok+bucket.Tokens(i))
			take(t, db, def, k, five, tok) // a second bucket of the key
			buckets = append(buckets, bk{gold, k}, bk{def, k})
		}
		c.Advance(time.Millisecond)
	}
	want := map[bk]bucket.Snapshot{}
	for _, b := range buckets {
		snap, ok := peek(t, db, b.ns, b.key)
		require.True(t, ok)
		want[b] = snap
	}
	require.NoError(t, db.Close())
	assert.Len(t, fileRecords(t, path), 300)

	db = mustOpenAt(t, path, testOptions(c))
	assert.Equal(t, 300, dbLen(t, db))
	for k, w := range want {
		snap, ok := peek(t, db, k.ns, k.key)
		require.True(t, ok, "%s %s", k.ns, k.key)
		assert.Equal(t, w, snap, "%s %s", k.ns, k.key)
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

func TestLoadRefillsForDowntime(t *testing.T) {
	c := storetest.NewClock(t0)
	path := filepath.Join(t.TempDir(), "bucketd.db")
	db := mustOpenAt(t, path, testOptions(c))
	d := take(t, db, def, "k", five, 3*tok)
	require.Equal(t, 2*tok, d.Remaining)
	require.NoError(t, db.Close())

	tests := []struct {
		down     time.Duration
		want     bucket.Tokens
		wantKept bool
	}{
		{0, 2 * tok, true},
		{time.Second, 2*tok + tok/3, true},
		{3 * time.Second, 3 * tok, true},
		{9*time.Second - time.Nanosecond, 5*tok - bucket.Micro, true},
		{9 * time.Second, 0, false},
		{10 * time.Second, 0, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("down ", tt.down), func(t *testing.T) {
			// Each reopen starts from a copy of the file closed at t0.
			cp := copyFile(t, path)
			c := storetest.NewClock(t0.Add(tt.down))
			var logs logBuffer
			opts := testOptions(c)
			opts.Logger = logs.logger()
			db := mustOpenAt(t, cp, opts)
			snap, ok := peek(t, db, def, "k")
			require.Equal(t, tt.wantKept, ok)
			if !tt.wantKept {
				assert.Contains(t, logs.String(), "keys=0 refilled=1 unreadable=0")
				assert.Zero(t, dbLen(t, db))
				assert.Zero(t, storage.TableLen(db), "not loaded")
				require.NoError(t, db.Save())
				assert.Empty(t, onDisk(t, db), "a bucket refilled while down is deleted by the first flush")
				return
			}
			assert.Contains(t, logs.String(), "keys=1 refilled=0 unreadable=0")
			assert.Equal(t, 1, dbLen(t, db))
			assert.Equal(t, tt.want, snap.Remaining)
			assert.Equal(t, 9*time.Second-tt.down, snap.ResetAfter)
			assert.Equal(t, t0, snap.UpdatedAt)
		})
	}
}

func TestRefilledBucketsAreDropped(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpen(t, testOptions(c))
	for i := range 1000 {
		take(t, db, def, "key:"+itoa(i), five, bucket.Tokens(1+i%5)*tok)
	}
	require.NoError(t, db.Save())
	require.Len(t, onDisk(t, db), 1000)

	// Buckets that took n tokens are full 3n seconds later.
	for n := 1; n <= 5; n++ {
		c.Advance(3 * time.Second)
		want := 1000 - 200*n
		assert.Equal(t, want, dbLen(t, db), "after %d s, before the sweep", 3*n)
		require.NoError(t, db.Save())
		assert.Len(t, onDisk(t, db), want, "after %d s", 3*n)
		assert.Equal(t, want, storage.TableLen(db), "after %d s", 3*n)
	}
}

// writePage stores recs (key -> record), then tail, as page id of the
// closed file at path.
func writePage(t *testing.T, path string, id uint16, recs map[string][]byte, tail []byte) {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	defer bdb.Close()
	require.NoError(t, bdb.Update(func(tx *bolt.Tx) error {
		var page []byte
		for k, v := range recs {
			page = binary.AppendUvarint(page, uint64(len(k)))
			page = append(page, k...)
			page = binary.LittleEndian.AppendUint32(page, uint32(len(v)))
			page = append(page, v...)
		}
		return tx.Bucket(storage.PagesName).Put(storage.PageKey(id), append(page, tail...))
	}))
}

// writePages stores recs in their pages of db's file, and closes db. The
// page of the key cut gets tail after its records.
func writePages(t *testing.T, db *storage.DB, path string, recs map[string][]byte, cut string, tail []byte) {
	t.Helper()
	pages := map[uint16]map[string][]byte{}
	for k, v := range recs {
		id := storage.PageOf(db, k)
		if pages[id] == nil {
			pages[id] = map[string][]byte{}
		}
		pages[id][k] = v
	}
	cutID := storage.PageOf(db, cut)
	require.NoError(t, db.Close())
	for id, recs := range pages {
		var t2 []byte
		if id == cutID {
			t2 = tail
		}
		writePage(t, path, id, recs, t2)
	}
}

func TestCorruptRecordsAreSkipped(t *testing.T) {
	good := func(tokens bucket.Tokens) []byte {
		return storage.EncodeRecord(storage.Record{NS: def, Limits: five, States: []bucket.State{{Tokens: tokens, At: t0.UnixNano()}}, Updated: t0.UnixNano()})
	}
	badVersion := good(tok)
	badVersion[0] = storage.RecordVersion + 1
	recs := map[string][]byte{
		"good":        good(tok),
		"also-good":   good(2 * tok),
		"bad-version": badVersion,
		"truncated":   good(tok)[:8],
		"one-byte":    {storage.RecordVersion},
		"empty":       {},
		"trailing":    append(good(tok), 0),
		"too-many":    good(6 * tok),
		"garbage":     []byte("not a record at all"),
	}
	path := filepath.Join(t.TempDir(), "bucketd.db")
	// The page of "good" ends in an entry cut short: a key of 5 bytes
	// with 1 left.
	writePages(t, mustOpenAt(t, path, testOptions(storetest.NewClock(t0))), path, recs, "good", []byte{5, 'x'})

	var logs logBuffer
	opts := testOptions(storetest.NewClock(t0))
	opts.Logger = logs.logger()
	db := mustOpenAt(t, path, opts)

	assert.Equal(t, 2, dbLen(t, db))
	for k, want := range map[string]bucket.Tokens{"good": tok, "also-good": 2 * tok} {
		snap, ok := peek(t, db, def, k)
		require.True(t, ok, k)
		assert.Equal(t, want, snap.Remaining, k)
	}
	for k := range recs {
		if strings.Contains(k, "good") {
			continue
		}
		_, ok := peek(t, db, def, k)
		assert.False(t, ok, k)
		assert.Contains(t, logs.String(), "key="+k, "a warning names the skipped key")
	}
	assert.Contains(t, logs.String(), fmt.Sprintf("page=%04x", storage.PageOf(db, "good")), "a warning names the unreadable page")
	assert.Equal(t, len(recs)-2+1, strings.Count(logs.String(), "level=WARN"))
	assert.Contains(t, logs.String(), `msg="storage: loaded" keys=2 refilled=0 unreadable=8`)

	// A skipped key works as a new, full bucket, and the next flush of its
	// page replaces the corrupt record; so for the page cut short.
	d := take(t, db, def, "bad-version", five, 5*tok)
	assert.True(t, d.Allowed)
	take(t, db, def, "good", five, tok)
	require.NoError(t, db.Save())
	recsNow := onDisk(t, db)
	assert.Equal(t, bucket.Tokens(0), diskTokens(t, recsNow, "bad-version", def))
	assert.Equal(t, bucket.Tokens(0), diskTokens(t, recsNow, "good", def))
}

func TestOverridesAreDurableOnReturn(t *testing.T) {
	c := storetest.NewClock(t0)
	path := filepath.Join(t.TempDir(), "bucketd.db")
	db := mustOpenAt(t, path, testOptions(c)) // only Save and Close flush buckets
	stored := func() map[string][]byte {
		out := map[string][]byte{}
		require.NoError(t, storage.Bolt(db).View(func(tx *bolt.Tx) error {
			return tx.Bucket(storage.OverridesName).ForEach(func(k, v []byte) error {
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

	// An unreadable override is skipped, with a warning.
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
	var logs logBuffer
	opts := testOptions(c)
	opts.Logger = logs.logger()
	db = mustOpenAt(t, path, opts)
	os, err := db.Overrides()
	require.NoError(t, err)
	assert.Equal(t, []storage.Override{{NS: def, Key: "ann", Limits: five}}, os)
	assert.Equal(t, 2, strings.Count(logs.String(), "skipping unreadable override"))
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

// v1Record is a record as the first format wrote it (version 1): no
// namespace kind, every bucket a policy's, its name first.
func v1Record(buckets ...storage.Record) []byte {
	b := []byte{1}
	for _, r := range buckets {
		b = binary.AppendUvarint(b, uint64(len(r.NS.Name)))
		b = append(b, r.NS.Name...)
		b = binary.AppendVarint(b, r.Updated)
		b = binary.AppendUvarint(b, uint64(len(r.Limits)))
		for i, l := range r.Limits {
			s := r.States[i]
			b = binary.AppendVarint(b, int64(l.Capacity))
			b = binary.AppendVarint(b, int64(l.Rate.Tokens))
			b = binary.AppendVarint(b, int64(l.Rate.Per))
			b = binary.AppendVarint(b, int64(s.Tokens))
			b = binary.AppendVarint(b, s.At)
			b = binary.AppendUvarint(b, s.Rem)
		}
	}
	return b
}

func TestLoadFirstFormatFile(t *testing.T) {
	// A file of the first format: version-1 records, instants in wall
	// time, no wall offset.
	at := t0.UnixNano()
	recs := map[string][]byte{
		"joe": v1Record(
			storage.Record{NS: def, Limits: five, States: []bucket.State{{Tokens: 2 * tok, At: at}}, Updated: at},
			storage.Record{NS: gold, Limits: two, States: []bucket.State{{Tokens: tok, At: at}, {Tokens: 3 * tok, At: at}}, Updated: at},
		),
		"ann":  v1Record(storage.Record{NS: def, Limits: five, States: []bucket.State{{At: at - int64(3*time.Second)}}, Updated: at}),
		"full": v1Record(storage.Record{NS: def, Limits: five, States: []bucket.State{{Tokens: 4 * tok, At: at}}, Updated: at}),
	}
	path := filepath.Join(t.TempDir(), "bucketd.db")
	writePages(t, mustOpenAt(t, path, storage.Options{}), path, recs, "joe", nil)
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	require.NoError(t, bdb.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(storage.MetaName).Delete(storage.ClockKey)
	}))
	require.NoError(t, bdb.Close())

	c := storetest.NewClock(t0.Add(3 * time.Second))
	db := mustOpenAt(t, path, testOptions(c))
	snap, ok := peek(t, db, def, "joe")
	require.True(t, ok)
	assert.Equal(t, 3*tok, snap.Remaining, "2 tokens and 3 s")
	assert.Equal(t, t0, snap.UpdatedAt)
	snap, ok = peek(t, db, gold, "joe")
	require.True(t, ok, "every bucket of a key is loaded, as a policy's")
	assert.Equal(t, two, snap.Policy.Limits)
	require.Len(t, snap.Limits, 2)
	assert.Equal(t, 3*tok+tok/5, snap.Limits[1].Remaining, "3 tokens and 3 s of 4 a minute")
	snap, ok = peek(t, db, def, "ann")
	require.True(t, ok)
	assert.Equal(t, 2*tok, snap.Remaining, "empty and 6 s")
	_, ok = peek(t, db, def, "full")
	assert.False(t, ok, "refilled while closed")
	nss, err := db.Namespaces("joe")
	require.NoError(t, err)
	assert.Equal(t, []storage.Namespace{def, gold}, nss)

	// A page that changes is written back in version 2.
	take(t, db, def, "joe", five, tok)
	require.NoError(t, db.Close())
	v := fileRecords(t, path)["joe"]
	require.NotEmpty(t, v)
	assert.Equal(t, byte(storage.RecordVersion), v[0])
	db = mustOpenAt(t, path, testOptions(c))
	snap, ok = peek(t, db, gold, "joe")
	require.True(t, ok)
	assert.Equal(t, two, snap.Policy.Limits)
	snap, ok = peek(t, db, def, "joe")
	require.True(t, ok)
	assert.Equal(t, 2*tok, snap.Remaining)
}

// TestShiftedFileIsRewrittenByTheFirstFlush checks that a file whose
// instants are on another run's timeline is rewritten whole by the next
// run's first flush, so that the offset it then writes holds for every
// page: the file never mixes two timelines.
func TestShiftedFileIsRewrittenByTheFirstFlush(t *testing.T) {
	c := storetest.NewClock(t0)
	path := filepath.Join(t.TempDir(), "bucketd.db")
	db := mustOpenAt(t, path, testOptions(c))
	take(t, db, def, "k", five, 5*tok) // empty: a token every 3 s
	c.StepWall(-time.Hour)             // the wall clock steps back an hour
	require.NoError(t, db.Close())

	// The next run, 3 s later by the stepped wall clock, changes nothing,
	// and closes.
	c.Advance(3 * time.Second)
	db = mustOpenAt(t, path, testOptions(c))
	snap, ok := peek(t, db, def, "k")
	require.True(t, ok)
	assert.Equal(t, tok, snap.Remaining)
	assert.Equal(t, t0.Add(-time.Hour), snap.UpdatedAt, "in wall time")
	require.NoError(t, db.Close())
	var at int64
	viewFile(t, path, func(tx *bolt.Tx) error {
		off, ok := wallOffset(tx)
		assert.True(t, ok)
		assert.Zero(t, off, "the second run's timeline is its wall clock")
		recs, err := pageRecords(tx)
		require.NoError(t, err)
		at = diskState(t, recs, "k", def).States[0].At
		return nil
	})
	assert.Equal(t, t0.Add(-time.Hour).UnixNano(), at, "the page was rewritten on the new timeline")

	// And the third run sees the same bucket.
	c.Advance(3 * time.Second)
	db = mustOpenAt(t, path, testOptions(c))
	snap, ok = peek(t, db, def, "k")
	require.True(t, ok)
	assert.Equal(t, 2*tok, snap.Remaining)
}
