package server

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// serve starts s on a fresh 127.0.0.1 port and returns its address and the
// channel that Serve's result arrives on. The listener is bound before
// Serve runs, so a client may connect at once: the kernel queues it.
func serve(t *testing.T, s *Server) (addr string, done <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ch := make(chan error, 1)
	go func() { ch <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return ln.Addr().String(), ch
}

// wait returns what arrives on ch, failing the test after 5 s.
func wait(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
		return nil
	}
}

func TestServeAndShutdown(t *testing.T) {
	t.Parallel()
	e, s := newServer(t, Config{})
	addr, done := serve(t, s)

	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/joe?cost=2")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, `{"detail":"OK"}`, string(body))
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.Equal(t, `"default";q=10;w=30`, resp.Header.Get("RateLimit-Policy"))
	assert.Equal(t, `"default";r=8;t=6`, resp.Header.Get("RateLimit"))
	assert.Equal(t, []spent{{"joe", "default", 2 * T}}, e.spent(t))

	// The client's keep-alive connection is idle: Shutdown closes it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, s.Shutdown(ctx))
	assert.NoError(t, wait(t, done))

	_, err = net.DialTimeout("tcp", addr, time.Second)
	assert.Error(t, err, "the listener is closed")
	assert.NoError(t, s.Shutdown(ctx), "a second Shutdown is harmless")
}

func TestShutdownBeforeServe(t *testing.T) {
	t.Parallel()
	_, s := newServer(t, Config{})
	require.NoError(t, s.Shutdown(context.Background()))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	err = s.Serve(ln)
	assert.ErrorIs(t, err, net.ErrClosed)
	_, err = ln.Accept()
	assert.ErrorIs(t, err, net.ErrClosed, "Serve closed the listener")
}

// Shutdown right after Serve starts, before fasthttp may have the listener:
// Serve must still return.
func TestShutdownRacesServe(t *testing.T) {
	t.Parallel()
	for range 20 {
		_, s := newServer(t, Config{})
		_, done := serve(t, s)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		require.NoError(t, s.Shutdown(ctx))
		cancel()
		err := wait(t, done)
		if err != nil { // Serve lost the race outright
			assert.ErrorIs(t, err, net.ErrClosed)
		}
	}
}

func TestHeadersTooLarge(t *testing.T) {
	t.Parallel()
	_, s := newServer(t, Config{})
	addr, _ := serve(t, s)

	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
	// Exactly a buffer's worth, with the headers not yet ended: the server
	// reads it all, so it closes without unread data (which would reset
	// the connection and could lose the answer).
	req := "GET /joe HTTP/1.1\r\nHost: x\r\nX-Big: "
	req += strings.Repeat("a", readBufferSize-len(req))
	_, err = io.WriteString(conn, req)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, 431, resp.StatusCode)
	assert.Equal(t, `{"error":"request header fields too large"}`, string(body))
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
}
