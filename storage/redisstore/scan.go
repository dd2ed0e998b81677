package redisstore

import (
	"context"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The cursor of Scan holds the master being scanned (a Cluster's, in
// address order) above cursorBits, and Redis's SCAN cursor below.
const cursorBits = 40

// masters returns the clients of the masters, in address order: the one
// client of a standalone Redis.
func (s *Store) masters(ctx context.Context) ([]*redis.Client, error) {
	if s.cluster == nil {
		return []*redis.Client{s.rdb.(*redis.Client)}, nil
	}
	var out []*redis.Client
	var mu = make(chan struct{}, 1)
	err := s.cluster.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
		mu <- struct{}{}
		out = append(out, c)
		<-mu
		return nil
	})
	slices.SortFunc(out, func(a, b *redis.Client) int { return strings.Compare(a.Options().Addr, b.Options().Addr) })
	return out, err
}

// Scan implements storage.Store: a SCAN of the key indexes of one master
// (MATCH bucketd-ns:{*), and one live.lua per key found, pipelined, to
// drop the keys whose buckets are all full. A page costs two round trips.
func (s *Store) Scan(cursor uint64, count int) ([]string, uint64, error) {
	if err := s.checkOpen(); err != nil {
		return nil, 0, err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	nodes, err := s.masters(ctx)
	if err := s.fail(err); err != nil {
		return nil, 0, err
	}
	node := int(cursor >> cursorBits)
	if node >= len(nodes) {
		return nil, 0, nil
	}
	raw, rc, err := nodes[node].Scan(ctx, cursor&(1<<cursorBits-1), s.n.indexPrefix+"*", int64(max(count, 1))).Result()
	if err := s.fail(err); err != nil {
		return nil, 0, err
	}
	var next uint64
	switch {
	case rc != 0:
		next = uint64(node)<<cursorBits | rc
	case node+1 < len(nodes):
		next = uint64(node+1) << cursorBits
	}
	var keys []string
	for _, r := range raw {
		if k, ok := s.n.keyOf(r); ok {
			keys = append(keys, k)
		}
	}
	live, err := s.liveAll(keys)
	return live, next, err
}

// liveAll returns the keys that have a bucket that is not full.
func (s *Store) liveAll(keys []string) ([]string, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	for attempt := 0; ; attempt++ {
		ctx, cancel := s.ctx()
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(keys))
		for i, k := range keys {
			cmds[i] = liveScript.EvalSha(ctx, pipe, []string{s.n.indexKey(k)}, s.nowArg(), s.n.bucketsOf(s.n.indexKey(k)), "")
		}
		_, err := pipe.Exec(ctx)
		cancel()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") && attempt == 0 {
			if err := s.fail(s.load()); err != nil {
				return nil, err
			}
			continue
		}
		if err := s.fail(err); err != nil {
			return nil, err
		}
		var out []string
		for i, c := range cmds {
			if ids, _ := c.StringSlice(); len(ids) > 0 {
				out = append(out, keys[i])
			}
		}
		return out, nil
	}
}

// Len implements storage.Store. It scans every key index of every master
// (a SCAN and a live.lua per key): O(keys) round trips in pages, fine for
// INFO and DBSIZE now and then, not for every request.
func (s *Store) Len() (int, error) {
	seen := map[string]struct{}{}
	var cursor uint64
	for {
		keys, next, err := s.Scan(cursor, 1000)
		if err != nil {
			return 0, err
		}
		for _, k := range keys {
			seen[k] = struct{}{}
		}
		if cursor = next; cursor == 0 {
			return len(seen), nil
		}
	}
}

// Clear implements storage.Store: it unlinks every bucket and key index of
// every master (overrides stay). Takes made while it runs may survive it.
func (s *Store) Clear() error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*s.timeout)
	defer cancel()
	nodes, err := s.masters(ctx)
	if err := s.fail(err); err != nil {
		return err
	}
	for _, n := range nodes {
		for _, match := range []string{s.n.bucketPrefix + "*", s.n.indexPrefix + "*"} {
			it := n.Scan(ctx, 0, match, 1000).Iterator()
			var batch []string
			flush := func() error {
				if len(batch) == 0 {
					return nil
				}
				pipe := s.rdb.Pipeline()
				for _, k := range batch {
					pipe.Unlink(ctx, k)
				}
				_, err := pipe.Exec(ctx)
				batch = batch[:0]
				return err
			}
			for it.Next(ctx) {
				if batch = append(batch, it.Val()); len(batch) == 1000 {
					if err := s.fail(flush()); err != nil {
						return err
					}
				}
			}
			if err := s.fail(it.Err()); err != nil {
				return err
			}
			if err := s.fail(flush()); err != nil {
				return err
			}
		}
	}
	return nil
}
