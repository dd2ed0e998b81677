package respcompat

import (
	"bufio"
	"context"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/limiter"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testTimeout bounds every network wait of a test, so that a bug fails the
// test instead of hanging it.
const testTimeout = 10 * time.Second

// testPolicies are the policies start serves: the default, 15 tokens
// refilling one every 3 s; "burst", 5 tokens at 1/s; "shadow", a shadow
// policy of 1 token a minute; and "daily", 10 tokens at 1/s and 20 a day.
var testPolicies = []bucket.Policy{
	{Name: "default", Limits: []bucket.Limit{{Capacity: 15 * bucket.Token, Rate: bucket.Every(3 * time.Second)}}},
	{Name: "burst", Limits: []bucket.Limit{{Capacity: 5 * bucket.Token, Rate: bucket.PerSecond(1)}}},
	{Name: "shadow", Shadow: true, Limits: []bucket.Limit{{Capacity: bucket.Token, Rate: bucket.Every(time.Minute)}}},
	{Name: "daily", Limits: []bucket.Limit{
		{Capacity: 10 * bucket.Token, Rate: bucket.PerSecond(1)},
		{Capacity: 20 * bucket.Token, Rate: bucket.Rate{Tokens: 20 * bucket.Token, Per: 24 * time.Hour}},
	}},
}

// stack is what main.go serves, built as main.go builds it: the embedded
// store in a file of t.TempDir(), on a fake clock that only the test moves,
// and the limiter over it. Every respcompat test runs on one, so that what
// the tests check is what the server does, not what an imitation of the
// store does.
type stack struct {
	clock *storetest.Clock
	db    *storage.DB
	lim   *limiter.Limiter
}

// newStack opens a store with opts, whose Clock it sets to a new fake
// clock at storetest.T0, and a limiter over it whose default policy is
// limiter.DefaultLimit (5 tokens, one every 3 s). The store is closed when
// the test ends.
func newStack(t testing.TB, opts storage.Options) *stack {
	t.Helper()
	clock := storetest.NewClock(storetest.T0)
	opts.Clock = clock
	db, err := storage.Open(filepath.Join(t.TempDir(), "bucketd.db"), opts)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	lim, err := limiter.New(db, limiter.Options{})
	require.NoError(t, err)
	return &stack{clock: clock, db: db, lim: lim}
}

// testServer is a Server on 127.0.0.1:0 over a stack, shut down when the
// test ends (before the store closes).
type testServer struct {
	*Server
	*stack
	addr string
	done chan error // Serve's result
}

// start serves a new stack with testPolicies, configured by cfg.
func start(t *testing.T, cfg Config) *testServer {
	t.Helper()
	st := newStack(t, storage.Options{})
	require.NoError(t, st.lim.SetPolicies("default", testPolicies))
	return serve(t, st, st.lim, cfg)
}

// serve serves l, which is st.lim or a wrapper of it, with cfg. cfg.Now
// defaults to st's clock, so that TIME and ages move only with it.
func serve(t *testing.T, st *stack, l Limiter, cfg Config) *testServer {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = st.clock.Wall
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ts := &testServer{Server: New(l, cfg), stack: st, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- ts.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		assert.NoError(t, ts.Shutdown(ctx))
		assert.NoError(t, <-ts.done)
	})
	return ts
}

// size returns the number of keys that have a bucket that is not full, as
// the limiter counts them.
func (st *stack) size(t *testing.T) int {
	t.Helper()
	n, err := st.lim.Len()
	require.NoError(t, err)
	return n
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
