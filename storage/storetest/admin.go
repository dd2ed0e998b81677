package storetest

// The cases of sets, resets, scans, overrides, time and errors.

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
)

func testSet(t *testing.T, e *env) {
	d, err := e.s.Set(free, "joe", five, 2*tok, nil)
	require.NoError(t, err)
	assert.Equal(t, 2*tok, d.Remaining)
	assert.Equal(t, 9*time.Second, d.ResetAfter)
	assert.Equal(t, 2*tok, e.take(free, "joe", five, 0).Remaining)

	d, err = e.s.Set(free, "joe", five, -3*tok, nil)
	require.NoError(t, err)
	assert.Equal(t, bucket.Tokens(0), d.Remaining, "clamped to 0")

	d, err = e.s.Set(free, "joe", five, 50*tok, nil)
	require.NoError(t, err)
	assert.Equal(t, 5*tok, d.Remaining, "clamped to the capacity")
	_, ok, err := e.s.Peek(free, "joe", nil)
	require.NoError(t, err)
	assert.False(t, ok, "set full: no bucket")
	assert.Equal(t, 0, e.len())
}

func testReset(t *testing.T, e *env) {
	e.take(free, "joe", five, tok)
	e.take(cell, "joe", five, tok)
	ok, err := e.s.Reset(free, "joe")
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = e.s.Reset(free, "joe")
	require.NoError(t, err)
	assert.False(t, ok, "already full")
	assert.Equal(t, 1, e.len(), "the cell bucket stays")

	e.take(paid, "joe", five, tok)
	ok, err = e.s.Reset(storage.AllNamespaces, "joe")
	require.NoError(t, err)
	assert.True(t, ok)
	nss, err := e.s.Namespaces("joe")
	require.NoError(t, err)
	assert.Empty(t, nss)
	assert.Equal(t, 0, e.len())

	// A bucket that refilled is not reset: it was full already.
	e.take(free, "ann", five, tok)
	e.clock.Advance(3 * time.Second)
	ok, err = e.s.Reset(storage.AllNamespaces, "ann")
	require.NoError(t, err)
	assert.False(t, ok)
}

// testFullIsAbsent checks the one definition of the bucket now: a bucket
// that has refilled is absent from every read at once, sweep or no sweep.
func testFullIsAbsent(t *testing.T, e *env) {
	e.take(free, "a", five, tok)   // full 3 s later
	e.take(free, "b", five, 2*tok) // 6 s
	e.take(cell, "c", five, 3*tok) // 9 s
	e.take(paid, "c", five, 4*tok) // 12 s
	want := []struct {
		at   time.Duration
		keys []string
	}{
		{0, []string{"a", "b", "c"}},
		{3*time.Second - 1, []string{"a", "b", "c"}},
		{3 * time.Second, []string{"b", "c"}},
		{6 * time.Second, []string{"c"}},
		{9 * time.Second, []string{"c"}},
		{12 * time.Second, nil},
	}
	elapsed := time.Duration(0)
	for _, w := range want {
		e.clock.Advance(w.at - elapsed)
		elapsed = w.at
		assert.Equal(t, w.keys, e.scanAll(), "scan at +%v", w.at)
		assert.Equal(t, len(w.keys), e.len(), "len at +%v", w.at)
		for _, k := range []string{"a", "b", "c"} {
			nss, err := e.s.Namespaces(k)
			require.NoError(t, err)
			assert.Equal(t, slices.Contains(w.keys, k), len(nss) > 0, "namespaces of %s at +%v", k, w.at)
		}
	}
	nss, err := e.s.Namespaces("c")
	require.NoError(t, err)
	assert.Empty(t, nss)
}

func testScanUnderChurn(t *testing.T, e *env) {
	const n = 500
	var stable []string
	for i := range n {
		k := "stable:" + itoa(i)
		stable = append(stable, k)
		e.take(free, k, five, tok)
	}
	// Keys come and go between the pages of a scan; every stable key is
	// returned at least once.
	seen := map[string]bool{}
	var cursor uint64
	for i := 0; ; i++ {
		keys, next, err := e.s.Scan(cursor, 7)
		require.NoError(t, err)
		for _, k := range keys {
			seen[k] = true
		}
		e.take(free, "churn:"+itoa(i), five, tok)
		_, err = e.s.Reset(free, "churn:"+itoa(i-3))
		require.NoError(t, err)
		if cursor = next; cursor == 0 {
			break
		}
	}
	for _, k := range stable {
		assert.True(t, seen[k], "stable key %s missed", k)
	}
}

func testClear(t *testing.T, e *env) {
	for i := range 100 {
		e.take(free, itoa(i), five, tok)
		e.take(cell, itoa(i), five, tok)
	}
	require.NoError(t, e.s.PutOverride(storage.Override{NS: free, Key: "1", Limits: ten}))
	require.NoError(t, e.s.Clear())
	assert.Equal(t, 0, e.len())
	assert.Empty(t, e.scanAll())
	os, err := e.s.Overrides()
	require.NoError(t, err)
	assert.Len(t, os, 1, "overrides stay")
	assert.True(t, e.take(free, "1", five, 5*tok).Allowed, "full again")
	if e.h.Persistent {
		e.reopen(0)
		assert.Equal(t, 1, e.len(), "the clear reached the disk")
	}
}

func testOverrides(t *testing.T, e *env) {
	require.NoError(t, e.s.PutOverride(storage.Override{NS: free, Key: "joe", Limits: ten}))
	require.NoError(t, e.s.PutOverride(storage.Override{NS: paid, Key: "joe", Limits: two}))
	require.NoError(t, e.s.PutOverride(storage.Override{NS: free, Key: "joe", Limits: five})) // replaces
	require.NoError(t, e.s.PutOverride(storage.Override{NS: free, Key: "ann", Limits: ten}))
	require.NoError(t, e.s.DeleteOverride(free, "ann"))
	require.NoError(t, e.s.DeleteOverride(free, "nobody"), "deleting none is no error")
	want := []storage.Override{{NS: free, Key: "joe", Limits: five}, {NS: paid, Key: "joe", Limits: two}}
	got := func() []storage.Override {
		os, err := e.s.Overrides()
		require.NoError(t, err)
		slices.SortFunc(os, func(a, b storage.Override) int { return a.NS.Compare(b.NS) })
		return os
	}
	assert.Equal(t, want, got())
	err := e.s.PutOverride(storage.Override{NS: cell, Key: "joe", Limits: ten})
	assert.ErrorIs(t, err, bucket.ErrInvalid, "the cell namespace has no overrides")
	if e.h.Persistent {
		e.reopen(time.Hour)
		assert.Equal(t, want, got(), "after a restart")
	}
}

func testConcurrentExact(t *testing.T, e *env) {
	const workers, each = 8, 50
	limits := []bucket.Limit{{Capacity: 37 * tok, Rate: bucket.Every(time.Hour)}}
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			n := 0
			for range each {
				d, err := e.s.Take(free, "hot", limits, tok, nil)
				if !assert.NoError(t, err) {
					return
				}
				if d.Allowed {
					n++
				}
			}
			mu.Lock()
			allowed += n
			mu.Unlock()
		})
	}
	wg.Wait()
	assert.Equal(t, 37, allowed, "exactly the capacity, however the takes interleave")
}

func testWallClockSteps(t *testing.T, e *env) {
	e.take(free, "joe", five, 5*tok) // empty; 1 token every 3 s
	e.clock.StepWall(-time.Hour)     // NTP steps the wall clock back
	e.clock.Advance(3 * time.Second)
	d := e.take(free, "joe", five, 0)
	assert.Equal(t, tok, d.Remaining, "a wall step back does not freeze the bucket")
	e.clock.StepWall(2 * time.Hour) // and an hour forward of where it was
	d = e.take(free, "joe", five, 0)
	assert.Equal(t, tok, d.Remaining, "a wall step forward does not refill it")
	assert.Equal(t, 12*time.Second, d.ResetAfter)
	if e.h.Persistent {
		// Across a restart, the time the store was closed is wall time.
		e.reopen(3 * time.Second)
		d = e.take(free, "joe", five, 0)
		assert.Equal(t, 2*tok, d.Remaining, "restored across the step")
		assert.Equal(t, 9*time.Second, d.ResetAfter)
	}
}

func testInvalid(t *testing.T, e *env) {
	cases := []struct {
		name   string
		ns     storage.Namespace
		key    string
		limits []bucket.Limit
		each   []bucket.Decision
	}{
		{"empty key", free, "", five, nil},
		{"no limits", free, "k", nil, nil},
		{"bad limit", free, "k", []bucket.Limit{{Capacity: 0, Rate: bucket.PerSecond(1)}}, nil},
		{"too many limits", free, "k", make([]bucket.Limit, bucket.MaxLimits+1), nil},
		{"policy without a name", storage.PolicyNS(""), "k", five, nil},
		{"cell with a name", storage.Namespace{Kind: storage.KindCell, Name: "x"}, "k", five, nil},
		{"each of the wrong length", free, "k", five, make([]bucket.Decision, 2)},
	}
	for _, c := range cases {
		_, err := e.s.Take(c.ns, c.key, c.limits, tok, c.each)
		assert.ErrorIs(t, err, bucket.ErrInvalid, "take: %s", c.name)
		_, err = e.s.Set(c.ns, c.key, c.limits, tok, c.each)
		assert.ErrorIs(t, err, bucket.ErrInvalid, "set: %s", c.name)
	}
	assert.Equal(t, 0, e.len())
}

func testReopen(t *testing.T, e *env) {
	if !e.h.Persistent {
		t.Skip("the engine does not persist")
	}
	e.take(free, "joe", five, 4*tok)
	e.take(cell, "joe", ten, tok)
	e.take(free, "ann", five, tok)
	e.reopen(6 * time.Second) // closed for 6 s: 2 tokens earned
	d := e.take(free, "joe", five, 0)
	assert.Equal(t, 3*tok, d.Remaining, "refilled for the time it was closed")
	d = e.take(cell, "joe", ten, 0)
	assert.Equal(t, 10*tok, d.Remaining)
	assert.Equal(t, []string{"joe"}, e.scanAll(), "ann refilled while closed; joe's cell bucket too")
	snap, ok, err := e.s.Peek(free, "joe", nil)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, five, snap.Policy.Limits, "the stored limits")
	assert.Equal(t, T0, snap.UpdatedAt)
}

func testClosed(t *testing.T, e *env) {
	e.take(free, "joe", five, tok)
	require.NoError(t, e.s.Close())
	require.NoError(t, e.s.Close(), "Close is idempotent")
	closed := func(err error, what string) {
		t.Helper()
		assert.True(t, errors.Is(err, bucket.ErrClosed), "%s after Close: %v", what, err)
	}
	_, err := e.s.Take(free, "joe", five, tok, nil)
	closed(err, "Take")
	got := e.s.TakeBatch(free, []storage.TakeReq{{Key: "joe", Limits: five, Cost: tok}, {Key: "ann", Limits: five, Cost: tok}}, nil)
	require.Len(t, got, 2)
	closed(got[0].Err, "TakeBatch")
	closed(got[1].Err, "TakeBatch")
	_, _, err = e.s.Peek(free, "joe", nil)
	closed(err, "Peek")
	_, err = e.s.Set(free, "joe", five, tok, nil)
	closed(err, "Set")
	_, err = e.s.Reset(free, "joe")
	closed(err, "Reset")
	_, err = e.s.Namespaces("joe")
	closed(err, "Namespaces")
	_, _, err = e.s.Scan(0, 10)
	closed(err, "Scan")
	_, err = e.s.Len()
	closed(err, "Len")
	closed(e.s.Clear(), "Clear")
	_, err = e.s.Overrides()
	closed(err, "Overrides")
	closed(e.s.PutOverride(storage.Override{NS: free, Key: "joe", Limits: five}), "PutOverride")
	closed(e.s.DeleteOverride(free, "joe"), "DeleteOverride")
	closed(e.s.Save(), "Save")
	closed(e.s.Health(), "Health")
}
