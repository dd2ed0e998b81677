package respcompat

import (
	"context"
	"net"
	"testing"

	"github.com/bucketd/bucketd/storage"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
		st := newStack(t, storage.Options{})
		h := holdSaves(st.lim)
		ts := serve(t, st, h, Config{})
		rc := ts.raw(t)
		rc.send(encode("SAVE"))
		<-h.entered
		ctx, cancel := context.WithCancel(context.Background())
		shut := make(chan error, 1)
		go func() { shut <- ts.Shutdown(ctx) }()
		cancel()
		assert.ErrorIs(t, <-shut, context.Canceled)
		assert.Empty(t, rc.expectEOF(), "connections are closed when the context ends")
		close(h.release)
	})
	t.Run("a running command finishes and is answered", func(t *testing.T) {
		st := newStack(t, storage.Options{})
		h := holdSaves(st.lim)
		ts := serve(t, st, h, Config{})
		rc := ts.raw(t)
		rc.send(encode("SAVE"))
		<-h.entered
		shut := make(chan error, 1)
		go func() { shut <- ts.Shutdown(ctxT(t)) }()
		close(h.release)
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
