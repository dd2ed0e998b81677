package storage_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

// damagedAt is when every damaged copy is opened: a fixed instant, so that
// a sound copy loads exactly the state of the original.
var damagedAt = t0.Add(time.Hour)

// realFile writes a data file with the real store: n keys in two policies
// and CL.THROTTLE's namespace, taken from over rounds checkpoints, and a
// few overrides; it returns the file's bytes and its log directory's
// files, after Close.
func realFile(t testing.TB, n, rounds int) (data []byte, wal map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "bucketd.db")
	c := storetest.NewClock(t0)
	db, err := storage.Open(path, testOptions(c))
	require.NoError(t, err)
	for r := range rounds {
		for i := range n {
			if rounds > 1 && (i+r)%rounds == 0 {
				continue // each round leaves some keys alone
			}
			key := fmt.Sprintf("user:%d", i)
			switch i % 3 {
			case 0:
				take(t, db, def, key, hundred, bucket.Tokens(1+i%7)*tok)
			case 1:
				take(t, db, gold, key, slow, tok)
			default:
				take(t, db, cell, key, hundred, 3*tok)
			}
		}
		for i := range 5 {
			require.NoError(t, db.PutOverride(storage.Override{NS: gold, Key: fmt.Sprintf("vip:%d:%d", r, i), Limits: hundred}))
		}
		require.NoError(t, db.DeleteOverride(gold, fmt.Sprintf("vip:%d:0", r)))
		require.NoError(t, db.Save())
		c.Advance(time.Millisecond)
	}
	require.NoError(t, db.Close())
	data, err = os.ReadFile(path)
	require.NoError(t, err)
	wal = map[string][]byte{}
	ents, err := os.ReadDir(path + ".wal")
	require.NoError(t, err)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(path+".wal", e.Name()))
		require.NoError(t, err)
		wal[e.Name()] = b
	}
	return data, wal
}

// placeCopy writes data as a data file, with the log files beside it, in
// a new directory, and returns its path.
func placeCopy(t testing.TB, data []byte, wal map[string][]byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bucketd.db")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	require.NoError(t, os.Mkdir(path+".wal", 0o700))
	for name, b := range wal {
		require.NoError(t, os.WriteFile(filepath.Join(path+".wal", name), b, 0o600))
	}
	return path
}

// stateOf is everything a data file holds that a client can see.
type stateOf struct {
	buckets   map[bk]bucket.Snapshot
	overrides []storage.Override
}

// openState opens path at damagedAt and returns its state, or Open's error.
func openState(t testing.TB, path string, opts storage.Options) (stateOf, error) {
	t.Helper()
	opts.Clock = storetest.NewClock(damagedAt)
	opts.SyncInterval = time.Hour
	db, err := storage.Open(path, opts)
	if err != nil {
		return stateOf{}, err
	}
	defer db.Close()
	bs, err := bucketsOf(db)
	require.NoError(t, err)
	ovs, err := db.Overrides()
	require.NoError(t, err)
	return stateOf{bs, ovs}, nil
}

// damageOutcome checks one damaged copy: Open fails with an error that
// names the file and says damaged (or not a database), or succeeds with
// exactly the original state. It reports whether Open failed.
func damageOutcome(t *testing.T, what string, want stateOf, data []byte, wal map[string][]byte) bool {
	t.Helper()
	path := placeCopy(t, data, wal)
	got, err := openState(t, path, storage.Options{})
	if err != nil {
		assert.True(t, errors.Is(err, storage.ErrDamaged) || errors.Is(err, storage.ErrNotDatabase), "%s: %v", what, err)
		assert.Contains(t, err.Error(), path, "%s: the error names the file", what)
		return true
	}
	// Compare without testify's diff of thousands of buckets, which takes
	// minutes: count and name a few of the differences.
	var diff []string
	for k, w := range want.buckets {
		if g, ok := got.buckets[k]; !ok || !reflect.DeepEqual(w, g) {
			diff = append(diff, fmt.Sprintf("%v: %+v, want %+v", k, g, w))
		}
	}
	for k := range got.buckets {
		if _, ok := want.buckets[k]; !ok {
			diff = append(diff, fmt.Sprintf("%v: a bucket that was not there", k))
		}
	}
	assert.Empty(t, diff[:min(len(diff), 5)], "%s: opened, with %d buckets changed", what, len(diff))
	assert.Equal(t, want.overrides, got.overrides, "%s: opened, with other overrides", what)
	return false
}

// TestDamagedFileIsRefusedNeverChanged truncates a real data file at many
// sizes and flips bytes at many offsets, each in a fresh copy: Open never
// panics (a panic here, even in a goroutine of bbolt, ends the test
// binary), and either fails naming the file or loads exactly the
// original state: no silent change.
func TestDamagedFileIsRefusedNeverChanged(t *testing.T) {
	data, wal := realFile(t, 3000, 4)
	want, err := openState(t, placeCopy(t, data, wal), storage.Options{})
	require.NoError(t, err)
	require.Greater(t, len(want.buckets), 2900)
	require.Len(t, want.overrides, 16)
	size := len(data)
	used := usedBytes(data)
	t.Logf("a data file of %d bytes (%d in use), %d buckets, %d overrides", size, used, len(want.buckets), len(want.overrides))

	t.Run("truncated", func(t *testing.T) {
		sizes := []int{0, 1, 100, 4096, 8 << 10, 8<<10 + 123, 12 << 10, size - 1, size - 4096, size / 2, size/2 + 123}
		if size > 256<<10 {
			sizes = append(sizes, 256<<10, 256<<10+123)
		}
		for n := 16 << 10; n < size; n += 28 << 10 {
			sizes = append(sizes, n)
		}
		refused := 0
		for _, n := range sizes {
			if damageOutcome(t, fmt.Sprintf("cut to %d bytes", n), want, data[:n], wal) {
				refused++
			}
		}
		t.Logf("%d truncations: %d refused, %d opened unchanged", len(sizes), refused, len(sizes)-refused)
		for _, n := range sizes {
			if n < used {
				assert.True(t, damageOutcome(t, fmt.Sprintf("cut to %d bytes", n), want, data[:n], wal), "cut to %d bytes, within the %d bytes in use: refused", n, used)
			}
		}
	})

	t.Run("flipped", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(9, 9))
		offsets := []int{}
		for i := 0; i < 16+64; i += 4 { // both meta pages
			offsets = append(offsets, i, 4096+i)
		}
		for len(offsets) < 200 {
			offsets = append(offsets, rng.IntN(used))
		}
		refused := 0
		for _, off := range offsets {
			b := append([]byte(nil), data...)
			x := byte(1 + rng.IntN(255))
			b[off] ^= x
			if damageOutcome(t, fmt.Sprintf("byte %d ^ %#x", off, x), want, b, wal) {
				refused++
			}
		}
		t.Logf("%d flips: %d refused, %d opened unchanged", len(offsets), refused, len(offsets)-refused)
	})
}

// TestRepairKeepsOnlyWhatIsSound damages a real file, by truncation and by
// flips, and opens it with Repair: Open never panics, and either fails or
// loads a part of the original state, every bucket and override it loads
// exactly as it was, and what it drops logged.
func TestRepairKeepsOnlyWhatIsSound(t *testing.T) {
	data, wal := realFile(t, 2000, 3)
	want, err := openState(t, placeCopy(t, data, wal), storage.Options{})
	require.NoError(t, err)
	used := usedBytes(data)
	rng := rand.New(rand.NewPCG(5, 5))
	var cases [][]byte
	for _, n := range []int{8 << 10, 12 << 10, used / 3, used / 2, used - 4096} {
		cases = append(cases, data[:n])
	}
	for range 60 {
		b := append([]byte(nil), data...)
		b[8192+rng.IntN(used-8192)] ^= byte(1 + rng.IntN(255))
		cases = append(cases, b)
	}
	refused, partial, whole := 0, 0, 0
	for i, b := range cases {
		var logs logBuffer
		got, err := openState(t, placeCopy(t, b, wal), storage.Options{Repair: true, Logger: logs.logger()})
		if err != nil {
			refused++
			assert.ErrorIs(t, err, storage.ErrDamaged, "case %d", i)
			continue
		}
		changed := 0
		for k, g := range got.buckets {
			if w, ok := want.buckets[k]; !ok || !reflect.DeepEqual(w, g) {
				changed++
			}
		}
		assert.Zero(t, changed, "case %d: every bucket loaded is as it was", i)
		for _, o := range got.overrides {
			assert.Contains(t, want.overrides, o, "case %d", i)
		}
		if len(got.buckets) < len(want.buckets) || len(got.overrides) < len(want.overrides) {
			partial++
			assert.Contains(t, logs.String(), "storage: repair: dropped", "case %d: what is dropped is logged", i)
		} else {
			whole++
		}
	}
	t.Logf("%d damaged copies opened with Repair: %d refused, %d with a part of the state, %d whole", len(cases), refused, partial, whole)
}

// TestRepairDropsDamagedPagesAndSaysSo flips a byte inside a stored page:
// Open refuses the file naming the page, and Repair opens it without that
// page's keys, logs each one, keeps a copy of the damaged file, and leaves
// a sound file.
func TestRepairDropsDamagedPagesAndSaysSo(t *testing.T) {
	data, wal := realFile(t, 600, 1) // one checkpoint of pages: none stale
	want, err := openState(t, placeCopy(t, data, wal), storage.Options{})
	require.NoError(t, err)

	// A byte of a key's record, found by its name in the file.
	off := indexOf(data, []byte("user:123"))
	require.Positive(t, off)
	b := append([]byte(nil), data...)
	b[off+len("user:123")+6] ^= 0x40
	path := placeCopy(t, b, wal)

	_, err = openState(t, path, storage.Options{})
	require.ErrorIs(t, err, storage.ErrDamaged)
	assert.Contains(t, err.Error(), path)
	assert.Contains(t, err.Error(), "checksum")
	assert.Contains(t, err.Error(), `"user:123"`, "the error names the keys of the damaged page")

	var logs logBuffer
	got, err := openState(t, path, storage.Options{Repair: true, Logger: logs.logger()})
	require.NoError(t, err)
	assert.Contains(t, logs.String(), "storage: repair: dropped page")
	assert.Contains(t, logs.String(), `user:123`)
	assert.FileExists(t, path+".damaged-1")
	lost := 0
	for k, snap := range want.buckets {
		g, ok := got.buckets[k]
		if !ok {
			lost++
			assert.Contains(t, logs.String(), fmt.Sprintf(`\"%s\"`, k.key), "a dropped key is named in the log")
			continue
		}
		assert.Equal(t, snap, g, "%v", k)
	}
	assert.Positive(t, lost)
	assert.Less(t, lost, len(want.buckets)/10, "only the damaged page's keys are lost")
	assert.Equal(t, want.overrides, got.overrides)

	// The repaired file is sound: it opens without Repair, as repaired.
	again, err := openState(t, path, storage.Options{})
	require.NoError(t, err)
	assert.Equal(t, got, again)
}

// usedBytes returns the bytes of a bbolt file that its pages use: its
// high-water mark (the pgid of its newest meta page) times its page size.
// bbolt grows a file in large steps: what is beyond is unused.
func usedBytes(data []byte) int {
	le := binary.LittleEndian
	var txid, pgid uint64
	for _, off := range []int{16, 4096 + 16} {
		if tx := le.Uint64(data[off+48:]); tx >= txid {
			txid, pgid = tx, le.Uint64(data[off+40:])
		}
	}
	return int(pgid) * int(le.Uint32(data[16+8:]))
}

func indexOf(b, sub []byte) int {
	for i := 0; i+len(sub) <= len(b); i++ {
		if string(b[i:i+len(sub)]) == string(sub) {
			return i
		}
	}
	return -1
}

// FuzzOpen opens arbitrary bytes as a data file: Open never panics, and
// either fails or opens a store that answers; a file refused as damaged is
// opened again with Repair, which never panics either.
func FuzzOpen(f *testing.F) {
	data, _ := realFile(f, 40, 2)
	data = data[:usedBytes(data)] // bbolt grows a file in steps: the tail is unused
	f.Logf("a seed of %d bytes", len(data))
	f.Add(data)
	f.Add(data[:8192])
	f.Add(data[:len(data)/2])
	f.Add([]byte("not a database"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "bucketd.db")
		require.NoError(t, os.WriteFile(path, b, 0o600))
		db, err := storage.Open(path, storage.Options{Clock: storetest.NewClock(damagedAt), SyncInterval: time.Hour})
		if errors.Is(err, storage.ErrDamaged) { // and so through Repair
			require.NoError(t, os.WriteFile(path, b, 0o600))
			db, err = storage.Open(path, storage.Options{Clock: storetest.NewClock(damagedAt), SyncInterval: time.Hour, Repair: true})
		}
		if err != nil {
			return
		}
		_, err = bucketsOf(db)
		assert.NoError(t, err)
		assert.NoError(t, db.Close())
	})
}
