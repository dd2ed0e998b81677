package limiter_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/limiter"
)

// TestWatchIsDirtiedByChangesOnly: each change of a watched key's state
// dirties the watch; peeks, refused takes and changes of other keys do not.
func TestWatchIsDirtiedByChangesOnly(t *testing.T) {
	one := bucket.Limit{Capacity: tok(1), Rate: slow}
	tests := []struct {
		name  string
		setup func(l *limiter.Limiter) // before the watch
		op    func(l *limiter.Limiter) error
		dirty bool
	}{
		{"allowed take", nil, func(l *limiter.Limiter) error { _, err := l.Take("k", "", tok(1)); return err }, true},
		{"peek", nil, func(l *limiter.Limiter) error { _, err := l.Take("k", "", 0); return err }, false},
		{"take of another key", nil, func(l *limiter.Limiter) error { _, err := l.Take("other", "", tok(1)); return err }, false},
		{"refused take", func(l *limiter.Limiter) { _, _ = l.Take("k", "", tok(5)) },
			func(l *limiter.Limiter) error { _, err := l.Take("k", "", tok(1)); return err }, false},
		{"take over capacity", nil, func(l *limiter.Limiter) error { _, err := l.Take("k", "", tok(99)); return err }, false},
		{"allowed throttle", nil, func(l *limiter.Limiter) error { _, err := l.Throttle("k", one, tok(1)); return err }, true},
		{"throttle gives back", func(l *limiter.Limiter) { _, _ = l.Throttle("k", one, tok(1)) },
			func(l *limiter.Limiter) error { _, err := l.Throttle("k", one, -tok(1)); return err }, true},
		{"refused throttle", func(l *limiter.Limiter) { _, _ = l.Throttle("k", one, tok(1)) },
			func(l *limiter.Limiter) error { _, err := l.Throttle("k", one, tok(1)); return err }, false},
		{"inspect", func(l *limiter.Limiter) { _, _ = l.Take("k", "", tok(1)) },
			func(l *limiter.Limiter) error { _, _, err := l.Inspect("k"); return err }, false},
		{"set", nil, func(l *limiter.Limiter) error { return l.SetTokens("k", tok(2)) }, true},
		{"delete of a used key", func(l *limiter.Limiter) { _, _ = l.Take("k", "", tok(1)) },
			func(l *limiter.Limiter) error { _, err := l.Delete("k"); return err }, true},
		{"delete of a full key", nil, func(l *limiter.Limiter) error { _, err := l.Delete("k"); return err }, false},
		{"reset", func(l *limiter.Limiter) { _, _ = l.Take("k", "", tok(1)) },
			func(l *limiter.Limiter) error { _, err := l.Reset("k", ""); return err }, true},
		{"flush", func(l *limiter.Limiter) { _, _ = l.Take("k", "", tok(1)) },
			func(l *limiter.Limiter) error { return l.FlushAll() }, true},
		{"flush with the key full", func(l *limiter.Limiter) { _, _ = l.Take("other", "", tok(1)) },
			func(l *limiter.Limiter) error { return l.FlushAll() }, false},
		{"override", nil, func(l *limiter.Limiter) error {
			return l.SetOverride(bucket.Override{Key: "k", Limits: []bucket.Limit{one}})
		}, true},
		{"len and scan", nil, func(l *limiter.Limiter) error {
			_, err := l.Len()
			if err == nil {
				_, _, err = l.Scan(0, 10)
			}
			return err
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _, _ := newLimiter(t)
			if tt.setup != nil {
				tt.setup(l)
			}
			w := l.NewWatch()
			w.Add("k", "k2")
			require.NoError(t, tt.op(l))
			assert.Equal(t, tt.dirty, w.Dirty())

			ran := false
			err := l.Atomic([]string{"k"}, false, w, func(tx *limiter.Tx) error { ran = true; return nil })
			if tt.dirty {
				assert.ErrorIs(t, err, limiter.ErrWatchDirty)
			} else {
				assert.NoError(t, err)
			}
			assert.Equal(t, !tt.dirty, ran, "Atomic runs fn only with a clean watch")

			w.Reset()
			assert.False(t, w.Dirty(), "reset makes the watch clean")
			assert.Zero(t, w.Len())
			require.NoError(t, tt.op(l))
			assert.False(t, w.Dirty(), "a reset watch watches nothing")
		})
	}
}

// TestTxChangesDirtyOtherWatches: a transaction's own changes dirty the
// watches of other clients on those keys.
func TestTxChangesDirtyOtherWatches(t *testing.T) {
	l, _, _ := newLimiter(t)
	w := l.NewWatch()
	w.Add("k")
	require.NoError(t, l.Atomic([]string{"k"}, false, nil, func(tx *limiter.Tx) error {
		_, err := tx.Take("k", "", tok(1))
		return err
	}))
	assert.True(t, w.Dirty())
}

// TestAtomicExcludesOtherTakes runs transactions of ten takes of one key
// against plain takes of the same key, on a clock that does not move and
// a capacity a little under the takes (so tokens last nearly to the end):
// the capacity is allowed exactly, and within a transaction each allowed
// take leaves exactly one token less than the one before (no take came
// between them).
func TestAtomicExcludesOtherTakes(t *testing.T) {
	l, _, _ := newLimiter(t)
	const goroutines, rounds, perTx = 16, 40, 10
	const capacity = goroutines/2*rounds*(1+perTx) - 100
	require.NoError(t, l.SetPolicies("", []bucket.Policy{{Name: "p", Limits: []bucket.Limit{{Capacity: tok(capacity), Rate: slow}}}}))

	var allowed, interleaved atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range rounds {
				if g%2 == 0 {
					res, err := l.Take("k", "p", tok(1))
					if assert.NoError(t, err) && res.Allowed {
						allowed.Add(1)
					}
					continue
				}
				err := l.Atomic([]string{"k", "other"}, false, nil, func(tx *limiter.Tx) error {
					prev := bucket.Tokens(-1)
					for range perTx {
						r, err := tx.Take("k", "p", tok(1))
						if err != nil {
							return err
						}
						if !r.Allowed {
							continue
						}
						allowed.Add(1)
						if prev >= 0 && r.Remaining != prev-tok(1) {
							interleaved.Add(1)
						}
						prev = r.Remaining
					}
					return nil
				})
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(capacity), allowed.Load(), "exactly the capacity")
	assert.Zero(t, interleaved.Load(), "no take between those of a transaction")
}

// TestAtomicAllExcludesWholeStoreReads: a transaction on the whole store
// that resets a key and takes again is never seen half done by Len.
func TestAtomicAllExcludesWholeStoreReads(t *testing.T) {
	l, _, _ := newLimiter(t)
	take(t, l, "k", "", tok(1))
	var wg sync.WaitGroup
	var seenEmpty atomic.Bool
	wg.Go(func() {
		for range 200 {
			n, err := l.Len()
			assert.NoError(t, err)
			if n == 0 {
				seenEmpty.Store(true)
			}
		}
	})
	for range 200 {
		require.NoError(t, l.Atomic(nil, true, nil, func(tx *limiter.Tx) error {
			if err := tx.FlushAll(); err != nil {
				return err
			}
			_, err := tx.Take("k", "", tok(1))
			return err
		}))
	}
	wg.Wait()
	assert.False(t, seenEmpty.Load(), "Len saw the state between a flush and a take of one transaction")
}

// TestAtomicReturnsFnsError: fn's error comes back as is.
func TestAtomicReturnsFnsError(t *testing.T) {
	l, _, _ := newLimiter(t)
	boom := errors.New("boom")
	assert.ErrorIs(t, l.Atomic([]string{"k"}, false, nil, func(*limiter.Tx) error { return boom }), boom)
}
