package server

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shutdownBound is how long Shutdown may take when no request is in
// flight: generous, so that a slow machine does not fail the test, and far
// below the read timeout (30 s) that a silent connection used to hold it.
const shutdownBound = 3 * time.Second

// dial connects to addr with a deadline for the whole test.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	return conn
}

// TestShutdownClosesSilentAndIdle checks that connections with no request
// in flight do not hold Shutdown: one that never sent a byte, and one kept
// alive after an answer. Each is closed without an answer.
func TestShutdownClosesSilentAndIdle(t *testing.T) {
	t.Parallel()
	_, s := newServer(t, Config{})
	addr, done := serve(t, s)

	silent := dial(t, addr)
	idle := dial(t, addr)
	_, err := io.WriteString(idle, "GET /joe HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(idle)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	// The silent connection is accepted: a request on a third one, made
	// after it, has been answered, and the server accepts in order.
	ok := dial(t, addr)
	_, err = io.WriteString(ok, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	resp, err = http.ReadResponse(bufio.NewReader(ok), nil)
	require.NoError(t, err)
	resp.Body.Close()

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, s.Shutdown(ctx))
	assert.Less(t, time.Since(start), shutdownBound)
	assert.NoError(t, wait(t, done))
	for name, c := range map[string]io.Reader{"silent": silent, "idle": br} {
		b, err := io.ReadAll(c)
		assert.NoError(t, err, "%s: closed, not reset or timed out", name)
		assert.Empty(t, b, "%s: closed without an answer", name)
	}
}

// TestShutdownLetsRequestInFlightFinish starts a request (its headers, not
// its body), shuts down, then sends the body: the request is answered,
// with Connection: close, and Shutdown returns after it.
func TestShutdownLetsRequestInFlightFinish(t *testing.T) {
	t.Parallel()
	e, s := newServer(t, Config{})
	addr, done := serve(t, s)

	conn := dial(t, addr)
	silent := dial(t, addr)
	_, err := io.WriteString(conn, "POST /v1/take HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\n")
	require.NoError(t, err)
	// Wait for the server to have read the headers: the connection is
	// no longer fresh (ordering by the server's state, not by sleeping).
	require.Eventually(t, func() bool {
		s.conns.mu.Lock()
		defer s.conns.mu.Unlock()
		for c := range s.conns.conns {
			c.mu.Lock()
			started := !c.fresh
			c.mu.Unlock()
			if started {
				return true
			}
		}
		return false
	}, 5*time.Second, time.Millisecond)

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	// The silent connection is closed by Shutdown while the request is
	// still in flight.
	b, err := io.ReadAll(silent)
	require.NoError(t, err)
	require.Empty(t, b)
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}

	_, err = io.WriteString(conn, `{"key":"joe"}`)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode, "%s", body)
	assert.True(t, resp.Close, "Connection: close during shutdown")
	require.NoError(t, <-shut)
	assert.NoError(t, wait(t, done))
	assert.Equal(t, []spent{{"joe", "default", T}}, e.spent(t))
}

// TestShutdownTimeoutClosesAll checks that when ctx ends first, Shutdown
// closes the connections still in a request and says so.
func TestShutdownTimeoutClosesAll(t *testing.T) {
	t.Parallel()
	_, s := newServer(t, Config{})
	addr, _ := serve(t, s)
	conn := dial(t, addr)
	_, err := io.WriteString(conn, "GET /joe HTTP/1.1\r\n") // never ends its headers
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		s.conns.mu.Lock()
		defer s.conns.mu.Unlock()
		for c := range s.conns.conns {
			c.mu.Lock()
			started := !c.fresh
			c.mu.Unlock()
			if started {
				return true
			}
		}
		return false
	}, 5*time.Second, time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = s.Shutdown(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	_, err = io.ReadAll(conn)
	assert.NoError(t, err, "closed by the server")
}
