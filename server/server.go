package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/gofiber/fiber/v2"
)

// Limiter is what the server needs of the store.
type Limiter interface {
	// Take takes cost tokens from key's bucket under the named policy (""
	// is the default policy). A cost more than the policy's capacity is not
	// an error but a denial with RetryAfter == bucket.Never. The error wraps
	// bucket.ErrUnknownPolicy for an unknown policy name, bucket.ErrInvalid
	// for a bad cost, and bucket.ErrClosed when the store is shutting down;
	// any other error is internal.
	//
	// key and policy are only valid during the call: they may point into
	// the request's memory, so a store that keeps them must copy them.
	Take(key, policy string, cost bucket.Tokens) (bucket.Result, error)
}

// DefaultMaxKeyLen is the longest key, in bytes once percent-decoded, that a
// zero Config.MaxKeyLen allows.
const DefaultMaxKeyLen = 256

// Config configures a Server. The zero value is valid.
type Config struct {
	// Logger receives a debug line for every request and an error line for
	// every internal error. nil discards everything.
	Logger *slog.Logger
	// MaxKeyLen is the longest key accepted, in bytes once percent-decoded;
	// a longer one gets 414. Zero or less means DefaultMaxKeyLen (256).
	MaxKeyLen int
}

// Limits of the HTTP server itself. They are not in Config because no one
// has needed to change them yet.
const (
	// readBufferSize bounds the request line and headers together: a larger
	// request gets 431. 8 KiB is what common proxies allow.
	readBufferSize = 8 << 10
	// readTimeout bounds the time to read one request, so a slow client
	// cannot hold a connection (and delay Shutdown) forever.
	readTimeout = 30 * time.Second
	// writeTimeout bounds the time to write one response.
	writeTimeout = 30 * time.Second
	// idleTimeout bounds the wait for the next request on a keep-alive
	// connection.
	idleTimeout = 2 * time.Minute
)

// Server is the HTTP front: a Fiber app whose handlers call a Limiter. Its
// methods are safe for concurrent use. Serve may be called once.
type Server struct {
	lim       Limiter
	log       *slog.Logger
	maxKeyLen int
	app       *fiber.App

	mu     sync.Mutex // guards ln and closed
	ln     *onceCloseListener
	closed bool // Shutdown was called
}

// New returns a Server that takes tokens from l. It does not listen: call
// Serve.
func New(l Limiter, cfg Config) *Server {
	s := &Server{
		lim:       l,
		log:       cfg.Logger,
		maxKeyLen: cfg.MaxKeyLen,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxKeyLen <= 0 {
		s.maxKeyLen = DefaultMaxKeyLen
	}
	s.app = fiber.New(fiber.Config{
		DisableStartupMessage: true, // main.go logs the address
		// Keys are case-sensitive, so routing is too: /HEALTHZ is a key.
		CaseSensitive: true,
		// Reject every other method while parsing the headers, before any
		// body is read; fasthttp's error comes to handleError as a 405.
		GETOnly:        true,
		ReadBufferSize: readBufferSize,
		ReadTimeout:    readTimeout,
		WriteTimeout:   writeTimeout,
		IdleTimeout:    idleTimeout,
		ErrorHandler:   s.handleError,
	})
	s.app.Get("/healthz", s.healthz)
	s.app.Get("/", s.noKey)
	s.app.Get("/:key", s.take)
	// Any other path is Fiber's 404, rendered by handleError.
	return s
}

// Serve answers HTTP requests on ln until Shutdown, and then returns nil. It
// returns an error wrapping net.ErrClosed, and closes ln, if Shutdown was
// called first.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return fmt.Errorf("server: serve: %w", net.ErrClosed)
	}
	s.ln = &onceCloseListener{Listener: ln}
	s.mu.Unlock()
	if err := s.app.Listener(s.ln); err != nil {
		return fmt.Errorf("server: serve: %w", err)
	}
	return nil
}

// Shutdown stops accepting connections, lets the requests in flight finish,
// closes idle connections, and returns nil when all are closed. Serve then
// returns nil. If ctx is done first, Shutdown returns an error wrapping
// ctx's error and leaves the connections still open to finish on their own:
// fasthttp does not force them closed. Shutdown may be called before Serve,
// or more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	ln := s.ln
	s.mu.Unlock()
	// Close the listener here too: if Serve has not yet handed it to
	// fasthttp, fasthttp's shutdown would not see it and Serve would then
	// accept forever.
	if ln != nil {
		ln.Close()
	}
	if err := s.app.ShutdownWithContext(ctx); err != nil {
		return fmt.Errorf("server: shutdown: %w", err)
	}
	return nil
}

// onceCloseListener closes its listener once: both Shutdown and fasthttp
// close it, and fasthttp gives up waiting for connections if its Close
// fails.
type onceCloseListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *onceCloseListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}
