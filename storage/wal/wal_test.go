package wal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		segments [][]int // payload sizes per segment; Rotate between segments
	}{
		{"no records", [][]int{{}}},
		{"one segment", [][]int{{0, 1, 100, 4096}}},
		{"several segments", [][]int{{10, 20}, {30}, {0, MaxPayload}, {5, 5, 5}}},
		{"empty last segment", [][]int{{1, 2}, {}}},
		{"rotate without records", [][]int{{1}, {}, {}, {7}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			l := mustOpen(t, dir, Options{}, nil)
			var want []rec
			for i, sizes := range tt.segments {
				if i > 0 {
					first, err := l.Rotate()
					require.NoError(t, err)
					require.Equal(t, l.LastSeq()+1, first, "a new segment starts after the last record")
				}
				want = append(want, appendAll(t, l, len(want), sizes...)...)
				if len(sizes) > 0 && i%2 == 0 {
					require.NoError(t, l.Sync(want[len(want)-1].Seq))
				}
			}
			require.Equal(t, uint64(len(want)), l.LastSeq())
			size := l.Size()
			require.NoError(t, l.Close())
			assert.Equal(t, dirSize(t, dir), size, "Size counts every byte of the segments")

			for _, from := range []uint64{0, 1, 2, uint64(len(want)), uint64(len(want)) + 1} {
				got, last, err := replayAll(t, dir, from, nil)
				require.NoError(t, err, "from %d", from)
				assert.Equal(t, uint64(len(want)), last, "from %d", from)
				skip := min(max(int(from), 1)-1, len(want))
				assertRecords(t, want[skip:], got, "from %d", from)
			}

			l = mustOpen(t, dir, Options{}, nil)
			assert.Equal(t, uint64(len(want)), l.LastSeq(), "reopened")
			more := appendAll(t, l, 100, 3, 4)
			require.Equal(t, uint64(len(want)+1), more[0].Seq)
			require.NoError(t, l.Close())
			got, _, err := replayAll(t, dir, 0, nil)
			require.NoError(t, err)
			assertRecords(t, append(want, more...), got)
		})
	}
}

// dirSize returns the total length of dir's segment files.
func dirSize(t testing.TB, dir string) int64 {
	t.Helper()
	segs, err := listSegments(dir)
	require.NoError(t, err)
	var n int64
	for _, s := range segs {
		n += s.size
	}
	return n
}

func TestRemoveBefore(t *testing.T) {
	t.Parallel()
	// Segments 1 (records 1-3), 4 (4-6), 7 (7-9), and the current one, 10.
	tests := []struct {
		seq  uint64
		left []uint64
	}{
		{0, []uint64{1, 4, 7, 10}},
		{3, []uint64{1, 4, 7, 10}},
		{4, []uint64{4, 7, 10}},
		{5, []uint64{4, 7, 10}},
		{7, []uint64{7, 10}},
		{10, []uint64{10}},
		{100, []uint64{10}},
	}
	for _, tt := range tests {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			l := mustOpen(t, dir, Options{}, nil)
			var want []rec
			for range 3 {
				want = append(want, appendAll(t, l, len(want), 10, 20, 30)...)
				_, err := l.Rotate()
				require.NoError(t, err)
			}
			require.NoError(t, l.RemoveBefore(tt.seq))
			assert.Equal(t, tt.left, segFiles(t, dir), "RemoveBefore(%d)", tt.seq)
			assert.Equal(t, dirSize(t, dir), l.Size())
			require.NoError(t, l.Close())

			from := max(tt.seq, 1)
			got, last, err := replayAll(t, dir, from, nil)
			require.NoError(t, err)
			assert.Equal(t, uint64(9), last)
			assertRecords(t, want[min(from-1, 9):], got)
			if tt.left[0] > 1 {
				_, _, err := replayAll(t, dir, tt.left[0]-1, nil)
				assert.ErrorIs(t, err, ErrCorrupt, "records before the oldest segment are missing")
			}
		})
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{}, nil)
	appendAll(t, l, 0, 5, 6)
	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "Close is idempotent")

	_, err := l.Append([]byte("x"))
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, l.Sync(1), ErrClosed)
	assert.ErrorIs(t, l.Flush(), ErrClosed)
	_, err = l.Rotate()
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, l.RemoveBefore(1), ErrClosed)
	assert.Equal(t, uint64(2), l.LastSeq())
	assert.Equal(t, dirSize(t, dir), l.Size())

	got, _, err := replayAll(t, dir, 0, nil)
	require.NoError(t, err)
	assert.Len(t, got, 2, "Close flushes")
}

func TestInvalidCalls(t *testing.T) {
	t.Parallel()
	l := mustOpen(t, t.TempDir(), Options{}, nil)
	_, err := l.Append(make([]byte, MaxPayload+1))
	assert.ErrorIs(t, err, ErrTooLarge)
	require.NoError(t, l.Sync(0))
	assert.Error(t, l.Sync(1), "seq 1 is not appended yet")
	require.NoError(t, l.Flush(), "nothing to flush")
}

func TestNextSeq(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		segments  [][]int // the log before Open, as in TestRoundTrip
		nextSeq   uint64
		wantNext  uint64
		wantFiles []uint64
	}{
		{"empty", nil, 0, 1, []uint64{1}},
		{"empty, after a checkpoint", nil, 50, 50, []uint64{50}},
		{"log past the checkpoint", [][]int{make([]int, 9)}, 5, 10, []uint64{1}},
		{"log at the checkpoint", [][]int{make([]int, 9)}, 10, 10, []uint64{1}},
		{"log behind the checkpoint", [][]int{make([]int, 9)}, 20, 20, []uint64{20}},
		{"covered segments removed", [][]int{{1, 2, 3}, {4, 5, 6}}, 5, 7, []uint64{4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if tt.segments != nil {
				l := mustOpen(t, dir, Options{}, nil)
				for i, sizes := range tt.segments {
					if i > 0 {
						_, err := l.Rotate()
						require.NoError(t, err)
					}
					appendAll(t, l, 0, sizes...)
				}
				require.NoError(t, l.Close())
			}
			l := mustOpen(t, dir, Options{NextSeq: tt.nextSeq}, nil)
			seq, err := l.Append([]byte("next"))
			require.NoError(t, err)
			assert.Equal(t, tt.wantNext, seq)
			require.NoError(t, l.Close())
			assert.Equal(t, tt.wantFiles, segFiles(t, dir))

			got, last, err := replayAll(t, dir, max(tt.nextSeq, 1), nil)
			require.NoError(t, err)
			assert.Equal(t, tt.wantNext, last)
			require.NotEmpty(t, got)
			assert.Equal(t, rec{tt.wantNext, []byte("next")}, got[len(got)-1])
		})
	}
}

func TestStaleTempRemoved(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tmp := filepath.Join(dir, segmentName(5)+tmpExt)
	require.NoError(t, os.WriteFile(tmp, []byte("bucketd"), 0o644))
	mustOpen(t, dir, Options{}, nil)
	assert.NoFileExists(t, tmp)
	assert.Equal(t, []uint64{1}, segFiles(t, dir))
}
