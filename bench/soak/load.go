package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// op is one kind of request the soak makes.
type op int

const (
	opGet     op = iota // HTTP GET /{key}, kept-alive connection
	opGetNew            // HTTP GET /{key}, a new connection each time (reconnecting clients)
	opJSON              // HTTP POST /v1/take
	opResp              // RESP CL.THROTTLE, one connection
	opRespNew           // RESP CL.THROTTLE, reconnecting every reconnectEvery commands
	opTx                // RESP MULTI/EXEC (txWorker)
	numOps
)

var opNames = [numOps]string{"http-get", "http-get-reconnect", "json-take", "resp-throttle", "resp-reconnect", "resp-multi-exec"}

// reconnectEvery is how many commands a reconnecting RESP client sends on
// one connection.
const reconnectEvery = 50

// window collects latencies over one phase of the run, at most maxSamples
// per op (later ones are counted, not kept).
type window struct {
	mu      sync.Mutex
	lat     [numOps][]time.Duration
	count   [numOps]int64
	errors  [numOps]int64
	lastErr [numOps]string
}

const maxSamples = 500_000

func (w *window) add(o op, d time.Duration, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.count[o]++
	if err != nil {
		w.errors[o]++
		w.lastErr[o] = err.Error()
		return
	}
	if len(w.lat[o]) < maxSamples {
		w.lat[o] = append(w.lat[o], d)
	}
}

// p99 returns the 99th percentile of o's latencies, or 0 without samples.
func (w *window) p99(o op) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := slices.Clone(w.lat[o])
	if len(l) == 0 {
		return 0
	}
	slices.Sort(l)
	return l[(len(l)*99)/100]
}

// recorder hands the current window to the workers.
type recorder struct {
	cur atomic.Pointer[window]
}

func (r *recorder) add(o op, d time.Duration, err error) {
	if w := r.cur.Load(); w != nil {
		w.add(o, d, err)
	}
}

// keys makes the churned keys: each worker walks its own sequence, using a
// key keyUses times and then never again, so the store sees a steady
// stream of new keys, while old ones refill and are swept.
type keys struct {
	prefix string
	n      int
}

const keyUses = 20

func (k *keys) next() string {
	k.n++
	return k.prefix + strconv.Itoa(k.n/keyUses)
}

// pace runs f every interval until ctx is done (a bounded, steady load, not
// a flood: the machine is shared).
func pace(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// httpWorker takes with GET /{key}; with fresh set, on a new connection
// each time.
func httpWorker(ctx context.Context, rec *recorder, addr string, id int, interval time.Duration, fresh bool) {
	tr := &http.Transport{DisableKeepAlives: fresh, MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	o := opGet
	if fresh {
		o = opGetNew
	}
	k := &keys{prefix: fmt.Sprintf("g%d-%d-", o, id)}
	pace(ctx, interval, func() {
		start := time.Now()
		resp, err := client.Get("http://" + addr + "/" + k.next())
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != 200 && resp.StatusCode != 429 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		rec.add(o, time.Since(start), err)
	})
}

// jsonWorker takes with POST /v1/take.
func jsonWorker(ctx context.Context, rec *recorder, addr string, id int, interval time.Duration) {
	client := &http.Client{Timeout: 10 * time.Second}
	k := &keys{prefix: fmt.Sprintf("j-%d-", id)}
	pace(ctx, interval, func() {
		start := time.Now()
		body := []byte(`{"key":"` + k.next() + `","cost":1}`)
		resp, err := client.Post("http://"+addr+"/v1/take", "application/json", bytes.NewReader(body))
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		rec.add(opJSON, time.Since(start), err)
	})
}

// respWorker sends CL.THROTTLE key 9 100 1; with reconnect set, on a new
// connection every reconnectEvery commands.
func respWorker(ctx context.Context, rec *recorder, addr string, id int, interval time.Duration, reconnect bool) {
	newClient := func() *redis.Client {
		return redis.NewClient(&redis.Options{Addr: addr, PoolSize: 1, MaxRetries: -1, ReadTimeout: 10 * time.Second})
	}
	c := newClient()
	defer func() { c.Close() }()
	o := opResp
	if reconnect {
		o = opRespNew
	}
	k := &keys{prefix: fmt.Sprintf("r%d-%d-", o, id)}
	n := 0
	pace(ctx, interval, func() {
		if n++; reconnect && n%reconnectEvery == 0 {
			c.Close()
			c = newClient()
		}
		start := time.Now()
		err := c.Do(ctx, "CL.THROTTLE", k.next(), 9, 100, 1).Err()
		if ctx.Err() != nil {
			return
		}
		rec.add(o, time.Since(start), err)
	})
}

// txWorker runs transactions: MULTI, two CL.THROTTLE and an HGETALL,
// EXEC, through go-redis's TxPipelined (-tx, on by default).
func txWorker(ctx context.Context, rec *recorder, addr string, id int, interval time.Duration) {
	c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 1, MaxRetries: -1})
	defer c.Close()
	k := &keys{prefix: fmt.Sprintf("t-%d-", id)}
	pace(ctx, interval, func() {
		key := k.next()
		start := time.Now()
		_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Do(ctx, "CL.THROTTLE", key, 9, 100, 1)
			p.Do(ctx, "CL.THROTTLE", key, 9, 100, 1)
			p.HGetAll(ctx, key)
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		rec.add(opTx, time.Since(start), err)
	})
}
