// Command bucketd is a token-bucket rate limiter: one binary that answers
// takes over HTTP (GET /{key}) and the Redis protocol (CL.THROTTLE), with
// bucket state in memory and persisted in an embedded bbolt file.
//
// main.go only wires: configuration (flags, BUCKETD_* environment variables
// and the policies file), the store, the limiter above it, both fronts,
// signals (SIGHUP reloads the policies), shutdown and the exit code.
package main

import (
	"cmp"
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
	"sync"
	"syscall"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/limiter"
	"github.com/bucketd/bucketd/policyfile"
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
	adminToken   string
	maxClients   int
	idleTimeout  time.Duration
	data         string
	capacity     bucket.Tokens
	rate         bucket.Rate
	sync         storage.SyncMode
	syncInterval time.Duration
	maxLogBytes  int64
	maxKeys      int
	logLevel     slog.Level
	shutdownWait time.Duration
	configFile   string // the policies file; "" for none
	checkConfig  string // a policies file to check, instead of serving
	repair       bool   // open a damaged data file without what is damaged
}

const usageExample = `
Example:
  bucketd                                  # HTTP on 127.0.0.1:8000, RESP on 127.0.0.1:6379, state in ./bucketd.db
  bucketd --capacity 100 --rate 10/s --sync always --data /var/lib/bucketd/bucketd.db
  BUCKETD_RATE=1000/h bucketd             # every flag can be set as BUCKETD_<NAME>
  bucketd --config policies.yaml           # named policies; kill -HUP reloads them
  bucketd --check-config policies.yaml     # check the file and exit
  curl -i localhost:8000/joe               # 200 {"detail":"OK"}, or 429 {"detail":"Too Many Requests"}
  redis-cli HGETALL joe                    # the bucket, as a Redis hash
`

// parseConfig reads args, falling back to BUCKETD_<NAME> in env for each
// flag not given. It returns flag.ErrHelp for --help, after printing usage.
func parseConfig(args, env []string, stderr io.Writer) (config, error) {
	c := config{
		capacity: limiter.DefaultLimit.Capacity,
		rate:     limiter.DefaultLimit.Rate,
	}
	fs := flag.NewFlagSet("bucketd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.httpAddr, "http-addr", "127.0.0.1:8000", "HTTP listen `address`")
	fs.StringVar(&c.respAddr, "resp-addr", "127.0.0.1:6379", "Redis-protocol listen `address`; empty turns RESP off")
	fs.StringVar(&c.requirePass, "requirepass", "", "RESP password: clients must AUTH first (as Redis's requirepass)")
	fs.StringVar(&c.adminToken, "admin-token", "", "HTTP admin `token`: the /v1 routes that change or list state need Authorization: Bearer <token>")
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
	fs.IntVar(&c.maxKeys, "max-keys", 0, "most keys held; at the bound a new key evicts the key closest to full (0: no bound)")
	fs.Int64Var(&c.maxLogBytes, "max-log-bytes", 256<<20, "the write-ahead log's size at which a checkpoint is made whatever the number of buckets, in `bytes`")
	fs.Func("log-level", "debug, info, warn or error (default info)", func(s string) error {
		return c.logLevel.UnmarshalText([]byte(s))
	})
	fs.DurationVar(&c.shutdownWait, "shutdown-timeout", 10*time.Second, "how long shutdown waits for requests in flight")
	fs.StringVar(&c.configFile, "config", "", "policies `file` (YAML); SIGHUP reloads it")
	fs.BoolVar(&c.repair, "repair", false, "start on a damaged data file without its damaged pages and overrides, logging each one dropped (see bucketd check FILE)")
	fs.StringVar(&c.checkConfig, "check-config", "", "check the policies `file` and exit: 0 if it is valid, 1 with every problem")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: bucketd [flags]\n       bucketd check FILE (is the data file sound? see bucketd check -h)\n\nFlags (each also as BUCKETD_<NAME>, e.g. BUCKETD_HTTP_ADDR):\n")
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
		if given[f.Name] || !ok || envErr != nil || f.Name == "check-config" { // a command, not a setting
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			envErr = fmt.Errorf("%s=%q: %w", name, v, err)
		}
	})
	if envErr != nil {
		return c, envErr
	}
	if c.maxKeys < 0 {
		return c, fmt.Errorf("--max-keys %d: want 0 (no bound) or more", c.maxKeys)
	}
	if c.maxLogBytes <= 0 {
		return c, fmt.Errorf("--max-log-bytes %d: want a positive number of bytes", c.maxLogBytes)
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
	if len(args) > 0 && args[0] == "check" {
		return runCheck(args[1:], stdout, stderr)
	}
	cfg, err := parseConfig(args, env, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if cfg.checkConfig != "" {
		return checkConfig(cfg.checkConfig, stdout)
	}
	var pc policyfile.Config
	if cfg.configFile != "" {
		if pc, err = policyfile.Load(cfg.configFile); err != nil {
			return err // before the data file is opened
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))

	db, err := storage.Open(cfg.data, storage.Options{
		Sync:         cfg.sync,
		SyncInterval: cfg.syncInterval,
		MaxLogBytes:  cfg.maxLogBytes,
		MaxKeys:      cfg.maxKeys,
		Repair:       cfg.repair,
		Logger:       log,
	})
	if err != nil {
		return err
	}
	defer db.Close() // on the error paths; the clean path closes below
	lim, err := limiter.New(db, limiter.Options{
		Default: bucket.Limit{Capacity: cfg.capacity, Rate: cfg.rate},
		Logger:  log,
	})
	if err != nil {
		return err
	}
	if cfg.configFile != "" {
		if err := lim.SetPolicies(pc.Default, pc.Policies); err != nil {
			return fmt.Errorf("%s: %w", cfg.configFile, err)
		}
	}
	var reload func() error // nil without --config: nothing to reload
	if cfg.configFile != "" {
		reload = reloader(cfg.configFile, lim, log)
	}

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
	// SIGHUP reloads the policies. Notify before the start line, so that a
	// SIGHUP sent once bucketd has said it started never kills it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	httpSrv := server.New(lim, server.Config{Logger: log, Reload: reload, AdminToken: cfg.adminToken})
	errc := make(chan error, 2)
	go func() { errc <- wrap("http", httpSrv.Serve(httpLn)) }()
	var respSrv *respcompat.Server
	if respLn != nil {
		respSrv = respcompat.New(lim, respcompat.Config{
			Logger:      log,
			RequirePass: cfg.requirePass,
			MaxClients:  cfg.maxClients,
			IdleTimeout: cfg.idleTimeout,
			Shutdown:    cancel,
			Info: func() map[string]string {
				return map[string]string{"data_file": db.Path(), "sync_mode": db.SyncMode().String()}
			},
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
		"sync", cfg.sync.String(), "sync_interval", cfg.syncInterval.String(),
		"config", cmp.Or(cfg.configFile, "none"), policies(lim))

	var serveErr error
serve:
	for {
		select {
		case <-ctx.Done():
			break serve
		case serveErr = <-errc:
			break serve
		case <-hup:
			if reload == nil {
				log.Warn("no --config to reload")
			} else {
				_ = reload() // it logs its outcome
			}
		}
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

// checkConfig checks the policies file at path, and prints a line to stdout
// if it is valid. An invalid file's error lists every problem.
func checkConfig(path string, stdout io.Writer) error {
	c, err := policyfile.Load(path)
	if err != nil {
		return err
	}
	names := make([]string, len(c.Policies))
	for i, p := range c.Policies {
		names[i] = p.Name
	}
	noun := "policies"
	if len(names) == 1 {
		noun = "policy"
	}
	_, err = fmt.Fprintf(stdout, "%s: ok, %d %s: %s\n", path, len(names), noun, strings.Join(names, ", "))
	return err
}

// reloader returns the function that reloads the policies from path (a
// SIGHUP, or the HTTP admin API): it reads the file, and swaps in its
// policies if it is valid; existing buckets keep their tokens. An invalid
// file changes nothing. Either way it logs the outcome, since a reload is
// an operator's event whoever asked for it, and returns the error for the
// caller to report. Reloads run one at a time, so the file read last is the
// one in force.
func reloader(path string, lim *limiter.Limiter, log *slog.Logger) func() error {
	var mu sync.Mutex
	return func() error {
		mu.Lock()
		defer mu.Unlock()
		c, err := policyfile.Load(path)
		if err == nil {
			err = lim.SetPolicies(c.Default, c.Policies)
		}
		if err != nil {
			log.Error("reload failed, the old policies stay in force", "config", path, "err", err)
			return err
		}
		log.Info("policies reloaded", "config", path, policies(lim))
		return nil
	}
}

// policies returns log attributes of the policies in force: their names and
// the default's.
func policies(lim *limiter.Limiter) slog.Attr {
	var names []string
	var def string
	for _, p := range lim.Policies() {
		names = append(names, p.Name)
		if p.Default {
			def = p.Name
		}
	}
	return slog.Group("", "policies", strings.Join(names, ","), "default", def)
}

// wrap names the front in a serve error; nil stays nil.
func wrap(front string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", front, err)
}
