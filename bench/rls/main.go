// Command rls is a load generator for Envoy's rate limit service: C
// goroutines, over N gRPC connections, call ShouldRateLimit back to back
// for a bounded time (after a warm-up), each with one descriptor
// (KEY, a value drawn from VALUES distinct ones), as Envoy's filter would
// for a per-client limit. It prints the calls per second, the share that
// answered OVER_LIMIT, and the latency quantiles of a sample.
//
// Usage: rls -addr 127.0.0.1:8081 [-c 64] [-conns 4] [-d 10s] [-warmup 2s]
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	commonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "the rate limit service's `address`")
	workers := flag.Int("c", 64, "concurrent callers")
	conns := flag.Int("conns", 4, "gRPC connections, shared round robin by the callers")
	dur := flag.Duration("d", 10*time.Second, "how long to measure (at most 10m)")
	warmup := flag.Duration("warmup", 2*time.Second, "how long to call before measuring")
	domain := flag.String("domain", "bench", "the request's domain")
	key := flag.String("key", "client", "the descriptor's key")
	values := flag.Int("values", 100_000, "distinct descriptor values")
	flag.Parse()
	if *dur <= 0 || *dur > 10*time.Minute || *workers <= 0 || *conns <= 0 || *values <= 0 {
		fmt.Fprintln(os.Stderr, "rls: -d must be in (0, 10m]; -c, -conns and -values positive")
		os.Exit(2)
	}
	clients := make([]rlsv3.RateLimitServiceClient, *conns)
	for i := range clients {
		cc, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			fmt.Fprintln(os.Stderr, "rls:", err)
			os.Exit(1)
		}
		defer cc.Close()
		clients[i] = rlsv3.NewRateLimitServiceClient(cc)
	}

	var measuring atomic.Bool
	var calls, over, failed atomic.Int64
	var firstErr atomic.Value // the first failure, for the report
	ctx, cancel := context.WithTimeout(context.Background(), *warmup+*dur)
	defer cancel()
	samples := make([][]time.Duration, *workers)
	var wg sync.WaitGroup
	for w := range *workers {
		wg.Go(func() {
			c := clients[w%len(clients)]
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for i := 0; ctx.Err() == nil; i++ {
				req := &rlsv3.RateLimitRequest{Domain: *domain, Descriptors: []*commonv3.RateLimitDescriptor{{
					Entries: []*commonv3.RateLimitDescriptor_Entry{{Key: *key, Value: strconv.Itoa(r.IntN(*values))}},
				}}}
				start := time.Now()
				resp, err := c.ShouldRateLimit(ctx, req)
				if !measuring.Load() {
					continue
				}
				switch {
				case err != nil:
					// The call's deadline is the run's end: gRPC's own timer
					// may fire before ctx reports it.
					if c := status.Code(err); ctx.Err() == nil && c != codes.DeadlineExceeded && c != codes.Canceled {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					}
					continue
				case resp.GetOverallCode() == rlsv3.RateLimitResponse_OVER_LIMIT:
					over.Add(1)
				}
				calls.Add(1)
				if i%64 == 0 {
					samples[w] = append(samples[w], time.Since(start))
				}
			}
		})
	}
	time.Sleep(*warmup)
	measuring.Store(true)
	began := time.Now()
	<-ctx.Done()
	elapsed := time.Since(began)
	wg.Wait()
	n := calls.Load()
	var all []time.Duration
	for _, s := range samples {
		all = append(all, s...)
	}
	slices.Sort(all)
	q := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(p*float64(len(all))))]
	}
	fmt.Printf("%.0f calls/s  (%d calls in %s, %d over limit, %d failed; latency p50 %s p99 %s)\n",
		float64(n)/elapsed.Seconds(), n, elapsed.Round(time.Millisecond), over.Load(), failed.Load(), q(0.5), q(0.99))
	if failed.Load() > 0 {
		fmt.Fprintln(os.Stderr, "rls: first failure:", firstErr.Load())
		os.Exit(1)
	}
}
