package redisstore_test

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/redisstore"
	"github.com/bucketd/bucketd/storage/redisstore/redistest"
	"github.com/bucketd/bucketd/storage/storetest"
)

// fakeNow is the test seam: the instant the scripts are given instead of
// Redis's TIME. It follows the clock's monotonic reading from T0, as
// Redis's own clock would: a step of this process's wall clock never
// reaches Redis, and Redis's time goes on while a bucketd is down.
func fakeNow(c storage.Clock, mono0 time.Duration) func() time.Time {
	return func() time.Time { return storetest.T0.Add(c.Mono() - mono0) }
}

// TestConformance runs the store conformance suite on Redis standalone:
// one suite, two backends. Each subtest has its own redis-server.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		srv := redistest.Start(t)
		var once sync.Once
		var mono0 time.Duration
		return storetest.Harness{
			Persistent: true, // the state is Redis's; a new client sees it
			Open: func(c storage.Clock) (storage.Store, error) {
				once.Do(func() { mono0 = c.Mono() })
				return redisstore.Open(srv.URL, redisstore.Options{Timeout: 5 * time.Second, Now: fakeNow(c, mono0)})
			},
		}
	})
}

// TestConformanceCluster runs the suite on one three-master Redis Cluster,
// each subtest under a prefix of its own (Options.Prefix), so that they
// share the Cluster and not their state.
func TestConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Cluster")
	}
	url := "redis+cluster://" + strings.Join(redistest.StartCluster(t), ",")
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		prefix := "t" + strconv.FormatInt(n.Add(1), 10)
		var once sync.Once
		var mono0 time.Duration
		return storetest.Harness{
			Persistent: true,
			Open: func(c storage.Clock) (storage.Store, error) {
				once.Do(func() { mono0 = c.Mono() })
				return redisstore.Open(url, redisstore.Options{Timeout: 5 * time.Second, Now: fakeNow(c, mono0), Prefix: prefix})
			},
		}
	})
}
