package respcompat

import (
	"bufio"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testTimeout bounds every network wait of a test, so that a bug fails the
// test instead of hanging it.
const testTimeout = 10 * time.Second

// testServer is a Server on 127.0.0.1:0 over a fakeStore, shut down when
// the test ends.
type testServer struct {
	*Server
	store *fakeStore
	addr  string
	done  chan error // Serve's result
}

// start serves a new fakeStore with cfg. cfg.Now defaults to the fake
// store's start instant, so that TIME and ages are fixed.
func start(t *testing.T, cfg Config) *testServer {
	t.Helper()
	f := newFake()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return epoch }
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ts := &testServer{Server: New(f, cfg), store: f, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- ts.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		assert.NoError(t, ts.Shutdown(ctx))
		assert.NoError(t, <-ts.done)
	})
	return ts
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// client returns a go-redis client of ts, with its defaults (RESP3 asked
// for, so HELLO 3 and the fallback to RESP2) unless opts says otherwise.
// Retries are off: a test sees each reply as the server sent it.
func (ts *testServer) client(t *testing.T, opts ...func(*redis.Options)) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: ts.addr, MaxRetries: -1, DialTimeout: testTimeout, ReadTimeout: testTimeout, WriteTimeout: testTimeout}
	for _, f := range opts {
		f(o)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

// rawConn is a plain TCP connection to the server, for exact bytes.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func (ts *testServer) raw(t *testing.T) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", ts.addr, testTimeout)
	require.NoError(t, err)
	require.NoError(t, nc.SetDeadline(time.Now().Add(testTimeout)))
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
}

// send writes s as it is.
func (rc *rawConn) send(s string) {
	rc.t.Helper()
	_, err := io.WriteString(rc.nc, s)
	require.NoError(rc.t, err)
}

// do sends args as a RESP command and returns the raw reply.
func (rc *rawConn) do(args ...string) string {
	rc.t.Helper()
	rc.send(encode(args...))
	return rc.reply()
}

func encode(args ...string) string {
	var b strings.Builder
	b.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
	}
	return b.String()
}

// reply reads one whole RESP reply and returns its bytes.
func (rc *rawConn) reply() string {
	rc.t.Helper()
	var b strings.Builder
	require.NoError(rc.t, readReply(rc.r, &b))
	return b.String()
}

func readReply(r *bufio.Reader, b *strings.Builder) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	b.WriteString(line)
	if len(line) < 3 {
		return io.ErrUnexpectedEOF
	}
	n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
	switch line[0] {
	case '$':
		if n < 0 {
			return nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		b.Write(buf)
	case '*':
		for range n {
			if err := readReply(r, b); err != nil {
				return err
			}
		}
	}
	return nil
}

// expectEOF reads until the server closes the connection and returns what
// came before.
func (rc *rawConn) expectEOF() string {
	rc.t.Helper()
	b, err := io.ReadAll(rc.r)
	require.NoError(rc.t, err, "the server should close the connection")
	return string(b)
}

// expectClosed reads until the server closes the connection, whether it
// ends it with a FIN or, having had input it did not read, a reset.
func (rc *rawConn) expectClosed() {
	rc.t.Helper()
	_, err := io.Copy(io.Discard, rc.r)
	if err != nil {
		require.ErrorIs(rc.t, err, syscall.ECONNRESET)
	}
}
