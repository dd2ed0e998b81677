package storage

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/bucketd/bucketd/bucket"
)

// overrideID is the bbolt key of an override: the policy's name, NUL, key.
// Only policy namespaces have overrides.
func overrideID(ns Namespace, key string) []byte {
	return append(append([]byte(ns.Name), 0), key...)
}

// checkOverride refuses an override that cannot be stored: its bbolt key
// (overrideID) must fit bbolt and read back as the same policy and key.
func checkOverride(ns Namespace, key string) error {
	if ns.Kind != KindPolicy {
		return fmt.Errorf("overrides are for policy namespaces, not %s: %w", ns, bucket.ErrInvalid)
	}
	if err := checkArgs(ns, key, []bucket.Limit{{Capacity: 1, Rate: bucket.Every(1)}}, nil); err != nil {
		return err
	}
	if bytes.IndexByte([]byte(ns.Name), 0) >= 0 {
		return fmt.Errorf("override under policy %q: a policy name with a NUL byte has no overrides: %w", ns.Name, bucket.ErrInvalid)
	}
	if n := len(ns.Name) + 1 + len(key); n > bolt.MaxKeySize {
		return fmt.Errorf("override of a key of %d bytes under policy %q: want at most %d bytes with the name: %w",
			len(key), ns.Name, bolt.MaxKeySize-len(ns.Name)-1, bucket.ErrInvalid)
	}
	return nil
}

// Overrides implements Store. An unreadable override is skipped with a
// warning.
func (db *DB) Overrides() ([]Override, error) {
	if db.closed.Load() {
		return nil, bucket.ErrClosed
	}
	var out []Override
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(overridesName).ForEach(func(k, v []byte) error {
			policy, key, ok := bytes.Cut(k, []byte{0})
			if !ok {
				db.log.Warn("storage: skipping unreadable override", "id", string(k))
				return nil
			}
			v, err := unseal(k, v)
			if err != nil {
				db.log.Warn("storage: skipping unreadable override", "id", string(k), "err", err)
				return nil
			}
			e, err := decode(v)
			if err != nil || len(e.subs) != 1 {
				db.log.Warn("storage: skipping unreadable override", "id", string(k), "err", err)
				return nil
			}
			out = append(out, Override{NS: PolicyNS(string(policy)), Key: string(key), Limits: e.subs[0].limits})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("storage: overrides: %w", err)
	}
	return out, nil
}

// PutOverride implements Store.
func (db *DB) PutOverride(o Override) error {
	if err := checkOverride(o.NS, o.Key); err != nil {
		return err
	}
	if err := checkArgs(o.NS, o.Key, o.Limits, nil); err != nil {
		return err
	}
	return db.writeOverride(o.NS, o.Key, o.Limits)
}

// DeleteOverride implements Store.
func (db *DB) DeleteOverride(ns Namespace, key string) error {
	if err := checkOverride(ns, key); err != nil {
		return err
	}
	return db.writeOverride(ns, key, nil)
}

// writeOverride stores (limits != nil) or deletes an override, in its own
// transaction, ordered with flushes by db.flushMu. No shard lock is held.
func (db *DB) writeOverride(ns Namespace, key string, limits []bucket.Limit) error {
	if db.closed.Load() {
		return bucket.ErrClosed
	}
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	err := db.disk.Update(func(tx *bolt.Tx) error {
		sl, err := newSealer(tx)
		if err != nil {
			return err
		}
		b := tx.Bucket(overridesName)
		id := overrideID(ns, key)
		if limits == nil {
			if err := sl.delete(b, &sl.d.overrides, id); err != nil {
				return err
			}
			return sl.done()
		}
		e := newEntry(key)
		s := e.add(ns, limits)
		for i, l := range limits {
			s.states[i] = bucket.State{Tokens: l.Capacity}
		}
		if err := sl.put(b, &sl.d.overrides, id, encode(nil, e)); err != nil {
			return err
		}
		return sl.done()
	})
	if err != nil {
		return fmt.Errorf("%w: storage: override: %w", bucket.ErrNotDurable, err)
	}
	return nil
}
