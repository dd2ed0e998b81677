package wal

import (
	"bytes"
	"os"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// zeroFrom reports whether b holds only zeros from off on.
func zeroFrom(b []byte, off int64) bool {
	return !slices.ContainsFunc(b[off:], func(c byte) bool { return c != 0 })
}

// TestPreallocate: a log that preallocates writes its records over zeros
// that it wrote ahead of them, so that a group changes no file length
// until it reaches past them; then it writes as many zeros again in the
// same group. Those zeros end the segment cleanly: Open and Replay leave
// them, warn of nothing, and the log appends over them.
func TestPreallocate(t *testing.T) {
	const pad = 1024
	dir := t.TempDir()
	path := segPath(dir, 1)
	l := mustOpen(t, dir, Options{Window: -1, Preallocate: pad}, nil)
	assert.Equal(t, int64(headerLen+pad), fileSize(t, path), "a new segment is created with its zeros")

	want := appendAll(t, l, 0, 100, 100)
	require.NoError(t, l.Sync(want[1].Seq))
	good := int64(headerLen + 2*(recordHeaderLen+100))
	assert.Equal(t, int64(headerLen+pad), fileSize(t, path), "records written over the zeros leave the length alone")
	assert.Equal(t, uint64(1), l.Stats().Writes)

	// Records that end exactly where the zeros end write none.
	fit := appendAll(t, l, 2, pad-2*(recordHeaderLen+100)-recordHeaderLen)
	require.NoError(t, l.Sync(fit[0].Seq))
	want = append(want, fit...)
	good = int64(headerLen + pad)
	assert.Equal(t, good, fileSize(t, path), "records that fill the zeros exactly write no more")
	assert.Equal(t, uint64(pad), l.Stats().Bytes)

	// A group that reaches past the zeros writes as many again after it.
	more := appendAll(t, l, 3, 900)
	require.NoError(t, l.Sync(more[0].Seq))
	want = append(want, more...)
	good += recordHeaderLen + 900
	assert.Equal(t, good+pad, fileSize(t, path))
	b := fileBytes(t, path)
	assert.True(t, zeroFrom(b, good), "the file holds zeros after the records")
	assert.Equal(t, uint64(pad+900+recordHeaderLen+pad), l.Stats().Bytes,
		"the zeros of a group count as written")
	require.NoError(t, l.Close())

	logger, logs := captureLogger()
	got, last, err := replayAll(t, dir, 0, logger)
	require.NoError(t, err)
	assert.Equal(t, uint64(4), last)
	assertRecords(t, want, got)
	assert.Empty(t, logs.String(), "zeros after the last record are no damage")
	assert.Equal(t, b, fileBytes(t, path), "Replay leaves them")
	assert.NoFileExists(t, path+".damaged-1")

	// Reopened, with or without preallocation, the log appends over the
	// zeros, and the records after them come back.
	for i, p := range []int64{0, pad} {
		l = mustOpen(t, dir, Options{Window: -1, Preallocate: p, Logger: logger}, nil)
		more = appendAll(t, l, 10+i, 50)
		require.NoError(t, l.Sync(more[0].Seq))
		want = append(want, more...)
		require.NoError(t, l.Close())
		assert.Empty(t, logs.String())
		got, _, err = replayAll(t, dir, 0, nil)
		require.NoError(t, err)
		assertRecords(t, want, got, "reopened with Preallocate %d", p)
	}
	assert.Equal(t, good+pad, fileSize(t, path), "both appends fell in the zeros")
}

// TestPreallocateRotate: a rotated segment loses its unused zeros, the new
// one is created with them, and the log replays across both.
func TestPreallocateRotate(t *testing.T) {
	const pad = 4096
	dir := t.TempDir()
	logger, logs := captureLogger()
	l := mustOpen(t, dir, Options{Window: -1, Preallocate: pad, Logger: logger}, nil)
	want := appendAll(t, l, 0, 10, 20, 30)
	next, err := l.Rotate()
	require.NoError(t, err)
	require.Equal(t, uint64(4), next)
	assert.Equal(t, int64(headerLen+3*recordHeaderLen+60), fileSize(t, segPath(dir, 1)), "trimmed to its records")
	assert.Equal(t, int64(headerLen+pad), fileSize(t, segPath(dir, 4)))
	want = append(want, appendAll(t, l, 3, 40)...)
	require.NoError(t, l.Sync(4))
	assert.Equal(t, int64(headerLen+pad), fileSize(t, segPath(dir, 4)), "the record fell in the new segment's zeros")
	require.NoError(t, l.Close())
	assert.Empty(t, logs.String(), "no warning")

	got, last, err := replayAll(t, dir, 0, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(4), last)
	assertRecords(t, want, got)
}

// TestPreallocateEarlierSegmentPadded: zeros left at the end of an earlier
// segment (a crash before Rotate trimmed them) end it cleanly too: the
// next segment follows it in seq, so no record is missing.
func TestPreallocateEarlierSegmentPadded(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{Window: -1}, nil)
	want := appendAll(t, l, 0, 10, 20)
	_, err := l.Rotate()
	require.NoError(t, err)
	want = append(want, appendAll(t, l, 2, 30)...)
	require.NoError(t, l.Close())
	f, err := os.OpenFile(segPath(dir, 1), os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write(make([]byte, 700))
	require.NoError(t, err)
	require.NoError(t, f.Close())

	logger, logs := captureLogger()
	got, last, err := replayAll(t, dir, 0, logger)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), last)
	assertRecords(t, want, got)
	assert.Empty(t, logs.String())
}

// TestPreallocateFailedGroup: after a failed group the log no longer
// trusts its zeros (the file was truncated back), so the next group writes
// them again, and every record comes back.
func TestPreallocateFailedGroup(t *testing.T) {
	const pad = 512
	dir := t.TempDir()
	fs := &fakes{}
	l := mustOpen(t, dir, Options{Window: -1, Preallocate: pad}, fs.open)
	want := appendAll(t, l, 0, 10)
	require.NoError(t, l.Sync(1))
	fs.last().failSyncs.Store(1)
	want = append(want, appendAll(t, l, 1, 20)...)
	require.ErrorIs(t, l.Sync(2), errInjected)
	size := int64(headerLen + recordHeaderLen + 10)
	assert.Equal(t, size, fileSize(t, segPath(dir, 1)), "truncated back to its good records")
	require.NoError(t, l.Sync(2))
	size += recordHeaderLen + 20
	assert.Equal(t, size+pad, fileSize(t, segPath(dir, 1)), "the retry writes the zeros again")
	require.NoError(t, l.Close())
	assertReplays(t, dir, want)
	assert.True(t, bytes.Equal(make([]byte, pad), fileBytes(t, segPath(dir, 1))[size:]))
}
