// Command soak runs bucketd under a bounded, steady, mixed load for a
// while (5 minutes by default; -smoke for 20 s), and reports its resource
// use and latencies at the start and at the end, and an exactness check.
//
// The load: HTTP GET /{key} on kept-alive connections and on a new
// connection each time, JSON POST /v1/take, RESP CL.THROTTLE on one
// connection and on connections remade every 50 commands, all over keys
// that churn (each used 20 times, then never again, so new buckets keep
// coming and refilled ones are swept), and MULTI/EXEC through go-redis's
// TxPipelined (-tx=false leaves them out).
//
// It reports, at the start (after a warm-up) and at the end: RSS, threads
// and open files (from /proc/PID), goroutines (from /metrics, when bucketd
// serves it), and each kind of request's count, errors and p99 over a
// window. Then the exactness check: 3000 concurrent takes over HTTP and
// JSON on a key whose override allows 1000 and refills one a thousand
// days; 3000 concurrent CL.THROTTLE with a burst of 1000 at one a day:
// exactly 1000 of each must be allowed. Finally SIGINT: the exit code and
// how long it took.
//
// Usage (from the module root): go run ./bench/soak [-duration 5m] [-smoke] [-bin PATH]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func run() error {
	duration := flag.Duration("duration", 5*time.Minute, "how long the load runs")
	smoke := flag.Bool("smoke", false, "a 20 s run, to check that the soak works")
	bin := flag.String("bin", "", "the bucketd binary (default: built from this module)")
	scale := flag.Float64("scale", 1, "load multiplier (1: about 2,800 requests/s in all)")
	tx := flag.Bool("tx", true, "also run MULTI/EXEC clients")
	flag.Parse()
	if *smoke {
		*duration = 20 * time.Second
	}
	warmup, win := 10*time.Second, 30*time.Second
	if *duration < 2*time.Minute {
		warmup, win = 2*time.Second, *duration/5
	}
	if *duration < warmup+2*win {
		return fmt.Errorf("-duration %s: want at least %s", *duration, warmup+2*win)
	}

	dir, err := os.MkdirTemp("", "bucketd-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if *bin == "" {
		if *bin, err = buildBucketd(dir); err != nil {
			return err
		}
	}
	b, err := startBucketd(*bin, "--data", filepath.Join(dir, "soak.db"), "--capacity", "10", "--rate", "100/s")
	if err != nil {
		return err
	}
	defer b.cmd.Process.Kill()
	fmt.Printf("bucketd pid %d, http %s, resp %s; load for %s (warm-up %s, windows of %s)\n",
		b.cmd.Process.Pid, b.httpAddr, b.respAddr, *duration, warmup, win)

	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	rec := &recorder{}
	var wg sync.WaitGroup
	every := func(perSecond float64) time.Duration {
		return time.Duration(float64(time.Second) / (perSecond * *scale))
	}
	for i := range 2 {
		wg.Go(func() { httpWorker(ctx, rec, b.httpAddr, i, every(500), false) })
		wg.Go(func() { jsonWorker(ctx, rec, b.httpAddr, i, every(250)) })
		wg.Go(func() { respWorker(ctx, rec, b.respAddr, i, every(500), false) })
	}
	wg.Go(func() { httpWorker(ctx, rec, b.httpAddr, 0, every(100), true) })
	wg.Go(func() { respWorker(ctx, rec, b.respAddr, 0, every(200), true) })
	if *tx {
		wg.Go(func() { txWorker(ctx, rec, b.respAddr, 0, every(100)) })
	} else {
		fmt.Println("transactions: not run (-tx runs them once bucketd has MULTI/EXEC)")
	}

	begin := time.Now()
	wait := func(d time.Duration) { <-time.After(time.Until(begin.Add(d))) }
	wait(warmup)
	first := &window{}
	rec.cur.Store(first)
	wait(warmup + win)
	rec.cur.Store(nil)
	startSample, err := b.measure()
	if err != nil {
		return err
	}
	fmt.Printf("start  (%4.0fs): %s\n", time.Since(begin).Seconds(), startSample)
	wait(*duration - win)
	last := &window{}
	rec.cur.Store(last)
	<-ctx.Done()
	rec.cur.Store(nil)
	endSample, err := b.measure()
	if err != nil {
		return err
	}
	fmt.Printf("end    (%4.0fs): %s\n", time.Since(begin).Seconds(), endSample)
	wg.Wait()

	fmt.Printf("\n%-20s %12s %8s %10s %12s %8s %10s\n", "requests", "start count", "errors", "p99", "end count", "errors", "p99")
	for o := range numOps {
		if first.count[o] == 0 && last.count[o] == 0 {
			continue
		}
		fmt.Printf("%-20s %12d %8d %10s %12d %8d %10s\n", opNames[o],
			first.count[o], first.errors[o], first.p99(o).Round(10*time.Microsecond),
			last.count[o], last.errors[o], last.p99(o).Round(10*time.Microsecond))
		for _, w := range []*window{first, last} {
			if w.lastErr[o] != "" {
				fmt.Printf("  %s: last error: %s\n", opNames[o], w.lastErr[o])
			}
		}
	}

	fmt.Println()
	ok := true
	for _, check := range []func(*bucketd) (string, bool, error){exactHTTP, exactRESP, exactTx} {
		line, pass, err := check(b)
		if err != nil {
			return err
		}
		fmt.Println(line)
		ok = ok && pass
	}
	code, took, err := b.stop()
	if err != nil {
		return err
	}
	fmt.Printf("SIGINT: exit %d in %s\n", code, took.Round(time.Millisecond))
	if !ok || code != 0 {
		return fmt.Errorf("failed")
	}
	return nil
}

// exactTakes and exactAllowed are the exactness check's figures.
const (
	exactTakes   = 3000
	exactAllowed = 1000
	exactClients = 8
)

// exactHTTP gives a fresh key an override of 1000 tokens refilling one a
// thousand days, and takes from it 3000 times from 8 clients, half with
// GET /{key} and half with POST /v1/take: exactly 1000 must be allowed.
func exactHTTP(b *bucketd) (string, bool, error) {
	key := fmt.Sprintf("exact-http-%d", time.Now().UnixNano())
	req, _ := http.NewRequest("PUT", "http://"+b.httpAddr+"/v1/overrides/"+key,
		strings.NewReader(fmt.Sprintf(`{"limits":[{"capacity":%d,"rate":"1/1000d"}]}`, exactAllowed)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", false, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return "", false, fmt.Errorf("override: %d %s", resp.StatusCode, body)
	}
	var allowed, denied, failed atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for i := range exactClients {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			for next.Add(1) <= exactTakes {
				var resp *http.Response
				var err error
				if i%2 == 0 {
					resp, err = client.Get("http://" + b.httpAddr + "/" + key)
				} else {
					resp, err = client.Post("http://"+b.httpAddr+"/v1/take", "application/json", strings.NewReader(`{"key":"`+key+`"}`))
				}
				if err != nil {
					failed.Add(1)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == 200 && (i%2 == 0 || strings.Contains(string(body), `"allowed":true`)):
					allowed.Add(1)
				case resp.StatusCode == 429 || strings.Contains(string(body), `"allowed":false`):
					denied.Add(1)
				default:
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	pass := allowed.Load() == exactAllowed && denied.Load() == exactTakes-exactAllowed && failed.Load() == 0
	return fmt.Sprintf("exactness, HTTP GET + JSON: %d takes, %d allowed (want %d), %d denied, %d failed: %s",
		exactTakes, allowed.Load(), exactAllowed, denied.Load(), failed.Load(), verdict(pass)), pass, nil
}

// exactRESP sends CL.THROTTLE key 999 1 86400 3000 times from 8 clients:
// a burst of 1000, refilling one a day, so exactly 1000 are allowed.
func exactRESP(b *bucketd) (string, bool, error) {
	key := fmt.Sprintf("exact-resp-%d", time.Now().UnixNano())
	ctx := context.Background()
	var allowed, denied, failed atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range exactClients {
		wg.Go(func() {
			c := redis.NewClient(&redis.Options{Addr: b.respAddr, PoolSize: 1, MaxRetries: -1})
			defer c.Close()
			for next.Add(1) <= exactTakes {
				r, err := c.Do(ctx, "CL.THROTTLE", key, exactAllowed-1, 1, 86400).Int64Slice()
				switch {
				case err != nil || len(r) != 5:
					failed.Add(1)
				case r[0] == 0:
					allowed.Add(1)
				default:
					denied.Add(1)
				}
			}
		})
	}
	wg.Wait()
	pass := allowed.Load() == exactAllowed && denied.Load() == exactTakes-exactAllowed && failed.Load() == 0
	return fmt.Sprintf("exactness, RESP CL.THROTTLE:     %d calls, %d allowed (want %d), %d denied, %d failed: %s",
		exactTakes, allowed.Load(), exactAllowed, denied.Load(), failed.Load(), verdict(pass)), pass, nil
}

func verdict(ok bool) string {
	if ok {
		return "OK"
	}
	return "FAIL"
}

// exactTx is the exactness check of transactions: 1500 MULTI / EXEC of two
// CL.THROTTLE of one key from 8 clients at once: exactly 1000 of the 3000
// calls are allowed, and within an EXEC no other client's take comes
// between its two (the second sees one token less than the first).
func exactTx(b *bucketd) (string, bool, error) {
	key := fmt.Sprintf("exact-tx-%d", time.Now().UnixNano())
	ctx := context.Background()
	var allowed, denied, failed, interleaved atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range exactClients {
		wg.Go(func() {
			c := redis.NewClient(&redis.Options{Addr: b.respAddr, PoolSize: 1, MaxRetries: -1})
			defer c.Close()
			for next.Add(2) <= exactTakes {
				var cmds [2]*redis.Cmd
				_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
					for i := range cmds {
						cmds[i] = p.Do(ctx, "CL.THROTTLE", key, exactAllowed-1, 1, 86400)
					}
					return nil
				})
				if err != nil {
					failed.Add(2)
					continue
				}
				var rem [2]int64
				for i, cmd := range cmds {
					r, err := cmd.Int64Slice()
					switch {
					case err != nil || len(r) != 5:
						failed.Add(1)
					case r[0] == 0:
						allowed.Add(1)
						rem[i] = r[2]
					default:
						denied.Add(1)
						rem[i] = -1
					}
				}
				if rem[0] > 0 && rem[1] >= 0 && rem[1] != rem[0]-1 {
					interleaved.Add(1)
				}
			}
		})
	}
	wg.Wait()
	pass := allowed.Load() == exactAllowed && denied.Load() == exactTakes-exactAllowed && failed.Load() == 0 && interleaved.Load() == 0
	return fmt.Sprintf("exactness, RESP MULTI/EXEC:      %d calls, %d allowed (want %d), %d denied, %d failed, %d interleaved: %s",
		exactTakes, allowed.Load(), exactAllowed, denied.Load(), failed.Load(), interleaved.Load(), verdict(pass)), pass, nil
}
