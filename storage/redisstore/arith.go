package redisstore

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/storage"
)

// The take runs in Redis's Lua, whose numbers are doubles, exact to 2^53.
// The script keeps the arithmetic of package bucket exact by reducing each
// rate by gcd(tokens, per): n micro-tokens every p ns, and a remainder in
// 1/p of a micro-token (bucket.State.Rem divided by the gcd). Every product
// it makes is at most capacity × p, so that is what a limit must keep within
// maxProduct. Common limits are far inside it: 100 every second gives p = 10,
// 5000 a day p = 17280, 1 every 3 s p = 3000; a capacity of 10^6 tokens
// allows any p up to 4503. Instants are kept in nanoseconds from the current
// second, exact for 92 days either side, and every window is at most 2^52 ns (52 days).
const maxProduct = 1 << 52

// spec is a limit as the script reads it: "capacity:n:p:tokens:per:rate".
func spec(l bucket.Limit) (string, error) {
	if err := l.Validate(); err != nil {
		return "", err
	}
	n, p := uint64(l.Rate.Tokens), uint64(l.Rate.Per)
	g := gcd(n, p)
	n, p = n/g, p/g
	if c := uint64(l.Capacity); c > maxProduct/p {
		return "", fmt.Errorf("limit %s per %s: the Redis store needs capacity × period / gcd(rate tokens, period) "+
			"(in micro-tokens and ns) of at most 2^52, and this one is %d × %d: %w", l.Capacity, l.Rate, c, p, bucket.ErrInvalid)
	}
	return fmt.Sprintf("%d:%d:%d:%d:%d:%s", l.Capacity, n, p, l.Rate.Tokens, l.Rate.Per, l.Rate), nil
}

// parseSpec returns the limit a spec was made from.
func parseSpec(s string) (bucket.Limit, error) {
	f := strings.SplitN(s, ":", 6)
	if len(f) != 6 {
		return bucket.Limit{}, fmt.Errorf("redis store: malformed limit %q", s)
	}
	var v [3]int64
	for i, j := range []int{0, 3, 4} {
		n, err := strconv.ParseInt(f[j], 10, 64)
		if err != nil {
			return bucket.Limit{}, fmt.Errorf("redis store: malformed limit %q", s)
		}
		v[i] = n
	}
	return bucket.Limit{Capacity: bucket.Tokens(v[0]), Rate: bucket.Rate{Tokens: bucket.Tokens(v[1]), Per: time.Duration(v[2])}}, nil
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// clampCost bounds a cost or an amount of tokens to what the script
// compares exactly: any capacity is below maxProduct.
func clampCost(c bucket.Tokens) int64 {
	return min(max(int64(c), -maxProduct-1), maxProduct+1)
}

// The keys: a bucket is the hash "PREFIX:{KEY}:NS", NS being the policy's
// name or "(cl.throttle)"; a key's namespaces are the set "PREFIX-ns:{KEY}";
// the overrides are the hash "PREFIX-overrides". PREFIX is "bucketd" unless
// Options.Prefix says otherwise. The braces make KEY the Cluster hash tag,
// so a key's buckets and its set are on one node and one script reaches
// them together. A KEY that starts with '}' or '~' is written with a '~'
// before it, so that the tag is never empty.
const (
	DefaultPrefix = "bucketd"
	cellID        = "(cl.throttle)"
)

// names are the names of a store's keys in Redis.
type names struct {
	bucketPrefix, indexPrefix, overrides string
}

func newNames(prefix string) names {
	return names{bucketPrefix: prefix + ":{", indexPrefix: prefix + "-ns:{", overrides: prefix + "-overrides"}
}

// checkPrefix refuses a prefix that a SCAN pattern or a hash tag would
// misread.
func checkPrefix(p string) error {
	if p == "" || strings.ContainsAny(p, "{}*?[]\\") {
		return fmt.Errorf("redis store: prefix %q: want a non-empty name without braces or glob characters", p)
	}
	return nil
}

func tag(key string) string {
	if key[0] == '}' || key[0] == '~' {
		return "~" + key
	}
	return key
}

func untag(t string) string { return strings.TrimPrefix(t, "~") }

func (n names) bucketKey(ns storage.Namespace, key string) string {
	return n.bucketPrefix + tag(key) + "}:" + nsID(ns)
}

func (n names) indexKey(key string) string { return n.indexPrefix + tag(key) + "}" }

// bucketsOf is the prefix of key's buckets, given its index.
func (n names) bucketsOf(index string) string {
	return n.bucketPrefix + strings.TrimPrefix(index, n.indexPrefix) + ":"
}

// keyOf returns the key of an index, false if it is not one.
func (n names) keyOf(index string) (string, bool) {
	s, ok := strings.CutPrefix(index, n.indexPrefix)
	if !ok || !strings.HasSuffix(s, "}") || len(s) < 2 {
		return "", false
	}
	k := untag(s[:len(s)-1])
	if k == "" || n.indexKey(k) != index { // not a name the store writes
		return "", false
	}
	return k, true
}

func nsID(ns storage.Namespace) string {
	if ns.Kind == storage.KindCell {
		return cellID
	}
	return ns.Name
}

func nsOf(id string) storage.Namespace {
	if id == cellID {
		return storage.CellNS
	}
	return storage.PolicyNS(id)
}
