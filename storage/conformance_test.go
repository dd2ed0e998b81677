package storage_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

// TestConformance runs the store conformance suite on the embedded engine,
// in each sync mode.
func TestConformance(t *testing.T) {
	for _, opts := range []storage.Options{
		{Sync: storage.SyncInterval},
		{Sync: storage.SyncAlways},
	} {
		t.Run(opts.Sync.String(), func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, func(t *testing.T) storetest.Harness {
				path := filepath.Join(t.TempDir(), "bucketd.db")
				return storetest.Harness{
					Persistent: true,
					Open: func(c storage.Clock) (storage.Store, error) {
						o := opts
						o.Clock = c
						o.SyncInterval = time.Second
						return storage.Open(path, o)
					},
				}
			})
		})
	}
}
