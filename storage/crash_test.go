package storage_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

// fastDir returns a new directory, removed at the end of the test, on
// tmpfs (/dev/shm) where there is one: a crash test opens hundreds of
// copies, and its cost is their fsyncs, not their bytes.
func fastDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "bucketd-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// crashHistory is what a sequence of operations acknowledged: after op i
// (index i+1; index 0 is before the first), the log's last seq, the wall
// time, and every live bucket, peeked then.
type crashHistory struct {
	ops   []string
	seq   []uint64
	at    []time.Time
	state []map[bk]bucket.Snapshot
}

// record adds the state after op.
func (h *crashHistory) record(t *testing.T, db *storage.DB, c *storetest.Clock, op string) {
	t.Helper()
	h.ops = append(h.ops, op)
	h.seq = append(h.seq, storage.WALLastSeq(db))
	h.at = append(h.at, c.Wall())
	h.state = append(h.state, buckets(t, db))
}

// after returns the index of the last state whose ops are all in the log
// up to seq.
func (h *crashHistory) after(seq uint64) int {
	i := 0
	for i+1 < len(h.seq) && h.seq[i+1] <= seq {
		i++
	}
	return i
}

// randomOps applies n random operations to db under SyncAlways, over three
// keys in three namespaces, with time passing between them, and records
// each acknowledged state. Before op save (if >= 0) it makes a checkpoint.
func randomOps(t *testing.T, db *storage.DB, c *storetest.Clock, rng *rand.Rand, n, save int) *crashHistory {
	keys := []string{"a", "b", "c"}
	nss := []storage.Namespace{def, gold, cell}
	policies := [][]bucket.Limit{five, two}
	costs := []bucket.Tokens{0, tok / 2, tok, tok, 2 * tok, 3 * tok, 6 * tok, -tok}
	h := &crashHistory{}
	h.record(t, db, c, "open")
	for i := range n {
		if i == save {
			require.NoError(t, db.Save())
			h.record(t, db, c, "save")
		}
		c.Advance(time.Duration(rng.IntN(4)) * 500 * time.Millisecond)
		ns, key := nss[rng.IntN(len(nss))], keys[rng.IntN(len(keys))]
		limits := policies[rng.IntN(len(policies))]
		var op string
		var err error
		switch r := rng.IntN(100); {
		case r < 50:
			cost := costs[rng.IntN(len(costs))]
			op = fmt.Sprintf("take %v from %s %s under %v", cost, ns, key, limits)
			_, err = db.Take(ns, key, limits, cost, nil)
		case r < 65:
			tokens := bucket.Tokens(rng.IntN(6)) * tok
			op = fmt.Sprintf("set %s %s to %v under %v", ns, key, tokens, limits)
			_, err = db.Set(ns, key, limits, tokens, nil)
		case r < 78:
			if rng.IntN(3) == 0 {
				ns = storage.AllNamespaces
			}
			op = fmt.Sprintf("reset %s %s", ns, key)
			_, err = db.Reset(ns, key)
		case r < 80:
			op = "clear"
			err = db.Clear()
		case r < 90:
			op = fmt.Sprintf("peek %s %s", ns, key)
			_, _, err = db.Peek(ns, key, nil)
		default:
			op = "wait"
		}
		require.NoError(t, err, op)
		h.record(t, db, c, op)
	}
	return h
}

// TestCrashPoints applies a random sequence of changes under SyncAlways,
// then, for many offsets of the log's last segment, restarts from a copy of
// the files with that segment cut there, as a crash during its write
// would leave it. The state found must be the state after exactly the
// operations whose records lie wholly before the cut (every one of them,
// and no other), peeked at the instant of the last of them; the torn tail
// is cut with a warning, never refused. With a checkpoint midway, the
// replay starts from the pages.
func TestCrashPoints(t *testing.T) {
	for _, tt := range []struct {
		name string
		save int // the op before which db.Save makes a checkpoint; -1: none
	}{
		{"log from an empty file", -1},
		{"log after a checkpoint", 100},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := fastDir(t)
			c := storetest.NewClock(t0)
			db := mustOpenAt(t, filepath.Join(dir, "bucketd.db"), storage.Options{Clock: c, Sync: storage.SyncAlways, SyncInterval: time.Hour})
			seed := uint64(8 + tt.save)
			h := randomOps(t, db, c, rand.New(rand.NewPCG(seed, seed)), 200, tt.save)

			// The files a crash after the last op would leave.
			master := filepath.Join(dir, "master")
			require.NoError(t, os.Mkdir(master, 0o700))
			path, err := copyFiles(db, master, true)
			require.NoError(t, err)
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			segs := segmentNames(t, path+".wal")
			require.NotEmpty(t, segs)
			last := segs[len(segs)-1]
			first, err := strconv.ParseUint(strings.TrimSuffix(last, ".wal"), 16, 64)
			require.NoError(t, err)
			seg, err := os.ReadFile(filepath.Join(path+".wal", last))
			require.NoError(t, err)
			frames := readFrames(seg)
			require.NotEmpty(t, frames)
			end := frames[len(frames)-1].end
			require.False(t, slices.ContainsFunc(seg[end:], func(b byte) bool { return b != 0 }),
				"the segment is whole records, then the zeros written ahead of them")
			seg = seg[:end]
			for k, f := range frames {
				require.Equal(t, first+uint64(k), f.seq)
			}
			require.Equal(t, h.seq[len(h.seq)-1], frames[len(frames)-1].seq, "every change is in the log")
			if tt.save >= 0 {
				require.Len(t, segs, 1, "the checkpoint removed the segments before it")
				require.Equal(t, h.seq[tt.save+1]+1, first, "the last segment starts after the checkpoint")
			}

			// Each cut is tried as a write torn at the end of the file, and
			// as one torn over the zeros written ahead of the records.
			for _, c := range cutsOverZeros(cutOffsets(frames, len(seg))) {
				cut := c.at
				torn := seg[:cut]
				if c.zeros {
					torn = append(slices.Clone(torn), make([]byte, 4096)...)
				}
				whole := 0
				for whole < len(frames) && frames[whole].end <= cut {
					whole++
				}
				if c.zeros && whole < len(frames) && cut > frames[whole].off && !nonZero(seg[cut:frames[whole].end]) {
					whole++ // the zeros the cut removed from its end are there again
				}
				i := h.after(first - 1 + uint64(whole))
				cp := filepath.Join(dir, "cut-"+strconv.Itoa(cut)+"-"+strconv.FormatBool(c.zeros))
				require.NoError(t, os.Mkdir(cp, 0o700))
				require.NoError(t, os.WriteFile(filepath.Join(cp, "bucketd.db"), data, 0o600))
				require.NoError(t, copyDir(path+".wal", filepath.Join(cp, "bucketd.db.wal"), func(name string, b []byte) []byte {
					if name == last {
						return torn
					}
					return b
				}))
				var logs logBuffer
				db, err := storage.Open(filepath.Join(cp, "bucketd.db"), storage.Options{Clock: storetest.NewClock(h.at[i]), SyncInterval: time.Hour, Logger: logs.logger()})
				require.NoError(t, err, "cut at %d of %d: a torn tail is never refused", cut, len(seg))
				got, err := bucketsOf(db)
				require.NoError(t, err)
				require.NoError(t, db.Close())
				require.Equal(t, h.state[i], got, "cut at byte %d of %d (%d whole records): want the state after op %d (%s), of %d\nops: %s",
					cut, len(seg), whole, i, h.ops[i], len(h.ops)-1, strings.Join(h.ops[max(0, i-5):min(len(h.ops), i+3)], "; "))
				midRecord := whole < len(frames) && cut > frames[whole].off
				if c.zeros {
					midRecord = midRecord && nonZero(seg[frames[whole].off:cut])
				}
				if cut >= segHeaderLen {
					require.Equal(t, midRecord, strings.Contains(logs.String(), "cut a torn or damaged tail"),
						"cut at %d: a warning when, and only when, a record is torn:\n%s", cut, logs.String())
				}
				require.NoError(t, os.RemoveAll(cp))
			}
		})
	}
}

// tear is where a crash tears a segment: at offset at, with the file
// ending there, or with zeros written ahead of the records after it.
type tear struct {
	at    int
	zeros bool
}

// cutsOverZeros returns each offset as both kinds of cut; a segment is
// created whole with its zeros, so no cut in the header has zeros after it.
func cutsOverZeros(offsets []int) []tear {
	var cuts []tear
	for _, o := range offsets {
		cuts = append(cuts, tear{at: o})
		if o >= segHeaderLen {
			cuts = append(cuts, tear{at: o, zeros: true})
		}
	}
	return cuts
}

// nonZero reports whether b holds a byte that is not zero.
func nonZero(b []byte) bool {
	return slices.ContainsFunc(b, func(c byte) bool { return c != 0 })
}

// cutOffsets returns the offsets at which to cut a segment of size bytes
// holding frames: every offset of the header and of the first and last
// records, and in every other record its start and the places where each
// field of the frame header ends, the last byte and one more.
// Under the race detector only every third record is cut into.
func cutOffsets(frames []frame, size int) []int {
	var cuts []int
	for o := 0; o <= segHeaderLen; o++ {
		cuts = append(cuts, o)
	}
	for k, f := range frames {
		if k == 0 || k == len(frames)-1 {
			for o := f.off; o < f.end; o++ {
				cuts = append(cuts, o)
			}
			continue
		}
		if raceEnabled && k%3 != 0 {
			cuts = append(cuts, f.off)
			continue
		}
		mid := f.off + frameHeaderLen + (f.end-f.off-frameHeaderLen)/2
		cuts = append(cuts, f.off, f.off+1, f.off+4, f.off+8, f.off+frameHeaderLen-1, f.off+frameHeaderLen, mid, f.end-1)
	}
	cuts = append(cuts, size)
	slices.Sort(cuts)
	return slices.Compact(cuts)
}
