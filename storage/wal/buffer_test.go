package wal

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGroupOfManyChunks: a group larger than a chunk, with a record larger
// than a chunk, is written whole, in order, as one group; a failed one is
// written again whole; and its chunks are reused.
func TestGroupOfManyChunks(t *testing.T) {
	for _, fail := range []string{"none", "write", "sync"} {
		t.Run(fail, func(t *testing.T) {
			dir := t.TempDir()
			fs := &fakes{}
			l := mustOpen(t, dir, Options{Window: -1}, fs.open)
			sizes := make([]int, 0, 3002)
			for range 1500 {
				sizes = append(sizes, 200)
			}
			sizes = append(sizes, chunkSize+1000) // a chunk of its own
			for range 1500 {
				sizes = append(sizes, 200)
			}
			want := appendAll(t, l, 0, sizes...)
			require.Greater(t, len(l.buf.chunks), 3, "the records fill several chunks")
			switch fail {
			case "write":
				fs.last().failWrites.Store(1)
			case "sync":
				fs.last().failSyncs.Store(1)
			}
			last := want[len(want)-1].Seq
			if fail != "none" {
				require.ErrorIs(t, l.Sync(last), errInjected)
				assert.Equal(t, int64(headerLen), fileSize(t, segPath(dir, 1)), "truncated back")
			}
			require.NoError(t, l.Sync(last))
			assert.Equal(t, 0, l.buf.n)
			require.NotEmpty(t, l.free, "the chunks are kept for reuse")
			assert.LessOrEqual(t, len(l.free), maxFreeChunks)
			for _, c := range l.free {
				assert.Equal(t, chunkSize, cap(c), "only chunks of chunkSize are kept: not the big record's")
				assert.Empty(t, c)
			}
			free := len(l.free)
			more := appendAll(t, l, 5000, 10, 20)
			assert.Len(t, l.free, free-1, "the next records go into a kept chunk")
			require.NoError(t, l.Sync(more[1].Seq))
			want = append(want, more...)
			require.NoError(t, l.Close())

			got, lastSeq, err := replayAll(t, dir, 0, nil)
			require.NoError(t, err)
			assert.Equal(t, uint64(len(want)), lastSeq)
			assertRecords(t, want, got)
		})
	}
}
