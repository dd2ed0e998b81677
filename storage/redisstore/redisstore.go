// Package redisstore is the Redis engine of bucketd: a storage.Store kept in
// Redis, Valkey or a Redis Cluster, so that many bucketd instances share one
// state. It is the only importer of the Redis client (go-redis).
//
// Every take is one Lua script (take.lua) run by EVALSHA: it reads the
// bucket's hash, refills and takes in the exact fixed-point arithmetic of
// package bucket, and writes the hash back, atomically, in one round trip.
// Its instant is Redis's clock (TIME), so instances whose clocks disagree
// still agree on every bucket. A bucket's hash expires (PEXPIRE) when it is
// full: Redis holds only the buckets that are not full.
//
// What the Redis hash shows to `redis-cli HGETALL bucketd:{KEY}:POLICY`:
// tokens, capacity, rate, updated_at_ms, full_in_ms and policy, as bucketd's
// own HGETALL shows them, but as of the last change (updated_at_ms), not
// refilled to the moment of the read; and the script's own fields: limits
// (how many), limit.N (the Nth limit, "capacity:n:p:tokens:per:rate"),
// state.N ("tokens at remainder", micro-tokens, Unix ns, 1/p of a
// micro-token), updated_at and full_at (Unix ns).
package redisstore

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
)

var (
	//go:embed take.lua
	takeLua    string
	takeScript = redis.NewScript(takeLua)
	//go:embed live.lua
	liveLua    string
	liveScript = redis.NewScript(liveLua)
)

// DefaultTimeout is how long a call to Redis may take before it fails with
// bucket.ErrStoreUnavailable.
const DefaultTimeout = 50 * time.Millisecond

// Options configure a Store.
type Options struct {
	// Timeout bounds every call to Redis; DefaultTimeout if zero.
	Timeout time.Duration
	// Now, if set, gives the instant of every operation instead of Redis's
	// TIME. It is a test seam, for the conformance suite's fake clock; a
	// server never sets it, since Redis's clock is what lets instances with
	// skewed clocks agree.
	Now func() time.Time
	// Prefix starts the name of every key the store writes; DefaultPrefix
	// if empty. Deployments that share one Redis keep apart by it.
	Prefix string
}

// Store is a storage.Store in Redis.
type Store struct {
	rdb     redis.UniversalClient
	cluster *redis.ClusterClient // when rdb is one
	timeout time.Duration
	n       names
	now     func() time.Time
	closed  atomic.Bool
	once    sync.Once
	last    atomic.Int64 // Unix ns of the last call Redis answered
}

var _ storage.Store = (*Store)(nil)

// Open connects to the Redis at rawURL: redis://[user:pass@]host:port[/db],
// rediss://... for TLS, redis+cluster://[user:pass@]host:port,host:port for a
// Cluster (rediss+cluster:// with TLS), or unix:///path/to/socket. It checks
// the connection with a PING and loads the scripts.
func Open(rawURL string, o Options) (*Store, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if err := checkPrefix(o.Prefix); err != nil {
		return nil, err
	}
	s := &Store{timeout: o.Timeout, now: o.Now, n: newNames(o.Prefix)}
	switch {
	case strings.HasPrefix(rawURL, "redis+cluster://"), strings.HasPrefix(rawURL, "rediss+cluster://"):
		co, err := clusterOptions(rawURL)
		if err != nil {
			return nil, err
		}
		co.DialTimeout, co.ReadTimeout, co.WriteTimeout = o.Timeout, o.Timeout, o.Timeout
		co.MaxRetries = -1 // a retried take could be taken twice
		co.ContextTimeoutEnabled = true
		s.cluster = redis.NewClusterClient(co)
		s.rdb = s.cluster
	default:
		ro, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("--store %q: %v", Redact(rawURL), err)
		}
		ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout = o.Timeout, o.Timeout, o.Timeout
		ro.MaxRetries = -1
		ro.ContextTimeoutEnabled = true
		s.rdb = redis.NewClient(ro)
	}
	if err := s.load(); err != nil {
		_ = s.rdb.Close()
		return nil, fmt.Errorf("redis store %s: %w", Redact(rawURL), err)
	}
	return s, nil
}

// clusterOptions parses redis+cluster://[user:pass@]host:port,host:port.
func clusterOptions(raw string) (*redis.ClusterOptions, error) {
	tls := strings.HasPrefix(raw, "rediss+")
	rest := raw[strings.Index(raw, "://")+3:]
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		rest = rest[:i]
	}
	var user, pass string
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		u, err := url.Parse("x://" + rest[:at+1] + "h")
		if err != nil {
			return nil, fmt.Errorf("--store %q: bad credentials", Redact(raw))
		}
		user = u.User.Username()
		pass, _ = u.User.Password()
		rest = rest[at+1:]
	}
	var addrs []string
	for _, a := range strings.Split(rest, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("--store %q: want redis+cluster://host:port[,host:port...]", Redact(raw))
	}
	scheme := "redis"
	if tls {
		scheme = "rediss"
	}
	// One parse of the first address gives the TLS settings of the scheme.
	ro, err := redis.ParseURL(scheme + "://" + addrs[0])
	if err != nil {
		return nil, fmt.Errorf("--store %q: %v", Redact(raw), err)
	}
	return &redis.ClusterOptions{Addrs: addrs, Username: user, Password: pass, TLSConfig: ro.TLSConfig}, nil
}

// Redact hides the password of a store URL, for messages.
func Redact(raw string) string {
	i := strings.Index(raw, "://")
	at := strings.LastIndex(raw, "@")
	if i < 0 || at < i {
		return raw
	}
	cred := raw[i+3 : at]
	if u, _, ok := strings.Cut(cred, ":"); ok {
		return raw[:i+3] + u + ":xxxxx" + raw[at:]
	}
	return raw
}

// load pings Redis and loads the scripts on every master.
func (s *Store) load() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*s.timeout)
	defer cancel()
	loadOn := func(ctx context.Context, c redis.Cmdable) error {
		if err := c.Ping(ctx).Err(); err != nil {
			return err
		}
		for _, sc := range []*redis.Script{takeScript, liveScript} {
			if err := sc.Load(ctx, c).Err(); err != nil {
				return err
			}
		}
		return nil
	}
	if s.cluster != nil {
		return s.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return loadOn(ctx, c) })
	}
	return loadOn(ctx, s.rdb)
}

// ctx returns the context of one call: the store's timeout.
func (s *Store) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.timeout)
}

// nowArg is the instant the scripts are given: "" for Redis's TIME.
func (s *Store) nowArg() string {
	if s.now == nil {
		return ""
	}
	return fmt.Sprint(s.now().UnixNano())
}

// fail wraps an error from Redis: bucket.ErrStoreUnavailable, so that the
// limiter applies the failure mode and fronts answer 503.
func (s *Store) fail(err error) error {
	if err == nil {
		s.last.Store(time.Now().UnixNano())
		return nil
	}
	if s.closed.Load() {
		return bucket.ErrClosed
	}
	var re redis.Error
	if errors.As(err, &re) && !unavailable(re.Error()) {
		return fmt.Errorf("redis store: %w", err) // Redis answered: not an outage
	}
	return fmt.Errorf("redis store: %v: %w", err, bucket.ErrStoreUnavailable)
}

func (s *Store) checkOpen() error {
	if s.closed.Load() {
		return bucket.ErrClosed
	}
	return nil
}

// Save implements storage.Store: a no-op. Every change is in Redis when the
// call returns; making Redis durable on disk (RDB snapshots, AOF with
// appendfsync, replicas) is Redis's configuration. A BGSAVE per SAVE would
// fork a shared server for every client of it.
func (s *Store) Save() error { return s.checkOpen() }

// Health implements storage.Store: a PING within the timeout (to every
// master of a Cluster).
func (s *Store) Health() error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if s.cluster != nil {
		return s.fail(s.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.Ping(ctx).Err()
		}))
	}
	return s.fail(s.rdb.Ping(ctx).Err())
}

// LastSave implements storage.Store: when Redis last answered, since
// every change it acknowledged is in it.
func (s *Store) LastSave() time.Time {
	if n := s.last.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Close implements storage.Store. It is idempotent.
func (s *Store) Close() error {
	s.closed.Store(true)
	var err error
	s.once.Do(func() { err = s.rdb.Close() })
	if errors.Is(err, redis.ErrClosed) {
		err = nil
	}
	return err
}

// unavailable reports whether a Redis error reply says the server cannot
// serve now (loading, a Cluster without quorum, a failover), rather than
// that the command was wrong.
func unavailable(msg string) bool {
	for _, p := range []string{"LOADING", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY", "BUSY", "NOREPLICAS"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
