package respcompat

import (
	"bytes"
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

func TestPipelining(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})

	t.Run("raw", func(t *testing.T) {
		// Many commands in one write, RESP and inline mixed, all answered
		// in order.
		rc := ts.raw(t)
		var req strings.Builder
		var want strings.Builder
		for i := range 500 {
			switch i % 4 {
			case 0:
				req.WriteString(encode("PING"))
				want.WriteString("+PONG\r\n")
			case 1:
				req.WriteString(encode("ECHO", itoa(i)))
				want.WriteString("$" + itoa(len(itoa(i))) + "\r\n" + itoa(i) + "\r\n")
			case 2:
				req.WriteString("EXISTS k" + itoa(i) + "\r\n")
				want.WriteString(":0\r\n")
			case 3:
				req.WriteString(encode("CL.THROTTLE", "p"+itoa(i), "0", "1", "60", "0"))
				want.WriteString("*5\r\n:0\r\n:1\r\n:1\r\n:-1\r\n:0\r\n")
			}
		}
		rc.send(req.String())
		var got strings.Builder
		for range 500 {
			got.WriteString(rc.reply())
		}
		assert.Equal(t, want.String(), got.String())
	})

	t.Run("go-redis", func(t *testing.T) {
		c := ts.client(t)
		ctx := ctxT(t)
		cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for range 20 {
				p.Do(ctx, "CL.THROTTLE", "piped", "9", "10", "1")
			}
			return nil
		})
		require.NoError(t, err)
		for i, cmd := range cmds {
			v, err := cmd.(*redis.Cmd).Int64Slice()
			require.NoError(t, err)
			if i < 10 {
				assert.Equal(t, []int64{0, 10, int64(9 - i), -1, 1}, v, "take %d", i+1)
			} else {
				assert.Equal(t, []int64{1, 10, 0, 1, 1}, v, "take %d", i+1)
			}
		}
	})
}

func TestInlineCommands(t *testing.T) {
	t.Parallel()
	ts := start(t, Config{})
	rc := ts.raw(t)
	tests := []struct{ line, want string }{
		{"PING\r\n", "+PONG\r\n"},
		{"PING\n", "+PONG\r\n"},
		{"  ping   \t hello  \r\n", "$5\r\nhello\r\n"},
		{"ECHO \"a b\\x41\\n\"\r\n", "$5\r\na bA\n\r\n"},
		{"ECHO 'it\\'s'\r\n", "$4\r\nit's\r\n"},
		{"ECHO a\"b c\"d\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
	}
	for _, tt := range tests[:len(tests)-1] {
		rc.send(tt.line)
		assert.Equal(t, tt.want, rc.reply(), "%q", tt.line)
	}
	rc.send("\r\n\r\n*0\r\n*-1\r\n") // empty lines and empty commands are skipped, as by Redis
	rc.send(tests[len(tests)-1].line)
	assert.Equal(t, tests[len(tests)-1].want, rc.expectEOF(), "unbalanced quotes end the connection")
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
