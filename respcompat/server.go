package respcompat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/tidwall/redcon"
)

// Store is the bucket state the RESP front needs. storage.DB implements it;
// main.go passes it to New. It must be safe for concurrent use.
type Store interface {
	// Take takes cost tokens from key's bucket under the server's named
	// policy ("" is the default), as BUCKET.TAKE and the HTTP API do.
	Take(key, policy string, cost bucket.Tokens) (bucket.Result, error)
	// Throttle takes cost tokens from key's bucket under an ad hoc limit
	// given by the caller (CL.THROTTLE). A cost of 0 peeks.
	Throttle(key string, l bucket.Limit, cost bucket.Tokens) (bucket.Decision, error)
	// Peek returns key's bucket as it is now; false if there is none (an
	// absent bucket is a full one).
	Peek(key string) (bucket.Snapshot, bool, error)
	// SetTokens sets the tokens key's bucket holds now, under its stored
	// limits or, for a new key, the default policy; clamped to [0, capacity].
	SetTokens(key string, tokens bucket.Tokens) error
	// Delete forgets keys (resets them to full) and returns how many existed.
	Delete(keys ...string) (int, error)
	// Scan returns some keys from cursor on, about count of them, and the
	// cursor to go on from; next == 0 ends. Every key present throughout a
	// full iteration is returned at least once.
	Scan(cursor uint64, count int) (keys []string, next uint64, err error)
	// Len returns the number of buckets.
	Len() int
	// FlushAll forgets every bucket.
	FlushAll() error
	// Save writes everything to disk now.
	Save() error
	// LastSave returns when everything was last written to disk.
	LastSave() time.Time
	// Policy returns the named policy ("" is the default); the error wraps
	// bucket.ErrUnknownPolicy for a name the server does not have.
	Policy(name string) (bucket.Policy, error)
	// SetDefaultLimit replaces the default policy's limits with l. Existing
	// buckets keep their tokens.
	SetDefaultLimit(l bucket.Limit) error
	// Policies returns every policy, sorted by name, with its counts; one
	// of them is the default (PolicyInfo.Default). CONFIG GET and INFO show
	// them.
	Policies() []bucket.PolicyInfo
}

// Config configures a Server. The zero value is valid: no password, 10000
// clients, no idle timeout, SHUTDOWN refused, logs discarded.
type Config struct {
	// Logger receives what no client is told: store failures (which the
	// client is told too), accept errors, panics, SHUTDOWN requests. nil
	// discards it.
	Logger *slog.Logger
	// RequirePass, when not empty, is the password of the "default" user:
	// every command but AUTH, HELLO and QUIT is refused until AUTH or
	// HELLO ... AUTH gives it.
	RequirePass string
	// MaxClients is the most connections served at once (0 or less means
	// 10000). One more is answered "-ERR max number of clients reached"
	// and closed.
	MaxClients int
	// IdleTimeout, when positive, closes a connection whose client sends
	// no byte for that long while the server waits for one (between
	// commands or within one), or does not take a reply for that long.
	IdleTimeout time.Duration
	// Shutdown is called by the SHUTDOWN command, on that client's
	// goroutine, which then closes its connection: it must start stopping
	// the process and return, not wait for this server's Shutdown (which
	// waits for that goroutine). nil refuses SHUTDOWN.
	Shutdown func()
	// Info, if not nil, returns extra fields for INFO (the data file, the
	// sync mode...), shown sorted by name in a "# Bucketd" section.
	Info func() map[string]string
	// Now is the clock of TIME, INFO's uptime and CLIENT LIST's ages; nil
	// means time.Now. The buckets' clock is the Store's.
	Now func() time.Time
}

// Server serves the Redis protocol (RESP2) on the buckets of a Store. Create
// it with New, run it with Serve and stop it with Shutdown; its methods are
// safe for concurrent use.
//
// It reads requests with its own bounded buffer and redcon's zero-copy
// parser, and writes with redcon's encoders, rather than with redcon.Server,
// whose reader holds whatever a client streams until a command is complete.
type Server struct {
	store   Store
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	started time.Time
	cmds    map[string]*command // by lower-case name; read-only after New
	list    []*command          // the same, sorted by name

	stopping atomic.Bool // set by Shutdown; checked before every read
	wg       sync.WaitGroup

	nextID      atomic.Uint64
	accepted    atomic.Uint64 // connections accepted
	rejected    atomic.Uint64 // connections refused for MaxClients
	doneCmds    atomic.Uint64 // commands run by connections since closed; changed with mu held
	maxInputBuf atomic.Int64  // the largest read buffer any connection grew
	saving      atomic.Bool   // a BGSAVE is running
	saveFailed  atomic.Bool   // the last BGSAVE failed

	mu        sync.Mutex // guards the fields below
	ln        net.Listener
	closed    bool
	clients   map[*conn]struct{}
	maxmemory string // CONFIG SET maxmemory, shown back, otherwise ignored
	policy    string // CONFIG SET maxmemory-policy, likewise
}

// New returns a server for s configured by cfg.
func New(s Store, cfg Config) *Server {
	srv := &Server{
		store:     s,
		cfg:       cfg,
		log:       cfg.Logger,
		now:       cfg.Now,
		clients:   make(map[*conn]struct{}),
		maxmemory: "0",
		policy:    "noeviction",
	}
	if srv.log == nil {
		srv.log = slog.New(slog.DiscardHandler)
	}
	if srv.now == nil {
		srv.now = time.Now
	}
	if srv.cfg.MaxClients <= 0 {
		srv.cfg.MaxClients = 10000
	}
	srv.started = srv.now()
	srv.list = commandTable()
	srv.cmds = make(map[string]*command, len(srv.list))
	for _, c := range srv.list {
		srv.cmds[c.name] = c
	}
	return srv
}

// Serve accepts connections on ln and serves each on its own goroutine
// until Shutdown. It closes ln when it returns. It returns nil after
// Shutdown, and otherwise the listener's error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		ln.Close()
		return nil
	case s.ln != nil:
		s.mu.Unlock()
		return errors.New("respcompat: Serve called twice")
	}
	s.ln = ln
	s.mu.Unlock()
	defer ln.Close()

	var backoff time.Duration // after an accept error, as net/http does
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.stopping.Load() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("respcompat: accept: %w", err)
			}
			// Out of file descriptors, or a connection reset before it was
			// accepted: wait a little and go on.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("respcompat: accept failed; retrying", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.accept(nc)
	}
}

// maxClientsReply is written, as Redis writes it, to a connection over
// Config.MaxClients before it is closed.
var maxClientsReply = []byte("-ERR max number of clients reached\r\n")

func (s *Server) accept(nc net.Conn) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return
	}
	if len(s.clients) >= s.cfg.MaxClients {
		s.mu.Unlock()
		s.rejected.Add(1)
		// A new socket's send buffer is empty: this write does not block.
		nc.Write(maxClientsReply)
		nc.Close()
		return
	}
	c := s.newConn(nc)
	s.clients[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.accepted.Add(1)
	go c.serve()
}

// aLongTimeAgo is a deadline in the past, to wake blocked reads.
var aLongTimeAgo = time.Unix(1, 0)

// Shutdown stops the server: it closes the listener, lets every connection
// finish the commands it has read and write their replies, closes the
// connections, and waits for their goroutines and any BGSAVE. If ctx ends
// first it closes the connections at once and returns ctx.Err() without
// waiting further. Serve returns nil once Shutdown has begun.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopping.Store(true)
	s.mu.Lock()
	s.closed = true
	ln := s.ln
	for c := range s.clients {
		// Wake a connection blocked in a read; one that is running commands
		// sees stopping before its next read.
		c.nc.SetReadDeadline(aLongTimeAgo)
	}
	s.mu.Unlock()

	var err error
	if ln != nil {
		if cerr := ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = fmt.Errorf("respcompat: close listener: %w", cerr)
		}
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return err
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.clients {
			c.nc.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

// addr returns the listener's address, or nil before Serve.
func (s *Server) addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Read buffer sizes. A connection starts with minBuf and grows, while one
// command does not fit, up to maxBuf: room for one whole command and a read
// after it. Everything before the command in progress has been run by then,
// so the buffer never needs more.
const (
	minBuf  = 4 << 10
	maxBuf  = MaxCommandSize + minBuf
	maxKeep = 16 << 10 // a buffer larger than this is dropped once empty
)

// conn is one client connection and its session.
type conn struct {
	s       *Server
	nc      net.Conn
	id      uint64
	addr    string
	laddr   string
	created time.Time

	// Owned by the connection's goroutine.
	buf    []byte   // bytes read; buf[r:end] are whole commands not yet run
	r      int      // start of the first command not yet run
	end    int      // end of the last whole command read
	w      int      // end of the bytes read
	f      framer   // finds the commands in buf[end:w] and later reads
	args   [][]byte // the current command; aliases buf, reused
	out    []byte   // replies not yet written
	authed bool     // AUTH succeeded, or no password is required
	quit   bool     // close after writing the replies so far

	// Shared with CLIENT LIST and INFO on other connections.
	last   atomic.Pointer[command] // the last command run
	active atomic.Int64            // when it ran, in Unix nanoseconds
	ncmds  atomic.Uint64           // commands run
	mu     sync.Mutex              // guards the fields below
	name   string                  // CLIENT SETNAME
	lib    string                  // CLIENT SETINFO LIB-NAME
	libVer string                  // CLIENT SETINFO LIB-VER
}

func (s *Server) newConn(nc net.Conn) *conn {
	now := s.now()
	c := &conn{
		s:       s,
		nc:      nc,
		id:      s.nextID.Add(1),
		addr:    nc.RemoteAddr().String(),
		laddr:   nc.LocalAddr().String(),
		created: now,
		authed:  s.cfg.RequirePass == "",
	}
	c.active.Store(now.UnixNano())
	return c
}

// serve reads and runs c's commands until the client goes, a protocol error,
// QUIT or SHUTDOWN, the idle timeout or the server's Shutdown.
func (c *conn) serve() {
	defer func() {
		if v := recover(); v != nil {
			c.s.log.Error("respcompat: panic serving a client", "addr", c.addr, "panic", v, "stack", string(debug.Stack()))
		}
		// Free the client's slot before closing, so that a client that
		// sees the connection close can count on connecting again.
		c.s.mu.Lock()
		c.s.doneCmds.Add(c.ncmds.Load())
		delete(c.s.clients, c)
		c.s.mu.Unlock()
		c.nc.Close()
		c.s.wg.Done()
	}()
	err := c.loop()
	var perr protocolError
	if errors.As(err, &perr) {
		c.out = redcon.AppendError(c.out, "ERR "+perr.Error())
		if c.flush() == nil {
			c.linger()
		}
	}
}

// loop runs until the connection must close. A protocol error is returned
// after the replies to the commands before it have been written.
func (c *conn) loop() error {
	c.buf = make([]byte, minBuf)
	for {
		if err := c.fill(); err != nil {
			return err
		}
	}
}

// fill reads once, runs every command completed by what was read, and
// writes the replies.
func (c *conn) fill() error {
	c.makeRoom()
	if c.s.cfg.IdleTimeout > 0 {
		c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
	}
	// Checked after setting the deadline: Shutdown sets stopping before it
	// moves the deadline to the past, so a read cannot miss both.
	if c.s.stopping.Load() {
		return net.ErrClosed
	}
	n, rerr := c.nc.Read(c.buf[c.w:])
	end, perr := c.f.scan(c.buf[c.w : c.w+n])
	if end > 0 {
		c.end = c.w + end
	}
	c.w += n
	if c.r < c.end {
		c.active.Store(c.s.now().UnixNano())
		err := c.run()
		if ferr := c.flush(); ferr != nil {
			return ferr
		}
		if err != nil {
			return err
		}
		if c.quit {
			return io.EOF
		}
	}
	if perr != nil {
		return perr
	}
	return rerr
}

// makeRoom makes room for a read after the bytes not yet run: at most one
// unfinished command, which the framer bounds by MaxCommandSize, so that
// maxBuf always leaves minBuf free.
func (c *conn) makeRoom() {
	if c.r == c.w {
		c.r, c.end, c.w = 0, 0, 0
		if len(c.buf) > maxKeep {
			c.buf = make([]byte, minBuf)
		}
	}
	if len(c.buf)-c.w >= minBuf {
		return
	}
	pending := c.w - c.r
	size := len(c.buf)
	for size-pending < minBuf && size < maxBuf {
		size = min(2*size, maxBuf)
	}
	nb := c.buf
	if size > len(c.buf) {
		nb = make([]byte, size)
		c.s.noteInputBuf(size)
	}
	copy(nb, c.buf[c.r:c.w])
	c.buf, c.w, c.end, c.r = nb, pending, c.end-c.r, 0
}

func (s *Server) noteInputBuf(n int) {
	for {
		old := s.maxInputBuf.Load()
		if int64(n) <= old || s.maxInputBuf.CompareAndSwap(old, int64(n)) {
			return
		}
	}
}

// run runs the whole commands in buf[r:end].
func (c *conn) run() error {
	var ran uint64
	for c.r < c.end && !c.quit {
		p := c.buf[c.r:c.end]
		if n := emptyCommand(p); n > 0 {
			c.r += n
			continue
		}
		if p[0] == '*' {
			complete, args, _, rest, err := redcon.ReadNextCommand(p, c.args)
			if err != nil || !complete {
				// The framer has checked this command; redcon disagreeing
				// is a bug, and the stream cannot be trusted past it.
				return protocolError("invalid request")
			}
			c.r += len(p) - len(rest)
			c.args = args
		} else {
			i := bytesIndexNL(p)
			line := p[:i]
			c.r += i + 1
			if len(line) > 0 && line[len(line)-1] == '\r' {
				line = line[:len(line)-1]
			}
			args, err := splitInline(line, c.args)
			if err != nil {
				return err
			}
			c.args = args
			if len(args) == 0 {
				continue
			}
		}
		c.exec(c.args)
		ran++
	}
	c.ncmds.Add(ran)
	return nil
}

// emptyCommand returns the length of the empty command ("*0\r\n",
// "*-1\r\n") p starts with, or 0 if it starts with another.
func emptyCommand(p []byte) int {
	if len(p) < 4 || p[0] != '*' || p[1] != '-' && p[1] != '0' {
		return 0
	}
	i := bytesIndexNL(p)
	if n, ok := parseDigits(p[1 : i-1]); !ok || n > 0 {
		return 0
	}
	return i + 1
}

func bytesIndexNL(p []byte) int {
	for i, b := range p {
		if b == '\n' {
			return i
		}
	}
	return len(p) - 1 // unreachable: the framer found the '\n'
}

// flush writes the replies.
func (c *conn) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	if c.s.cfg.IdleTimeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
	}
	_, err := c.nc.Write(c.out)
	if cap(c.out) > maxKeep {
		c.out = nil
	} else {
		c.out = c.out[:0]
	}
	return err
}

// linger half-closes the connection after a protocol error and discards
// what the client still sends, for up to a second, so that the client
// reads the error before the connection goes (closing a socket with
// unread input would reset it and could lose the reply).
func (c *conn) linger() {
	if tc, ok := c.nc.(interface{ CloseWrite() error }); ok {
		tc.CloseWrite()
	}
	c.nc.SetReadDeadline(time.Now().Add(time.Second))
	io.Copy(io.Discard, c.nc)
}

// info returns c's line of CLIENT LIST, in Redis's format.
func (c *conn) info(now time.Time) string {
	c.mu.Lock()
	name, lib, libVer := c.name, c.lib, c.libVer
	c.mu.Unlock()
	last := "NULL"
	if cmd := c.last.Load(); cmd != nil {
		last = cmd.name
	}
	var b strings.Builder
	fmt.Fprintf(&b, "id=%d addr=%s laddr=%s fd=-1 name=%s age=%d idle=%d flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 watch=0 ",
		c.id, c.addr, c.laddr, name, int64(now.Sub(c.created)/time.Second), (now.UnixNano()-c.active.Load())/int64(time.Second))
	fmt.Fprintf(&b, "qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=%s user=default redir=-1 resp=2 lib-name=%s lib-ver=%s\n",
		last, lib, libVer)
	return b.String()
}
