package bucket_test

import (
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

// demand is a client that takes cost every step, n times, from a bucket
// that starts full at t0, and always asks for more than the bucket earns.
type demand struct {
	l    bucket.Limit
	cost bucket.Tokens
	step time.Duration
	n    int64
}

// run makes the n takes and returns how many were allowed.
func (dm demand) run(t *testing.T) int64 {
	t.Helper()
	require.NoError(t, dm.l.Validate())
	s := bucket.Full(dm.l, t0)
	var allowed int64
	for k := range dm.n {
		var d bucket.Decision
		s, d = s.Take(dm.l, t0.Add(time.Duration(k)*dm.step), dm.cost)
		if d.Allowed {
			allowed++
		}
	}
	return allowed
}

// closedForm is how many takes dm allows, computed exactly: the bucket
// holds Capacity at the first take and earns elapsed×Tokens/Per by the
// last, elapsed = (n-1)×step. When a step earns less than cost and the
// capacity is at least cost plus what a step earns, the bucket drains
// towards empty and never refills to the capacity (so nothing earned is lost
// to the cap), and after the last take it holds less than cost (so every
// whole cost earned was taken):
//
//	allowed = floor((Capacity×Per + elapsed×Tokens) / (cost×Per))
func (dm demand) closedForm(t *testing.T) int64 {
	t.Helper()
	per := big.NewInt(int64(dm.l.Rate.Per))
	cost := new(big.Int).Mul(big.NewInt(int64(dm.cost)), per)
	step := new(big.Int).Mul(big.NewInt(int64(dm.step)), big.NewInt(int64(dm.l.Rate.Tokens)))
	capacity := new(big.Int).Mul(big.NewInt(int64(dm.l.Capacity)), per)
	require.Negative(t, step.Cmp(cost), "a step earns cost or more")
	require.GreaterOrEqual(t, capacity.Cmp(new(big.Int).Add(cost, step)), 0, "the capacity is less than cost plus a step")

	supply := new(big.Int).Mul(big.NewInt(dm.n-1), step)
	supply.Add(supply, capacity)
	return supply.Quo(supply, cost).Int64()
}

func TestTakeExactClosedForm(t *testing.T) {
	t.Parallel()
	const n = 10_000_000
	tests := []struct {
		name string
		dm   demand
		want int64
	}{
		// 5 + floor((n-1)(1s+1ns) / 3s)
		{"1 every 1s+1ns from 5 at 1/3s", demand{bucket.Limit{Capacity: 5 * tok, Rate: bucket.Every(3 * time.Second)}, tok, time.Second + 1, n}, 5 + (n-1)*int64(time.Second+1)/int64(3*time.Second)},
		{"0.25 every 100ms+1ns from 5 at 1/3s", demand{bucket.Limit{Capacity: 5 * tok, Rate: bucket.Every(3 * time.Second)}, tok / 4, 100*time.Millisecond + 1, n}, -1},
		{"2.5 every 333ms from 7 at 7/3s", demand{bucket.Limit{Capacity: 7 * tok, Rate: bucket.Rate{Tokens: 7 * tok, Per: 3 * time.Second}}, 5 * tok / 2, 333 * time.Millisecond, n}, -1},
		{"0.000003 every 1µs from 0.001 at 1/s", demand{bucket.Limit{Capacity: tok / 1000, Rate: bucket.PerSecond(1)}, 3, time.Microsecond, n}, -1},
		{"1 every 500ms from 3 at 0.999999/1.000003s", demand{bucket.Limit{Capacity: 3 * tok, Rate: bucket.Rate{Tokens: 999_999, Per: 1_000_003_000}}, tok, 500 * time.Millisecond, n}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := tt.dm.closedForm(t)
			if tt.want >= 0 {
				require.Equal(t, tt.want, want, "the closed form")
			}
			assert.Equal(t, want, tt.dm.run(t))
		})
	}
}

func TestTakeExactBillion(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("a billion takes take 30-40 s, and nearly 3 minutes under the race detector")
	}
	t.Parallel()
	const n = 1_000_000_000
	dm := demand{bucket.Limit{Capacity: 5 * tok, Rate: bucket.Every(3 * time.Second)}, tok, time.Second + 1, n}
	// (n-1)(1s+1ns) = 10^18-1 ns, so 5 + floor((10^18-1)/(3×10^9)).
	want := int64(5 + 333_333_333)
	require.Equal(t, want, dm.closedForm(t))
	start := time.Now()
	assert.Equal(t, want, dm.run(t))
	t.Logf("%d takes in %v", int64(n), time.Since(start))
}
