package storage_test

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

// TestWhatChangesNothingWritesNothing checks that reads, refused takes and
// takes or resets that find a full bucket append no record to the log,
// and that each change appends exactly one.
func TestWhatChangesNothingWritesNothing(t *testing.T) {
	for _, mode := range syncModes {
		t.Run(mode.String(), func(t *testing.T) {
			c := storetest.NewClock(t0)
			db := mustOpen(t, storage.Options{Clock: c, Sync: mode, SyncInterval: time.Hour})
			take(t, db, def, "empty", slow, 5*tok)
			take(t, db, def, "quick", five, tok) // full 3 s later
			c.Advance(3 * time.Second)           // full, still in memory

			nothing := []struct {
				name string
				do   func() error
			}{
				{"peek", func() error { _, _, err := db.Peek(def, "empty", nil); return err }},
				{"peek under other limits", func() error { _, _, err := db.Peek(def, "empty", five); return err }},
				{"peek of nothing", func() error { _, _, err := db.Peek(def, "nobody", nil); return err }},
				{"take of 0", func() error { _, err := db.Take(def, "empty", slow, 0, nil); return err }},
				{"refused take", func() error { _, err := db.Take(def, "empty", slow, tok, nil); return err }},
				{"take beyond the capacity", func() error { _, err := db.Take(def, "new", slow, 6*tok, nil); return err }},
				{"give to a missing bucket", func() error { _, err := db.Take(def, "nobody", slow, -tok, nil); return err }},
				{"give to a refilled bucket", func() error { _, err := db.Take(def, "quick", five, -tok, nil); return err }},
				{"reset of nothing", func() error { _, err := db.Reset(def, "nobody"); return err }},
				{"reset of a refilled bucket", func() error { _, err := db.Reset(storage.AllNamespaces, "quick"); return err }},
				{"namespaces", func() error { _, err := db.Namespaces("empty"); return err }},
				{"scan", func() error { _, _, err := db.Scan(0, 10); return err }},
				{"len", func() error { _, err := db.Len(); return err }},
			}
			seq, size := storage.WALLastSeq(db), storage.WALSize(db)
			for _, st := range nothing {
				require.NoError(t, st.do(), st.name)
				assert.Equal(t, seq, storage.WALLastSeq(db), "%s appends no record", st.name)
				assert.Equal(t, size, storage.WALSize(db), "%s writes no byte", st.name)
			}

			changes := []struct {
				name string
				do   func() error
			}{
				{"take", func() error { _, err := db.Take(def, "k", slow, tok, nil); return err }},
				{"give back", func() error { _, err := db.Take(def, "k", slow, -tok/2, nil); return err }},
				{"take under other limits", func() error { _, err := db.Take(def, "k", two, tok, nil); return err }},
				{"set", func() error { _, err := db.Set(gold, "k", slow, tok, nil); return err }},
				{"set to full", func() error { _, err := db.Set(gold, "k", slow, 5*tok, nil); return err }},
				{"reset", func() error { _, err := db.Reset(def, "empty"); return err }},
				{"reset of a key", func() error { _, err := db.Reset(storage.AllNamespaces, "k"); return err }},
				{"clear", db.Clear},
			}
			for _, st := range changes {
				seq := storage.WALLastSeq(db)
				require.NoError(t, st.do(), st.name)
				assert.Equal(t, seq+1, storage.WALLastSeq(db), "%s appends one record", st.name)
			}
		})
	}
}

// TestKilledAfterAnIntervalFlush stops a DB under SyncInterval the way
// SIGKILL does, without Close, once the flusher has written the log: a
// restart from the files finds every change, refilled for the downtime,
// though no checkpoint ever wrote a page.
func TestKilledAfterAnIntervalFlush(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpen(t, storage.Options{Clock: c, SyncInterval: time.Second})
	waitTimers(t, c, 1)
	take(t, db, def, "a", five, 2*tok)
	take(t, db, cell, "b", hundred, 10*tok)
	take(t, db, gold, "b", five, tok) // full 3 s later
	_, err := db.Set(gold, "a", five, tok, nil)
	require.NoError(t, err)
	take(t, db, def, "c", five, tok)
	_, err = db.Reset(storage.AllNamespaces, "c")
	require.NoError(t, err)
	assert.Empty(t, afterCrash(t, db, c.Wall()), "nothing is written before the interval")

	c.Advance(time.Second)
	waitTimers(t, c, 1) // the flusher has written the log, and armed its next tick
	want := buckets(t, db)
	require.Len(t, want, 4)
	assert.Equal(t, want, afterCrash(t, db, c.Wall()))
	assert.Empty(t, inPages(t, db, c.Wall()), "no checkpoint was made: the log alone holds them")

	// A restart 3 s later finds them refilled for the downtime: as the
	// running DB sees them then.
	down := c.Wall().Add(3 * time.Second)
	c.Advance(3 * time.Second)
	want = buckets(t, db)
	assert.NotContains(t, want, bk{gold, "b"}, "refilled by then")
	assert.Equal(t, want, afterCrash(t, db, down))
}

// FuzzJournal replays arbitrary bytes as a journal record into a DB. It
// never panics; a record it refuses wraps ErrCorrupt and changes nothing;
// a record it accepts is applied as written: a bucket put reads back as
// the same record (or is absent, when it has refilled since), a deleted
// bucket is gone, a cleared table is empty; and replaying it again changes
// nothing.
func FuzzJournal(f *testing.F) {
	at := t0.UnixNano()
	rec := func(ns storage.Namespace, limits []bucket.Limit, tokens ...bucket.Tokens) storage.Record {
		r := storage.Record{NS: ns, Limits: limits, Updated: at}
		for _, n := range tokens {
			r.States = append(r.States, bucket.State{Tokens: n, At: at})
		}
		return r
	}
	f.Add(storage.JournalPut("k", rec(def, five, 2*tok)))
	f.Add(storage.JournalPut("k", rec(def, five, 5*tok)))
	f.Add(storage.JournalPut("joe", rec(gold, two, tok, 3*tok)))
	f.Add(storage.JournalPut("c", rec(cell, hundred, 0)))
	f.Add(storage.JournalDelete("k", def))
	f.Add(storage.JournalDelete("c", cell))
	f.Add(storage.JournalDeleteKey("k"))
	f.Add(storage.JournalClear())
	f.Add([]byte{})
	f.Add([]byte{9, 1, 'k'})
	// And the records of a real run.
	src := mustOpen(f, storage.Options{Clock: storetest.NewClock(t0), Sync: storage.SyncAlways})
	take(f, src, def, "a", five, tok)
	take(f, src, cell, "b", two, 2*tok)
	_, err := src.Set(gold, "a", five, 3*tok, nil)
	require.NoError(f, err)
	_, err = src.Reset(def, "a")
	require.NoError(f, err)
	_, err = src.Reset(storage.AllNamespaces, "b")
	require.NoError(f, err)
	require.NoError(f, src.Clear())
	frames, err := logFrames(src)
	require.NoError(f, err)
	require.Len(f, frames, 6)
	for _, fr := range frames {
		f.Add(bytes.Clone(fr.payload))
	}

	db := mustOpen(f, testOptions(storetest.NewClock(t0)))
	other := storage.JournalPut("other", rec(def, slow, tok))
	f.Fuzz(func(t *testing.T, p []byte) {
		require.NoError(t, storage.ReplayRecord(db, storage.JournalClear()))
		require.NoError(t, storage.ReplayRecord(db, other))
		before := buckets(t, db)
		require.Len(t, before, 1)

		if err := storage.ReplayRecord(db, p); err != nil {
			require.ErrorIs(t, err, storage.ErrCorrupt)
			require.Equal(t, before, buckets(t, db), "a refused record changes nothing")
			return
		}
		after := buckets(t, db)
		switch p[0] {
		case 1: // put
			key, ns, ok := journalTarget(p)
			require.True(t, ok, "accepted a put that names no bucket: %x", p)
			got, ok := storage.JournalOf(db, ns, key)
			if _, live := after[bk{ns, key}]; live {
				require.True(t, ok)
				require.Equal(t, p, got, "the bucket reads back as the record")
			} else {
				require.False(t, ok, "a refilled bucket is not kept")
			}
			if key != "other" {
				require.Equal(t, before[bk{def, "other"}], after[bk{def, "other"}], "other keys are untouched")
			}
		case 2: // delete
			key, ns, ok := journalTarget(p)
			require.True(t, ok, "accepted a delete that names no bucket: %x", p)
			require.NotContains(t, after, bk{ns, key})
			_, ok = storage.JournalOf(db, ns, key)
			require.False(t, ok)
		case 3: // delete a key
			key, _, ok := journalStr(p[1:])
			require.True(t, ok)
			for b := range after {
				require.NotEqual(t, key, b.key)
			}
		case 4:
			require.Empty(t, after)
		default:
			require.Failf(t, "accepted an unknown operation", "%x", p)
		}
		require.NoError(t, storage.ReplayRecord(db, p), "a record replays again")
		require.Equal(t, after, buckets(t, db), "replaying a record twice changes nothing more")
	})
}

// journalTarget reads the key and namespace that a put or delete record
// starts with (see storage/journal.go).
func journalTarget(p []byte) (key string, ns storage.Namespace, ok bool) {
	key, rest, ok := journalStr(p[1:])
	if !ok || len(rest) == 0 {
		return "", ns, false
	}
	ns.Kind = storage.Kind(rest[0])
	ns.Name, _, ok = journalStr(rest[1:])
	return key, ns, ok
}

// journalStr reads a uvarint length and that many bytes.
func journalStr(b []byte) (s string, rest []byte, ok bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return "", nil, false
	}
	return string(b[w : w+int(n)]), b[w+int(n):], true
}
