package server

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	// Announced by Content-Length: refused before the body is read.
	e, s := newServer(t, Config{})
	r := serveRaw(t, s,
		"POST /v1/take HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(DefaultMaxBodyBytes+1)+"\r\n\r\n")
	assert.Equal(t, 413, r.status)
	assert.Equal(t, `{"error":"request body is larger than 1048576 bytes"}`, r.body)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))

	// Chunked: refused while it is read.
	body := `{"takes":[{"key":"` + strings.Repeat("k", 64) + `"}]}`
	r = serveRaw(t, New(e.lim, Config{MaxBodyBytes: 64}),
		"POST /v1/batch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+
			strconv.FormatInt(int64(len(body)), 16)+"\r\n"+body+"\r\n0\r\n\r\n")
	assert.Equal(t, 413, r.status)
	assert.Equal(t, `{"error":"request body is larger than 64 bytes"}`, r.body)

	e.assertNoTake(t)

	r = do(t, New(e.lim, Config{MaxBodyBytes: 64}), "POST", "/v1/take", `{"key":"`+strings.Repeat("k", 64-10)+`"}`)
	assert.Equal(t, 200, r.status, "exactly the limit")
}

// serveRaw has s answer the raw request on an in-memory connection. Unlike
// app.Test it reads the answer to a request that fasthttp refuses (and
// reports as an error).
func serveRaw(t *testing.T, s *Server, raw string) response {
	t.Helper()
	s.app.Handler() // builds the routes, as Serve does
	c := &memConn{r: strings.NewReader(raw)}
	_ = s.app.Server().ServeConn(c) // the refusal, once answered
	resp, err := http.ReadResponse(bufio.NewReader(&c.w), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{resp.StatusCode, resp.Header, string(body)}
}

// memConn is a net.Conn that reads r and writes to w.
type memConn struct {
	net.Conn // nil: only what fasthttp calls is implemented
	r        io.Reader
	w        bytes.Buffer
}

func (c *memConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *memConn) Write(b []byte) (int, error)      { return c.w.Write(b) }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8000} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }
