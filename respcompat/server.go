package respcompat

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/limiter"
)

// Limiter is what the RESP front needs of the limiter (package limiter
// implements it; main.go passes it to New). It must be safe for concurrent
// use. Errors that wrap no sentinel of package bucket are internal.
type Limiter interface {
	Ops
	// ThrottleBatch runs Throttle on each of reqs, in order, as one step,
	// and appends each outcome to out: pipelined CL.THROTTLEs. A key is
	// only read during the call.
	ThrottleBatch(reqs []limiter.ThrottleReq, out []limiter.ThrottleResult) []limiter.ThrottleResult
	// NewWatch returns an empty set of watched keys (WATCH).
	NewWatch() *limiter.Watch
	// Atomic runs fn with the locks of keys (of every key if all) held,
	// as one step that no other client sees the middle of, unless w is
	// dirty (then it returns limiter.ErrWatchDirty and runs nothing).
	Atomic(keys []string, all bool, w *limiter.Watch, fn func(tx *limiter.Tx) error) error
}

// Ops are the limiter's operations the commands use: the Limiter's,
// outside a transaction, or a *limiter.Tx's inside EXEC, which take no lock.
type Ops interface {
	// Take takes cost tokens from key's bucket under the server's named
	// policy ("" is the default), as BUCKET.TAKE and the HTTP API do.
	Take(key, policy string, cost bucket.Tokens) (bucket.Result, error)
	// Throttle takes cost tokens from key's CL.THROTTLE bucket under an
	// ad hoc limit given by the caller; 0 peeks, a negative cost gives
	// tokens back.
	Throttle(key string, l bucket.Limit, cost bucket.Tokens) (bucket.Decision, error)
	// CellCounts returns the counts of CL.THROTTLE's takes.
	CellCounts() bucket.Counts
	// Inspect returns the bucket of key that HGETALL shows; false if key
	// has none that is not full (an absent bucket is a full one).
	Inspect(key string) (limiter.View, bool, error)
	// SetTokens sets the tokens key's bucket under the default policy
	// holds now, clamped to [0, capacity].
	SetTokens(key string, tokens bucket.Tokens) error
	// Delete resets every bucket of each key and returns how many keys had
	// one that was not full.
	Delete(keys ...string) (int, error)
	// Scan returns some keys from cursor on, about count of them, and the
	// cursor to go on from; next == 0 ends. Every key present throughout a
	// full iteration is returned at least once.
	Scan(cursor uint64, count int) (keys []string, next uint64, err error)
	// Len returns the number of keys that have a bucket that is not full.
	Len() (int, error)
	// FlushAll resets every bucket.
	FlushAll() error
	// Save writes everything to disk now.
	Save() error
	// LastSave returns when everything was last written to disk.
	LastSave() time.Time
	// Ready returns nil while changes reach the disk, else why not.
	Ready() error
	// Evicted returns how many keys were evicted for --max-keys.
	Evicted() uint64
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
	// TopLimited gives the keys refused most, for INFO's Top section.
	TopLimited
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
	// AdminToken, when not empty, is the password of the "admin" user
	// (AUTH admin <token>), the only one that may run the commands that
	// flush, reset, set, save, configure or stop the server, or watch
	// every command (MONITOR); others are answered NOPERM. Empty, every
	// client may run them.
	AdminToken string
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
	// OutputLimit bounds the replies the server holds for a client (0 or
	// less means DefaultOutputLimit). Outside EXEC the server writes them
	// once they pass 64 KiB (or OutputLimit if less), before it runs the
	// client's next command, so a client that does not read its replies
	// stops being read (backpressure) and holds at most that. Inside
	// EXEC, whose locks must not wait on a client, replies past
	// OutputLimit are dropped and the client is disconnected and logged,
	// as Redis's client-output-buffer-limit does; so is a MONITOR client
	// that falls that far behind.
	OutputLimit int
	// Now is the clock of TIME, INFO's uptime and CLIENT LIST's ages; nil
	// means time.Now. The buckets' clock is the Store's.
	Now func() time.Time
	// Metrics, if not nil, counts the takes of BUCKET.TAKE and
	// CL.THROTTLE.
	Metrics Metrics
	// AccessLog logs a line for every command at info level (at debug
	// level otherwise): its name, its key, the decision of a take and the
	// time it took. No other argument, and so no password, is logged.
	AccessLog bool
}

// DefaultOutputLimit is Config.OutputLimit's default: 1 MiB.
const DefaultOutputLimit = 1 << 20

// Server serves the Redis protocol (RESP2) on the buckets of a Store. Create
// it with New, run it with Serve and stop it with Shutdown; its methods are
// safe for concurrent use.
//
// It reads requests with its own bounded buffer and redcon's zero-copy
// parser, and writes with redcon's encoders, rather than with redcon.Server,
// whose reader holds whatever a client streams until a command is complete.
type Server struct {
	store    Limiter
	cfg      Config
	outLimit int
	log      *slog.Logger
	now      func() time.Time
	started  time.Time
	cmds     map[string]*command // by lower-case name; read-only after New
	list     []*command          // the same, sorted by name

	stopping atomic.Bool // set by Shutdown; checked before every read
	wg       sync.WaitGroup

	nextID      atomic.Uint64
	accepted    atomic.Uint64 // connections accepted
	rejected    atomic.Uint64 // connections refused for MaxClients
	doneCmds    atomic.Uint64 // commands run by connections since closed; changed with mu held
	maxInputBuf atomic.Int64  // the largest read buffer any connection grew
	saving      atomic.Bool   // a BGSAVE is running
	unknown     atomic.Uint64 // unknown commands run (Stats)
	accessLvl   slog.Level    // the level of a command's access log line
	peakUsed    atomic.Uint64 // the most used_memory INFO has seen

	monMu sync.Mutex   // guards mons
	mons  []*monitor   // MONITOR clients; replaced, never changed in place
	nmon  atomic.Int32 // len(mons), read without the lock

	mu        sync.Mutex // guards the fields below
	ln        net.Listener
	closed    bool
	clients   map[*conn]struct{}
	maxmemory string // CONFIG SET maxmemory, shown back, otherwise ignored
	policy    string // CONFIG SET maxmemory-policy, likewise
}

// New returns a server for the buckets of s, configured by cfg.
func New(s Limiter, cfg Config) *Server {
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
	srv.accessLvl = slog.LevelDebug
	if cfg.AccessLog {
		srv.accessLvl = slog.LevelInfo
	}
	srv.outLimit = cfg.OutputLimit
	if srv.outLimit <= 0 {
		srv.outLimit = DefaultOutputLimit
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
		c.boundWritesForShutdown() // a client that does not read: shutdown.go
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

// counts returns the connected clients and the commands run so far.
func (s *Server) counts() (clients int, cmds uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmds = s.doneCmds.Load()
	for c := range s.clients {
		cmds += c.ncmds.Load()
	}
	return len(s.clients), cmds
}

// clientsByID returns the connected clients, oldest first.
func (s *Server) clientsByID() []*conn {
	s.mu.Lock()
	list := make([]*conn, 0, len(s.clients))
	for c := range s.clients {
		list = append(list, c)
	}
	s.mu.Unlock()
	slices.SortFunc(list, func(a, b *conn) int { return cmp.Compare(a.id, b.id) })
	return list
}
