package wal

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzReplay replays arbitrary bytes as a segment file, after a valid
// header or not. It never panics; it either refuses the file, unchanged,
// or returns records whose frames are exactly the file's first bytes
// (so their checksums are valid), and then leaves the file alone if the
// rest is zeros (a preallocated tail), or else cuts the file there and
// keeps the rest aside; a second Replay agrees and cuts nothing.
func FuzzReplay(f *testing.F) {
	valid := appendRecord(appendRecord(nil, 1, []byte("one")), 2, nil)
	valid = appendRecord(valid, 3, bytes.Repeat([]byte{7}, 300))
	f.Add(valid, true)
	f.Add(valid[:len(valid)-1], true)
	f.Add(valid[:30], true)
	f.Add(append(bytes.Clone(valid), 0, 0, 0, 0, 0), true)
	f.Add([]byte{}, true)
	f.Add([]byte{}, false)
	f.Add([]byte("bucketd w"), false)
	f.Add(append(append(bytes.Clone(magic), 2), valid...), false)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 1, 0, 0, 0, 0, 0, 0, 0}, true)
	f.Fuzz(func(t *testing.T, data []byte, withHeader bool) {
		content := data
		if withHeader {
			content = append(header(), data...)
		}
		dir := t.TempDir()
		path := segPath(dir, 1)
		require.NoError(t, os.WriteFile(path, content, 0o644))

		got, last, err := replayAll(t, dir, 0, nil)
		if err != nil {
			require.True(t, errors.Is(err, ErrCorrupt) || errors.Is(err, ErrVersion), "%v", err)
			require.Empty(t, got)
			require.Equal(t, content, fileBytes(t, path), "a refused file is not written")
			return
		}
		require.Equal(t, uint64(len(got)), last)
		frames := header()
		for i, r := range got {
			require.Equal(t, uint64(i+1), r.Seq)
			frames = appendRecord(frames, r.Seq, r.Payload)
		}
		kept := content
		if len(content) >= headerLen {
			require.True(t, bytes.HasPrefix(content, frames), "the records are the file's first bytes")
			kept = content[len(frames):]
		}
		if len(content) >= headerLen && len(kept) > 0 && !slices.ContainsFunc(kept, func(b byte) bool { return b != 0 }) {
			require.Equal(t, content, fileBytes(t, path), "zeros after the last record are left alone")
			kept = nil
		} else {
			require.Equal(t, frames, fileBytes(t, path), "the file is cut after the last record")
		}
		if len(kept) > 0 {
			require.Equal(t, kept, fileBytes(t, path+".damaged-1"), "the rest is kept aside")
		} else {
			require.NoFileExists(t, path+".damaged-1")
		}

		again, last2, err := replayAll(t, dir, 0, nil)
		require.NoError(t, err)
		require.Equal(t, last, last2)
		require.Equal(t, len(got), len(again))
		require.NoFileExists(t, path+".damaged-2")
	})
}
