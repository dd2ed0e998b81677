package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// Taker is the part of the Limiter that GET /{key} needs.
type Taker interface {
	// Take takes cost tokens from key's bucket under the named policy (""
	// is the default policy). A cost of 0 peeks: it changes nothing. A cost
	// more than the policy's capacity is not an error but a denial with
	// RetryAfter == bucket.Never. The error wraps bucket.ErrUnknownPolicy
	// for an unknown policy name, bucket.ErrInvalid for a bad cost, and
	// bucket.ErrClosed when the store is shutting down, and
	// bucket.ErrNotDurable when the take was made but could not be written
	// to disk (--sync always); any other error is internal.
	//
	// key and policy are only valid during the call: they may point into
	// the request's memory, so a limiter that keeps them must copy them.
	// The same holds for every string argument of every Limiter method.
	Take(key, policy string, cost bucket.Tokens) (bucket.Result, error)
}

// Limiter is what the server needs of the limiter (package limiter
// implements it; main.go passes it to New): takes, and the administration
// of buckets, policies and overrides. Every error may wrap bucket.ErrClosed
// when the store is shutting down, and an error of a method that changes a
// bucket may wrap bucket.ErrNotDurable when the change was made but could
// not be written to disk (--sync always); an error that wraps no sentinel
// of package bucket is internal.
type Limiter interface {
	Taker
	// Reset makes key's bucket under policy full, or every bucket of key
	// when policy is "" (a full bucket is no bucket). It reports whether
	// one was not full. The error wraps bucket.ErrUnknownPolicy for an
	// unknown policy.
	Reset(key, policy string) (bool, error)
	// Set sets the tokens key's bucket under policy ("" is the default)
	// holds now, clamped to each limit's capacity, and returns a peek at
	// it. The error wraps bucket.ErrUnknownPolicy or bucket.ErrInvalid.
	Set(key, policy string, tokens bucket.Tokens) (bucket.Result, error)
	// Keys lists the keys that have a bucket, in byte order: those that
	// start with prefix and sort after after, at most limit of them. next
	// is the key to pass as after for the next page, or "" at the end.
	Keys(prefix, after string, limit int) (keys []string, next string, err error)
	// Policies lists every policy with its counts.
	Policies() []bucket.PolicyInfo
	// Override returns key's override under policy ("" is the default), and
	// false when there is none.
	Override(key, policy string) (bucket.Override, bool)
	// Overrides lists every override.
	Overrides() []bucket.Override
	// SetOverride stores o, replacing any override of the same key and
	// policy. The error wraps bucket.ErrUnknownPolicy for an unknown
	// policy and bucket.ErrInvalid for bad limits.
	SetOverride(o bucket.Override) error
	// DeleteOverride removes key's override under policy and reports
	// whether there was one.
	DeleteOverride(key, policy string) (bool, error)
	// Ready returns nil while the store is open and its changes reach the
	// disk, else why not: GET /readyz.
	Ready() error
	// Save makes every change durable in the data file now (a checkpoint).
	Save() error
	// Backup writes a consistent copy of the state, as one data file, to w.
	Backup(w io.Writer) error
	// CanBackup returns nil if Backup can write a copy, else an error
	// wrapping errors.ErrUnsupported (a store that keeps no data file).
	CanBackup() error
	// Watcher is what the dashboard needs: the keys refused most, status.
	Watcher
}

// DefaultMaxKeyLen is the longest key, in bytes once percent-decoded, that a
// zero Config.MaxKeyLen allows.
const DefaultMaxKeyLen = 256

// DefaultMaxBodyBytes is the largest request body a zero
// Config.MaxBodyBytes allows: 1 MiB, room for a batch of 1000 takes with
// keys of 256 bytes.
const DefaultMaxBodyBytes = 1 << 20

// Config configures a Server. The zero value is valid: no admin token (every
// route is open) and no reload.
type Config struct {
	// Logger receives a debug line for every request and an error line for
	// every internal error. nil discards everything.
	Logger *slog.Logger
	// MaxKeyLen is the longest key accepted, in bytes once percent-decoded;
	// a longer one gets 414 in a path and 400 in a body. Zero or less means
	// DefaultMaxKeyLen (256).
	MaxKeyLen int
	// MaxBodyBytes is the largest request body accepted, in bytes; a larger
	// one gets 413 before any handler runs. Zero or less means
	// DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int
	// AdminToken, when not empty, is the bearer token that the admin routes
	// (those that change state other than by a take, list every key, or
	// list every override) require in "Authorization: Bearer <token>".
	// Empty leaves them open to anyone who can reach the port.
	AdminToken string
	// Reload reloads the policies (from the config file, say) and reports
	// why it could not; the old policies must stay in force on an error.
	// POST /v1/reload calls it. nil means reload is not available: that
	// route answers 501.
	Reload func() error
	// TLS, when not nil, makes Serve answer HTTPS only, with this
	// configuration (its certificates, or GetCertificate to reload them).
	TLS *tls.Config
	// Metrics, if not nil, counts takes and requests, and is served at
	// GET /metrics.
	Metrics Metrics
	// AccessLog logs a line for every request at info level (at debug
	// level otherwise): the front, key, decision, status and latency. No
	// header, and so no admin token, is ever logged.
	AccessLog bool
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
	maxBody   int
	reload    func() error
	admin     adminAuth
	routes    []route // every route, in the order Fiber tries them
	app       *fiber.App
	tls       *tls.Config
	conns     connSet          // the open connections, for Shutdown
	metrics   Metrics          // nil: none
	accessLvl slog.Level       // the level of a request's line
	other     func(status int) // counts the requests that match no route; nil without metrics

	mu     sync.Mutex // guards ln and closed
	ln     *onceCloseListener
	closed bool // Shutdown was called
}

// New returns a Server in front of lim. It does not listen: call Serve.
func New(lim Limiter, cfg Config) *Server {
	s := &Server{
		lim:       lim,
		log:       cfg.Logger,
		maxKeyLen: cfg.MaxKeyLen,
		maxBody:   cfg.MaxBodyBytes,
		reload:    cfg.Reload,
		admin:     newAdminAuth(cfg.AdminToken),
		tls:       cfg.TLS,
		metrics:   cfg.Metrics,
		accessLvl: slog.LevelDebug,
	}
	if cfg.AccessLog {
		s.accessLvl = slog.LevelInfo
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxKeyLen <= 0 {
		s.maxKeyLen = DefaultMaxKeyLen
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	s.app = fiber.New(fiber.Config{
		DisableStartupMessage: true, // main.go logs the address
		// Keys are case-sensitive, so routing is too: /HEALTHZ is a key.
		CaseSensitive: true,
		// A larger body is refused while it is read, before any handler
		// runs; fasthttp's error comes to handleError as a 413.
		BodyLimit:      s.maxBody,
		ReadBufferSize: readBufferSize,
		ReadTimeout:    readTimeout,
		WriteTimeout:   writeTimeout,
		IdleTimeout:    idleTimeout,
		ErrorHandler:   s.unrouted,
	})
	s.routes = s.routeTable()
	if s.metrics != nil {
		s.other = s.metrics.Route("", routeOther)
		s.routes = slices.Insert(s.routes, len(s.routes)-1, route{fiber.MethodGet, "/metrics", false, s.metricsHandler()})
	}
	for _, r := range s.routes {
		h := r.handler
		if strings.HasPrefix(r.path, "/v1/") { // the JSON API; not the hot path
			h = s.api(r.admin, h)
		}
		if s.metrics != nil {
			h = s.counted(h, s.metrics.Route(r.method, r.path))
		}
		// Add, not Get: Fiber's Get also registers HEAD, and a HEAD must
		// not take a token. HEAD gets 405.
		s.app.Add(r.method, r.path, h)
	}
	// Any other path is Fiber's 404 and any other method of a known path
	// its 405, both rendered by handleError. Fiber answers a method it does
	// not know (not one of fiber.DefaultMethods) with a plain-text 400
	// before routing: answer it here as a 405 instead.
	srv := s.app.Server()
	srv.HeaderReceived = headerReceived // strict framing: framing.go
	srv.ConnState = connState           // shutdown of silent connections: conns.go
	srv.CloseOnShutdown = true          // an answer during shutdown says Connection: close
	next := srv.Handler
	srv.Handler = func(ctx *fasthttp.RequestCtx) {
		if s.badFraming(ctx) {
			return
		}
		if !knownMethod(ctx.Method()) {
			s.unknownMethod(ctx)
			return
		}
		next(ctx)
	}
	return s
}

// route is one route of the server.
type route struct {
	method  string
	path    string // in Fiber's syntax: ":key" is one path segment
	admin   bool   // needs Config.AdminToken when it is set
	handler fiber.Handler
}

// routeTable returns every route. Fiber tries them in this order, so the
// fixed paths come before GET /:key, which would take any one-segment path
// as a key ("/healthz", "/readyz", "/v1"). The routes under /v1/ are the JSON API:
// New wraps them in Server.api.
func (s *Server) routeTable() []route {
	const get, post, put, del = fiber.MethodGet, fiber.MethodPost, fiber.MethodPut, fiber.MethodDelete
	const open, admin = false, true
	return []route{
		{get, "/healthz", open, s.healthz},
		{get, "/readyz", open, s.readyz},
		{get, "/", open, s.noKey},
		{get, "/v1", open, s.apiRoot},
		{get, "/v1/openapi.json", open, s.openAPI},
		{post, "/v1/take", open, s.apiTake},
		{post, "/v1/batch", open, s.apiBatch},
		{get, "/v1/buckets", admin, s.apiKeys},
		{get, "/v1/buckets/:key", open, s.apiPeek},
		{del, "/v1/buckets/:key", admin, s.apiReset},
		{put, "/v1/buckets/:key/tokens", admin, s.apiSetTokens},
		{get, "/v1/policies", open, s.apiPolicies},
		{get, "/v1/overrides", admin, s.apiOverrides},
		{get, "/v1/overrides/:key", open, s.apiOverride},
		{put, "/v1/overrides/:key", admin, s.apiSetOverride},
		{del, "/v1/overrides/:key", admin, s.apiDeleteOverride},
		{post, "/v1/reload", admin, s.apiReload},
		{get, "/v1/backup", admin, s.apiBackup},
		{get, "/v1/top", admin, s.apiTop},
		{get, "/v1/status", admin, s.apiStatus},
		{get, "/ui", open, s.uiPage},
		{get, "/ui/:asset", open, s.uiAsset},
		{get, "/:key", open, s.take}, // the hot path, as it was: no wrapper
	}
}

// allow returns the methods that path has a route for, as the value of an
// Allow field: "GET, DELETE". It matches as Fiber does here: case-sensitive,
// a trailing slash ignored, ":name" matching one non-empty segment.
func (s *Server) allow(path string) string {
	var b []byte
	for _, m := range fiber.DefaultMethods {
		for _, r := range s.routes {
			if r.method == m && matchPath(r.path, path) {
				if len(b) > 0 {
					b = append(b, ", "...)
				}
				b = append(b, m...)
				break
			}
		}
	}
	return string(b)
}

// matchPath reports whether path matches the route pattern.
func matchPath(pattern, path string) bool {
	if len(path) > 1 {
		path = strings.TrimRight(path, "/")
		if path == "" {
			path = "/"
		}
	}
	for {
		pseg, prest, pmore := strings.Cut(strings.TrimPrefix(pattern, "/"), "/")
		seg, rest, more := strings.Cut(strings.TrimPrefix(path, "/"), "/")
		if strings.HasPrefix(pseg, ":") {
			if seg == "" {
				return false
			}
		} else if pseg != seg {
			return false
		}
		if !pmore || !more {
			return pmore == more
		}
		pattern, path = "/"+prest, "/"+rest
	}
}

// knownMethod reports whether Fiber routes method: one of
// fiber.DefaultMethods.
func knownMethod(method []byte) bool {
	switch string(method) {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodPost, fiber.MethodPut, fiber.MethodDelete,
		fiber.MethodConnect, fiber.MethodOptions, fiber.MethodTrace, fiber.MethodPatch:
		return true
	}
	return false
}

// unknownMethod answers a request whose method Fiber does not know: 405.
func (s *Server) unknownMethod(ctx *fasthttp.RequestCtx) {
	c := s.app.AcquireCtx(ctx)
	defer s.app.ReleaseCtx(c)
	_ = s.unrouted(c, fiber.ErrMethodNotAllowed) // it always returns nil
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
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	s.ln = &onceCloseListener{Listener: &trackingListener{Listener: ln, set: &s.conns}}
	s.mu.Unlock()
	if err := s.app.Listener(s.ln); err != nil {
		return fmt.Errorf("server: serve: %w", err)
	}
	return nil
}

// Shutdown stops accepting connections, closes every connection that is
// not in a request (idle between requests, or connected and silent: no
// byte of a request read), lets the requests in flight finish and closes
// their connections after their answers, and returns nil when all are
// closed. A request is in flight from its first byte. Serve then returns
// nil. If ctx is done first, Shutdown closes the connections left and
// returns an error wrapping ctx's error. Shutdown may be called before
// Serve, or more than once.
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
	s.conns.stop()
	if err := s.app.ShutdownWithContext(ctx); err != nil {
		s.conns.closeAll()
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
