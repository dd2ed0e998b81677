package redisstore

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
)

// maxKey is the longest key, as the embedded engine's.
const maxKey = 32768

// checkArgs refuses what no bucket can be, as the embedded engine does, and
// limits beyond the script's exact range; it returns the limits' specs.
func checkArgs(ns storage.Namespace, key string, limits []bucket.Limit, each []bucket.Decision) ([]string, error) {
	if err := ns.Validate(); err != nil {
		return nil, err
	}
	if ns.Kind == storage.KindPolicy && ns.Name == cellID {
		return nil, fmt.Errorf("policy namespace %q: the name is CL.THROTTLE's in Redis: %w", ns.Name, bucket.ErrInvalid)
	}
	if len(key) == 0 || len(key) > maxKey {
		return nil, fmt.Errorf("key of %d bytes: want 1 to %d bytes: %w", len(key), maxKey, bucket.ErrInvalid)
	}
	if len(limits) == 0 || len(limits) > bucket.MaxLimits {
		return nil, fmt.Errorf("%d limits: want 1 to %d: %w", len(limits), bucket.MaxLimits, bucket.ErrInvalid)
	}
	specs := make([]string, len(limits))
	for i, l := range limits {
		sp, err := spec(l)
		if err != nil {
			return nil, err
		}
		specs[i] = sp
	}
	if each != nil && len(each) != len(limits) {
		return nil, fmt.Errorf("%d decisions for %d limits: %w", len(each), len(limits), bucket.ErrInvalid)
	}
	return specs, nil
}

// result is a reply of take.lua.
type result struct {
	found     bool
	d         bucket.Decision
	each      []bucket.Decision
	updatedAt time.Time
	limits    []bucket.Limit
}

// run runs take.lua on (ns, key)'s bucket.
func (s *Store) run(mode string, ns storage.Namespace, key string, specs []string, amount int64) (result, error) {
	if err := s.checkOpen(); err != nil {
		return result{}, err
	}
	carry := "t"
	if ns.Carry() == bucket.CarryTime {
		carry = "c"
	}
	args := make([]any, 0, 7+len(specs))
	args = append(args, mode, s.nowArg(), amount, carry, len(specs), ns.Name, nsID(ns))
	for _, sp := range specs {
		args = append(args, sp)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	v, err := takeScript.Run(ctx, s.rdb, []string{s.n.bucketKey(ns, key), s.n.indexKey(key)}, args...).Slice()
	if err := s.fail(err); err != nil {
		return result{}, err
	}
	return parseResult(v)
}

// parseResult reads {1, allowed, limit, remaining, retry, reset, k,
// k×5 decisions, updated_at, k specs}, or {0}.
func parseResult(v []any) (result, error) {
	bad := func() (result, error) { return result{}, fmt.Errorf("redis store: malformed script reply %v", v) }
	if len(v) == 0 {
		return bad()
	}
	if n, _ := v[0].(int64); n == 0 {
		return result{}, nil
	}
	if len(v) < 7 {
		return bad()
	}
	k, _ := v[6].(int64)
	if k < 1 || len(v) != 7+int(k)*5+1+int(k) {
		return bad()
	}
	dec := func(w []any) (bucket.Decision, bool) {
		var n [5]int64
		for i := range n {
			x, ok := w[i].(int64)
			if !ok {
				return bucket.Decision{}, false
			}
			n[i] = x
		}
		d := bucket.Decision{Allowed: n[0] == 1, Limit: bucket.Tokens(n[1]), Remaining: bucket.Tokens(n[2]),
			RetryAfter: time.Duration(n[3]), ResetAfter: time.Duration(n[4])}
		if n[3] < 0 {
			d.RetryAfter = bucket.Never
		}
		return d, true
	}
	r := result{found: true}
	var ok bool
	if r.d, ok = dec(v[1:6]); !ok {
		return bad()
	}
	r.each = make([]bucket.Decision, k)
	for i := range r.each {
		if r.each[i], ok = dec(v[7+i*5:]); !ok {
			return bad()
		}
	}
	at := 7 + int(k)*5
	if u, _ := v[at].(string); u != "" {
		ns, err := strconv.ParseInt(u, 10, 64)
		if err != nil {
			return bad()
		}
		r.updatedAt = time.Unix(0, ns)
	}
	for _, x := range v[at+1:] {
		sp, _ := x.(string)
		l, err := parseSpec(sp)
		if err != nil {
			return result{}, err
		}
		r.limits = append(r.limits, l)
	}
	return r, nil
}

// Take implements storage.Store.
func (s *Store) Take(ns storage.Namespace, key string, limits []bucket.Limit, cost bucket.Tokens, each []bucket.Decision) (bucket.Decision, error) {
	specs, err := checkArgs(ns, key, limits, each)
	if err != nil {
		return bucket.Decision{}, err
	}
	r, err := s.run("take", ns, key, specs, clampCost(cost))
	if err != nil {
		return bucket.Decision{}, err
	}
	copy(each, r.each)
	return r.d, nil
}

// TakeBatch implements storage.Store: the takes one after the other, each
// one script call. (No other client's change comes between them only when
// the caller holds their keys, as the limiter's stripe locks do: Redis
// runs each script alone, not the batch.)
func (s *Store) TakeBatch(ns storage.Namespace, reqs []storage.TakeReq, out []storage.TakeResult) []storage.TakeResult {
	for _, q := range reqs {
		d, err := s.Take(ns, q.Key, q.Limits, q.Cost, nil)
		out = append(out, storage.TakeResult{Decision: d, Err: err})
	}
	return out
}

// Set implements storage.Store.
func (s *Store) Set(ns storage.Namespace, key string, limits []bucket.Limit, tokens bucket.Tokens, each []bucket.Decision) (bucket.Decision, error) {
	specs, err := checkArgs(ns, key, limits, each)
	if err != nil {
		return bucket.Decision{}, err
	}
	r, err := s.run("set", ns, key, specs, clampCost(tokens))
	if err != nil {
		return bucket.Decision{}, err
	}
	copy(each, r.each)
	return r.d, nil
}

// Peek implements storage.Store.
func (s *Store) Peek(ns storage.Namespace, key string, limits []bucket.Limit) (bucket.Snapshot, bool, error) {
	var specs []string
	if limits != nil {
		var err error
		if specs, err = checkArgs(ns, key, limits, nil); err != nil {
			return bucket.Snapshot{}, false, err
		}
	} else if err := ns.Validate(); err != nil {
		return bucket.Snapshot{}, false, err
	} else if key == "" {
		return bucket.Snapshot{}, false, nil
	}
	r, err := s.run("peek", ns, key, specs, 0)
	if err != nil || !r.found {
		return bucket.Snapshot{}, false, err
	}
	snap := bucket.Snapshot{
		Policy:    bucket.Policy{Limits: r.limits},
		Decision:  r.d,
		UpdatedAt: r.updatedAt,
	}
	if len(r.limits) > 1 {
		snap.Limits = r.each
	}
	return snap, true, nil
}

// live runs live.lua on key: the ids of its buckets that are not full,
// after removing reset's ("*" all, "" none).
func (s *Store) live(c redis.Scripter, key, reset string) *redis.Cmd {
	ctx, cancel := s.ctx()
	defer cancel()
	return liveScript.Run(ctx, c, []string{s.n.indexKey(key)}, s.nowArg(), s.n.bucketsOf(s.n.indexKey(key)), reset)
}

// Reset implements storage.Store.
func (s *Store) Reset(ns storage.Namespace, key string) (bool, error) {
	reset := "*"
	if ns != storage.AllNamespaces {
		if err := ns.Validate(); err != nil {
			return false, err
		}
		reset = nsID(ns)
	}
	if err := s.checkOpen(); err != nil {
		return false, err
	}
	if key == "" {
		return false, nil
	}
	ids, err := s.live(s.rdb, key, reset).StringSlice()
	if err := s.fail(err); err != nil {
		return false, err
	}
	return len(ids) > 0, nil
}

// Namespaces implements storage.Store.
func (s *Store) Namespaces(key string) ([]storage.Namespace, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	if key == "" {
		return nil, nil
	}
	ids, err := s.live(s.rdb, key, "").StringSlice()
	if err := s.fail(err); err != nil {
		return nil, err
	}
	out := make([]storage.Namespace, len(ids))
	for i, id := range ids {
		out[i] = nsOf(id)
	}
	slices.SortFunc(out, storage.Namespace.Compare)
	return out, nil
}
