package limiter

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/bucketd/bucketd/bucket"
)

// StoreErrors counts the takes the store could not serve
// (bucket.ErrStoreUnavailable: Redis unreachable or too slow) since start.
type StoreErrors struct {
	// Refused are the takes that failed closed: answered with the error.
	Refused uint64
	// Allowed are the takes that failed open: allowed without the store.
	Allowed uint64
}

type storeErrCounts struct {
	refused, allowed atomic.Uint64
	lastLog          atomic.Int64 // Unix ns of the last log line, to log once a second
}

// StoreErrors returns the counts of takes the store could not serve, for
// the metrics.
func (l *Limiter) StoreErrors() StoreErrors {
	return StoreErrors{Refused: l.storeErr.refused.Load(), Allowed: l.storeErr.allowed.Load()}
}

// storeFailed answers a take the store could not serve, under mode
// (FailDefault: the limiter's). Failing open, it is allowed, with the
// policy's capacity as Limit and nothing known Remaining (0), and counted;
// failing closed, it returns err. A peek (cost 0) always returns err: there
// is nothing to show. Either way nothing was taken.
func (l *Limiter) storeFailed(res bucket.Result, mode bucket.FailMode, capacity, cost bucket.Tokens, err error) (bucket.Result, error) {
	if mode == bucket.FailDefault {
		mode = l.failMode
	}
	open := mode == bucket.FailOpen && cost > 0
	if now := time.Now().UnixNano(); now-l.storeErr.lastLog.Load() > int64(time.Second) {
		l.storeErr.lastLog.Store(now)
		l.log.LogAttrs(context.Background(), slog.LevelWarn, "store unavailable",
			slog.String("fails", map[bool]string{true: "open", false: "closed"}[open]), slog.String("err", err.Error()))
	}
	if !open {
		if cost > 0 {
			l.storeErr.refused.Add(1)
		}
		return bucket.Result{}, err
	}
	l.storeErr.allowed.Add(1)
	res.Decision = bucket.Decision{Allowed: true, Limit: capacity}
	for i := range res.Limits {
		res.Limits[i] = res.Decision
	}
	return res, nil
}
