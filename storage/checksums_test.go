package storage_test

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/bucketd/bucketd/storage"
)

// TestMigrateSecondFormat opens a file of format 2 (the values without
// checksums, no digest): Open seals every page and override in place,
// logs the migration, and loads the same state; the file is then of
// format 3 and sound.
func TestMigrateSecondFormat(t *testing.T) {
	data, wal := realFile(t, 500, 2)
	want, err := openState(t, placeCopy(t, data, wal), storage.Options{})
	require.NoError(t, err)

	path := placeCopy(t, data, wal)
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	require.NoError(t, bdb.Update(func(tx *bolt.Tx) error { // as format 2 wrote it
		for _, name := range [][]byte{storage.PagesName, storage.OverridesName} {
			b := tx.Bucket(name)
			var keys, vals [][]byte
			if err := b.ForEach(func(k, v []byte) error {
				v, err := storage.Unseal(k, v)
				keys, vals = append(keys, bytes.Clone(k)), append(vals, bytes.Clone(v))
				return err
			}); err != nil {
				return err
			}
			for i, k := range keys {
				if err := b.Put(k, vals[i]); err != nil {
					return err
				}
			}
		}
		meta := tx.Bucket(storage.MetaName)
		if err := meta.Delete([]byte("digest")); err != nil {
			return err
		}
		return meta.Put(storage.FormatKey, []byte{2})
	}))
	require.NoError(t, bdb.Close())
	r, err := storage.Check(path, time.Second)
	require.NoError(t, err)
	assert.True(t, r.Sound(), "a file of format 2 has no checksums to fail: %v", r.Problems)
	assert.Equal(t, 2, r.Format)

	var logs logBuffer
	got, err := openState(t, path, storage.Options{Logger: logs.logger()})
	require.NoError(t, err)
	assert.Contains(t, logs.String(), "migrated the data file from format 2 to format 3")
	assert.Equal(t, want, got)
	assert.Equal(t, []byte{storage.FileFormat}, fileFormat(t, path))

	r, err = storage.Check(path, time.Second)
	require.NoError(t, err)
	assert.True(t, r.Sound(), "%v", r.Problems)
	assert.Equal(t, 3, r.Format)
	assert.Positive(t, r.Keys)
	again, err := openState(t, path, storage.Options{})
	require.NoError(t, err)
	assert.Equal(t, want, again)
}

// TestCheckNamesWhatIsDamaged: Check reports a flipped page with its keys,
// and a hand-deleted page through the digest, and changes nothing.
func TestCheckNamesWhatIsDamaged(t *testing.T) {
	data, wal := realFile(t, 300, 1)
	path := placeCopy(t, data, wal)
	r, err := storage.Check(path, time.Second)
	require.NoError(t, err)
	require.True(t, r.Sound(), "%v", r.Problems)
	assert.Equal(t, 300, r.Keys)
	assert.Equal(t, 4, r.Overrides)

	b := bytes.Clone(data)
	off := indexOf(b, []byte("user:77"))
	require.Positive(t, off)
	b[off+len("user:77")+4] ^= 1
	path = placeCopy(t, b, wal)
	r, err = storage.Check(path, time.Second)
	require.NoError(t, err)
	require.Len(t, r.Problems, 1)
	assert.Contains(t, r.Problems[0], "checksum")
	assert.Contains(t, r.Problems[0], `"user:77"`)
	assert.False(t, r.Structural)
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, b, after, "Check writes nothing")

	path = placeCopy(t, data, wal)
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	require.NoError(t, bdb.Update(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(storage.PagesName).Cursor().First()
		return tx.Bucket(storage.PagesName).Delete(k)
	}))
	require.NoError(t, bdb.Close())
	r, err = storage.Check(path, time.Second)
	require.NoError(t, err)
	require.Len(t, r.Problems, 1)
	assert.Contains(t, r.Problems[0], "meta digest says")
	_, err = storage.Open(path, storage.Options{})
	require.ErrorIs(t, err, storage.ErrDamaged, "a page gone missing is damage")
}
