package storage_test

import (
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

	take(t, db, def, "a", five, tok)
	take(t, db, cell, "b", five, 2*tok)
	assert.Empty(t, afterCrash(t, db, c.Wall()), "a take does not touch the disk")

	c.Advance(time.Second)
	require.NoError(t, db.Save())
	want := buckets(t, db)
	require.Len(t, want, 2)
	assert.Equal(t, want, afterCrash(t, db, c.Wall()))
	assert.Equal(t, want, inPages(t, db, c.Wall()), "Save makes a checkpoint")
	assert.Equal(t, t0.Add(time.Second), db.LastSave())

	c.Advance(time.Second)
	waitTimers(t, c, 1) // the tick's write-out is done: none comes after the take
	want = buckets(t, db)
	take(t, db, def, "a", five, 3*tok)
	assert.Equal(t, want, afterCrash(t, db, c.Wall()), "a crash keeps the last flush's state until the next flush")

	require.NoError(t, db.Close())
	recs := fileRecords(t, path)
	assert.Equal(t, 4*tok+2*tok/3-3*tok, diskTokens(t, recs, "a", def), "Close makes a final checkpoint")

	db = mustOpenAt(t, path, testOptions(c))
	assert.Equal(t, 2, dbLen(t, db))
	snap, ok := peek(t, db, def, "a")
	require.True(t, ok)
	assert.Equal(t, tok+2*tok/3, snap.Remaining)
	assert.Equal(t, t0.Add(2*time.Second), snap.UpdatedAt)
}

// TestSyncAlwaysDurableOnReturn: under SyncAlways, once a change returns a
// crash keeps it.
func TestSyncAlwaysDurableOnReturn(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpen(t, storage.Options{Clock: c, Sync: storage.SyncAlways, SyncInterval: time.Hour})

	steps := []struct {
		name string
		do   func() error
		want map[bk]bucket.Tokens // what a crash keeps after the call returns
	}{
		{"take", func() error { _, err := db.Take(def, "a", slow, tok, nil); return err },
			map[bk]bucket.Tokens{{def, "a"}: 4 * tok}},
		{"take cell", func() error { _, err := db.Take(cell, "b", hundred, 10*tok, nil); return err },
			map[bk]bucket.Tokens{{def, "a"}: 4 * tok, {cell, "b"}: 90 * tok}},
		{"take again", func() error { _, err := db.Take(def, "a", slow, 2*tok, nil); return err },
			map[bk]bucket.Tokens{{def, "a"}: 2 * tok, {cell, "b"}: 90 * tok}},
		{"give back", func() error { _, err := db.Take(def, "a", slow, -tok, nil); return err },
			map[bk]bucket.Tokens{{def, "a"}: 3 * tok, {cell, "b"}: 90 * tok}},
		{"set", func() error { _, err := db.Set(gold, "a", slow, tok, nil); return err },
			map[bk]bucket.Tokens{{def, "a"}: 3 * tok, {gold, "a"}: tok, {cell, "b"}: 90 * tok}},
		{"reset", func() error { _, err := db.Reset(cell, "b"); return err },
			map[bk]bucket.Tokens{{def, "a"}: 3 * tok, {gold, "a"}: tok}},
		{"set to full", func() error { _, err := db.Set(gold, "a", slow, 5*tok, nil); return err },
			map[bk]bucket.Tokens{{def, "a"}: 3 * tok}},
		{"reset of a key", func() error { _, err := db.Reset(storage.AllNamespaces, "a"); return err },
			map[bk]bucket.Tokens{}},
		{"take after", func() error { _, err := db.Take(def, "c", slow, tok, nil); return err },
			map[bk]bucket.Tokens{{def, "c"}: 4 * tok}},
		{"clear", db.Clear, map[bk]bucket.Tokens{}},
	}
	for _, s := range steps {
		require.NoError(t, s.do(), s.name)
		assert.Equal(t, s.want, remaining(afterCrash(t, db, c.Wall())), s.name)
	}
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

// TestLoadKeepsBucketsFullInCenturies: a bucket so slow that it is full
// only in centuries (past the largest instant) is loaded from the pages,
// not taken for full.
func TestLoadKeepsBucketsFullInCenturies(t *testing.T) {
	c := storetest.NewClock(t0)
	path := filepath.Join(t.TempDir(), "bucketd.db")
	db := mustOpenAt(t, path, testOptions(c))
	take(t, db, def, "k", slow, 5*tok) // a micro-token an hour: full in 570 years
	want := buckets(t, db)
	require.Equal(t, time.Duration(1<<63-1), want[bk{def, "k"}].ResetAfter, "saturated")
	require.NoError(t, db.Close())

	db = mustOpenAt(t, path, testOptions(c))
	assert.Equal(t, want, buckets(t, db))
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
		key := storage.PageKey(id)
		if err := tx.Bucket(storage.PagesName).Put(key, storage.Seal(key, append(page, tail...))); err != nil {
			return err
		}
		return storage.Retally(tx)
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

func TestUnreadableRecordsAreRefusedOrRepaired(t *testing.T) {
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

	// The pages' checksums match (they were written so): unreadable
	// records in them are refused, naming the page and the keys.
	_, err := storage.Open(path, testOptions(storetest.NewClock(t0)))
	require.ErrorIs(t, err, storage.ErrDamaged)
	assert.Contains(t, err.Error(), path)
	assert.Contains(t, err.Error(), "unreadable records")

	// Repair loads what is readable, and names every key it drops.
	var logs logBuffer
	opts := testOptions(storetest.NewClock(t0))
	opts.Logger = logs.logger()
	opts.Repair = true
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
		assert.Contains(t, logs.String(), fmt.Sprintf(`key \"%s\"`, k), "a warning names the dropped key")
	}
	assert.Contains(t, logs.String(), fmt.Sprintf("page %04x", storage.PageOf(db, "good"))+": its checksum matches, but it holds unreadable records",
		"a warning names the unreadable page")
	assert.Contains(t, logs.String(), "the rest of the page", "the page cut short")
	assert.Contains(t, logs.String(), "repaired the data file")

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
		if err := tx.Bucket(storage.MetaName).Delete(storage.ClockKey); err != nil {
			return err
		}
		return storage.Retally(tx)
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
