// Package storetest holds the behaviour every storage.Store must show, as
// one conformance suite (after testing/fstest.TestFS): the embedded engine
// runs it, and so must every other engine and any test double, so that the
// fronts' tests and every engine agree on one behaviour.
//
// It also has Clock, a storage.Clock that moves only when told.
package storetest

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
)

// Harness opens stores for one test. Each call of the function Run is given
// (NewHarness's result) starts from an empty state. Open opens a store over
// that state on clock; after the store is closed, Open opens the same
// state again, as a restart would.
type Harness struct {
	Open func(clock storage.Clock) (storage.Store, error)
	// Persistent is set for an engine whose state survives Close.
	Persistent bool
}

// T0 is the wall time every test starts at.
var T0 = time.Unix(1_700_000_000, 0)

const tok = bucket.Token

var (
	// five is the original service's limit: 5 tokens, one every 3 s.
	five = []bucket.Limit{{Capacity: 5 * tok, Rate: bucket.Every(3 * time.Second)}}
	ten  = []bucket.Limit{{Capacity: 10 * tok, Rate: bucket.Every(time.Second)}}
	// two is a policy of two limits: a burst of 3, and 4 a minute.
	two = []bucket.Limit{
		{Capacity: 3 * tok, Rate: bucket.PerSecond(1)},
		{Capacity: 4 * tok, Rate: bucket.Rate{Tokens: 4 * tok, Per: time.Minute}},
	}
	free = storage.PolicyNS("free")
	paid = storage.PolicyNS("paid")
	cell = storage.CellNS
)

// Run runs the conformance suite against the stores that newHarness
// makes, one harness per subtest.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	tests := []struct {
		name string
		run  func(t *testing.T, h *env)
	}{
		{"TakeExact", testTakeExact},
		{"TakeMultiLimitAllOrNothing", testMultiLimit},
		{"NamespacesAreApart", testNamespacesApart},
		{"PeekIsATakeOfZero", testPeek},
		{"CarryTokensAcrossLimits", testCarryTokens},
		{"CarryTimeAcrossLimits", testCarryTime},
		{"GiveBack", testGiveBack},
		{"Set", testSet},
		{"Reset", testReset},
		{"FullIsAbsentEverywhere", testFullIsAbsent},
		{"ScanUnderChurn", testScanUnderChurn},
		{"Clear", testClear},
		{"Overrides", testOverrides},
		{"ConcurrentTakesExact", testConcurrentExact},
		{"WallClockSteps", testWallClockSteps},
		{"InvalidInput", testInvalid},
		{"Reopen", testReopen},
		{"ClosedStore", testClosed},
		{"BatchRepeatedKey", testBatchRepeatedKey},
		{"BatchMixed", testBatchMixed},
		{"BatchInvalid", testBatchInvalid},
		{"BatchRandomIsTakesOneByOne", testBatchRandom},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			e := &env{t: t, h: h, clock: NewClock(T0)}
			e.open()
			tc.run(t, e)
		})
	}
}

// env is one test's store and clock.
type env struct {
	t     *testing.T
	h     Harness
	clock *Clock
	s     storage.Store
}

func (e *env) open() {
	e.t.Helper()
	s, err := e.h.Open(e.clock)
	require.NoError(e.t, err)
	e.s = s
	e.t.Cleanup(func() { _ = s.Close() })
}

// reopen closes the store and opens its state again, after d has passed.
func (e *env) reopen(d time.Duration) {
	e.t.Helper()
	require.NoError(e.t, e.s.Close())
	e.clock.Advance(d)
	e.open()
}

func (e *env) take(ns storage.Namespace, key string, limits []bucket.Limit, cost bucket.Tokens) bucket.Decision {
	e.t.Helper()
	d, err := e.s.Take(ns, key, limits, cost, nil)
	require.NoError(e.t, err)
	return d
}

func (e *env) len() int {
	e.t.Helper()
	n, err := e.s.Len()
	require.NoError(e.t, err)
	return n
}

// scanAll returns every key a full scan returns, sorted, without repeats.
func (e *env) scanAll() []string {
	e.t.Helper()
	var all []string
	var cursor uint64
	for i := 0; ; i++ {
		require.Less(e.t, i, 100_000, "the scan does not end")
		keys, next, err := e.s.Scan(cursor, 10)
		require.NoError(e.t, err)
		all = append(all, keys...)
		if cursor = next; cursor == 0 {
			break
		}
	}
	slices.Sort(all)
	return slices.Compact(all)
}

func itoa(i int) string { return strconv.Itoa(i) }
