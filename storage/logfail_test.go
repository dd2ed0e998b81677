package storage_test

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
	"github.com/bucketd/bucketd/storage/wal"
)

// errLog is the failure of a faultyLog's file.
var errLog = errors.New("log device gone")

// faultyLog opens the log's segment files so that their writes or their
// syncs fail while the flags are set.
type faultyLog struct {
	failWrite, failSync atomic.Bool
}

func (l *faultyLog) open(path string) (wal.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return &faultyFile{File: f, l: l}, nil
}

type faultyFile struct {
	*os.File
	l *faultyLog
}

func (f *faultyFile) WriteAt(p []byte, off int64) (int, error) {
	if f.l.failWrite.Load() {
		return 0, errLog
	}
	return f.File.WriteAt(p, off)
}

func (f *faultyFile) Sync() error {
	if f.l.failSync.Load() {
		return errLog
	}
	return f.File.Sync()
}

// TestSyncAlwaysReportsAFailingLog: under SyncAlways, a take whose record
// cannot be written, or cannot be synced, is answered with
// bucket.ErrNotDurable, and Health reports it until the log works again;
// the take itself happened in memory, and its record is written by the
// next write that succeeds.
func TestSyncAlwaysReportsAFailingLog(t *testing.T) {
	for _, fail := range []string{"write", "fdatasync"} {
		t.Run(fail, func(t *testing.T) {
			fl := &faultyLog{}
			c := storetest.NewClock(storetest.T0)
			path := filepath.Join(t.TempDir(), "bucketd.db")
			db, err := storage.Open(path, storage.WithLogFiles(storage.Options{Sync: storage.SyncAlways, Clock: c, SyncInterval: time.Hour}, fl.open))
			require.NoError(t, err)
			defer db.Close()
			_, err = db.Take(def, "k", hundred, tok, nil)
			require.NoError(t, err, "a working log")
			require.NoError(t, db.Health())

			flag := &fl.failWrite
			if fail == "fdatasync" {
				flag = &fl.failSync
			}
			flag.Store(true)
			d, err := db.Take(def, "k", hundred, tok, nil)
			require.ErrorIs(t, err, bucket.ErrNotDurable)
			require.ErrorIs(t, err, errLog)
			assert.True(t, d.Allowed, "the decision is still returned")
			err = db.Health()
			require.ErrorIs(t, err, bucket.ErrNotDurable)
			assert.ErrorIs(t, err, errLog)
			// A take that changes nothing writes nothing: no error.
			_, _, err = db.Peek(def, "k", nil)
			require.NoError(t, err)

			flag.Store(false)
			_, err = db.Take(def, "k", hundred, tok, nil)
			require.NoError(t, err, "the log works again")
			require.NoError(t, db.Health(), "and Health says so")
			require.NoError(t, db.Close())

			// Every take reached the log: 3 tokens gone after a reopen.
			db2, err := storage.Open(path, storage.Options{Clock: c, SyncInterval: time.Hour})
			require.NoError(t, err)
			defer db2.Close()
			snap, ok, err := db2.Peek(def, "k", nil)
			require.NoError(t, err)
			require.True(t, ok)
			assert.Equal(t, 97*tok, snap.Remaining)
		})
	}
}
