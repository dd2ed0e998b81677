package storage_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

// TestSyncAlwaysPreallocatesItsLog: under SyncAlways the log writes its
// records over zeros written ahead of them (so that a group's fdatasync
// commits no file length); under SyncInterval it does not. Either log
// reopens with every take.
func TestSyncAlwaysPreallocatesItsLog(t *testing.T) {
	for _, tt := range []struct {
		mode    storage.SyncMode
		atLeast int64
	}{{storage.SyncAlways, 1 << 20}, {storage.SyncInterval, 0}} {
		t.Run(tt.mode.String(), func(t *testing.T) {
			c := storetest.NewClock(t0)
			path := filepath.Join(t.TempDir(), "bucketd.db")
			opts := storage.Options{Clock: c, Sync: tt.mode, SyncInterval: time.Hour}
			db := mustOpenAt(t, path, opts)
			take(t, db, def, "a", five, tok)
			var size int64
			entries, err := os.ReadDir(path + ".wal")
			require.NoError(t, err)
			for _, e := range entries {
				info, err := e.Info()
				require.NoError(t, err)
				size += info.Size()
			}
			if tt.atLeast > 0 {
				assert.GreaterOrEqual(t, size, tt.atLeast)
			} else {
				assert.Less(t, size, int64(4096))
			}
			require.NoError(t, db.Close())
			db = mustOpenAt(t, path, opts)
			s, ok := peek(t, db, def, "a")
			require.True(t, ok)
			assert.Equal(t, 4*tok, s.Remaining)
		})
	}
}
