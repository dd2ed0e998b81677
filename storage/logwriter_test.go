package storage_test

import (
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

// stepDisk lets a checkpoint's first transaction through, then stops each
// later one before its commit until the test lets it go.
type stepDisk struct {
	next    storage.Disk
	calls   int           // only the checkpoint writes: guarded by its flushMu
	entered chan struct{} // receives when a transaction waits
	proceed chan struct{} // receives to let it go
	stop    chan struct{} // closed when the test ends: let all through
}

func (d *stepDisk) Update(f func(*bolt.Tx) error) error {
	d.calls++
	if d.calls > 1 {
		select {
		case d.entered <- struct{}{}:
		case <-d.stop:
			return d.next.Update(f)
		}
		select {
		case <-d.proceed:
		case <-d.stop:
		}
	}
	return d.next.Update(f)
}

// TestIntervalLogIsWrittenDuringACheckpoint: under SyncInterval, a
// checkpoint (about half a second at a million buckets, during which the
// flusher does not tick) writes the log out every 100ms and syncs it every
// interval between its transactions, as the flusher does at other times.
func TestIntervalLogIsWrittenDuringACheckpoint(t *testing.T) {
	c := storetest.NewClock(t0)
	db := mustOpen(t, storage.Options{Clock: c, SyncInterval: time.Second})
	for i := range 1000 { // every shard changed
		take(t, db, def, "key:"+itoa(i), five, tok)
	}
	storage.SetCheckpointBatch(db, 1) // a transaction per shard
	d := &stepDisk{entered: make(chan struct{}), proceed: make(chan struct{}), stop: make(chan struct{})}
	d.next = storage.SetDisk(db, d)
	t.Cleanup(func() { close(d.stop) }) // before the Close that mustOpen registered
	saved := make(chan error, 1)
	go func() { saved <- db.Save() }()
	await(t, d.entered, "the checkpoint's second transaction")

	take(t, db, def, "b", five, 2*tok)
	d.proceed <- struct{}{}
	await(t, d.entered, "the third transaction")
	_, found := afterCrash(t, db, c.Wall())[bk{def, "b"}]
	assert.False(t, found, "b's take is in the log before it was due to be written")

	syncs := db.Stats().LogWrites
	c.Advance(100 * time.Millisecond)
	d.proceed <- struct{}{}
	await(t, d.entered, "the fourth transaction")
	_, found = afterCrash(t, db, c.Wall())[bk{def, "b"}]
	assert.True(t, found, "b's take is not written out after 100ms, mid-checkpoint")
	assert.Equal(t, syncs, db.Stats().LogWrites, "written out, not synced")

	c.Advance(900 * time.Millisecond)
	d.proceed <- struct{}{}
	await(t, d.entered, "the fifth transaction")
	assert.Equal(t, syncs+1, db.Stats().LogWrites, "synced once the interval passed, mid-checkpoint")

	d.proceed <- struct{}{}
	timeout := time.After(wait)
	for done := false; !done; {
		select {
		case <-d.entered:
			d.proceed <- struct{}{}
		case err := <-saved:
			require.NoError(t, err)
			done = true
		case <-timeout:
			require.FailNow(t, "timed out", "waiting for Save")
		}
	}
	assert.Equal(t, buckets(t, db), afterCrash(t, db, c.Wall()))
}
