package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeLog writes a log of one segment holding a record per size, closes
// it, and returns the records.
func writeLog(t testing.TB, dir string, sizes ...int) []rec {
	t.Helper()
	l := mustOpen(t, dir, Options{Window: -1}, nil)
	want := appendAll(t, l, 0, sizes...)
	require.NoError(t, l.Close())
	return want
}

func appendToFile(t testing.TB, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write(b)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func TestTornTail(t *testing.T) {
	t.Parallel()
	valid := appendRecord(nil, 6, payloadOf(6, 40))
	badCRC := bytes.Clone(valid)
	badCRC[5] ^= 1
	tests := []struct {
		name   string
		damage []byte
	}{
		{"half a record", valid[:len(valid)/2]},
		{"a record header cut short", valid[:10]},
		{"checksum mismatch", badCRC},
		{"seq out of order", appendRecord(nil, 9, []byte("later"))},
		{"seq repeated", appendRecord(nil, 5, []byte("again"))},
		{"zeros, then a byte", append(make([]byte, 10000), 1)}, // past the 4096 bytes allZero reads at a time
		{"a torn record over zeros", append(bytes.Clone(valid[:20]), make([]byte, 4096)...)},
		{"length over the limit", binary.LittleEndian.AppendUint32(nil, MaxPayload+1)},
		{"a whole record after the damage", append(bytes.Clone(valid[:20]), appendRecord(nil, 7, nil)...)},
	}
	for _, tt := range tests {
		for _, by := range []string{"Open", "Replay"} {
			t.Run(tt.name+" cut by "+by, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				want := writeLog(t, dir, 1, 2, 3, 4, 5)
				path := segPath(dir, 1)
				before := fileBytes(t, path)
				appendToFile(t, path, tt.damage)

				logger, logs := captureLogger()
				if by == "Replay" {
					got, last, err := replayAll(t, dir, 0, logger)
					require.NoError(t, err)
					assert.Equal(t, uint64(5), last)
					assertRecords(t, want, got)
				}
				l := mustOpen(t, dir, Options{Logger: logger}, nil)
				assert.Equal(t, uint64(5), l.LastSeq())
				assert.Contains(t, logs.String(), "cut a torn or damaged tail")
				assert.Equal(t, 1, countLines(logs.String()), "one warning")
				assert.Equal(t, before, fileBytes(t, path), "cut at the last good record")
				assert.Equal(t, tt.damage, fileBytes(t, path+".damaged-1"), "the damaged bytes are kept")

				want = append(want, appendAll(t, l, 5, 6, 7)...)
				require.NoError(t, l.Close())
				logger, logs = captureLogger()
				got, last, err := replayAll(t, dir, 0, logger)
				require.NoError(t, err)
				assert.Equal(t, uint64(7), last)
				assertRecords(t, want, got)
				assert.Empty(t, logs.String())
			})
		}
	}
}

func countLines(s string) int { return bytes.Count([]byte(s), []byte("\n")) }

func TestTornTailTwice(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	want := writeLog(t, dir, 1)
	path := segPath(dir, 1)
	for i, damage := range [][]byte{[]byte("first"), []byte("second")} {
		appendToFile(t, path, damage)
		assertReplays(t, dir, want)
		assert.Equal(t, damage, fileBytes(t, path+".damaged-"+string(rune('1'+i))))
	}
}

func TestTornHeader(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, headerLen - 1} {
		dir := t.TempDir()
		l := mustOpen(t, dir, Options{}, nil)
		want := appendAll(t, l, 0, 1, 2, 3)
		first, err := l.Rotate()
		require.NoError(t, err)
		require.NoError(t, l.Close())
		path := segPath(dir, first)
		require.NoError(t, os.Truncate(path, int64(n)))

		got, last, err := replayAll(t, dir, 0, nil)
		require.NoError(t, err, "a segment whose creation was cut short is empty")
		assert.Equal(t, uint64(3), last)
		assertRecords(t, want, got)
		assert.Equal(t, header(), fileBytes(t, path), "the header is rewritten")

		l = mustOpen(t, dir, Options{}, nil)
		want = append(want, appendAll(t, l, 3, 4)...)
		require.NoError(t, l.Close())
		got, _, err = replayAll(t, dir, 0, nil)
		require.NoError(t, err)
		assertRecords(t, want, got)
	}
}

func TestForeignFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content []byte
		want    error
	}{
		{"another kind of file", []byte("PK\x03\x04 not a log at all"), ErrCorrupt},
		{"newer version", append(bytes.Clone(magic), version+1, 1, 2, 3), ErrVersion},
		{"version 0", append(bytes.Clone(magic), 0), ErrCorrupt},
		{"short, not a header", []byte("bucketd xx"), ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, last := range []bool{true, false} {
				dir := t.TempDir()
				writeLog(t, dir, 1, 2)
				path := segPath(dir, 1)
				if last {
					require.NoError(t, os.WriteFile(path, tt.content, 0o644))
				} else {
					l := mustOpen(t, dir, Options{}, nil)
					_, err := l.Rotate()
					require.NoError(t, err)
					require.NoError(t, l.Close())
					require.NoError(t, os.WriteFile(path, tt.content, 0o644))
				}
				_, _, err := replayAll(t, dir, 0, nil)
				assert.ErrorIs(t, err, tt.want, "Replay")
				assert.ErrorContains(t, err, path)
				if last {
					_, err = Open(dir, Options{})
					assert.ErrorIs(t, err, tt.want, "Open")
				}
				assert.Equal(t, tt.content, fileBytes(t, path), "never written")
				matches, _ := filepath.Glob(path + ".damaged-*")
				assert.Empty(t, matches)
			}
		})
	}
}

func TestCorruptEarlierSegment(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) (string, []rec) {
		dir := t.TempDir()
		l := mustOpen(t, dir, Options{}, nil)
		var want []rec
		for range 3 {
			want = append(want, appendAll(t, l, len(want), 10, 10, 10)...)
			_, err := l.Rotate()
			require.NoError(t, err)
		}
		require.NoError(t, l.Close())
		return dir, want
	}
	t.Run("damaged record", func(t *testing.T) {
		t.Parallel()
		dir, want := setup(t)
		path := segPath(dir, 4)
		b := fileBytes(t, path)
		off := headerLen + recordHeaderLen + 10 // the second record of segment 4
		b[off+recordHeaderLen+3] ^= 0x40
		require.NoError(t, os.WriteFile(path, b, 0o644))
		got, _, err := replayAll(t, dir, 0, nil)
		require.ErrorIs(t, err, ErrCorrupt)
		assert.ErrorContains(t, err, path)
		assert.ErrorContains(t, err, "offset 38")
		assertRecords(t, want[:4], got, "the records before the damage")
		assert.Equal(t, b, fileBytes(t, path), "unchanged")
		_, _, err = replayAll(t, dir, 7, nil)
		assert.NoError(t, err, "a segment below from is not read")
	})
	t.Run("missing segment", func(t *testing.T) {
		t.Parallel()
		dir, _ := setup(t)
		require.NoError(t, os.Remove(segPath(dir, 4)))
		_, _, err := replayAll(t, dir, 0, nil)
		require.ErrorIs(t, err, ErrCorrupt)
		assert.ErrorContains(t, err, "ends at 3")
	})
}

// TestCrashPoints cuts a log at every byte offset, as a crash may, and
// replays it: the result is exactly the records wholly before the cut,
// which include every record acknowledged by a Sync before it.
func TestCrashPoints(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{Window: -1}, nil)
	var want []rec
	ends := []int64{int64(headerLen)} // ends[i]: the file length once record i (1-based) is written
	var acks []int64                  // file lengths at which a Sync returned
	for i := range 150 {
		want = append(want, appendAll(t, l, i, randomSizes(r, 1, 120)...)...)
		ends = append(ends, ends[i]+int64(recordHeaderLen+len(want[i].Payload)))
		if r.IntN(4) == 0 {
			require.NoError(t, l.Sync(want[i].Seq))
			acks = append(acks, ends[i+1])
		}
	}
	require.NoError(t, l.Close())
	full := fileBytes(t, segPath(dir, 1))
	require.Equal(t, ends[len(ends)-1], int64(len(full)))

	// wholly returns how many records end at or before cut.
	wholly := func(cut int64) int {
		k := 0
		for k+1 < len(ends) && ends[k+1] <= cut {
			k++
		}
		return k
	}
	for cut := range int64(len(full)) + 1 {
		var got []rec
		res, err := scan(bytes.NewReader(full[:cut]), cut, 1, func(seq uint64, p []byte) error {
			got = append(got, rec{seq, bytes.Clone(p)})
			return nil
		})
		require.NoError(t, err, "cut at %d", cut)
		k := wholly(cut)
		if !assertRecords(t, want[:k], got, "cut at %d", cut) {
			return
		}
		for _, a := range acks {
			if a <= cut {
				require.GreaterOrEqual(t, int64(ends[k]), a, "cut at %d loses an acknowledged record", cut)
			}
		}
		if cut >= int64(headerLen) {
			require.Equal(t, ends[k], res.good, "cut at %d", cut)
		}
		// The same crash in a log that preallocates: the write was torn
		// over zeros. The same records come back, and the tail is padding
		// where the cut fell between records (or left only zeros of a
		// record's frame). (Its segments are
		// created whole, header and zeros, so no cut falls in the header.)
		if cut < int64(headerLen) {
			continue
		}
		padded := append(bytes.Clone(full[:cut]), make([]byte, 100)...)
		// Zeros that the cut removed from a record's end come back: such a
		// record is whole again.
		kp := k
		for kp+1 < len(ends) && ends[kp+1] <= int64(len(padded)) && bytes.Equal(padded[:ends[kp+1]], full[:ends[kp+1]]) {
			kp++
		}
		got = got[:0]
		pres, err := scan(bytes.NewReader(padded), int64(len(padded)), 1, func(seq uint64, p []byte) error {
			got = append(got, rec{seq, bytes.Clone(p)})
			return nil
		})
		require.NoError(t, err, "cut at %d, padded", cut)
		if !assertRecords(t, want[:kp], got, "cut at %d, padded", cut) {
			return
		}
		require.Equal(t, ends[kp], pres.good, "cut at %d, padded", cut)
		torn := slices.ContainsFunc(padded[ends[kp]:], func(b byte) bool { return b != 0 })
		require.Equal(t, !torn, pres.padded && !pres.damaged(), "cut at %d, padded", cut)
	}

	// Through the files, at a sample of cuts: Replay cuts the tail, keeps it,
	// and the log goes on after the last whole record.
	cuts := []int64{0, 5, int64(headerLen), ends[1] - 1, ends[1], ends[1] + 1, int64(len(full)) - 1}
	for range 20 {
		cuts = append(cuts, r.Int64N(int64(len(full))))
	}
	for _, cut := range cuts {
		cdir := t.TempDir()
		path := segPath(cdir, 1)
		require.NoError(t, os.WriteFile(path, full[:cut], 0o644))
		got, last, err := replayAll(t, cdir, 0, nil)
		require.NoError(t, err)
		k := wholly(cut)
		assert.Equal(t, uint64(k), last)
		assertRecords(t, want[:k], got, "cut at %d", cut)
		assert.Equal(t, full[:ends[k]], fileBytes(t, path), "cut at %d", cut)
		if cut > ends[k] {
			assert.Equal(t, full[ends[k]:cut], fileBytes(t, path+".damaged-1"), "cut at %d", cut)
		}
		l := mustOpen(t, cdir, Options{}, nil)
		more := appendAll(t, l, 1000, 33)
		require.Equal(t, uint64(k+1), more[0].Seq)
		require.NoError(t, l.Close())
		got, _, err = replayAll(t, cdir, 0, nil)
		require.NoError(t, err)
		assertRecords(t, append(slices.Clone(want[:k]), more...), got, "cut at %d, then appended", cut)
	}
}

// TestByteFlips flips one byte at random offsets of a log: Replay returns
// the records before the damaged one, or an error for a damaged header,
// never a wrong record.
func TestByteFlips(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	var want []rec
	full := header()
	var starts []int // starts[i]: the offset of record i (0-based)
	for i := range 100 {
		p := payloadOf(i, r.IntN(100))
		want = append(want, rec{uint64(i + 1), p})
		starts = append(starts, len(full))
		full = appendRecord(full, uint64(i+1), p)
	}
	for range 3000 {
		off := r.IntN(len(full))
		b := bytes.Clone(full)
		b[off] ^= byte(1 + r.IntN(255))
		var got []rec
		_, err := scan(bytes.NewReader(b), int64(len(b)), 1, func(seq uint64, p []byte) error {
			got = append(got, rec{seq, bytes.Clone(p)})
			return nil
		})
		if off < headerLen {
			require.Error(t, err, "flip at %d", off)
			require.True(t, errors.Is(err, ErrCorrupt) || errors.Is(err, ErrVersion), "flip at %d: %v", off, err)
			continue
		}
		require.NoError(t, err, "flip at %d", off)
		k := 0 // the damaged record
		for k+1 < len(starts) && starts[k+1] <= off {
			k++
		}
		if !assertRecords(t, want[:k], got, "flip at %d", off) {
			return
		}
	}
}

// TestScanAllocations shows that a record length that claims more bytes
// than the file holds allocates nothing for them: the allocations are
// bounded by the file's size (plus a constant), not by the lengths in it.
func TestScanAllocations(t *testing.T) {
	b := appendRecord(header(), 1, make([]byte, 100))
	b = append(b, appendRecord(nil, 2, make([]byte, MaxPayload))[:200]...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	res, err := scan(bytes.NewReader(b), int64(len(b)), 1, nil)
	runtime.ReadMemStats(&after)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), res.last)
	assert.Contains(t, res.bad, "cut short")
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(len(b)+4096), "bytes allocated")
}
