package respcompat

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/limiter"
	"github.com/bucketd/bucketd/storage"
)

// batchCounter is the real limiter that notes the size of each batch it
// is given, so that a test knows the batch path ran.
type batchCounter struct {
	*limiter.Limiter
	mu    sync.Mutex
	sizes []int
}

func (b *batchCounter) ThrottleBatch(reqs []limiter.ThrottleReq, out []limiter.ThrottleResult) []limiter.ThrottleResult {
	b.mu.Lock()
	b.sizes = append(b.sizes, len(reqs))
	b.mu.Unlock()
	return b.Limiter.ThrottleBatch(reqs, out)
}

// pipelineConn is a connection of a server over l, with no socket: the
// test puts the commands read in its buffer and runs them (conn.run).
func pipelineConn(l Limiter, cfg Config) *conn {
	srv := New(l, cfg)
	return &conn{s: srv, store: srv.store, authed: cfg.RequirePass == "", shown: shownState{multi: -1}}
}

// runRead runs the whole commands in raw as if read at once, and returns
// the replies.
func (c *conn) runRead(t *testing.T, raw string) string {
	t.Helper()
	c.buf, c.r, c.end, c.w = []byte(raw), 0, len(raw), len(raw)
	require.NoError(t, c.run())
	out := string(c.out)
	c.out = c.out[:0]
	return out
}

// TestPipelineIsCommandsOneByOne: the replies to a pipeline read at once,
// whose runs of CL.THROTTLE go to the limiter as batches, are those of the
// same commands run one at a time, with every other command, argument
// error, transaction and authentication in its place.
func TestPipelineIsCommandsOneByOne(t *testing.T) {
	throttle := func(key, burst, n, period string, q ...string) []string {
		return append([]string{"CL.THROTTLE", key, burst, n, period}, q...)
	}
	cases := []struct {
		name    string
		cfg     Config
		cmds    [][]string
		batches []int // the batch sizes the pipeline gives
	}{
		{"repeated keys, bad arguments, other commands", Config{}, [][]string{
			throttle("a", "2", "1", "60"),
			throttle("a", "2", "1", "60"),
			throttle("b", "0", "1", "1", "0"),
			throttle("a", "2", "1", "60"),
			throttle("a", "x", "1", "60"),
			{"cl.throttle", "a"},
			throttle("a", "2", "0", "60"),
			throttle("", "2", "1", "60"),
			throttle("a", "2", "1", "60"),
			throttle("a", "2", "1", "60", "-2"),
			throttle("c", "1", "1", "60", "5"),
			{"HGETALL", "a"},
			throttle("a", "5", "1", "60"),
			{"PING"},
			throttle("a", "2", "1", "60"),
			throttle("b", "2", "1", "60"),
			{"EXISTS", "a", "b", "c"},
			throttle("z", "2", "1", "60"),
		}, []int{8, 2}},
		{"transactions", Config{}, [][]string{
			throttle("a", "2", "1", "60"),
			throttle("a", "2", "1", "60"),
			{"MULTI"},
			throttle("a", "2", "1", "60"),
			throttle("b", "2", "1", "60", "x"),
			{"EXEC"},
			{"MULTI"},
			throttle("a", "2", "1", "60"),
			throttle("a", "2", "1", "60"),
			{"EXEC"},
			throttle("a", "2", "1", "60"),
			throttle("a", "2", "1", "60"),
		}, []int{2, 2}},
		{"authentication", Config{RequirePass: "pw"}, [][]string{
			throttle("a", "2", "1", "60"),
			throttle("a", "2", "1", "60"),
			{"AUTH", "pw"},
			throttle("a", "2", "1", "60"),
			throttle("a", "2", "1", "60"),
			throttle("a", "2", "1", "60"),
		}, []int{3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var raw strings.Builder
			for _, cmd := range tc.cmds {
				raw.WriteString(encode(cmd...))
			}
			bc := &batchCounter{Limiter: newStack(t, storage.Options{}).lim}
			got := pipelineConn(bc, tc.cfg).runRead(t, raw.String())
			assert.Equal(t, tc.batches, bc.sizes, "the batches")

			one := pipelineConn(newStack(t, storage.Options{}).lim, tc.cfg)
			var want strings.Builder
			for _, cmd := range tc.cmds {
				want.WriteString(one.runRead(t, encode(cmd...)))
			}
			assert.Equal(t, want.String(), got)
		})
	}
}

// TestPipelineFailedWritesPerCommand: under a disk that refuses writes,
// each take of a batch that changed a bucket gets MISCONF, and each that
// did not its reply, as one by one.
func TestPipelineFailedWritesPerCommand(t *testing.T) {
	var raw strings.Builder
	for _, q := range []string{"1", "1", "0", "1", "5"} {
		raw.WriteString(encode("CL.THROTTLE", "k", "1", "1", "60", q))
	}
	got := pipelineConn(diskDown{newStack(t, storage.Options{}).lim}, Config{}).runRead(t, raw.String())
	one := pipelineConn(diskDown{newStack(t, storage.Options{}).lim}, Config{})
	var want strings.Builder
	for _, q := range []string{"1", "1", "0", "1", "5"} {
		want.WriteString(one.runRead(t, encode("CL.THROTTLE", "k", "1", "1", "60", q)))
	}
	assert.Equal(t, want.String(), got)
	assert.Equal(t, 2, strings.Count(got, "-MISCONF"), "the two allowed takes")
}

// TestPipelineCountsEachCommand: commandstats, the commands run and the
// metrics see each CL.THROTTLE of a batch.
func TestPipelineCountsEachCommand(t *testing.T) {
	rec := &decisionRecorder{}
	bc := &batchCounter{Limiter: newStack(t, storage.Options{}).lim}
	c := pipelineConn(bc, Config{Metrics: rec})
	began := time.Now()
	c.runRead(t, strings.Repeat(encode("CL.THROTTLE", "k", "9", "1", "60"), 100)+encode("CL.THROTTLE", "k", "9", "1", "60", "0"))
	took := time.Since(began)
	assert.Equal(t, []int{64, 37}, bc.sizes, "batches of at most maxBatch")
	assert.Equal(t, uint64(101), c.ncmds.Load())
	assert.Equal(t, uint64(101), c.s.cmds["cl.throttle"].calls.Load())
	require.Len(t, rec.d, 100, "every take but the peek")
	for _, d := range rec.d {
		assert.GreaterOrEqual(t, d, time.Duration(0))
		assert.LessOrEqual(t, d, took, "a take's latency is within the read's")
	}
	assert.Equal(t, uint64(10), bc.CellCounts().Allowed)
	assert.Equal(t, uint64(90), bc.CellCounts().Denied)
	assert.Equal(t, 10, rec.allowed, "the metrics' allowed takes")
	assert.Equal(t, 90, rec.limited, "the metrics' limited takes")
	assert.Equal(t, "cl.throttle", c.last.Load().name)
}

// TestPipelineNoBatchWhenWatched: with an access log, or a MONITOR
// client, each CL.THROTTLE of a pipeline runs alone, so that each gets its
// line.
func TestPipelineNoBatchWhenWatched(t *testing.T) {
	var logs logBuffer
	bc := &batchCounter{Limiter: newStack(t, storage.Options{}).lim}
	c := pipelineConn(bc, Config{AccessLog: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	c.runRead(t, strings.Repeat(encode("CL.THROTTLE", "k", "9", "1", "60"), 3))
	assert.Empty(t, bc.sizes)
	assert.Equal(t, 3, strings.Count(logs.String(), "cmd=cl.throttle"))

	bc = &batchCounter{Limiter: newStack(t, storage.Options{}).lim}
	c = pipelineConn(bc, Config{})
	c.s.nmon.Store(1) // a MONITOR client, as startMonitor counts it
	c.runRead(t, strings.Repeat(encode("CL.THROTTLE", "k", "9", "1", "60"), 3))
	assert.Empty(t, bc.sizes)
}

// FuzzPipelineIsOneByOne: any sequence of CL.THROTTLEs (good and bad)
// among other commands, read at once, gets the replies of the same
// commands run one at a time. Each byte of the input picks a command.
func FuzzPipelineIsOneByOne(f *testing.F) {
	cmds := [][]string{
		{"CL.THROTTLE", "a", "2", "1", "60"},
		{"CL.THROTTLE", "a", "2", "1", "60", "2"},
		{"CL.THROTTLE", "b", "0", "1", "1"},
		{"CL.THROTTLE", "b", "5", "10", "1", "-3"},
		{"CL.THROTTLE", "c", "1", "1", "60", "0"},
		{"cl.throttle", "a", "9", "2", "60", "11"},
		{"CL.THROTTLE", "a", "x", "1", "60"},
		{"CL.THROTTLE", "a"},
		{"CL.THROTTLE", "", "2", "1", "60"},
		{"CL.THROTTLE", "c", "2", "0", "60"},
		{"PING"},
		{"MULTI"},
		{"EXEC"},
		{"DISCARD"},
		{"HGETALL", "a"},
		{"EXISTS", "a", "b", "c"},
		{"DEL", "b"},
		{"FLUSHALL"},
	}
	f.Add([]byte{0, 0, 1, 2, 3, 6, 7, 0, 10, 0, 0})
	f.Add([]byte{11, 0, 1, 12, 0, 0, 14, 5, 5, 5, 16, 3, 3})
	f.Add([]byte{0, 0, 0, 0, 17, 0, 0, 13, 11, 2, 2, 13, 2, 2})
	f.Fuzz(func(t *testing.T, picks []byte) {
		if len(picks) > 200 {
			picks = picks[:200]
		}
		var raw strings.Builder
		for _, p := range picks {
			raw.WriteString(encode(cmds[int(p)%len(cmds)]...))
		}
		got := pipelineConn(newStack(t, storage.Options{}).lim, Config{}).runRead(t, raw.String())
		one := pipelineConn(newStack(t, storage.Options{}).lim, Config{})
		var want strings.Builder
		for _, p := range picks {
			want.WriteString(one.runRead(t, encode(cmds[int(p)%len(cmds)]...)))
		}
		require.Equal(t, want.String(), got)
	})
}
