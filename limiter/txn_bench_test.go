package limiter_test

import (
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

// BenchmarkTakeParallel measures a take of one of 1024 keys from every
// core, nobody watching: the cost of the stripe's read lock on the path.
func BenchmarkTakeParallel(b *testing.B) {
	l, _, _ := newLimiter(b)
	require.NoError(b, l.SetPolicies("", []bucket.Policy{{Name: "p", Limits: []bucket.Limit{{Capacity: tok(1e12), Rate: slow}}}}))
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "user" + strconv.Itoa(i)
	}
	var n atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(n.Add(1)) * 7919
		for pb.Next() {
			i++
			if _, err := l.Take(keys[i%len(keys)], "p", tok(1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
