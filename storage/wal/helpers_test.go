package wal

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rec is a record as Replay delivers it.
type rec struct {
	Seq     uint64
	Payload []byte
}

// mustOpen opens the log in dir through the given opener (nil: the real
// files) and closes it at the end of the test.
func mustOpen(t testing.TB, dir string, opts Options, o opener) *Log {
	t.Helper()
	if o == nil {
		o = openOS
	}
	l, err := open(dir, opts, o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() }) // tests that care close it themselves
	return l
}

// replayAll replays dir from from and returns the records.
func replayAll(t testing.TB, dir string, from uint64, logger *slog.Logger) ([]rec, uint64, error) {
	t.Helper()
	var got []rec
	last, err := Replay(dir, from, func(seq uint64, p []byte) error {
		got = append(got, rec{seq, append([]byte{}, p...)})
		return nil
	}, logger)
	return got, last, err
}

// payloadOf returns a payload of n bytes that tells i apart.
func payloadOf(i, n int) []byte {
	p := make([]byte, n)
	for j := range p {
		p[j] = byte(i*31 + j*7)
	}
	return p
}

// appendAll appends a record per size and returns them.
func appendAll(t testing.TB, l *Log, start int, sizes ...int) []rec {
	t.Helper()
	out := make([]rec, 0, len(sizes))
	for i, n := range sizes {
		p := payloadOf(start+i, n)
		seq, err := l.Append(p)
		require.NoError(t, err)
		out = append(out, rec{seq, p})
	}
	return out
}

// randomSizes returns n payload sizes, most small, a few large.
func randomSizes(r *rand.Rand, n, maxSize int) []int {
	sizes := make([]int, n)
	for i := range sizes {
		sizes[i] = r.IntN(maxSize + 1)
		if r.IntN(50) == 0 {
			sizes[i] = 0
		}
	}
	return sizes
}

// segPath returns the path of dir's segment whose first seq is first.
func segPath(dir string, first uint64) string {
	return filepath.Join(dir, segmentName(first))
}

// segFiles returns the first seqs of dir's segments.
func segFiles(t testing.TB, dir string) []uint64 {
	t.Helper()
	segs, err := listSegments(dir)
	require.NoError(t, err)
	var firsts []uint64
	for _, s := range segs {
		firsts = append(firsts, s.first)
	}
	return firsts
}

// errInjected is the error of an injected failure.
var errInjected = errors.New("injected failure")

// fakeFile wraps a real segment file: it counts writes and syncs, and fails
// the next failWrites writes (after writing half the bytes), failSyncs
// syncs and failTruncates truncations. If hold is not nil, Sync first
// waits for it to be closed.
type fakeFile struct {
	file
	writes, syncs                        atomic.Int64
	failWrites, failSyncs, failTruncates atomic.Int32
	hold                                 chan struct{}
	inSync                               chan struct{} // if not nil, receives when a Sync starts
}

func (f *fakeFile) WriteAt(p []byte, off int64) (int, error) {
	f.writes.Add(1)
	if f.failWrites.Add(-1) >= 0 {
		n, _ := f.file.WriteAt(p[:len(p)/2], off)
		return n, errInjected
	}
	return f.file.WriteAt(p, off)
}

func (f *fakeFile) Sync() error {
	f.syncs.Add(1)
	if f.inSync != nil {
		f.inSync <- struct{}{}
	}
	if f.hold != nil {
		<-f.hold
	}
	if f.failSyncs.Add(-1) >= 0 {
		return errInjected
	}
	return f.file.Sync()
}

func (f *fakeFile) Truncate(size int64) error {
	if f.failTruncates.Add(-1) >= 0 {
		return errInjected
	}
	return f.file.Truncate(size)
}

// fakes opens segments as fakeFiles and keeps them, newest last.
type fakes struct {
	mu    sync.Mutex
	files []*fakeFile
	setup func(*fakeFile) // if not nil, runs on each new fake
}

func (fs *fakes) open(path string) (file, error) {
	f, err := openOS(path)
	if err != nil {
		return nil, err
	}
	ff := &fakeFile{file: f}
	if fs.setup != nil {
		fs.setup(ff)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.files = append(fs.files, ff)
	return ff, nil
}

// counts returns the writes and syncs of every file opened.
func (fs *fakes) counts() (writes, syncs int64) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, f := range fs.files {
		writes += f.writes.Load()
		syncs += f.syncs.Load()
	}
	return writes, syncs
}

// last returns the file opened last.
func (fs *fakes) last() *fakeFile {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.files[len(fs.files)-1]
}

// lockedBuffer is a bytes.Buffer safe for concurrent use, for a logger.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// captureLogger returns a logger that writes into the returned buffer.
func captureLogger() (*slog.Logger, *lockedBuffer) {
	var b lockedBuffer
	return slog.New(slog.NewTextHandler(&b, nil)), &b
}

// fileBytes returns the contents of path.
func fileBytes(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// assertReplays asserts that replaying the log in dir from its start gives
// want, record by record.
func assertReplays(t testing.TB, dir string, want []rec, msgAndArgs ...any) bool {
	t.Helper()
	got, _, err := replayAll(t, dir, 0, nil)
	require.NoError(t, err)
	return assertRecords(t, want, got, msgAndArgs...)
}

// assertRecords asserts that got equals want, record by record, without
// printing payloads.
func assertRecords(t testing.TB, want, got []rec, msgAndArgs ...any) bool {
	t.Helper()
	if !assert.Equal(t, len(want), len(got), msgAndArgs...) {
		return false
	}
	for i := range want {
		if want[i].Seq != got[i].Seq || !bytes.Equal(want[i].Payload, got[i].Payload) {
			return assert.Fail(t, fmt.Sprintf("record %d: want seq %d (%d bytes), got seq %d (%d bytes)",
				i, want[i].Seq, len(want[i].Payload), got[i].Seq, len(got[i].Payload)), msgAndArgs...)
		}
	}
	return true
}
