package app

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/bucketd/bucketd/limiter"
	"github.com/bucketd/bucketd/metrics"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/redisstore"
)

// OpenStore opens the store the flags choose: the Redis store with
// --store, else the embedded one at --data. info is what INFO shows of it.
func OpenStore(cfg Config, log *slog.Logger) (storage.Store, func(*limiter.Limiter) map[string]string, error) {
	if cfg.Store != "" {
		st, err := redisstore.Open(cfg.Store, redisstore.Options{Timeout: cfg.StoreTimeout, Prefix: cfg.StorePrefix})
		if err != nil {
			return nil, nil, err
		}
		info := func(lim *limiter.Limiter) map[string]string {
			status := "ok"
			if err := st.Health(); err != nil {
				status = "unavailable"
			}
			e := lim.StoreErrors()
			return map[string]string{
				"store": redisstore.Redact(cfg.Store), "store_status": status,
				"on_store_error":       cfg.OnStoreError.String(),
				"store_errors_refused": strconv.FormatUint(e.Refused, 10),
				"store_errors_allowed": strconv.FormatUint(e.Allowed, 10),
			}
		}
		return st, info, nil
	}
	db, err := storage.Open(cfg.Data, storage.Options{
		Sync:         cfg.Sync,
		SyncInterval: cfg.SyncInterval,
		MaxLogBytes:  cfg.MaxLogBytes,
		MaxKeys:      cfg.MaxKeys,
		Repair:       cfg.Repair,
		Logger:       log,
	})
	if err != nil {
		return nil, nil, err
	}
	info := func(*limiter.Limiter) map[string]string {
		return map[string]string{"data_file": db.Path(), "sync_mode": db.SyncMode().String()}
	}
	return db, info, nil
}

// RefreshOverrides reads the overrides from the shared store every d until
// ctx is done, so that one set through another instance applies here too.
func RefreshOverrides(ctx context.Context, lim *limiter.Limiter, d time.Duration, log *slog.Logger) {
	if d <= 0 {
		return
	}
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if changed, err := lim.RefreshOverrides(); err != nil {
				log.Debug("overrides not refreshed", "err", err)
			} else if changed {
				log.Info("overrides changed in the shared store")
			}
		}
	}
}

// Redacted is a store URL without its password, for logs and INFO.
func Redacted(url string) string { return redisstore.Redact(url) }

// StoreStats returns what the metrics show of st: the embedded store's
// counts, or of a store without them (Redis) its health alone.
func StoreStats(st storage.Store) func() metrics.StoreStats {
	if db, ok := st.(interface{ Stats() storage.Stats }); ok {
		return func() metrics.StoreStats { return metrics.StoreStats(db.Stats()) }
	}
	return func() metrics.StoreStats { return metrics.StoreStats{Healthy: st.Health() == nil} }
}
