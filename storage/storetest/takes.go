package storetest

// The cases of takes, peeks and carries.

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
)

func testTakeExact(t *testing.T, e *env) {
	for i := range 5 {
		d := e.take(free, "joe", five, tok)
		require.True(t, d.Allowed, "take %d", i+1)
		assert.Equal(t, bucket.Tokens(4-i)*tok, d.Remaining)
	}
	d := e.take(free, "joe", five, tok)
	assert.False(t, d.Allowed)
	assert.Equal(t, 3*time.Second, d.RetryAfter)
	assert.Equal(t, 15*time.Second, d.ResetAfter)

	e.clock.Advance(3*time.Second - 1)
	assert.False(t, e.take(free, "joe", five, tok).Allowed, "1 ns early")
	e.clock.Advance(1)
	assert.True(t, e.take(free, "joe", five, tok).Allowed, "on the dot")

	d = e.take(free, "ann", five, 6*tok)
	assert.False(t, d.Allowed)
	assert.Equal(t, bucket.Never, d.RetryAfter, "a cost above the capacity never fits")
	assert.Equal(t, 1, e.len(), "a refused take creates no bucket")
}

func testMultiLimit(t *testing.T, e *env) {
	each := make([]bucket.Decision, 2)
	d, err := e.s.Take(free, "k", two, 3*tok, each)
	require.NoError(t, err)
	require.True(t, d.Allowed)
	assert.Equal(t, bucket.Tokens(0), each[0].Remaining)
	assert.Equal(t, tok, each[1].Remaining)

	e.clock.Advance(2 * time.Second) // the burst earns 2, the minute almost nothing
	d, err = e.s.Take(free, "k", two, 2*tok, each)
	require.NoError(t, err)
	assert.False(t, d.Allowed, "the second limit holds only 1")
	assert.True(t, each[0].Allowed, "the first alone would allow it")
	snap, ok, err := e.s.Peek(free, "k", two)
	require.NoError(t, err)
	require.True(t, ok)
	require.Len(t, snap.Limits, 2)
	assert.Equal(t, 2*tok, snap.Limits[0].Remaining, "a refused take takes nothing from any limit")
}

func testNamespacesApart(t *testing.T, e *env) {
	e.take(free, "joe", five, 2*tok)
	e.take(paid, "joe", five, 3*tok)
	e.take(cell, "joe", ten, 4*tok)
	for _, c := range []struct {
		ns   storage.Namespace
		want bucket.Tokens
	}{{free, 3 * tok}, {paid, 2 * tok}, {cell, 6 * tok}} {
		snap, ok, err := e.s.Peek(c.ns, "joe", nil)
		require.NoError(t, err)
		require.True(t, ok, "%s", c.ns)
		assert.Equal(t, c.want, snap.Remaining, "%s", c.ns)
	}
	nss, err := e.s.Namespaces("joe")
	require.NoError(t, err)
	assert.Equal(t, []storage.Namespace{free, paid, cell}, nss)
	// A policy named like nothing else still shares nothing with the cell.
	_, ok, err := e.s.Peek(storage.PolicyNS("cell"), "joe", nil)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Equal(t, 1, e.len(), "one key")
}

func testPeek(t *testing.T, e *env) {
	_, ok, err := e.s.Peek(free, "joe", nil)
	require.NoError(t, err)
	assert.False(t, ok, "no bucket")
	e.take(free, "joe", five, 2*tok)
	e.clock.Advance(1500 * time.Millisecond)

	snap, ok, err := e.s.Peek(free, "joe", nil)
	require.NoError(t, err)
	require.True(t, ok)
	d := e.take(free, "joe", five, 0)
	assert.Equal(t, d, snap.Decision, "a peek under the stored limits is a take of 0")
	assert.Equal(t, 3*tok+tok/2, snap.Remaining)
	assert.Equal(t, five, snap.Policy.Limits)
	assert.Empty(t, snap.Policy.Name)
	assert.Equal(t, T0, snap.UpdatedAt, "updated when taken, in wall time")
	snap.Policy.Limits[0].Capacity = 1 // the caller's own copy
	again, _, err := e.s.Peek(free, "joe", nil)
	require.NoError(t, err)
	assert.Equal(t, five, again.Policy.Limits)

	// Peeks never change anything: the bucket refills to full and is gone.
	e.clock.Advance(4500 * time.Millisecond)
	_, ok, err = e.s.Peek(free, "joe", nil)
	require.NoError(t, err)
	assert.False(t, ok, "full")
}

func testCarryTokens(t *testing.T, e *env) {
	e.take(free, "joe", five, 3*tok) // 2 left
	d := e.take(free, "joe", ten, 0)
	assert.Equal(t, 2*tok, d.Remaining, "a policy's bucket keeps its tokens under new limits")
	assert.Equal(t, 10*tok, d.Limit)
	d = e.take(free, "joe", []bucket.Limit{{Capacity: tok, Rate: bucket.PerSecond(1)}}, 0)
	assert.Equal(t, tok, d.Remaining, "clamped to a smaller capacity")
}

func testCarryTime(t *testing.T, e *env) {
	// CL.THROTTLE k 99 1 60 50, then CL.THROTTLE k 4 1 60 0.
	big := []bucket.Limit{{Capacity: 100 * tok, Rate: bucket.Every(time.Minute)}}
	small := []bucket.Limit{{Capacity: 5 * tok, Rate: bucket.Every(time.Minute)}}
	d := e.take(cell, "k", big, 50*tok)
	require.True(t, d.Allowed)
	assert.Equal(t, 50*time.Minute, d.ResetAfter)
	d = e.take(cell, "k", small, 0)
	assert.Equal(t, 50*time.Minute, d.ResetAfter, "the time until full carries over")
	assert.Equal(t, bucket.Tokens(0), d.Remaining, "in debt: 45 minutes before the first token")
	assert.False(t, e.take(cell, "k", small, tok).Allowed)
	e.clock.Advance(46 * time.Minute)
	d = e.take(cell, "k", small, tok)
	assert.True(t, d.Allowed)
	assert.Equal(t, 5*time.Minute, d.ResetAfter)
	// Back under the big limit, 5 minutes from full: 95 tokens.
	d = e.take(cell, "k", big, 0)
	assert.Equal(t, 95*tok, d.Remaining)
}

func testGiveBack(t *testing.T, e *env) {
	e.take(cell, "k", ten, 7*tok)
	d := e.take(cell, "k", ten, -2*tok)
	assert.True(t, d.Allowed)
	assert.Equal(t, 5*tok, d.Remaining)
	d = e.take(cell, "k", ten, -20*tok)
	assert.Equal(t, 10*tok, d.Remaining, "never above the capacity")
	_, ok, err := e.s.Peek(cell, "k", nil)
	require.NoError(t, err)
	assert.False(t, ok, "given back to full: no bucket")
	d = e.take(cell, "new", ten, -tok)
	assert.Equal(t, 10*tok, d.Remaining)
	assert.Equal(t, 0, e.len())
}
