// Command bucketd is a token-bucket rate limiter: one binary that answers
// takes over HTTP (GET /{key}) and the Redis protocol (CL.THROTTLE), with
// bucket state in memory and persisted in an embedded bbolt file.
//
// main.go only wires: configuration (flags and BUCKETD_* environment
// variables), storage, both fronts, signals, shutdown and the exit code.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/respcompat"
	"github.com/bucketd/bucketd/server"
	"github.com/bucketd/bucketd/storage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills at once
	}()
	err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bucketd:", err)
		os.Exit(1)
	}
}

// config is everything the flags set.
type config struct {
	httpAddr     string
	respAddr     string
	requirePass  string
	maxClients   int
	idleTimeout  time.Duration
	data         string
	capacity     bucket.Tokens
	rate         bucket.Rate
	sync         storage.SyncMode
	syncInterval time.Duration
	logLevel     slog.Level
	shutdownWait time.Duration
}

const usageExample = `
Example:
  bucketd                                  # HTTP on 127.0.0.1:8000, RESP on 127.0.0.1:6379, state in ./bucketd.db
  bucketd --capacity 100 --rate 10/s --sync always --data /var/lib/bucketd/bucketd.db
  BUCKETD_RATE=1000/h bucketd             # every flag can be set as BUCKETD_<NAME>
  curl -i localhost:8000/joe               # 200 {"detail":"OK"}, or 429 {"detail":"Too Many Requests"}
  redis-cli HGETALL joe                    # the bucket, as a Redis hash
`

// parseConfig reads args, falling back to BUCKETD_<NAME> in env for each
// flag not given. It returns flag.ErrHelp for --help, after printing usage.
func parseConfig(args, env []string, stderr io.Writer) (config, error) {
	c := config{
		capacity: storage.DefaultLimit.Capacity,
		rate:     storage.DefaultLimit.Rate,
	}
	fs := flag.NewFlagSet("bucketd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.httpAddr, "http-addr", "127.0.0.1:8000", "HTTP listen `address`")
	fs.StringVar(&c.respAddr, "resp-addr", "127.0.0.1:6379", "Redis-protocol listen `address`; empty turns RESP off")
	fs.StringVar(&c.requirePass, "requirepass", "", "RESP password: clients must AUTH first (as Redis's requirepass)")
	fs.IntVar(&c.maxClients, "maxclients", 10000, "most RESP clients at once")
	fs.DurationVar(&c.idleTimeout, "timeout", 0, "close RESP clients idle this long; 0 never")
	fs.StringVar(&c.data, "data", "bucketd.db", "data `file` (bbolt)")
	fs.Func("capacity", "tokens a bucket holds at most: the burst (default 5)", func(s string) (err error) {
		c.capacity, err = bucket.ParseTokens(s)
		return err
	})
	fs.Func("rate", "refill `rate` as TOKENS/PERIOD: 100/s, 10/m, 1000/h, 1/3s (default 1/3s)", func(s string) (err error) {
		c.rate, err = bucket.ParseRate(s)
		return err
	})
	fs.Func("sync", "when takes reach the disk: interval (batched every --sync-interval) or always (before each answer) (default interval)", func(s string) (err error) {
		c.sync, err = storage.ParseSyncMode(s)
		return err
	})
	fs.DurationVar(&c.syncInterval, "sync-interval", time.Second, "how often changes are written with --sync interval")
	fs.Func("log-level", "debug, info, warn or error (default info)", func(s string) error {
		return c.logLevel.UnmarshalText([]byte(s))
	})
	fs.DurationVar(&c.shutdownWait, "shutdown-timeout", 10*time.Second, "how long shutdown waits for requests in flight")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: bucketd [flags]\n\nFlags (each also as BUCKETD_<NAME>, e.g. BUCKETD_HTTP_ADDR):\n")
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), usageExample)
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "BUCKETD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v, ok := vars[name]
		if given[f.Name] || !ok || envErr != nil {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			envErr = fmt.Errorf("%s=%q: %w", name, v, err)
		}
	})
	if envErr != nil {
		return c, envErr
	}
	l := bucket.Limit{Capacity: c.capacity, Rate: c.rate}
	if err := l.Validate(); err != nil {
		return c, fmt.Errorf("--capacity %s --rate %s: %w", c.capacity, c.rate, err)
	}
	return c, nil
}

// run is bucketd: it serves until ctx is done or a client asks for a
// shutdown, then shuts down in order and returns.
func run(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, env, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))

	db, err := storage.Open(cfg.data, storage.Options{
		Default:      bucket.Limit{Capacity: cfg.capacity, Rate: cfg.rate},
		Sync:         cfg.sync,
		SyncInterval: cfg.syncInterval,
		Logger:       log,
	})
	if err != nil {
		return err
	}
	defer db.Close() // on the error paths; the clean path closes below

	httpLn, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	defer httpLn.Close()
	var respLn net.Listener
	if cfg.respAddr != "" {
		if respLn, err = net.Listen("tcp", cfg.respAddr); err != nil {
			return fmt.Errorf("resp: %w", err)
		}
		defer respLn.Close()
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	httpSrv := server.New(db, server.Config{Logger: log})
	errc := make(chan error, 2)
	go func() { errc <- wrap("http", httpSrv.Serve(httpLn)) }()
	var respSrv *respcompat.Server
	if respLn != nil {
		respSrv = respcompat.New(db, respcompat.Config{
			Logger:      log,
			RequirePass: cfg.requirePass,
			MaxClients:  cfg.maxClients,
			IdleTimeout: cfg.idleTimeout,
			Shutdown:    cancel,
		})
		go func() { errc <- wrap("resp", respSrv.Serve(respLn)) }()
	}
	resp := "off"
	if respLn != nil {
		resp = respLn.Addr().String()
	}
	log.Info("bucketd started",
		"http", httpLn.Addr().String(), "resp", resp, "data", cfg.data,
		"capacity", cfg.capacity.String(), "rate", cfg.rate.String(),
		"sync", cfg.sync.String(), "sync_interval", cfg.syncInterval.String())

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	log.Info("bucketd shutting down")
	sctx, scancel := context.WithTimeout(context.Background(), cfg.shutdownWait)
	defer scancel()
	if err := httpSrv.Shutdown(sctx); err != nil {
		serveErr = errors.Join(serveErr, fmt.Errorf("http: shutdown: %w", err))
	}
	if respSrv != nil {
		if err := respSrv.Shutdown(sctx); err != nil {
			serveErr = errors.Join(serveErr, fmt.Errorf("resp: shutdown: %w", err))
		}
	}
	if err := db.Close(); err != nil {
		serveErr = errors.Join(serveErr, err)
	}
	if serveErr == nil {
		log.Info("bucketd stopped")
	}
	return serveErr
}

// wrap names the front in a serve error; nil stays nil.
func wrap(front string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", front, err)
}
