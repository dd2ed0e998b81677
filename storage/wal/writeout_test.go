package wal

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWriteOut: WriteOut puts the pending records in the segment file
// without a sync, where a crash of the process finds them; a later Flush
// only syncs them. Size counts them once.
func TestWriteOut(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var fk fakes
	l := mustOpen(t, dir, Options{Window: -1}, fk.open)
	want := appendAll(t, l, 0, 10, 20, 30)
	size := l.Size()
	got, _, err := replayAll(t, dir, 0, nil)
	require.NoError(t, err)
	assert.Empty(t, got, "appended only: nothing in the file")

	require.NoError(t, l.WriteOut())
	got, _, err = replayAll(t, dir, 0, nil)
	require.NoError(t, err)
	assertRecords(t, want, got, "written out: in the file, as a crash of the process would find it")
	assert.Equal(t, Stats{Bytes: uint64(size - int64(headerLen)), Duration: l.Stats().Duration}, l.Stats(),
		"a WriteOut counts its bytes, not as a group")
	assert.Equal(t, size, l.Size(), "Size counts written records once")
	_, syncs := fk.counts()
	assert.Zero(t, syncs, "WriteOut does not sync")

	require.NoError(t, l.WriteOut(), "nothing more to write")
	want = append(want, appendAll(t, l, 3, 40, 0)...)
	require.NoError(t, l.WriteOut())
	got, _, err = replayAll(t, dir, 0, nil)
	require.NoError(t, err)
	assertRecords(t, want, got, "a second WriteOut appends after the first")

	writes, _ := fk.counts()
	require.NoError(t, l.Flush())
	w, syncs := fk.counts()
	assert.Equal(t, writes, w, "Flush after WriteOut writes nothing again")
	assert.Equal(t, int64(1), syncs, "it syncs what WriteOut wrote")
	assert.Equal(t, uint64(1), l.Stats().Writes, "the groups counted: the Flush alone")
	assert.Equal(t, uint64(l.Size()-int64(headerLen)), l.Stats().Bytes, "every byte counted once")

	want = append(want, appendAll(t, l, 5, 50)...)
	require.NoError(t, l.WriteOut())
	want = append(want, appendAll(t, l, 6, 60)...)
	size = l.Size()
	require.NoError(t, l.Close())
	assert.Equal(t, dirSize(t, dir), size, "nothing but the records, each once")
	got, _, err = replayAll(t, dir, 0, nil)
	require.NoError(t, err)
	assertRecords(t, want, got, "Close writes the rest and syncs all")
}

// TestWriteOutFailure: a failed WriteOut leaves the file as it was and the
// records pending; a failed sync after WriteOut cuts what WriteOut wrote
// too, and the retry writes it again. Either way every record ends in the
// file once, in order.
func TestWriteOutFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                                 string
		failWrites, failSyncs, failTruncates int32
	}{
		{name: "write out fails halfway", failWrites: 1},
		{name: "write out and truncate fail", failWrites: 1, failTruncates: 1},
		{name: "sync after write out fails", failSyncs: 1},
		{name: "sync after write out and truncate fail", failSyncs: 1, failTruncates: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var fk fakes
			l := mustOpen(t, dir, Options{Window: -1}, fk.open)
			want := appendAll(t, l, 0, 10, 20)
			require.NoError(t, l.Flush())
			good := fileSize(t, segPath(dir, 1))

			f := fk.last()
			f.failWrites.Store(tt.failWrites)
			f.failSyncs.Store(tt.failSyncs)
			f.failTruncates.Store(tt.failTruncates)
			want = append(want, appendAll(t, l, 2, 30, 0, 40)...)
			if tt.failWrites > 0 {
				require.ErrorIs(t, l.WriteOut(), errInjected)
			} else {
				require.NoError(t, l.WriteOut())
				assert.Greater(t, fileSize(t, segPath(dir, 1)), good, "written out")
				want = append(want, appendAll(t, l, 5, 45)...)
				require.ErrorIs(t, l.Flush(), errInjected)
			}
			if tt.failTruncates == 0 {
				assert.Equal(t, good, fileSize(t, segPath(dir, 1)), "the bytes not known durable are cut off")
			}
			want = append(want, appendAll(t, l, len(want), 50)...)
			if tt.failWrites > 0 {
				require.NoError(t, l.WriteOut(), "written again")
			}
			require.NoError(t, l.Flush())
			size := l.Size()
			require.NoError(t, l.Close())
			assert.Equal(t, dirSize(t, dir), size, "nothing but the records")
			assertReplays(t, dir, want)
		})
	}
}

// TestWriteOutWhileAppending: appends that go on while WriteOut writes,
// and while Flush syncs what it wrote (run with -race), are neither lost
// nor written twice.
func TestWriteOutWhileAppending(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{Window: -1}, nil)
	const n = 3000
	var want []rec
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		for i := range n {
			want = append(want, appendAll(t, l, i, 1+i%300)...)
		}
	})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			assert.NoError(t, l.WriteOut())
			if i%4 == 3 { // so that WriteOut also starts from nothing written
				assert.NoError(t, l.Flush())
			}
		}
	})
	wg.Wait()
	require.NoError(t, l.WriteOut())
	assertReplays(t, dir, want, "written out")
	require.NoError(t, l.Close())
}

// TestWriteOutPreallocates: WriteOut keeps a preallocating log's zeros
// ahead of its records, as a group does, and a Flush after it syncs them
// without writing them again.
func TestWriteOutPreallocates(t *testing.T) {
	t.Parallel()
	const pad = 1024
	dir := t.TempDir()
	path := segPath(dir, 1)
	l := mustOpen(t, dir, Options{Window: -1, Preallocate: pad}, nil)
	want := appendAll(t, l, 0, 100)
	require.NoError(t, l.WriteOut())
	assert.Equal(t, int64(headerLen+pad), fileSize(t, path), "written over the zeros: the length stays")

	want = append(want, appendAll(t, l, 1, 1000)...)
	require.NoError(t, l.WriteOut())
	good := int64(headerLen + 2*recordHeaderLen + 1100)
	assert.Equal(t, good+pad, fileSize(t, path), "past the zeros: as many again after the records")
	assert.True(t, zeroFrom(fileBytes(t, path), good))
	assert.Equal(t, uint64(2*recordHeaderLen+1100+pad), l.Stats().Bytes, "the zeros count as written")

	n := l.Stats().Bytes
	require.NoError(t, l.Flush())
	assert.Equal(t, n, l.Stats().Bytes, "the Flush writes nothing, zeros included")
	assert.Equal(t, good+pad, fileSize(t, path))
	require.NoError(t, l.Close())
	assertReplays(t, dir, want)
}

// TestSizeWhileSyncingWrittenOut: while a group syncs records that
// WriteOut wrote, Size counts them once, as before and after.
func TestSizeWhileSyncingWrittenOut(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fk := fakes{setup: func(f *fakeFile) {
		f.hold = make(chan struct{})
		f.inSync = make(chan struct{})
	}}
	l := mustOpen(t, dir, Options{Window: -1}, fk.open)
	appendAll(t, l, 0, 100, 200)
	require.NoError(t, l.WriteOut())
	appendAll(t, l, 2, 300)
	size := l.Size()
	f := fk.last()
	flushed := make(chan error, 1)
	go func() { flushed <- l.Flush() }()
	<-f.inSync
	assert.Equal(t, size, l.Size(), "during the sync")
	close(f.hold)
	require.NoError(t, <-flushed)
	assert.Equal(t, size, l.Size(), "after it")
	f.hold, f.inSync = nil, nil
	require.NoError(t, l.Close())
	assert.Equal(t, dirSize(t, dir), size)
}
