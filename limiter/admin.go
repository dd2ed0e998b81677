package limiter

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
)

// reset makes key's bucket under policy full, or every bucket of key (CL.THROTTLE's
// too) when policy is "". It reports whether one was not full. The error
// wraps bucket.ErrUnknownPolicy for a policy the server does not have.
func (l *Limiter) reset(key, policy string) (bool, error) {
	ns := storage.AllNamespaces
	if policy != "" {
		if _, err := l.policies.Load().resolve(key, policy); err != nil {
			return false, err
		}
		ns = storage.PolicyNS(policy)
	}
	return l.store.Reset(ns, key)
}

// set makes key's bucket under policy ("" is the default) hold tokens now,
// clamped to each limit's capacity: an administrator's grant or drain. It
// returns a peek at the bucket. The error wraps bucket.ErrUnknownPolicy or
// bucket.ErrInvalid, or bucket.ErrNotDurable as for Take.
func (l *Limiter) set(key, policy string, tokens bucket.Tokens) (bucket.Result, error) {
	pe, err := l.policies.Load().resolve(key, policy)
	if err != nil {
		return bucket.Result{}, err
	}
	res := bucket.Result{Policy: pe.public()}
	if len(pe.Limits) > 1 {
		res.Limits = make([]bucket.Decision, len(pe.Limits))
	}
	res.Decision, err = l.store.Set(storage.PolicyNS(pe.Name), key, pe.Limits, tokens, res.Limits)
	return res, err
}

// maxKeysPage is the most keys Keys returns at once.
const maxKeysPage = 10_000

// keys lists the keys that have a bucket, in byte order: those that start
// with prefix and sort after after, at most limit (<= 0 means 100, at most
// 10 000) of them. next is the last key returned when there may be more,
// else "". Each call reads every key in memory: it is for administrators,
// not the request path.
func (l *Limiter) keys(prefix, after string, limit int) (keys []string, next string, err error) {
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, maxKeysPage)
	var cursor uint64
	for {
		batch, nc, err := l.store.Scan(cursor, 1024)
		if err != nil {
			return nil, "", err
		}
		for _, k := range batch {
			if k > after && strings.HasPrefix(k, prefix) {
				keys = append(keys, k)
			}
		}
		if cursor = nc; cursor == 0 {
			break
		}
	}
	slices.Sort(keys)
	keys = slices.Compact(keys) // a scan may return a key twice
	if len(keys) > limit {
		keys = keys[:limit]
		next = keys[limit-1]
	}
	return keys, next, nil
}

// Save makes every change durable now.
func (l *Limiter) Save() error { return l.store.Save() }

// LastSave is when every change was last durable.
func (l *Limiter) LastSave() time.Time { return l.store.LastSave() }

// Backup writes a consistent copy of the store's state, as one data file,
// to w. The error wraps errors.ErrUnsupported for a store that keeps no
// file of its own.
func (l *Limiter) Backup(w io.Writer) error {
	b, ok := l.store.(backuper)
	if !ok {
		return l.CanBackup()
	}
	_, err := b.Backup(w)
	return err
}

// backuper is a store that can copy its state as one data file.
type backuper interface {
	Backup(io.Writer) (int64, error)
}

// CanBackup returns nil if the store can make a backup (Backup), else an
// error wrapping errors.ErrUnsupported: the Redis store keeps no data file
// of bucketd's; Redis's own persistence (BGSAVE, AOF) backs it up.
func (l *Limiter) CanBackup() error {
	if _, ok := l.store.(backuper); !ok {
		return fmt.Errorf("backup: the store keeps no data file of bucketd's; back up Redis itself (BGSAVE, AOF): %w", errors.ErrUnsupported)
	}
	return nil
}

// Evicted returns how many keys the store evicted to stay within its
// bound on keys (storage.Options.MaxKeys); 0 for a store without one.
func (l *Limiter) Evicted() uint64 {
	if e, ok := l.store.(interface{ Evicted() uint64 }); ok {
		return e.Evicted()
	}
	return 0
}
