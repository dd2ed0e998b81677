package main

import (
	"log/slog"

	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/redisstore"
)

// openStore opens the store the flags choose: the Redis store with
// --store, else the embedded one at --data. info is what INFO shows of it.
func openStore(cfg config, log *slog.Logger) (storage.Store, func() map[string]string, error) {
	if cfg.store != "" {
		st, err := redisstore.Open(cfg.store, redisstore.Options{Timeout: cfg.storeTimeout})
		if err != nil {
			return nil, nil, err
		}
		info := func() map[string]string {
			return map[string]string{"store": redacted(cfg.store), "on_store_error": cfg.onStoreError.String()}
		}
		return st, info, nil
	}
	db, err := storage.Open(cfg.data, storage.Options{
		Sync:         cfg.sync,
		SyncInterval: cfg.syncInterval,
		MaxLogBytes:  cfg.maxLogBytes,
		MaxKeys:      cfg.maxKeys,
		Logger:       log,
	})
	if err != nil {
		return nil, nil, err
	}
	info := func() map[string]string {
		return map[string]string{"data_file": db.Path(), "sync_mode": db.SyncMode().String()}
	}
	return db, info, nil
}

// redacted is a store URL without its password, for logs and INFO.
func redacted(url string) string { return redisstore.Redact(url) }
