package respcompat

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/redcon"
)

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
	store   Ops // the Server's store, or inside EXEC the transaction
	nc      net.Conn
	id      uint64
	addr    string
	laddr   string
	created time.Time

	// Owned by the connection's goroutine.
	tx     txState    // MULTI and WATCH: multi.go
	mon    *monitor   // set by MONITOR: monitor.go
	wmu    sync.Mutex // serializes writes: the monitor's writer writes too
	buf    []byte     // bytes read; buf[r:end] are whole commands not yet run
	r      int        // start of the first command not yet run
	end    int        // end of the last whole command read
	w      int        // end of the bytes read
	f      framer     // finds the commands in buf[end:w] and later reads
	args   [][]byte   // the current command; aliases buf, reused
	batch  batchState // CL.THROTTLEs run as one batch: pipeline.go
	out    []byte     // replies not yet written
	authed bool       // AUTH succeeded, or no password is required
	admin  bool       // authenticated as the admin user (Config.AdminToken)
	quit   bool       // close after writing the replies so far

	logging  bool   // the command being run is access-logged
	decision string // the outcome of its take, for the access log line

	// Shared with CLIENT LIST and INFO on other connections.
	last   atomic.Pointer[command] // the last command run
	active atomic.Int64            // when it ran, in Unix nanoseconds
	ncmds  atomic.Uint64           // commands run
	mu     sync.Mutex              // guards the fields below
	name   string                  // CLIENT SETNAME
	lib    string                  // CLIENT SETINFO LIB-NAME
	libVer string                  // CLIENT SETINFO LIB-VER
	shown  shownState              // the session as CLIENT LIST shows it
}

func (s *Server) newConn(nc net.Conn) *conn {
	now := s.now()
	c := &conn{
		s:       s,
		store:   s.store,
		nc:      nc,
		id:      s.nextID.Add(1),
		addr:    nc.RemoteAddr().String(),
		laddr:   nc.LocalAddr().String(),
		created: now,
		authed:  s.cfg.RequirePass == "",
		shown:   shownState{multi: -1},
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
		if c.tx.watch != nil {
			c.tx.watch.Reset()
		}
		if c.mon != nil {
			c.s.stopMonitor(c.mon)
		}
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
			args, n := splitCommand(p, c.args)
			if n == 0 {
				// The framer has checked this command; the split
				// disagreeing is a bug, and the stream cannot be trusted
				// past it.
				return protocolError("invalid request")
			}
			c.r += n
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
		if c.batchable(c.args) {
			ran += uint64(c.runThrottles(c.args)) // pipeline.go
		} else {
			c.exec(c.args)
			ran++
		}
		if len(c.out) >= min(c.s.outLimit, writeChunk) {
			// Backpressure: a client that does not read its replies
			// blocks here, and its next commands are not read.
			if err := c.write(); err != nil {
				c.ncmds.Add(ran)
				return err
			}
		}
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

// writeChunk is the most replies kept for a client while more of its
// commands run: past it (or past Config.OutputLimit if less) they are
// written, and the connection waits until the client takes them.
const writeChunk = 64 << 10

// flush writes the replies, and drops a large buffer: the client may now
// be idle for long.
func (c *conn) flush() error {
	err := c.write()
	if cap(c.out) > maxKeep {
		c.out = nil
	}
	return err
}

// write writes the replies and keeps the buffer for more.
func (c *conn) write() error {
	if len(c.out) == 0 {
		return nil
	}
	err := c.writeLocked(c.out)
	c.out = c.out[:0]
	return err
}

// writeLocked writes b to the client, after any write in progress.
func (c *conn) writeLocked(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.s.cfg.IdleTimeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
	}
	_, err := c.nc.Write(b)
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
	name, lib, libVer, sh := c.name, c.lib, c.libVer, c.shown
	c.mu.Unlock()
	last := "NULL"
	if cmd := c.last.Load(); cmd != nil {
		last = cmd.name
	}
	var b strings.Builder
	flags := ""
	if sh.monitor {
		flags += "O"
	}
	if sh.multi >= 0 {
		flags += "x"
	}
	if sh.watch != nil && sh.watch.Dirty() {
		flags += "d"
	}
	if flags == "" {
		flags = "N"
	}
	user := "default"
	if sh.admin {
		user = "admin"
	}
	fmt.Fprintf(&b, "id=%d addr=%s laddr=%s fd=-1 name=%s age=%d idle=%d flags=%s db=0 sub=0 psub=0 ssub=0 multi=%d watch=%d ",
		c.id, c.addr, c.laddr, name, int64(now.Sub(c.created)/time.Second), (now.UnixNano()-c.active.Load())/int64(time.Second),
		flags, sh.multi, sh.nwatch)
	fmt.Fprintf(&b, "qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=%s user=%s redir=-1 resp=2 lib-name=%s lib-ver=%s\n",
		last, user, lib, libVer)
	return b.String()
}

// shownState is a copy of the session, for CLIENT LIST on other
// connections.
type shownState struct {
	admin   bool
	monitor bool
	multi   int // commands queued; -1 outside MULTI
	nwatch  int
	watch   interface{ Dirty() bool }
}

// publish copies the session for CLIENT LIST, after it changed.
func (c *conn) publish() {
	sh := shownState{admin: c.admin, monitor: c.mon != nil, multi: -1}
	if c.tx.multi {
		sh.multi = len(c.tx.queued)
	}
	if c.tx.watch != nil {
		sh.nwatch, sh.watch = c.tx.watch.Len(), c.tx.watch
	}
	c.mu.Lock()
	c.shown = sh
	c.mu.Unlock()
}
