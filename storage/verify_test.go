package storage

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// smallBoltFile writes a bbolt file as bucketd lays it out (meta, pages
// and overrides buckets, with a few values) and returns its bytes, cut to
// the pages in use.
func smallBoltFile(t testing.TB, values int) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f.db")
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true})
	require.NoError(t, err)
	require.NoError(t, bdb.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{metaName, pagesName, overridesName} {
			b, err := tx.CreateBucket(name)
			if err != nil {
				return err
			}
			for i := range values {
				k := []byte{byte(i >> 8), byte(i)}
				if err := b.Put(k, seal(k, bytes.Repeat([]byte{byte(i)}, 40+i%300))); err != nil {
					return err
				}
			}
		}
		return nil
	}))
	require.NoError(t, bdb.Close())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	w, err := verifyBolt(bytes.NewReader(b), int64(len(b)))
	require.NoError(t, err, "a sound file")
	return b[:w.meta.pgid*uint64(w.pageSize)]
}

// FuzzVerify gives arbitrary bytes to the structure check: it never
// panics, and bytes that it passes are a file that bbolt opens and walks
// (every bucket, every value, and tx.Check) without a panic or a fault,
// which would end the fuzzing process. A salvage walk never panics either.
func FuzzVerify(f *testing.F) {
	f.Add(smallBoltFile(f, 3))
	f.Add(smallBoltFile(f, 200)) // branch pages and overflow
	f.Fuzz(func(t *testing.T, b []byte) {
		sw := &boltWalk{f: bytes.NewReader(b), size: int64(len(b)), used: map[uint64]bool{0: true, 1: true}, salvage: func(string, []byte, []byte) {}}
		if sw.readMeta() == nil {
			_, _ = sw.walk(sw.meta.root, nil, nil, 0)
		}
		if _, err := verifyBolt(bytes.NewReader(b), int64(len(b))); err != nil {
			return
		}
		path := filepath.Join(t.TempDir(), "f.db")
		require.NoError(t, os.WriteFile(path, b, 0o600))
		bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
		if err != nil {
			return
		}
		defer bdb.Close()
		require.NoError(t, bdb.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				t.Logf("tx.Check: %v", err) // reported, not a panic
			}
			return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
				return b.ForEach(func(k, v []byte) error { return nil })
			})
		}))
	})
}
