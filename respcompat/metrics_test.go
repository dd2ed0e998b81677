package respcompat

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/metrics"
)

// metricValue returns the value of the sample of name whose labels include
// labels (name, value pairs); 0 when there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
next:
	for _, m := range fams[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		if m.Gauge != nil {
			return m.GetGauge().GetValue()
		}
		return m.GetCounter().GetValue()
	}
	return 0
}

// startMetered starts a server whose takes and counts go to a real
// metrics.Metrics, whose INFO shows its fields, as main.go wires them.
func startMetered(t *testing.T, cfg Config) (*testServer, func() map[string]*dto.MetricFamily) {
	t.Helper()
	var srv *Server
	m := metrics.New(metrics.Options{RESP: metrics.RESPFunc(func() metrics.RESPStats { return metrics.RESPStats(srv.Stats()) })})
	cfg.Metrics, cfg.Info = m, m.Info
	ts := start(t, cfg)
	srv = ts.Server
	return ts, func() map[string]*dto.MetricFamily {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(rec.Body)
		require.NoError(t, err)
		return fams
	}
}

func TestMetricsCountTakesCommandsAndClients(t *testing.T) {
	t.Parallel()
	ts, scrape := startMetered(t, Config{})
	c := ts.client(t)
	ctx := ctxT(t)
	for range 6 { // burst holds 5
		require.NoError(t, c.Do(ctx, "BUCKET.TAKE", "k", "POLICY", "burst").Err())
	}
	require.NoError(t, c.Do(ctx, "bucket.take", "k", "POLICY", "shadow").Err())
	require.NoError(t, c.Do(ctx, "BUCKET.TAKE", "k", "POLICY", "shadow").Err()) // refused, allowed
	require.NoError(t, c.Do(ctx, "BUCKET.TAKE", "k", "0").Err())                // a peek: no decision
	require.NoError(t, c.Do(ctx, "CL.THROTTLE", "k", "0", "1", "60").Err())
	require.NoError(t, c.Do(ctx, "CL.THROTTLE", "k", "0", "1", "60").Err())
	require.Error(t, c.Do(ctx, "NOSUCH", "a").Err())
	require.Error(t, c.Do(ctx, "ALSONOT").Err())

	fams := scrape()
	dec := func(policy, front, outcome string) float64 {
		return metricValue(fams, "bucketd_decisions_total", "policy", policy, "front", front, "outcome", outcome)
	}
	assert.Equal(t, 5.0, dec("burst", "resp", "allowed"))
	assert.Equal(t, 1.0, dec("burst", "resp", "limited"))
	assert.Equal(t, 1.0, dec("shadow", "resp", "allowed"))
	assert.Equal(t, 1.0, dec("shadow", "resp", "shadow_limited"))
	assert.Equal(t, 0.0, dec("default", "resp", "allowed"), "a peek is no decision")
	assert.Equal(t, 1.0, dec("", "cell", "allowed"))
	assert.Equal(t, 1.0, dec("", "cell", "limited"))
	cmd := func(name string) float64 { return metricValue(fams, "bucketd_resp_commands_total", "command", name) }
	assert.Equal(t, 9.0, cmd("bucket.take"))
	assert.Equal(t, 2.0, cmd("cl.throttle"))
	assert.Equal(t, 2.0, cmd("unknown"))
	assert.Equal(t, 1.0, metricValue(fams, "bucketd_resp_connected_clients"))
	assert.Equal(t, 1.0, metricValue(fams, "bucketd_resp_connections_total"))
}

// TestInfoAgreesWithMetrics: INFO everything and a scrape taken together
// show the same numbers, from the same counters.
func TestInfoAgreesWithMetrics(t *testing.T) {
	t.Parallel()
	ts, scrape := startMetered(t, Config{MaxClients: 1})
	c := ts.client(t, func(o *redis.Options) { o.PoolSize = 1 })
	ctx := ctxT(t)
	for range 3 {
		require.NoError(t, c.Do(ctx, "BUCKET.TAKE", "k").Err())
	}
	rc := ts.raw(t) // over MaxClients: rejected
	rc.expectClosed()
	info, err := c.Info(ctx, "everything").Result()
	require.NoError(t, err)
	fams := scrape()
	_, f := infoFields(t, info)
	assert.Equal(t, "allowed=3,limited=0,shadow_limited=0", f["decisions_total_resp_default"])
	assert.Equal(t, 3.0, metricValue(fams, "bucketd_decisions_total", "policy", "default", "front", "resp", "outcome", "allowed"))
	for field, metric := range map[string]string{
		"connected_clients":          "bucketd_resp_connected_clients",
		"total_connections_received": "bucketd_resp_connections_total",
		"rejected_connections":       "bucketd_resp_rejected_connections_total",
	} {
		assert.Equal(t, f[field], model.SampleValue(metricValue(fams, metric)).String(), field)
		assert.Equal(t, f[field], f[strings.TrimPrefix(metric, "bucketd_")], "%s in the Bucketd section", field)
	}
	assert.Equal(t, "1", f["rejected_connections"])
	assert.Equal(t, "calls=3", f["cmdstat_bucket.take"])
	assert.Equal(t, 3.0, metricValue(fams, "bucketd_resp_commands_total", "command", "bucket.take"))
}

// syncBuffer is a log's output, safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestAccessLogNamesTheKeyNeverThePassword: a command's line has its name,
// key and decision, and no other argument: the password of AUTH or HELLO
// never appears, even at debug level.
func TestAccessLogNamesTheKeyNeverThePassword(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts := start(t, Config{Logger: log, AccessLog: true, RequirePass: "hunter2-secret"})
	rc := ts.raw(t)
	assert.Equal(t, "-NOAUTH Authentication required.\r\n", rc.do("BUCKET.TAKE", "k"))
	assert.Contains(t, rc.do("AUTH", "wrong-secret"), "WRONGPASS")
	assert.Equal(t, "+OK\r\n", rc.do("AUTH", "hunter2-secret"))
	rc.do("HELLO", "2", "AUTH", "default", "hunter2-secret")
	rc.do("CONFIG", "SET", "requirepass", "hunter2-secret")
	rc.do("BUCKET.TAKE", "joe", "POLICY", "burst")
	logged := buf.String()
	assert.Contains(t, logged, `level=INFO msg=command front=resp`)
	assert.Regexp(t, `cmd=bucket.take key=joe decision=allowed duration=`, logged)
	assert.NotContains(t, logged, "hunter2-secret")
	assert.NotContains(t, logged, "wrong-secret")
}

// BenchmarkExecWithMetrics is BenchmarkExec with the metrics of main.go:
// its difference from BenchmarkExec is what they cost a command.
func BenchmarkExecWithMetrics(b *testing.B) {
	srv := New(stubLimiter{}, Config{Metrics: metrics.New(metrics.Options{})})
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
