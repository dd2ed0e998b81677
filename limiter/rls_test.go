package limiter_test

import (
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/limiter"
	"github.com/bucketd/bucketd/rlsconfig"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

// readme returns envoyproxy/ratelimit's README examples as a configuration.
func readme(t *testing.T) *rlsconfig.Config {
	t.Helper()
	c, err := rlsconfig.Load(filepath.Join("..", "testdata", "rls", "readme"))
	require.NoError(t, err)
	return c
}

func rlsConfig(t *testing.T, src string) *rlsconfig.Config {
	t.Helper()
	c, err := rlsconfig.Parse(rlsconfig.File{Name: "t.yaml", Data: []byte(src)})
	require.NoError(t, err)
	return c
}

// desc builds a descriptor from key, value pairs.
func desc(kv ...string) limiter.RLSDescriptor {
	var d limiter.RLSDescriptor
	for i := 0; i+1 < len(kv); i += 2 {
		d.Entries = append(d.Entries, rlsconfig.Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

func should(t *testing.T, l *limiter.Limiter, domain string, ds ...limiter.RLSDescriptor) limiter.RLSResult {
	t.Helper()
	res, err := l.ShouldRateLimit(limiter.RLSRequest{Domain: domain, Descriptors: ds})
	require.NoError(t, err)
	require.Len(t, res.Statuses, len(ds))
	return res
}

const perSecond5 = "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, requests_per_unit: 5}\n"

// TestRLSTokenBucket: capacity requests_per_unit, refilled at
// requests_per_unit per unit, so no double burst at a window's edge.
func TestRLSTokenBucket(t *testing.T) {
	l, _, c := newLimiter(t)
	l.SetRLSConfig(rlsConfig(t, perSecond5))
	for i := range 5 {
		r := should(t, l, "d", desc("k", "a"))
		require.False(t, r.Over, "take %d", i)
		require.Equal(t, tok(int64(4-i)), r.Statuses[0].Remaining)
	}
	r := should(t, l, "d", desc("k", "a"))
	require.True(t, r.Over)
	st := r.Statuses[0]
	require.True(t, st.Over)
	require.Equal(t, 200*time.Millisecond, st.RetryAfter)
	require.Equal(t, time.Second, st.ResetAfter)
	require.Equal(t, "k_a", st.Key)
	require.Equal(t, uint32(5), st.Rule.RequestsPerUnit)

	// A fixed window would give 5 more at the next second; a token bucket
	// gives one per 200 ms.
	c.Advance(200 * time.Millisecond)
	require.False(t, should(t, l, "d", desc("k", "a")).Over)
	require.True(t, should(t, l, "d", desc("k", "a")).Over)
	require.False(t, should(t, l, "d", desc("k", "b")).Over, "another value, another bucket")
	require.Equal(t, limiter.RLSCounts{Allowed: 7, Denied: 2}, l.RLSCounts("d"))
}

// TestRLSAllOrNothing: when one descriptor is over, the others are given
// back what was taken, and the rest are not taken from.
func TestRLSAllOrNothing(t *testing.T) {
	l, _, _ := newLimiter(t)
	l.SetRLSConfig(readme(t))
	for range 5 { // exhaust the marketing limit of one number
		require.False(t, should(t, l, "messaging", desc("message_type", "marketing", "to_number", "1")).Over)
	}
	r := should(t, l, "messaging",
		desc("to_number", "1"),                              // 100 a day, taken then given back
		desc("message_type", "marketing", "to_number", "1"), // over
		desc("to_number", "2"),                              // not taken
	)
	require.True(t, r.Over)
	require.False(t, r.Statuses[0].Over)
	require.Equal(t, tok(100), r.Statuses[0].Remaining, "given back")
	require.True(t, r.Statuses[1].Over)
	require.False(t, r.Statuses[2].Over)
	require.Equal(t, tok(100), r.Statuses[2].Remaining)
	for _, key := range []string{"to_number_1", "to_number_2"} {
		_, ok, err := l.Inspect(key)
		require.NoError(t, err)
		require.False(t, ok, "%s must be full", key)
	}
	// The later descriptor, over, is reported over without being taken.
	r = should(t, l, "messaging", desc("message_type", "marketing", "to_number", "1"), desc("message_type", "marketing", "to_number", "1"))
	require.True(t, r.Statuses[0].Over)
	require.True(t, r.Statuses[1].Over)
	require.Positive(t, r.Statuses[1].RetryAfter)
}

// TestRLSReadmeSemantics: replaces, shadow mode, unlimited and a limit of 0
// as envoyproxy/ratelimit's README describes them.
func TestRLSReadmeSemantics(t *testing.T) {
	l, db, _ := newLimiter(t)
	l.SetRLSConfig(readme(t))

	t.Run("replaces", func(t *testing.T) {
		// Both match: only the replacing 10/s applies; the 5/s is not taken.
		for i := range 10 {
			r := should(t, l, "example7", desc("key_1", "value_1", "user", "bkthomps"), desc("key_2", "value_2", "user", "bkthomps"))
			require.False(t, r.Over, "take %d", i)
			require.Nil(t, r.Statuses[0].Rule, "replaced")
			require.Equal(t, uint32(10), r.Statuses[1].Rule.RequestsPerUnit)
		}
		require.True(t, should(t, l, "example7", desc("key_1", "value_1", "user", "bkthomps"), desc("key_2", "value_2", "user", "bkthomps")).Over)
		r := should(t, l, "example7", desc("key_1", "value_1", "user", "bkthomps"))
		require.False(t, r.Over)
		require.Equal(t, tok(4), r.Statuses[0].Remaining, "the replaced limit was untouched")
	})
	t.Run("shadow", func(t *testing.T) {
		for range 12 {
			r := should(t, l, "example6", desc("service", "auth-service", "user", "user-a"))
			require.False(t, r.Over)
		}
		r := should(t, l, "example6", desc("service", "auth-service", "user", "user-a"))
		require.False(t, r.Over)
		require.True(t, r.Statuses[0].Shadow)
		require.False(t, r.Statuses[0].Over)
		require.Equal(t, limiter.RLSCounts{Allowed: 10, ShadowDenied: 3}, l.RLSCounts("example6"))
		for range 20 {
			require.False(t, should(t, l, "example6", desc("service", "auth-service", "user", "user-b")).Over)
		}
		require.True(t, should(t, l, "example6", desc("service", "auth-service", "user", "user-b")).Over)
	})
	t.Run("unlimited", func(t *testing.T) {
		n, err := db.Len()
		require.NoError(t, err)
		for range 1000 {
			r := should(t, l, "internal", desc("ldap", "x"))
			require.False(t, r.Over)
			require.True(t, r.Statuses[0].Unlimited)
		}
		m, err := db.Len()
		require.NoError(t, err)
		require.Equal(t, n, m, "unlimited keeps no bucket")
	})
	t.Run("zero requests per unit", func(t *testing.T) {
		require.False(t, should(t, l, "edge_proxy_per_ip", desc("remote_address", "50.0.0.1")).Over)
		r := should(t, l, "edge_proxy_per_ip", desc("remote_address", "50.0.0.5"))
		require.True(t, r.Over)
		require.Equal(t, bucket.Never, r.Statuses[0].RetryAfter)
	})
	t.Run("no match", func(t *testing.T) {
		r := should(t, l, "nobody", desc("a", "b"))
		require.False(t, r.Over)
		require.Nil(t, r.Statuses[0].Rule)
	})
}

// TestRLSHitsAddend: the request's hits_addend is the cost (0 means 1); a
// descriptor's own overrides it, and 0 there only checks.
func TestRLSHitsAddend(t *testing.T) {
	l, _, _ := newLimiter(t)
	l.SetRLSConfig(rlsConfig(t, perSecond5))
	r, err := l.ShouldRateLimit(limiter.RLSRequest{Domain: "d", Descriptors: []limiter.RLSDescriptor{desc("k", "a")}, HitsAddend: 3})
	require.NoError(t, err)
	require.Equal(t, tok(2), r.Statuses[0].Remaining)
	zero := uint64(0)
	d := desc("k", "a")
	d.HitsAddend = &zero
	r, err = l.ShouldRateLimit(limiter.RLSRequest{Domain: "d", Descriptors: []limiter.RLSDescriptor{d}, HitsAddend: 3})
	require.NoError(t, err)
	require.False(t, r.Over)
	require.Equal(t, tok(2), r.Statuses[0].Remaining, "a check takes nothing")
	r, err = l.ShouldRateLimit(limiter.RLSRequest{Domain: "d", Descriptors: []limiter.RLSDescriptor{desc("k", "a")}, HitsAddend: 3})
	require.NoError(t, err)
	require.True(t, r.Over)
	huge := ^uint64(0)
	d.HitsAddend = &huge
	r, err = l.ShouldRateLimit(limiter.RLSRequest{Domain: "d", Descriptors: []limiter.RLSDescriptor{d}})
	require.NoError(t, err)
	require.True(t, r.Over)
	require.Equal(t, bucket.Never, r.Statuses[0].RetryAfter)
}

// TestRLSQuotaMode: quota-mode refusals make the request over only when
// every quota-mode descriptor refuses.
func TestRLSQuotaMode(t *testing.T) {
	l, _, _ := newLimiter(t)
	l.SetRLSConfig(rlsConfig(t, "domain: d\ndescriptors:\n"+
		"  - {key: q, quota_mode: true, rate_limit: {unit: hour, requests_per_unit: 1}}\n"))
	require.False(t, should(t, l, "d", desc("q", "a"), desc("q", "b")).Over)
	r := should(t, l, "d", desc("q", "a"), desc("q", "c"))
	require.False(t, r.Over, "one quota descriptor left")
	require.True(t, r.Statuses[0].Over)
	require.True(t, should(t, l, "d", desc("q", "a"), desc("q", "b")).Over)
}

// TestRLSLimitOverride: Envoy's per-descriptor limit replaces the rules.
func TestRLSLimitOverride(t *testing.T) {
	l, _, _ := newLimiter(t)
	d := desc("x", "y")
	d.Limit = &rlsconfig.RateLimit{Unit: rlsconfig.Minute, RequestsPerUnit: 2}
	require.False(t, should(t, l, "any", d).Over)
	r := should(t, l, "any", d)
	require.False(t, r.Over)
	require.Equal(t, "x_y", r.Statuses[0].Key)
	require.True(t, should(t, l, "any", d).Over)
	d.Limit = &rlsconfig.RateLimit{RequestsPerUnit: 2}
	_, err := l.ShouldRateLimit(limiter.RLSRequest{Domain: "any", Descriptors: []limiter.RLSDescriptor{d}})
	require.ErrorIs(t, err, bucket.ErrInvalid)
}

// TestRLSInvalid: an empty domain, no descriptors, or a descriptor without
// entries are invalid input.
func TestRLSInvalid(t *testing.T) {
	l, _, _ := newLimiter(t)
	for _, req := range []limiter.RLSRequest{
		{Descriptors: []limiter.RLSDescriptor{desc("a", "b")}},
		{Domain: "d"},
		{Domain: "d", Descriptors: []limiter.RLSDescriptor{{}}},
	} {
		_, err := l.ShouldRateLimit(req)
		require.ErrorIs(t, err, bucket.ErrInvalid)
	}
}

// TestRLSReloadKeepsTokens: a new configuration keeps what buckets hold,
// refitted to a changed limit, and survives a restart.
func TestRLSReloadKeepsTokens(t *testing.T) {
	l, db, c := newLimiter(t)
	l.SetRLSConfig(rlsConfig(t, perSecond5))
	for range 3 {
		should(t, l, "d", desc("k", "a"))
	}
	l.SetRLSConfig(rlsConfig(t, "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: minute, requests_per_unit: 10}\n"))
	r := should(t, l, "d", desc("k", "a"))
	require.Equal(t, tok(1), r.Statuses[0].Remaining, "2 carried, 1 taken")
	require.Equal(t, tok(10), r.Statuses[0].Limit.Capacity)

	l2, _ := restart(t, db, c)
	l2.SetRLSConfig(rlsConfig(t, "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: minute, requests_per_unit: 10}\n"))
	r = should(t, l2, "d", desc("k", "a"))
	require.Equal(t, tok(0), r.Statuses[0].Remaining)
}

// TestRLSVisible: an RLS bucket is listed by Keys and shown by Inspect
// with its domain, and DEL (Delete) resets it.
func TestRLSVisible(t *testing.T) {
	l, _, _ := newLimiter(t)
	l.SetRLSConfig(readme(t))
	should(t, l, "messaging", desc("message_type", "marketing", "to_number", "42"))
	keys, _, err := l.Keys("", "", 0)
	require.NoError(t, err)
	require.Equal(t, []string{"message_type_marketing.to_number_42"}, keys)
	v, ok, err := l.Inspect("message_type_marketing.to_number_42")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "messaging", v.RLS)
	require.Equal(t, "rls:messaging", v.Policy)
	require.Equal(t, tok(4), v.Remaining)
	require.Equal(t, tok(5), v.Snapshot.Policy.Limits[0].Capacity)
	n, err := l.Delete("message_type_marketing.to_number_42")
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

// TestRLSConcurrentExact: concurrent requests on one bucket allow exactly
// its capacity, and all-or-nothing requests never over-take either bucket.
func TestRLSConcurrentExact(t *testing.T) {
	l, _, _ := newLimiter(t)
	l.SetRLSConfig(rlsConfig(t, "domain: d\ndescriptors:\n"+
		"  - {key: a, rate_limit: {unit: hour, requests_per_unit: 100}}\n"+
		"  - {key: b, rate_limit: {unit: hour, requests_per_unit: 60}}\n"))
	const workers, each = 8, 50
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				r, err := l.ShouldRateLimit(limiter.RLSRequest{Domain: "d", Descriptors: []limiter.RLSDescriptor{desc("a", "x"), desc("b", "y")}})
				if err == nil && !r.Over {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	// The clock does not move. a never runs dry (at most 60 kept, 8 in
	// flight), so only b refuses, and only when empty: exactly 60.
	require.Equal(t, int64(60), allowed.Load())
	ra := should(t, l, "d", desc("a", "x"))
	require.Equal(t, tok(100-60-1), ra.Statuses[0].Remaining, "a was given back every refused request's token")

	allowed.Store(0)
	for range workers {
		wg.Go(func() {
			for range each {
				r, err := l.ShouldRateLimit(limiter.RLSRequest{Domain: "d", Descriptors: []limiter.RLSDescriptor{desc("a", "z")}})
				if err == nil && !r.Over {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	require.Equal(t, int64(100), allowed.Load(), "one bucket: exactly its capacity")
}

// BenchmarkShouldRateLimit: one descriptor matched against the README's
// example 2 and taken from one of 100 000 buckets, on the real store.
func BenchmarkShouldRateLimit(b *testing.B) {
	c := storetest.NewClock(storetest.T0)
	db, err := storage.Open(filepath.Join(b.TempDir(), "b.db"), storage.Options{Clock: c, SyncInterval: noFlush})
	require.NoError(b, err)
	defer db.Close()
	l, err := limiter.New(db, limiter.Options{})
	require.NoError(b, err)
	cfg, err := rlsconfig.Load(filepath.Join("..", "testdata", "rls", "readme"))
	require.NoError(b, err)
	l.SetRLSConfig(cfg)
	reqs := make([]limiter.RLSRequest, 100_000)
	for i := range reqs {
		reqs[i] = limiter.RLSRequest{Domain: "messaging", Descriptors: []limiter.RLSDescriptor{desc("to_number", strconv.Itoa(i))}}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := l.ShouldRateLimit(reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
	}
}
