package server

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Shutdown and silent connections.
//
// fasthttp's Shutdown waits for every connection that is not idle, and it
// counts a connection as active from the moment it is accepted until its
// first request is answered: one that never sends a byte (as Go's HTTP
// client leaves under load, or an attacker) holds Shutdown for the whole
// read timeout. net/http does no better for its first five seconds.
//
// So the server tracks its connections, and knows of each whether any
// byte of the request it is waiting for has arrived: fresh from accept, and
// again when fasthttp says it is idle (its last answer written); not fresh
// once a read returns a byte. Shutdown ends the reads of the fresh ones
// (a deadline in the past, and every later read returns io.EOF, which
// fasthttp takes as the client leaving), and lets the others finish their
// request: a request is in flight from its first byte. fasthttp then
// closes each after its answer (Server.CloseOnShutdown says so in it).
// No HTTP is parsed here: only reads are counted.

// aLongTimeAgo is a deadline in the past, to wake a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// connSet is the server's open connections.
type connSet struct {
	mu       sync.Mutex // guards the fields below
	conns    map[*trackedConn]struct{}
	stopping bool // Shutdown has begun
}

// trackingListener wraps each accepted connection in a trackedConn of set.
type trackingListener struct {
	net.Listener
	set *connSet
}

func (l *trackingListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &trackedConn{Conn: nc, set: l.set, fresh: true}
	l.set.mu.Lock()
	if l.set.conns == nil {
		l.set.conns = make(map[*trackedConn]struct{})
	}
	l.set.conns[c] = struct{}{}
	stopping := l.set.stopping
	l.set.mu.Unlock()
	if stopping {
		c.stop()
	}
	if tc, ok := nc.(*tls.Conn); ok {
		return &trackedTLSConn{trackedConn: c, tls: tc}, nil // fasthttp sees TLS
	}
	return c, nil
}

// trackedConn is a connection that knows whether the request it waits for
// has begun.
type trackedConn struct {
	net.Conn
	set *connSet

	mu      sync.Mutex // guards fresh and stopped
	fresh   bool       // no byte of the awaited request has been read
	stopped bool       // Shutdown ended its reads
}

func (c *trackedConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	stopped := c.stopped
	c.mu.Unlock()
	if stopped {
		return 0, io.EOF
	}
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	if n > 0 {
		c.fresh = false
	}
	if c.stopped && n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		err = io.EOF // woken by stop: the client, as far as fasthttp cares, left
	}
	c.mu.Unlock()
	return n, err
}

// SetReadDeadline and SetDeadline keep a stopped connection's deadline in
// the past: fasthttp sets one before each request.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *trackedConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return c.Conn.SetWriteDeadline(t)
	}
	return c.Conn.SetDeadline(t)
}

func (c *trackedConn) Close() error {
	c.set.mu.Lock()
	delete(c.set.conns, c)
	c.set.mu.Unlock()
	return c.Conn.Close()
}

// idle marks c as waiting for a new request, and stops it if Shutdown has
// begun.
func (c *trackedConn) idle() {
	c.mu.Lock()
	c.fresh = true
	c.mu.Unlock()
	c.set.mu.Lock()
	stopping := c.set.stopping
	c.set.mu.Unlock()
	if stopping {
		c.stop()
	}
}

// stop ends c's reads if it is fresh, and reports whether it did.
func (c *trackedConn) stop() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.fresh || c.stopped {
		return c.stopped
	}
	c.stopped = true
	_ = c.Conn.SetReadDeadline(aLongTimeAgo)
	return true
}

// stop begins the shutdown: it stops every fresh connection, now and as
// others become fresh.
func (s *connSet) stop() {
	s.mu.Lock()
	s.stopping = true
	list := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		list = append(list, c)
	}
	s.mu.Unlock()
	for _, c := range list {
		c.stop()
	}
}

// closeAll closes every connection: Shutdown's time is up.
func (s *connSet) closeAll() {
	s.mu.Lock()
	list := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		list = append(list, c)
	}
	s.mu.Unlock()
	for _, c := range list {
		_ = c.Close()
	}
}

// connState is fasthttp's Server.ConnState: an idle connection is fresh.
func connState(nc net.Conn, state fasthttp.ConnState) {
	if state != fasthttp.StateIdle {
		return
	}
	switch c := nc.(type) {
	case *trackedConn:
		c.idle()
	case *trackedTLSConn:
		c.idle()
	}
}

// trackedTLSConn is a trackedConn over TLS: fasthttp and Fiber see its TLS
// state (c.Protocol() is "https").
type trackedTLSConn struct {
	*trackedConn
	tls *tls.Conn
}

func (c *trackedTLSConn) Handshake() error                     { return c.tls.Handshake() }
func (c *trackedTLSConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }
