package redisstore

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
)

// Overrides are the fields of one hash, bucketd-overrides: the field is
// "LEN:NSKEY", LEN the length of the namespace id NS, and the value the
// limits' specs separated by spaces.

func overrideField(ns storage.Namespace, key string) string {
	id := nsID(ns)
	return strconv.Itoa(len(id)) + ":" + id + key
}

func parseOverride(field, value string) (storage.Override, error) {
	n, rest, ok := strings.Cut(field, ":")
	l, err := strconv.Atoi(n)
	if !ok || err != nil || l < 0 || l > len(rest) {
		return storage.Override{}, fmt.Errorf("redis store: malformed override field %q", field)
	}
	o := storage.Override{NS: nsOf(rest[:l]), Key: rest[l:]}
	for _, sp := range strings.Fields(value) {
		lim, err := parseSpec(sp)
		if err != nil {
			return storage.Override{}, err
		}
		o.Limits = append(o.Limits, lim)
	}
	return o, nil
}

// Overrides implements storage.Store.
func (s *Store) Overrides() ([]storage.Override, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	m, err := s.rdb.HGetAll(ctx, s.n.overrides).Result()
	if err := s.fail(err); err != nil {
		return nil, err
	}
	out := make([]storage.Override, 0, len(m))
	for f, v := range m {
		o, err := parseOverride(f, v)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// PutOverride implements storage.Store.
func (s *Store) PutOverride(o storage.Override) error {
	if o.NS.Kind != storage.KindPolicy {
		return fmt.Errorf("overrides are for policy namespaces, not %s: %w", o.NS, bucket.ErrInvalid)
	}
	specs, err := checkArgs(o.NS, o.Key, o.Limits, nil)
	if err != nil {
		return err
	}
	if err := s.checkOpen(); err != nil {
		return err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	return s.fail(s.rdb.HSet(ctx, s.n.overrides, overrideField(o.NS, o.Key), strings.Join(specs, " ")).Err())
}

// DeleteOverride implements storage.Store.
func (s *Store) DeleteOverride(ns storage.Namespace, key string) error {
	if err := ns.Validate(); err != nil {
		return err
	}
	if err := s.checkOpen(); err != nil {
		return err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	return s.fail(s.rdb.HDel(ctx, s.n.overrides, overrideField(ns, key)).Err())
}
