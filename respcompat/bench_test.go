package respcompat

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/redcon"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/limiter"
	"github.com/bucketd/bucketd/metrics"
)

// stubLimiter answers Throttle at once with a fixed decision, so that the
// benchmarks measure the RESP front alone, against redcon.Server answering
// a fixed reply. Its other methods are not used (they would panic). It is
// for the benchmarks only: no test checks behaviour against it, so it
// cannot stand in for the real limiter, which every test runs.
type stubLimiter struct{ Limiter }

func (stubLimiter) Throttle(key string, l bucket.Limit, cost bucket.Tokens) (bucket.Decision, error) {
	return bucket.Decision{Allowed: true, Limit: l.Capacity, Remaining: l.Capacity - cost, ResetAfter: 2 * time.Second}, nil
}

func (s stubLimiter) ThrottleBatch(reqs []limiter.ThrottleReq, out []limiter.ThrottleResult) []limiter.ThrottleResult {
	for _, q := range reqs {
		d, err := s.Throttle(q.Key, q.Limit, q.Cost)
		out = append(out, limiter.ThrottleResult{Decision: d, Err: err})
	}
	return out
}

const (
	benchCmd   = "*5\r\n$11\r\nCL.THROTTLE\r\n$7\r\nuser123\r\n$2\r\n15\r\n$2\r\n30\r\n$2\r\n60\r\n"
	benchReply = "*5\r\n:0\r\n:16\r\n:15\r\n:-1\r\n:2\r\n"
	pipeline   = 16 // as redis-benchmark -P 16
)

// serveBench serves s on 127.0.0.1:0 until the benchmark ends.
func serveBench(b *testing.B, s Limiter) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := New(s, Config{})
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Shutdown(context.Background()) })
	return ln.Addr().String()
}

// serveBareRedcon serves, with redcon.Server, a handler that answers every
// command with CL.THROTTLE's reply: the baseline the front is held to.
func serveBareRedcon(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	reply := []byte(benchReply)
	srv := redcon.NewServer("", func(c redcon.Conn, cmd redcon.Command) { c.WriteRaw(reply) }, nil, nil)
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// pipelined sends b.N CL.THROTTLE commands on conns connections, in
// batches of pipeline, and reads every reply. Allocations are the whole
// process's, the server's included; the client allocates nothing per
// batch.
func pipelined(b *testing.B, addr string, conns int) {
	batch := []byte(strings.Repeat(benchCmd, pipeline))
	want := len(benchReply) * pipeline
	b.SetParallelism(conns)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchCmd)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer nc.Close()
		buf := make([]byte, want)
		for {
			n := 0
			for n < pipeline && pb.Next() {
				n++
			}
			if n == 0 {
				return
			}
			if _, err := nc.Write(batch[:n*len(benchCmd)]); err != nil {
				b.Error(err)
				return
			}
			if _, err := io.ReadFull(nc, buf[:n*len(benchReply)]); err != nil {
				b.Error(err)
				return
			}
			if string(buf[:len(benchReply)]) != benchReply {
				b.Errorf("reply %q", buf[:len(benchReply)])
				return
			}
		}
	})
}

// BenchmarkThrottle measures CL.THROTTLE through the whole front over
// loopback, pipelined 16 deep, on one connection and on 8 per CPU;
// BenchmarkBareRedcon measures the same against redcon.Server answering a
// fixed reply. Compare their ns/op.
func BenchmarkThrottle(b *testing.B) {
	addr := serveBench(b, stubLimiter{})
	b.Run("conns=1", func(b *testing.B) { pipelined(b, addr, 1) })
	b.Run("conns=8xCPU", func(b *testing.B) { pipelined(b, addr, 8) })
}

func BenchmarkBareRedcon(b *testing.B) {
	addr := serveBareRedcon(b)
	b.Run("conns=1", func(b *testing.B) { pipelined(b, addr, 1) })
	b.Run("conns=8xCPU", func(b *testing.B) { pipelined(b, addr, 8) })
}

// BenchmarkExec measures one CL.THROTTLE from its parsed arguments to its
// encoded reply, without the network: lookup, integer parsing, the store
// call and the reply.
func BenchmarkExec(b *testing.B) {
	srv := New(stubLimiter{}, Config{})
	c := &conn{s: srv, store: srv.store, authed: true}
	args := [][]byte{[]byte("CL.THROTTLE"), []byte("user123"), []byte("15"), []byte("30"), []byte("60")}
	b.ReportAllocs()
	for b.Loop() {
		c.out = c.out[:0]
		c.exec(args)
	}
	if string(c.out) != benchReply {
		b.Fatalf("reply %q", c.out)
	}
}

// BenchmarkRun adds the framing and parsing of a pipeline of 16 commands
// already read.
func BenchmarkRun(b *testing.B) { benchRun(b, Config{}) }

// BenchmarkRunWithMetrics is BenchmarkRun with the metrics of main.go.
func BenchmarkRunWithMetrics(b *testing.B) {
	benchRun(b, Config{Metrics: metrics.New(metrics.Options{})})
}

func benchRun(b *testing.B, cfg Config) {
	srv := New(stubLimiter{}, cfg)
	c := &conn{s: srv, store: srv.store, authed: true}
	batch := []byte(strings.Repeat(benchCmd, pipeline))
	b.ReportAllocs()
	b.SetBytes(int64(len(batch)))
	for b.Loop() {
		c.buf, c.r, c.w, c.out = batch, 0, len(batch), c.out[:0]
		end, err := c.f.scan(batch)
		if err != nil || end != len(batch) {
			b.Fatal(end, err)
		}
		c.end = end
		if err := c.run(); err != nil {
			b.Fatal(err)
		}
	}
	if len(c.out) != pipeline*len(benchReply) {
		b.Fatalf("reply %q", c.out)
	}
}
