package limiter_test

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/limiter"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

// noFlush is the stores' sync interval: longer than any test advances its
// clock, so that no background flush (and so no sweep) runs unless a test
// calls Save or Close. A bucket that a test finds absent is then absent by
// the one read path, not because a sweep happened to remove it.
const noFlush = 24 * time.Hour

// newLimiter returns a limiter over a real store in a fresh directory, the
// store, and the store's clock, at storetest.T0. The store is closed at the
// end of the test. opts, if given, are the limiter's options.
func newLimiter(t testing.TB, opts ...limiter.Options) (*limiter.Limiter, *storage.DB, *storetest.Clock) {
	t.Helper()
	c := storetest.NewClock(storetest.T0)
	db := openAt(t, filepath.Join(t.TempDir(), "bucketd.db"), c)
	var o limiter.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	l, err := limiter.New(db, o)
	require.NoError(t, err)
	return l, db, c
}

// openAt opens the store at path on clock c and closes it at the end of
// the test.
func openAt(t testing.TB, path string, c *storetest.Clock) *storage.DB {
	t.Helper()
	db, err := storage.Open(path, storage.Options{Clock: c, SyncInterval: noFlush})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// restart closes db and returns a new limiter over the same file, as a
// restart of the process does: policies come from the caller again,
// overrides from the store.
func restart(t *testing.T, db *storage.DB, c *storetest.Clock) (*limiter.Limiter, *storage.DB) {
	t.Helper()
	path := db.Path()
	require.NoError(t, db.Close())
	db = openAt(t, path, c)
	l, err := limiter.New(db, limiter.Options{})
	require.NoError(t, err)
	return l, db
}

// tok returns n whole tokens.
func tok(n int64) bucket.Tokens { return bucket.Tokens(n) * bucket.Token }

// slow earns nothing a test can see: one token an hour.
var slow = bucket.Every(time.Hour)

// tiers are the policies of most tests: a burst and a daily quota on
// "api", a shadow policy "trial", and "default" as the flags give it.
func tiers() []bucket.Policy {
	return []bucket.Policy{
		{Name: "api", Limits: []bucket.Limit{
			{Capacity: tok(10), Rate: bucket.PerSecond(1)},
			{Capacity: tok(25), Rate: bucket.Rate{Tokens: tok(100), Per: 24 * time.Hour}},
		}},
		{Name: "trial", Shadow: true, Limits: []bucket.Limit{{Capacity: tok(1), Rate: slow}}},
		{Name: bucket.DefaultPolicy, Limits: []bucket.Limit{limiter.DefaultLimit}},
	}
}

// take takes cost from key under policy and fails the test on an error.
func take(t *testing.T, l *limiter.Limiter, key, policy string, cost bucket.Tokens) bucket.Result {
	t.Helper()
	res, err := l.Take(key, policy, cost)
	require.NoError(t, err, "take %s from %q under %q", cost, key, policy)
	return res
}

// throttle is CL.THROTTLE, failing the test on an error.
func throttle(t *testing.T, l *limiter.Limiter, key string, lim bucket.Limit, cost bucket.Tokens) bucket.Decision {
	t.Helper()
	d, err := l.Throttle(key, lim, cost)
	require.NoError(t, err, "throttle %s from %q", cost, key)
	return d
}

// counts returns the counts of the named policy.
func counts(t *testing.T, l *limiter.Limiter, name string) bucket.Counts {
	t.Helper()
	for _, p := range l.Policies() {
		if p.Name == name {
			return p.Counts
		}
	}
	t.Fatalf("no policy %q", name)
	return bucket.Counts{}
}

// logBuffer collects what a logger writes; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logger returns a logger that writes every level to b, as text.
func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
