package storage

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

// step is one take at t0+at and the decision it must get.
type step struct {
	at   time.Duration
	cost bucket.Tokens
	want bucket.Decision
}

// runSteps moves the clock to each step's instant and takes from key under
// the default policy.
func runSteps(t *testing.T, db *DB, c *fakeClock, key string, steps []step) {
	t.Helper()
	for i, s := range steps {
		c.Set(t0.Add(s.at))
		res, err := db.Take(key, "", s.cost)
		require.NoError(t, err, "step %d", i)
		assert.Equal(t, s.want, res.Decision, "step %d: take %s at t0+%v", i, s.cost, s.at)
		assert.Equal(t, bucket.DefaultPolicy, res.Policy.Name, "step %d", i)
		assert.Nil(t, res.Limits, "step %d: one limit has no per-limit decisions", i)
	}
}

func TestTakeDefaultPolicy(t *testing.T) {
	c := newClock(t0)
	db := mustOpen(t, testOptions(c))
	five := tok(5)
	allow := func(rem bucket.Tokens, reset time.Duration) bucket.Decision {
		return bucket.Decision{Allowed: true, Limit: five, Remaining: rem, ResetAfter: reset}
	}
	deny := func(rem bucket.Tokens, retry, reset time.Duration) bucket.Decision {
		return bucket.Decision{Limit: five, Remaining: rem, RetryAfter: retry, ResetAfter: reset}
	}
	runSteps(t, db, c, "k", []step{
		{0, tok(1), allow(tok(4), 3*time.Second)},
		{0, tok(4), allow(0, 15*time.Second)},
		{0, tok(1), deny(0, 3*time.Second, 15*time.Second)},
		{1500 * time.Millisecond, tok(1), deny(bucket.Token/2, 1500*time.Millisecond, 13500*time.Millisecond)},
		{3 * time.Second, tok(1), allow(0, 15*time.Second)},
		{3 * time.Second, 0, allow(0, 15*time.Second)}, // a peek
		{9 * time.Second, tok(6), deny(tok(2), bucket.Never, 9*time.Second)},
		{9 * time.Second, bucket.Token / 2, allow(3*bucket.Token/2, 10500*time.Millisecond)},
		{time.Minute, 0, allow(five, 0)},
	})
}

func TestTakeErrors(t *testing.T) {
	c := newClock(t0)
	db := mustOpen(t, testOptions(c))
	tests := []struct {
		name string
		take func() error
		want error
	}{
		{"unknown policy", func() error { _, err := db.Take("k", "gold", tok(1)); return err }, bucket.ErrUnknownPolicy},
		{"negative cost", func() error { _, err := db.Take("k", "", -1); return err }, bucket.ErrInvalid},
		{"throttle negative cost", func() error {
			_, err := db.Throttle("k", DefaultLimit, -bucket.Token)
			return err
		}, bucket.ErrInvalid},
		{"throttle zero limit", func() error { _, err := db.Throttle("k", bucket.Limit{}, tok(1)); return err }, bucket.ErrInvalid},
		{"throttle zero rate", func() error {
			_, err := db.Throttle("k", bucket.Limit{Capacity: tok(1)}, tok(1))
			return err
		}, bucket.ErrInvalid},
		{"set default zero limit", func() error { return db.SetDefaultLimit(bucket.Limit{}) }, bucket.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorIs(t, tt.take(), tt.want)
		})
	}
	assert.Equal(t, 0, db.Len(), "a refused take leaves no bucket")
	_, ok, err := db.Peek("k")
	require.NoError(t, err)
	assert.False(t, ok)
}

func TestThrottle(t *testing.T) {
	c := newClock(t0)
	db := mustOpen(t, testOptions(c))
	l := bucket.Limit{Capacity: tok(2), Rate: bucket.PerSecond(1)}

	tests := []struct {
		at   time.Duration
		cost bucket.Tokens
		want bucket.Decision
	}{
		{0, tok(1), bucket.Decision{Allowed: true, Limit: tok(2), Remaining: tok(1), ResetAfter: time.Second}},
		{0, tok(1), bucket.Decision{Allowed: true, Limit: tok(2), Remaining: 0, ResetAfter: 2 * time.Second}},
		{0, tok(1), bucket.Decision{Limit: tok(2), RetryAfter: time.Second, ResetAfter: 2 * time.Second}},
		{time.Second, 0, bucket.Decision{Allowed: true, Limit: tok(2), Remaining: tok(1), ResetAfter: time.Second}},
		{time.Second, tok(3), bucket.Decision{Limit: tok(2), Remaining: tok(1), RetryAfter: bucket.Never, ResetAfter: time.Second}},
	}
	for i, tt := range tests {
		c.Set(t0.Add(tt.at))
		d, err := db.Throttle("k", l, tt.cost)
		require.NoError(t, err)
		assert.Equal(t, tt.want, d, "step %d", i)
	}

	snap, ok, err := db.Peek("k")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, []bucket.Limit{l}, snap.Policy.Limits, "the bucket keeps the ad hoc limit")
	assert.Equal(t, tok(1), snap.Remaining)

	// Another ad hoc limit on another key does not disturb this one.
	other := bucket.Limit{Capacity: tok(100), Rate: bucket.PerSecond(100)}
	d, err := db.Throttle("j", other, tok(50))
	require.NoError(t, err)
	assert.Equal(t, tok(50), d.Remaining)
	assert.Equal(t, 2, db.Len())
}

func TestPeek(t *testing.T) {
	c := newClock(t0)
	db := mustOpen(t, testOptions(c))

	_, ok, err := db.Peek("k")
	require.NoError(t, err)
	assert.False(t, ok, "a key never taken has no bucket")

	_, err = db.Take("k", "", tok(3))
	require.NoError(t, err)
	c.Advance(1500 * time.Millisecond)
	for range 2 { // peeking changes nothing
		snap, ok, err := db.Peek("k")
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, bucket.Snapshot{
			Policy:    bucket.Policy{Name: bucket.DefaultPolicy, Limits: []bucket.Limit{DefaultLimit}},
			Decision:  bucket.Decision{Allowed: true, Limit: tok(5), Remaining: tok(2) + bucket.Token/2, ResetAfter: 7500 * time.Millisecond},
			UpdatedAt: t0,
		}, snap)
	}

	c.Advance(7500 * time.Millisecond)
	_, ok, err = db.Peek("k")
	require.NoError(t, err)
	assert.False(t, ok, "a bucket that has refilled is no bucket")
}

func TestSetTokens(t *testing.T) {
	tests := []struct {
		name     string
		taken    bucket.Tokens // taken from the bucket first; 0 for no bucket
		set      bucket.Tokens
		want     bucket.Tokens
		wantKept bool
	}{
		{"grant on a new key", 0, tok(2), tok(2), true},
		{"drain on a new key", 0, 0, 0, true},
		{"grant", tok(4), tok(3), tok(3), true},
		{"drain", tok(1), 0, 0, true},
		{"negative clamps to empty", tok(1), -tok(7), 0, true},
		{"fraction", tok(1), bucket.Token / 4, bucket.Token / 4, true},
		{"full removes the bucket", tok(3), tok(5), 0, false},
		{"more than full removes the bucket", tok(3), tok(500), 0, false},
		{"full on a new key stores nothing", 0, tok(5), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newClock(t0)
			db := mustOpen(t, testOptions(c))
			if tt.taken > 0 {
				_, err := db.Take("k", "", tt.taken)
				require.NoError(t, err)
				require.NoError(t, db.Save())
			}
			c.Advance(time.Second)
			require.NoError(t, db.SetTokens("k", tt.set))
			snap, ok, err := db.Peek("k")
			require.NoError(t, err)
			require.Equal(t, tt.wantKept, ok)
			require.NoError(t, db.Save())
			if !tt.wantKept {
				assert.Equal(t, 0, db.Len())
				assert.Empty(t, onDisk(t, db))
				return
			}
			assert.Equal(t, 1, db.Len())
			assert.Equal(t, tt.want, snap.Remaining)
			assert.Equal(t, t0.Add(time.Second), snap.UpdatedAt)
			assert.Equal(t, tt.want, diskTokens(t, onDisk(t, db), "k"))

			// The tokens set are the tokens a take sees.
			res, err := db.Take("k", "", tt.want)
			require.NoError(t, err)
			assert.True(t, res.Allowed)
			assert.Equal(t, bucket.Tokens(0), res.Remaining)
		})
	}
}

func TestSetTokensKeepsLimits(t *testing.T) {
	c := newClock(t0)
	db := mustOpen(t, testOptions(c))
	l := bucket.Limit{Capacity: tok(10), Rate: bucket.PerSecond(1)}
	_, err := db.Throttle("k", l, tok(10))
	require.NoError(t, err)
	require.NoError(t, db.SetTokens("k", tok(7)))
	snap, ok, err := db.Peek("k")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, []bucket.Limit{l}, snap.Policy.Limits, "set tokens on a bucket keeps its limits")
	assert.Equal(t, tok(7), snap.Remaining, "clamped to the bucket's own capacity, not the default's")
}

func TestDelete(t *testing.T) {
	c := newClock(t0)
	db := mustOpen(t, testOptions(c))
	for _, k := range []string{"a", "b", "c"} {
		_, err := db.Take(k, "", tok(1))
		require.NoError(t, err)
	}
	_, err := db.Take("slow", "", tok(5))
	require.NoError(t, err)
	require.NoError(t, db.Save())
	require.Len(t, onDisk(t, db), 4)

	tests := []struct {
		keys []string
		want int
	}{
		{nil, 0},
		{[]string{"a", "b", "nope"}, 2},
		{[]string{"a", "b"}, 0},
		{[]string{"c", "c"}, 1},
	}
	for _, tt := range tests {
		n, err := db.Delete(tt.keys...)
		require.NoError(t, err)
		assert.Equal(t, tt.want, n, "Delete(%q)", tt.keys)
	}
	assert.Equal(t, 1, db.Len())
	require.NoError(t, db.Save())
	assert.Equal(t, []string{"slow"}, slices.Collect(maps.Keys(onDisk(t, db))))

	// A bucket that has refilled but not yet been swept is not counted.
	c.Advance(15 * time.Second)
	n, err := db.Delete("slow")
	require.NoError(t, err)
	assert.Equal(t, 0, n)
	assert.Equal(t, 0, db.Len())
	require.NoError(t, db.Save())
	assert.Empty(t, onDisk(t, db))

	// A deleted bucket starts full.
	res, err := db.Take("a", "", tok(5))
	require.NoError(t, err)
	assert.True(t, res.Allowed)
}

func TestScan(t *testing.T) {
	c := newClock(t0)
	db := mustOpen(t, testOptions(c))
	const n = 1000
	for i := range n {
		_, err := db.Take(fmt.Sprint("key:", i), "", tok(1))
		require.NoError(t, err)
	}
	require.Equal(t, n, db.Len())

	for _, count := range []int{-1, 0, 1, 10, 100, n, 10 * n} {
		t.Run(fmt.Sprint("count ", count), func(t *testing.T) {
			seen := make(map[string]int)
			var cursor uint64
			calls := 0
			for {
				keys, next, err := db.Scan(cursor, count)
				require.NoError(t, err)
				calls++
				require.LessOrEqual(t, calls, shardCount, "the scan does not end")
				for _, k := range keys {
					seen[k]++
				}
				if next == 0 {
					break
				}
				assert.GreaterOrEqual(t, len(keys), max(count, 1), "a page before the last has at least count keys")
				assert.Greater(t, next, cursor, "the cursor moves forward")
				cursor = next
			}
			assert.Len(t, seen, n, "every key at least once")
			for k, times := range seen {
				assert.Equal(t, 1, times, "key %q: nothing changed, so exactly once", k)
			}
			if count < n/10 {
				assert.Greater(t, calls, 1)
			}
		})
	}

	keys, next, err := db.Scan(shardCount, 10)
	require.NoError(t, err)
	assert.Empty(t, keys)
	assert.Zero(t, next)

	// Refilled buckets are not listed, even before they are swept.
	c.Advance(3 * time.Second)
	keys, next, err = db.Scan(0, 10*n)
	require.NoError(t, err)
	assert.Empty(t, keys)
	assert.Zero(t, next)
}

func TestScanUnderChange(t *testing.T) {
	c := newClock(t0)
	db := mustOpen(t, testOptions(c))
	stable := make(map[string]bool)
	for i := range 500 {
		k := fmt.Sprint("stable:", i)
		stable[k] = true
		_, err := db.Take(k, "", tok(1))
		require.NoError(t, err)
	}
	seen := make(map[string]bool)
	var cursor uint64
	for i := 0; ; i++ {
		// Keys come and go between pages.
		_, err := db.Take(fmt.Sprint("new:", i), "", tok(1))
		require.NoError(t, err)
		_, err = db.Delete(fmt.Sprint("new:", i-1))
		require.NoError(t, err)

		keys, next, err := db.Scan(cursor, 7)
		require.NoError(t, err)
		for _, k := range keys {
			seen[k] = true
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	for k := range stable {
		assert.True(t, seen[k], "key %q, present for the whole scan, was not returned", k)
	}
}

func TestLen(t *testing.T) {
	c := newClock(t0)
	db := mustOpen(t, testOptions(c))
	steps := []struct {
		name string
		do   func() error
		want int
	}{
		{"peek of a new key", func() error { _, err := db.Take("a", "", 0); return err }, 0},
		{"denied take of a new key", func() error { _, err := db.Take("a", "", tok(6)); return err }, 0},
		{"take", func() error { _, err := db.Take("a", "", tok(1)); return err }, 1},
		{"take again", func() error { _, err := db.Take("a", "", tok(1)); return err }, 1},
		{"throttle", func() error { _, err := db.Throttle("b", DefaultLimit, tok(1)); return err }, 2},
		{"set tokens", func() error { return db.SetTokens("c", tok(1)) }, 3},
		{"set tokens to full", func() error { return db.SetTokens("c", tok(5)) }, 2},
		{"delete", func() error { _, err := db.Delete("b"); return err }, 1},
		{"refill, not yet swept", func() error { c.Advance(time.Hour); return nil }, 1},
		{"save sweeps", db.Save, 0},
	}
	for _, s := range steps {
		require.NoError(t, s.do(), s.name)
		assert.Equal(t, s.want, db.Len(), s.name)
	}
}

func TestFlushAll(t *testing.T) {
	c := newClock(t0)
	path := filepath.Join(t.TempDir(), "bucketd.db")
	db := mustOpenAt(t, path, testOptions(c))
	for i := range 100 {
		_, err := db.Take(fmt.Sprint("saved:", i), "", tok(1))
		require.NoError(t, err)
	}
	require.NoError(t, db.Save())
	for i := range 100 {
		_, err := db.Take(fmt.Sprint("dirty:", i), "", tok(1))
		require.NoError(t, err)
	}
	require.Len(t, onDisk(t, db), 100)

	require.NoError(t, db.FlushAll())
	assert.Equal(t, 0, db.Len())
	assert.Empty(t, onDisk(t, db))
	keys, _, err := db.Scan(0, 1000)
	require.NoError(t, err)
	assert.Empty(t, keys)
	res, err := db.Take("saved:1", "", tok(5))
	require.NoError(t, err)
	assert.True(t, res.Allowed, "a flushed bucket starts full")
	_, err = db.Delete("saved:1")
	require.NoError(t, err)

	require.NoError(t, db.Save(), "dirty keys dropped by FlushAll are not written back")
	assert.Empty(t, onDisk(t, db))
	require.NoError(t, db.Close())
	assert.Empty(t, fileRecords(t, path))

	db = mustOpenAt(t, path, testOptions(c))
	assert.Equal(t, 0, db.Len())
}

func TestSetDefaultLimit(t *testing.T) {
	c := newClock(t0)
	db := mustOpen(t, testOptions(c))
	slow := bucket.Every(time.Hour) // no refill during the test
	steps := []struct {
		name  string
		limit bucket.Limit // applied first, if not zero
		key   string
		cost  bucket.Tokens
		want  bucket.Decision
	}{
		{"take 1 of 5", bucket.Limit{}, "k", tok(1), bucket.Decision{Allowed: true, Limit: tok(5), Remaining: tok(4), ResetAfter: 3 * time.Second}},
		{"shrink to 3: tokens clamped", bucket.Limit{Capacity: tok(3), Rate: slow}, "k", 0, bucket.Decision{Allowed: true, Limit: tok(3), Remaining: tok(3)}},
		{"take 1 of 3", bucket.Limit{}, "k", tok(1), bucket.Decision{Allowed: true, Limit: tok(3), Remaining: tok(2), ResetAfter: time.Hour}},
		{"grow to 10: tokens kept, not reset", bucket.Limit{Capacity: tok(10), Rate: slow}, "k", 0, bucket.Decision{Allowed: true, Limit: tok(10), Remaining: tok(2), ResetAfter: 8 * time.Hour}},
		{"take 2 of 10", bucket.Limit{}, "k", tok(2), bucket.Decision{Allowed: true, Limit: tok(10), Remaining: 0, ResetAfter: 10 * time.Hour}},
		{"a new key starts full under the new limit", bucket.Limit{}, "new", tok(1), bucket.Decision{Allowed: true, Limit: tok(10), Remaining: tok(9), ResetAfter: time.Hour}},
	}
	for _, s := range steps {
		if s.limit != (bucket.Limit{}) {
			require.NoError(t, db.SetDefaultLimit(s.limit), s.name)
		}
		res, err := db.Take(s.key, "", s.cost)
		require.NoError(t, err, s.name)
		assert.Equal(t, s.want, res.Decision, s.name)
	}
	p, err := db.Policy("")
	require.NoError(t, err)
	assert.Equal(t, []bucket.Limit{{Capacity: tok(10), Rate: slow}}, p.Limits)
	assert.Equal(t, p, db.Policies()[0].Policy)

	// The stored bucket carries the new limit from its next take.
	snap, ok, err := db.Peek("k")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, p.Limits, snap.Policy.Limits)
}

func TestClosed(t *testing.T) {
	c := newClock(t0)
	db := mustOpen(t, testOptions(c))
	_, err := db.Take("k", "", tok(1))
	require.NoError(t, err)
	require.NoError(t, db.Close())
	require.NoError(t, db.Close(), "Close is idempotent")

	ops := []struct {
		name string
		do   func() error
	}{
		{"Take", func() error { _, err := db.Take("k", "", tok(1)); return err }},
		{"Take peek", func() error { _, err := db.Take("k", "", 0); return err }},
		{"Throttle", func() error { _, err := db.Throttle("k", DefaultLimit, tok(1)); return err }},
		{"Peek", func() error { _, _, err := db.Peek("k"); return err }},
		{"SetTokens", func() error { return db.SetTokens("k", 0) }},
		{"Delete", func() error { _, err := db.Delete("k"); return err }},
		{"Scan", func() error { _, _, err := db.Scan(0, 10); return err }},
		{"Save", db.Save},
		{"FlushAll", db.FlushAll},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			assert.ErrorIs(t, op.do(), bucket.ErrClosed)
		})
	}
}

func TestParseSyncMode(t *testing.T) {
	tests := []struct {
		in      string
		want    SyncMode
		wantErr bool
	}{
		{"interval", SyncInterval, false},
		{"always", SyncAlways, false},
		{"", 0, true},
		{"Always", 0, true},
	}
	for _, tt := range tests {
		m, err := ParseSyncMode(tt.in)
		if tt.wantErr {
			assert.Error(t, err, "%q", tt.in)
			continue
		}
		require.NoError(t, err, "%q", tt.in)
		assert.Equal(t, tt.want, m)
		assert.Equal(t, tt.in, m.String())
	}
}
