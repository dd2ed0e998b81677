package respcompat

import (
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFramer(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", MaxCommandSize)
	tests := []struct {
		name string
		in   string
		ends []int // offsets just past each complete command
		err  error
	}{
		{"one RESP command", "*1\r\n$4\r\nPING\r\n", []int{14}, nil},
		{"two commands", "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", []int{14, 34}, nil},
		{"inline", "PING\r\nPING\nEC", []int{6, 11}, nil},
		{"empty lines", "\r\n\n", []int{2, 3}, nil},
		{"partial", "*2\r\n$4\r\nECHO\r\n$3\r\nab", nil, nil},
		{"count not a number", "*x\r\n", nil, errMultibulkLen},
		{"count empty", "*\r\n", nil, errMultibulkLen},
		{"count zero: an empty command", "*0\r\n", []int{4}, nil},
		{"count negative: an empty command", "*-1\r\n*00\r\n", []int{5, 10}, nil},
		{"count only a minus", "*-\r\n", nil, errMultibulkLen},
		{"count two minus", "*--1\r\n", nil, errMultibulkLen},
		{"count with a plus", "*+1\r\n", nil, errMultibulkLen},
		{"count LF without CR", "*1\n", nil, errMultibulkLen},
		{"count CR without LF", "*1\rx", nil, errMultibulkLen},
		{"too many arguments", "*1025\r\n", nil, errMultibulkLen},
		{"a huge count", "*2000000000\r\n", nil, errMultibulkLen},
		{"endless count", "*" + strings.Repeat("1", 100), nil, errMultibulkLen},
		{"most arguments", "*1024\r\n", nil, nil},
		{"no dollar", "*1\r\nfoo\r\n", nil, protocolError("expected '$', got 'f'")},
		{"bulk negative", "*1\r\n$-1\r\n", nil, errBulkLen},
		{"bulk minus zero", "*1\r\n$-0\r\n", nil, errBulkLen},
		{"bulk not a number", "*1\r\n$x\r\n", nil, errBulkLen},
		{"bulk claims 2 GB", "*1\r\n$2000000000\r\n", nil, errBulkLen},
		{"bulk over the limit", "*1\r\n$" + strconv.Itoa(MaxCommandSize) + "\r\n", nil, errBulkLen},
		{"bulk without CRLF", "*1\r\n$4\r\nPINGxx", nil, errBulkLen},
		{"bulk with LF only", "*1\r\n$4\r\nPING\n", nil, errBulkLen},
		{"inline too big", big + "\r\n", nil, errBigInline},
		{"inline endless", big + "a", nil, errBigInline},
		{"inline at the limit so far", big, nil, nil},
		{"error after a command", "PING\r\n*1\r\n$-5\r\n", []int{6}, errBulkLen},
	}
	for _, tt := range tests {
		// Fed whole, and one byte at a time: the result must not depend on
		// how the stream is cut.
		for _, chunk := range []int{len(tt.in), 1, 7} {
			var f framer
			var ends []int
			var err error
			for off := 0; off < len(tt.in) && err == nil; off += chunk {
				b := []byte(tt.in[off:min(off+chunk, len(tt.in))])
				var end int
				end, err = f.scan(b)
				if end > 0 {
					// Report each command end once: scan gives the last.
					for _, e := range commandEnds(tt.in[:off+end]) {
						if len(ends) == 0 || e > ends[len(ends)-1] {
							ends = append(ends, e)
						}
					}
				}
			}
			assert.Equal(t, tt.err, err, "%s (chunks of %d)", tt.name, chunk)
			assert.Equal(t, tt.ends, ends, "%s (chunks of %d)", tt.name, chunk)
		}
	}
}

// commandEnds finds the command boundaries of a well-formed prefix with a
// fresh framer, one byte at a time.
func commandEnds(s string) []int {
	var f framer
	var ends []int
	for i := range len(s) {
		if end, err := f.scan([]byte{s[i]}); err == nil && end > 0 {
			ends = append(ends, i+1)
		}
	}
	return ends
}

// A request over a limit is answered with Redis's error, and the
// connection is closed, as soon as the header shows it; the commands
// before it are answered first.
func TestProtocolErrors(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	tests := []struct {
		name, in, want string
	}{
		{"claims a 2 GB argument", "*1\r\n$2000000000\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"claims 2e9 arguments", "*2000000000\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"over MaxArgs", "*1025\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"negative length", "*1\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"not a dollar", "*1\r\nfoo\r\n", "-ERR Protocol error: expected '$', got 'f'\r\n"},
		{"count is not a number", "*x\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"commands before are answered", "PING\r\n" + encode("ECHO", "hi") + "*1\r\n$99999999999\r\n" + encode("PING"),
			"+PONG\r\n$2\r\nhi\r\n-ERR Protocol error: invalid bulk length\r\n"},
		{"unbalanced quotes", "PING\r\nECHO \"a\r\nPING\r\n", "+PONG\r\n-ERR Protocol error: unbalanced quotes in request\r\n"},
	}
	for _, tt := range tests {
		rc := ts.raw(t)
		rc.send(tt.in)
		assert.Equal(t, tt.want, rc.expectEOF(), tt.name)
	}
}

// The limits are on the whole command: 1024 arguments, 64 KiB.
func TestCommandSizeLimits(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	ctx := ctxT(t)
	c := ts.client(t)

	keys := make([]string, MaxArgs-1)
	for i := range keys {
		keys[i] = strconv.Itoa(i)
	}
	n, err := c.Del(ctx, keys...).Result()
	require.NoError(t, err, "1024 arguments are allowed")
	assert.Zero(t, n)

	// "*2\r\n$4\r\nECHO\r\n$N\r\n" + N bytes + "\r\n" is 19+len("N")+N bytes.
	room := MaxCommandSize - 19 - 5
	echo, err := c.Echo(ctx, strings.Repeat("a", room)).Result()
	require.NoError(t, err, "a command of exactly MaxCommandSize bytes is allowed")
	assert.Len(t, echo, room)

	// Each error closes the connection: a new client for each.
	err = ts.client(t).Echo(ctx, strings.Repeat("a", room+1)).Err()
	require.Error(t, err)
	assert.Equal(t, "ERR Protocol error: invalid bulk length", err.Error())

	err = ts.client(t).Del(ctx, append(keys, "one too many")...).Err()
	require.Error(t, err)
	assert.Equal(t, "ERR Protocol error: invalid multibulk length", err.Error())

	rc := ts.raw(t)
	rc.send(strings.Repeat("a", MaxCommandSize-2) + "\r\n")
	assert.Equal(t, "-ERR unknown command '"+strings.Repeat("a", 128)+"', with args beginning with: \r\n", rc.reply(), "an inline command of MaxCommandSize bytes is allowed")
	rc.send(strings.Repeat("a", MaxCommandSize) + "\r\n")
	assert.Equal(t, "-ERR Protocol error: too big inline request\r\n", rc.expectEOF())
}

// allocated returns the bytes allocated so far by the whole process.
func allocated() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// streamSize is how much the memory tests send: far more than any buffer
// the server may keep.
const streamSize = 10 << 20

// What a client claims or streams does not grow the server's memory: the
// connection's read buffer stays under MaxCommandSize plus one read, and the
// process allocates far less than the client sent. Not parallel, so that
// other tests' allocations do not count.
func TestMemoryBounded(t *testing.T) {
	ts := start(t, Config{})
	maxInput := func() int {
		info, err := ts.client(t).Info(ctxT(t), "clients").Result()
		require.NoError(t, err)
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "client_recent_max_input_buffer:"); ok {
				n, err := strconv.Atoi(v)
				require.NoError(t, err)
				return n
			}
		}
		t.Fatal("no client_recent_max_input_buffer in INFO")
		return 0
	}

	// stream writes n bytes of unit, repeated, while reading what the
	// server answers; it returns the answer and the bytes allocated.
	stream := func(t *testing.T, prefix string, unit []byte) (string, uint64) {
		t.Helper()
		rc := ts.raw(t)
		payload := bytes.Repeat(unit, streamSize/len(unit))
		runtime.GC()
		before := allocated()
		werr := make(chan error, 1)
		go func() {
			_, err := io.WriteString(rc.nc, prefix)
			if err == nil {
				_, err = rc.nc.Write(payload)
			}
			rc.nc.(*net.TCPConn).CloseWrite() // done: the server need not wait
			werr <- err
		}()
		var out bytes.Buffer
		if _, err := io.Copy(&out, rc.nc); err != nil {
			// The server stops reading a second after the error.
			require.ErrorIs(t, err, syscall.ECONNRESET)
		}
		// The writer may have been cut off by the close; either is fine.
		<-werr
		return out.String(), allocated() - before
	}

	t.Run("endless inline line", func(t *testing.T) {
		out, alloc := stream(t, "", []byte("aaaaaaaaaaaaaaaa"))
		assert.Equal(t, "-ERR Protocol error: too big inline request\r\n", out)
		assert.Less(t, alloc, uint64(streamSize/4), "allocated %d bytes", alloc)
	})
	t.Run("a claimed 2 GB argument, then its bytes", func(t *testing.T) {
		out, alloc := stream(t, "*1\r\n$2000000000\r\n", []byte("aaaaaaaaaaaaaaaa"))
		assert.Equal(t, "-ERR Protocol error: invalid bulk length\r\n", out)
		assert.Less(t, alloc, uint64(streamSize/4), "allocated %d bytes", alloc)
	})
	t.Run("valid commands, never a pause", func(t *testing.T) {
		rc := ts.raw(t)
		unit := []byte(encode("PING"))
		payload := bytes.Repeat(unit, streamSize/len(unit))
		runtime.GC()
		before := allocated()
		done := make(chan int64, 1)
		go func() {
			// Count the replies' bytes without keeping them.
			n, _ := io.CopyN(io.Discard, rc.nc, int64(len(payload)/len(unit)*len("+PONG\r\n")))
			done <- n
		}()
		_, err := rc.nc.Write(payload)
		require.NoError(t, err)
		assert.Equal(t, int64(len(payload)/len(unit)*len("+PONG\r\n")), <-done)
		alloc := allocated() - before
		assert.Less(t, alloc, uint64(streamSize/4), "allocated %d bytes", alloc)
	})
	assert.LessOrEqual(t, maxInput(), maxBuf, "no read buffer grew past maxBuf")
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{IdleTimeout: 100 * time.Millisecond})
	// A client that sends nothing is closed.
	ts.raw(t).expectClosed()
	// Nor does one that stops halfway through a command.
	rc := ts.raw(t)
	rc.send("*1\r\n$4\r\nPI")
	rc.expectClosed()
}

func TestMaxClients(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{MaxClients: 2})
	a, b := ts.raw(t), ts.raw(t)
	assert.Equal(t, "+PONG\r\n", a.do("PING"))
	assert.Equal(t, "+PONG\r\n", b.do("PING"))

	// The third is told and closed, as Redis does.
	over := ts.raw(t)
	assert.Equal(t, "-ERR max number of clients reached\r\n", over.expectEOF())

	// Once a client has gone, there is room again.
	assert.Equal(t, "+OK\r\n", a.do("QUIT"))
	a.expectEOF()
	c := ts.raw(t)
	assert.Equal(t, "+PONG\r\n", c.do("PING"))
	info := c.do("INFO", "stats", "clients")
	assert.Contains(t, info, "rejected_connections:1\r\n")
	assert.Contains(t, info, "connected_clients:2\r\n")
	assert.Contains(t, info, "maxclients:2\r\n")
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	t.Run("closes idle clients and returns", func(t *testing.T) {
		ts := start(t, Config{})
		rcs := []*rawConn{ts.raw(t), ts.raw(t)}
		for _, rc := range rcs {
			assert.Equal(t, "+PONG\r\n", rc.do("PING"))
		}
		require.NoError(t, ts.Shutdown(ctxT(t)))
		assert.NoError(t, <-ts.done, "Serve returns nil after Shutdown")
		ts.done <- nil // for the cleanup
		for _, rc := range rcs {
			assert.Empty(t, rc.expectEOF())
		}
		_, err := net.DialTimeout("tcp", ts.addr, testTimeout)
		assert.Error(t, err, "the listener is closed")

		// Serve after Shutdown returns at once.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		assert.NoError(t, ts.Serve(ln))
		_, err = ln.Accept()
		assert.ErrorIs(t, err, net.ErrClosed, "Serve closed the listener")
	})
	t.Run("waits for a running command, up to the context", func(t *testing.T) {
		ts := start(t, Config{})
		entered, release := make(chan struct{}), make(chan struct{})
		ts.store.mu.Lock()
		ts.store.saveHook = func() { close(entered); <-release }
		ts.store.mu.Unlock()
		rc := ts.raw(t)
		rc.send(encode("SAVE"))
		<-entered
		ctx, cancel := context.WithCancel(context.Background())
		shut := make(chan error, 1)
		go func() { shut <- ts.Shutdown(ctx) }()
		cancel()
		assert.ErrorIs(t, <-shut, context.Canceled)
		assert.Empty(t, rc.expectEOF(), "connections are closed when the context ends")
		close(release)
	})
	t.Run("a running command finishes and is answered", func(t *testing.T) {
		ts := start(t, Config{})
		entered, release := make(chan struct{}), make(chan struct{})
		ts.store.mu.Lock()
		ts.store.saveHook = func() { close(entered); <-release }
		ts.store.mu.Unlock()
		rc := ts.raw(t)
		rc.send(encode("SAVE"))
		<-entered
		shut := make(chan error, 1)
		go func() { shut <- ts.Shutdown(ctxT(t)) }()
		close(release)
		assert.NoError(t, <-shut)
		assert.Equal(t, "+OK\r\n", rc.expectEOF())
	})
	t.Run("Serve twice", func(t *testing.T) {
		ts := start(t, Config{})
		assert.Equal(t, "+PONG\r\n", ts.raw(t).do("PING"), "the first Serve is running")
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		assert.EqualError(t, ts.Serve(ln), "respcompat: Serve called twice")
	})
}

// go-redis with a pool of connections, concurrently: every take is
// counted once.
func TestConcurrentClients(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	c := ts.client(t, func(o *redis.Options) { o.PoolSize = 8 })
	ctx := ctxT(t)
	const workers, each = 8, 50
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for range each {
				if err := c.Do(ctx, "CL.THROTTLE", "shared", 999, 1, 60).Err(); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		require.NoError(t, <-errs)
	}
	got, err := c.Do(ctx, "CL.THROTTLE", "shared", 999, 1, 60, 0).Int64Slice()
	require.NoError(t, err)
	assert.Equal(t, int64(1000-workers*each), got[2])
}
