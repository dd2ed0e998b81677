package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/limiter"
	"github.com/bucketd/bucketd/respcompat"
	"github.com/bucketd/bucketd/storage"
)

// Config is everything the flags set.
type Config struct {
	HTTPAddr     string
	RESPAddr     string
	RequirePass  string
	AdminToken   string
	OutputLimit  int    // RESP: a client's unsent replies, in bytes
	TLSCert      string // TLS certificate file (PEM); with tlsKey, serves TLS
	TLSKey       string
	MaxClients   int
	IdleTimeout  time.Duration
	Data         string
	Capacity     bucket.Tokens
	Rate         bucket.Rate
	Sync         storage.SyncMode
	SyncInterval time.Duration
	MaxLogBytes  int64
	MaxKeys      int
	LogLevel     slog.Level
	ShutdownWait time.Duration
	ConfigFile   string // the policies file; "" for none
	CheckConfig  string // a policies file (or RLS directory) to check, instead of serving
	GRPCAddr     string // Envoy's rate limit service; "" for off
	RLSConfig    string // the RLS configuration directory; "" for none
	Version      bool   // print the version and exit
	LogFormat    string // text or json
	AccessLog    bool   // a log line per request and RESP command
	MetricsAddr  string // a listener of its own for GET /metrics; "" for none
	Store        string // a Redis URL: the Redis store instead of --data
	StoreTimeout time.Duration
	OnStoreError bucket.FailMode
	Refresh      time.Duration // with --store: how often overrides are read again
	StorePrefix  string
	Repair       bool // open a damaged data file without what is damaged
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

// ParseConfig reads args, falling back to BUCKETD_<NAME> in env for each
// flag not given. It returns flag.ErrHelp for --help, after printing usage.
func ParseConfig(args, env []string, stderr io.Writer) (Config, error) {
	c := Config{
		Capacity: limiter.DefaultLimit.Capacity,
		Rate:     limiter.DefaultLimit.Rate,
	}
	fs := flag.NewFlagSet("bucketd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8000", "HTTP listen `address`")
	fs.StringVar(&c.RESPAddr, "resp-addr", "127.0.0.1:6379", "Redis-protocol listen `address`; empty turns RESP off")
	fs.StringVar(&c.RequirePass, "requirepass", "", "RESP password: clients must AUTH first (as Redis's requirepass)")
	fs.StringVar(&c.AdminToken, "admin-token", "", "admin `token`: the HTTP /v1 routes that change or list state need Authorization: Bearer <token>, and the RESP admin commands (FLUSHALL, DEL, HSET, CONFIG SET, SAVE, SHUTDOWN, MONITOR...) AUTH admin <token>")
	fs.IntVar(&c.OutputLimit, "client-output-limit", respcompat.DefaultOutputLimit, "RESP: most `bytes` of replies a client has not read before the server stops reading its commands")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "TLS certificate `file` (PEM); with --tls-key, the listeners serve TLS")
	fs.StringVar(&c.TLSKey, "tls-key", "", "TLS private key `file` (PEM), with --tls-cert")
	fs.IntVar(&c.MaxClients, "maxclients", 10000, "most RESP clients at once")
	fs.DurationVar(&c.IdleTimeout, "timeout", 0, "close RESP clients idle this long; 0 never")
	fs.StringVar(&c.Data, "data", "bucketd.db", "data `file` (bbolt)")
	fs.Func("capacity", "tokens a bucket holds at most: the burst (default 5)", func(s string) (err error) {
		c.Capacity, err = bucket.ParseTokens(s)
		return err
	})
	fs.Func("rate", "refill `rate` as TOKENS/PERIOD: 100/s, 10/m, 1000/h, 1/3s (default 1/3s)", func(s string) (err error) {
		c.Rate, err = bucket.ParseRate(s)
		return err
	})
	fs.Func("sync", "when takes reach the disk: interval (batched every --sync-interval) or always (before each answer) (default interval)", func(s string) (err error) {
		c.Sync, err = storage.ParseSyncMode(s)
		return err
	})
	fs.DurationVar(&c.SyncInterval, "sync-interval", time.Second, "how often changes are synced to disk with --sync interval (they are written out every 100ms)")
	fs.IntVar(&c.MaxKeys, "max-keys", 0, "most keys held; at the bound a new key evicts the key closest to full (0: no bound)")
	fs.Int64Var(&c.MaxLogBytes, "max-log-bytes", 256<<20, "the write-ahead log's size at which a checkpoint is made whatever the number of buckets, in `bytes`")
	fs.Func("log-level", "debug, info, warn or error (default info)", func(s string) error {
		return c.LogLevel.UnmarshalText([]byte(s))
	})
	fs.DurationVar(&c.ShutdownWait, "shutdown-timeout", 10*time.Second, "how long shutdown waits for requests in flight")
	fs.StringVar(&c.ConfigFile, "config", "", "policies `file` (YAML); SIGHUP reloads it")
	fs.StringVar(&c.CheckConfig, "check-config", "", "check the policies `file` (or, given a directory, the RLS configuration; with --rls-config, that too) and exit: 0 if valid, 1 with every problem")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", "", "Envoy rate limit service (gRPC) listen `address`; empty turns it off")
	fs.StringVar(&c.RLSConfig, "rls-config", "", "`directory` of envoyproxy/ratelimit configuration files (*.yaml, one domain each); SIGHUP reloads it")
	fs.BoolVar(&c.Version, "version", false, "print the version, VCS revision and Go version, and exit")
	fs.Func("log-format", "log line format: text or json (default text)", func(s string) error {
		if s != "text" && s != "json" {
			return fmt.Errorf("log format %q: want text or json", s)
		}
		c.LogFormat = s
		return nil
	})
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "also serve GET /metrics on this `address` (a private interface, say); /metrics on --http-addr stays")
	fs.BoolVar(&c.AccessLog, "access-log", false, "log every HTTP request and RESP command at info level: front, key, decision, status, latency (never a password or token)")
	fs.StringVar(&c.Store, "store", "", "shared Redis store `URL` instead of --data: redis://[user:pass@]host:port[/db], rediss:// (TLS), redis+cluster://host:port,host:port")
	fs.DurationVar(&c.StoreTimeout, "store-timeout", 50*time.Millisecond, "with --store: how long a call to Redis may take before the take fails as --on-store-error says")
	c.OnStoreError = bucket.FailClosed
	fs.Func("on-store-error", "with --store, when Redis is unreachable or slower than --store-timeout: closed (503, -ERR) or open (allowed, counted); a policy's on_store_error overrides it (default closed)", func(s string) (err error) {
		c.OnStoreError, err = bucket.ParseFailMode(s)
		return err
	})
	fs.StringVar(&c.StorePrefix, "store-prefix", "bucketd", "with --store: the start of every Redis key bucketd writes; deployments sharing one Redis keep apart by it")
	fs.DurationVar(&c.Refresh, "overrides-refresh", time.Second, "with --store: how often the overrides are read again from Redis, where other instances may have changed them")
	fs.BoolVar(&c.Repair, "repair", false, "start on a damaged data file without its damaged pages and overrides, logging each one dropped (see bucketd check FILE)")
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
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return c, errors.New("--tls-cert and --tls-key go together")
	}
	if c.MaxKeys < 0 {
		return c, fmt.Errorf("--max-keys %d: want 0 (no bound) or more", c.MaxKeys)
	}
	if c.MaxLogBytes <= 0 {
		return c, fmt.Errorf("--max-log-bytes %d: want a positive number of bytes", c.MaxLogBytes)
	}
	if err := c.checkBounds(); err != nil {
		return c, err
	}
	l := bucket.Limit{Capacity: c.Capacity, Rate: c.Rate}
	if err := l.Validate(); err != nil {
		return c, fmt.Errorf("--capacity %s --rate %s: %w", c.Capacity, c.Rate, err)
	}
	return c, nil
}

// checkBounds refuses the values of numeric flags that mean nothing: the
// packages would otherwise take them silently for their defaults, while
// the start line, INFO and CONFIG GET showed the value given.
func (c Config) checkBounds() error {
	switch {
	case c.SyncInterval <= 0:
		return fmt.Errorf("--sync-interval %s: want a positive duration, such as 1s", c.SyncInterval)
	case c.MaxClients < 1:
		return fmt.Errorf("--maxclients %d: want 1 or more", c.MaxClients)
	case c.OutputLimit < 1:
		return fmt.Errorf("--client-output-limit %d: want a positive number of bytes", c.OutputLimit)
	case c.IdleTimeout < 0:
		return fmt.Errorf("--timeout %s: want 0 (never) or a positive duration", c.IdleTimeout)
	case c.ShutdownWait < 0:
		return fmt.Errorf("--shutdown-timeout %s: want 0 (no wait) or a positive duration", c.ShutdownWait)
	}
	return nil
}
