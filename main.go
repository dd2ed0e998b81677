// Command bucketd is a token-bucket rate limiter: one binary that answers
// takes over HTTP (GET /{key}) and the Redis protocol (CL.THROTTLE), with
// bucket state in memory and persisted in an embedded bbolt file.
//
// main.go only wires: configuration (flags, BUCKETD_* environment variables,
// the policies file and the RLS directory), the store, the limiter above
// it, the fronts (HTTP, RESP, and gRPC for Envoy), signals (SIGHUP reloads
// the policies and the RLS configuration), shutdown and the exit code.
package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/limiter"
	"github.com/bucketd/bucketd/metrics"
	"github.com/bucketd/bucketd/policyfile"
	"github.com/bucketd/bucketd/respcompat"
	"github.com/bucketd/bucketd/rlsconfig"
	"github.com/bucketd/bucketd/rlsfront"
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
	outputLimit  int    // RESP: a client's unsent replies, in bytes
	tlsCert      string // TLS certificate file (PEM); with tlsKey, serves TLS
	tlsKey       string
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
	checkConfig  string // a policies file (or RLS directory) to check, instead of serving
	grpcAddr     string // Envoy's rate limit service; "" for off
	rlsConfig    string // the RLS configuration directory; "" for none
	version      bool   // print the version and exit
	logFormat    string // text or json
	accessLog    bool   // a log line per request and RESP command
	metricsAddr  string // a listener of its own for GET /metrics; "" for none
	store        string // a Redis URL: the Redis store instead of --data
	storeTimeout time.Duration
	onStoreError bucket.FailMode
	refresh      time.Duration // with --store: how often overrides are read again
	storePrefix  string
	repair       bool // open a damaged data file without what is damaged
}

const usageExample = `
Example:
  bucketd                                  # HTTP on 127.0.0.1:8000, RESP on 127.0.0.1:6379, state in ./bucketd.db
  bucketd --capacity 100 --rate 10/s --sync always --data /var/lib/bucketd/bucketd.db
  BUCKETD_RATE=1000/h bucketd             # every flag can be set as BUCKETD_<NAME>
  bucketd --config policies.yaml           # named policies; kill -HUP reloads them
  bucketd --check-config policies.yaml     # check the file and exit
  bucketd --grpc-addr 127.0.0.1:8081 --rls-config /etc/ratelimit/config
                                           # Envoy's rate limit service, envoyproxy/ratelimit's files
  bucketd --check-config /etc/ratelimit/config   # check an RLS directory and exit
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
	fs.StringVar(&c.adminToken, "admin-token", "", "admin `token`: the HTTP /v1 routes that change or list state need Authorization: Bearer <token>, and the RESP admin commands (FLUSHALL, DEL, HSET, CONFIG SET, SAVE, SHUTDOWN, MONITOR...) AUTH admin <token>")
	fs.IntVar(&c.outputLimit, "client-output-limit", respcompat.DefaultOutputLimit, "RESP: most `bytes` of replies a client has not read before the server stops reading its commands")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "TLS certificate `file` (PEM); with --tls-key, the listeners serve TLS")
	fs.StringVar(&c.tlsKey, "tls-key", "", "TLS private key `file` (PEM), with --tls-cert")
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
	fs.StringVar(&c.checkConfig, "check-config", "", "check the policies `file` (or, given a directory, the RLS configuration; with --rls-config, that too) and exit: 0 if valid, 1 with every problem")
	fs.StringVar(&c.grpcAddr, "grpc-addr", "", "Envoy rate limit service (gRPC) listen `address`; empty turns it off")
	fs.StringVar(&c.rlsConfig, "rls-config", "", "`directory` of envoyproxy/ratelimit configuration files (*.yaml, one domain each); SIGHUP reloads it")
	fs.BoolVar(&c.version, "version", false, "print the version, VCS revision and Go version, and exit")
	fs.Func("log-format", "log line format: text or json (default text)", func(s string) error {
		if s != "text" && s != "json" {
			return fmt.Errorf("log format %q: want text or json", s)
		}
		c.logFormat = s
		return nil
	})
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "also serve GET /metrics on this `address` (a private interface, say); /metrics on --http-addr stays")
	fs.BoolVar(&c.accessLog, "access-log", false, "log every HTTP request and RESP command at info level: front, key, decision, status, latency (never a password or token)")
	fs.StringVar(&c.store, "store", "", "shared Redis store `URL` instead of --data: redis://[user:pass@]host:port[/db], rediss:// (TLS), redis+cluster://host:port,host:port")
	fs.DurationVar(&c.storeTimeout, "store-timeout", 50*time.Millisecond, "with --store: how long a call to Redis may take before the take fails as --on-store-error says")
	c.onStoreError = bucket.FailClosed
	fs.Func("on-store-error", "with --store, when Redis is unreachable or slower than --store-timeout: closed (503, -ERR) or open (allowed, counted); a policy's on_store_error overrides it (default closed)", func(s string) (err error) {
		c.onStoreError, err = bucket.ParseFailMode(s)
		return err
	})
	fs.StringVar(&c.storePrefix, "store-prefix", "bucketd", "with --store: the start of every Redis key bucketd writes; deployments sharing one Redis keep apart by it")
	fs.DurationVar(&c.refresh, "overrides-refresh", time.Second, "with --store: how often the overrides are read again from Redis, where other instances may have changed them")
	fs.BoolVar(&c.repair, "repair", false, "start on a damaged data file without its damaged pages and overrides, logging each one dropped (see bucketd check FILE)")
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
		if given[f.Name] || !ok || envErr != nil || f.Name == "check-config" || f.Name == "version" { // a command, not a setting
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			envErr = fmt.Errorf("%s=%q: %w", name, v, err)
		}
	})
	if envErr != nil {
		return c, envErr
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return c, errors.New("--tls-cert and --tls-key go together")
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
	if cfg.version {
		return printVersion(stdout)
	}
	if cfg.checkConfig != "" {
		err := checkConfig(cfg.checkConfig, stdout)
		if cfg.rlsConfig != "" && cfg.rlsConfig != cfg.checkConfig {
			err = errors.Join(err, checkRLSConfig(cfg.rlsConfig, stdout))
		}
		return err
	}
	var pc policyfile.Config
	if cfg.configFile != "" {
		if pc, err = policyfile.Load(cfg.configFile); err != nil {
			return err // before the data file is opened
		}
	}
	var rc *rlsconfig.Config
	if cfg.rlsConfig != "" {
		if rc, err = rlsconfig.Load(cfg.rlsConfig); err != nil {
			return err
		}
	}
	log := newLogger(cfg.logFormat, cfg.logLevel, stderr)
	certs, err := loadCert(cfg.tlsCert, cfg.tlsKey) // before the data file is opened
	if err != nil {
		return err
	}

	db, storeInfo, err := openStore(cfg, log)
	if err != nil {
		return err
	}
	defer db.Close() // on the error paths; the clean path closes below
	lim, err := limiter.New(db, limiter.Options{
		Default: bucket.Limit{Capacity: cfg.capacity, Rate: cfg.rate},
		Logger:  log,

		OnStoreError: cfg.onStoreError,
	})
	if err != nil {
		return err
	}
	if cfg.configFile != "" {
		if err := lim.SetPolicies(pc.Default, pc.Policies); err != nil {
			return fmt.Errorf("%s: %w", cfg.configFile, err)
		}
	}
	lim.SetRLSConfig(rc)
	var reload func() error // nil without --config: nothing to reload
	if cfg.configFile != "" {
		reload = reloader(cfg.configFile, lim, log)
	}
	if cfg.rlsConfig != "" { // SIGHUP and POST /v1/reload reload both
		reload = joinReloads(reload, rlsReloader(cfg.rlsConfig, lim, log))
	}

	httpLn, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	defer httpLn.Close()
	warnExposed(log, "http", httpLn.Addr(), cfg.adminToken == "", "--admin-token: the admin routes are open to any client")
	var respLn net.Listener
	if cfg.respAddr != "" {
		if respLn, err = net.Listen("tcp", cfg.respAddr); err != nil {
			return fmt.Errorf("resp: %w", err)
		}
		defer respLn.Close()
		if certs != nil { // rediss://, with the certificate SIGHUP reloads
			respLn = tls.NewListener(respLn, certs.config())
		}
		warnExposed(log, "resp", respLn.Addr(), cfg.requirePass == "", "--requirepass: any client may take")
		warnExposed(log, "resp", respLn.Addr(), cfg.adminToken == "", "--admin-token: any client may FLUSHALL, DEL, CONFIG SET or SHUTDOWN")
	}
	var grpcLn net.Listener
	if cfg.grpcAddr != "" {
		if grpcLn, err = net.Listen("tcp", cfg.grpcAddr); err != nil {
			return fmt.Errorf("grpc: %w", err)
		}
		defer grpcLn.Close()
	}
	var metricsLn net.Listener
	if cfg.metricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", cfg.metricsAddr); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		defer metricsLn.Close()
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.store != "" {
		go refreshOverrides(ctx, lim, cfg.refresh, log)
	}
	// SIGHUP reloads the policies. Notify before the start line, so that a
	// SIGHUP sent once bucketd has said it started never kills it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var respSrv *respcompat.Server
	mopts := metrics.Options{
		Build:   buildInfo(),
		Store:   metrics.StoreFunc(storeStats(db)),
		MaxKeys: cfg.maxKeys,
	}
	if respLn != nil { // respSrv is set before either front serves
		mopts.RESP = metrics.RESPFunc(func() metrics.RESPStats { return metrics.RESPStats(respSrv.Stats()) })
	}
	met := metrics.New(mopts)
	met.Policies(policyNames(lim))
	if reload != nil { // the new policies' counters show at 0 at once
		r := reload
		reload = func() error {
			err := r()
			met.Policies(policyNames(lim))
			return err
		}
	}
	httpSrv := server.New(lim, server.Config{Logger: log, Reload: reload, AdminToken: cfg.adminToken,
		Metrics: met, AccessLog: cfg.accessLog, TLS: certs.config()})
	errc := make(chan error, 4)
	if respLn != nil {
		respSrv = respcompat.New(lim, respcompat.Config{
			Logger:      log,
			RequirePass: cfg.requirePass,
			AdminToken:  cfg.adminToken,
			OutputLimit: cfg.outputLimit,
			MaxClients:  cfg.maxClients,
			IdleTimeout: cfg.idleTimeout,
			Shutdown:    cancel,
			Metrics:     met,
			AccessLog:   cfg.accessLog,
			Info: func() map[string]string { // the same numbers as /metrics
				m := met.Info()
				for k, v := range storeInfo(lim) {
					m[k] = v
				}
				return m
			},
		})
	}
	go func() { errc <- wrap("http", httpSrv.Serve(httpLn)) }()
	if respSrv != nil {
		go func() { errc <- wrap("resp", respSrv.Serve(respLn)) }()
	}
	var rlsSrv *rlsfront.Server
	if grpcLn != nil {
		rlsSrv = rlsfront.New(lim, rlsfront.Config{Logger: log})
		go func() { errc <- wrap("grpc", rlsSrv.Serve(grpcLn)) }()
	}
	var metricsSrv *http.Server
	if metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", met.Handler())
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := metricsSrv.Serve(metricsLn); !errors.Is(err, http.ErrServerClosed) {
				errc <- wrap("metrics", err)
			}
		}()
		log.Info("metrics listening", "addr", metricsLn.Addr().String())
	}
	resp, grpcAddr := "off", "off"
	if respLn != nil {
		resp = respLn.Addr().String()
	}
	if grpcLn != nil {
		grpcAddr = grpcLn.Addr().String()
	}
	log.Info("bucketd started",
		"http", httpLn.Addr().String(), "resp", resp, "data", cmp.Or(redacted(cfg.store), cfg.data),
		"capacity", cfg.capacity.String(), "rate", cfg.rate.String(),
		"sync", cfg.sync.String(), "sync_interval", cfg.syncInterval.String(),
		"config", cmp.Or(cfg.configFile, "none"), "tls", certs != nil, policies(lim),
		"grpc", grpcAddr, "rls_config", cmp.Or(cfg.rlsConfig, "none"), rlsDomains(rc))

	var serveErr error
serve:
	for {
		select {
		case <-ctx.Done():
			break serve
		case serveErr = <-errc:
			break serve
		case <-hup:
			if certs != nil {
				certs.reload(log) // it logs its outcome
			}
			if reload != nil {
				_ = reload() // it logs its outcome
			} else if certs == nil {
				log.Warn("no --config to reload")
			}
		}
	}
	log.Info("bucketd shutting down")
	sctx, scancel := context.WithTimeout(context.Background(), cfg.shutdownWait)
	defer scancel()
	// Both fronts at once: each closes its idle and silent connections at
	// once and waits for its own requests in flight, so neither waits on
	// the other's.
	var wg sync.WaitGroup
	var httpErr, respErr, rlsErr error
	wg.Go(func() { httpErr = httpSrv.Shutdown(sctx) })
	if respSrv != nil {
		wg.Go(func() { respErr = respSrv.Shutdown(sctx) })
	}
	if rlsSrv != nil {
		wg.Go(func() { rlsErr = rlsSrv.Shutdown(sctx) })
	}
	wg.Wait()
	if httpErr != nil {
		serveErr = errors.Join(serveErr, fmt.Errorf("http: shutdown: %w", httpErr))
	}
	if respErr != nil {
		serveErr = errors.Join(serveErr, fmt.Errorf("resp: shutdown: %w", respErr))
	}
	if rlsErr != nil {
		serveErr = errors.Join(serveErr, fmt.Errorf("grpc: shutdown: %w", rlsErr))
	}
	if metricsSrv != nil {
		if err := metricsSrv.Shutdown(sctx); err != nil {
			serveErr = errors.Join(serveErr, fmt.Errorf("metrics: shutdown: %w", err))
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

// checkConfig checks the policies file at path, or the RLS configuration
// when path is a directory, and prints a line to stdout if it is valid. An
// invalid file's error lists every problem.
func checkConfig(path string, stdout io.Writer) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return checkRLSConfig(path, stdout)
	}
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

// policyNames returns the names of the policies in force.
func policyNames(lim *limiter.Limiter) []string {
	var names []string
	for _, p := range lim.Policies() {
		names = append(names, p.Name)
	}
	return names
}

// wrap names the front in a serve error; nil stays nil.
func wrap(front string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", front, err)
}

// checkRLSConfig checks the RLS configuration directory dir, and prints a
// line to stdout if it is valid.
func checkRLSConfig(dir string, stdout io.Writer) error {
	c, err := rlsconfig.Load(dir)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s: ok, %d rate limits in %d domains: %s\n", dir, c.Rules(), len(c.Domains()), strings.Join(c.Domains(), ", "))
	return err
}

// rlsReloader returns the function that reloads the RLS configuration from
// dir: a valid one replaces the one in force, and buckets keep their
// tokens; an invalid one changes nothing. It logs the outcome and returns
// the error. Reloads run one at a time.
func rlsReloader(dir string, lim *limiter.Limiter, log *slog.Logger) func() error {
	var mu sync.Mutex
	return func() error {
		mu.Lock()
		defer mu.Unlock()
		c, err := rlsconfig.Load(dir)
		if err != nil {
			log.Error("rls reload failed, the old configuration stays in force", "rls_config", dir, "err", err)
			return err
		}
		lim.SetRLSConfig(c)
		log.Info("rls configuration reloaded", "rls_config", dir, rlsDomains(c))
		return nil
	}
}

// rlsDomains returns a log attribute of the RLS domains in force.
func rlsDomains(c *rlsconfig.Config) slog.Attr {
	return slog.String("rls_domains", strings.Join(c.Domains(), ","))
}

// joinReloads returns a reload that runs a (if not nil) then b, and returns
// both errors: each file is reloaded or kept on its own.
func joinReloads(a, b func() error) func() error {
	if a == nil {
		return b
	}
	return func() error { return errors.Join(a(), b()) }
}

// warnExposed logs a warning when addr is not a loopback address and the
// secret that guards it is missing.
func warnExposed(log *slog.Logger, front string, addr net.Addr, missing bool, what string) {
	if ta, ok := addr.(*net.TCPAddr); ok && missing && !ta.IP.IsLoopback() {
		log.Warn(front+" listens beyond this machine without "+what, "addr", addr.String())
	}
}
