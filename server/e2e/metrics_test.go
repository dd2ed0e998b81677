package e2e_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scrape gets http://addr/metrics and parses it with the Prometheus text
// parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// metric returns the value of the sample of name whose labels include
// labels (name, value pairs): a counter's or gauge's value, a histogram's
// count. It fails the test when there is none.
func metric(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
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
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("no sample %s%v", name, labels)
	return 0
}

// policiesYAML: free holds 3 tokens; trial is a shadow policy of 1 token.
const policiesYAML = `default: free
policies:
  free:
    capacity: 3
    rate: 1/1000d
  trial:
    capacity: 1
    rate: 1/1000d
    shadow: true
`

// TestBinaryMetrics drives the real binary over HTTP and RESP (go-redis),
// then makes its disk fail, and reads /metrics after each step.
func TestBinaryMetrics(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "b.db")
	cfg := writeFile(t, dir, "policies.yaml", policiesYAML)
	p := startBinary(t, "--data", data, "--config", cfg, "--max-keys", "1000", "--sync-interval", "1h")
	base := "http://" + p.httpAddr

	for range 4 { // 3 allowed, 1 limited
		take(t, base+"/joe")
	}
	for range 2 { // 1 allowed, 1 refused but allowed
		code, _, _ := take(t, base+"/ann?policy=trial")
		require.Equal(t, 200, code)
	}
	code, body := do(t, "POST", base+"/v1/take", "", `{"key":"joe"}`)
	require.Equal(t, 200, code, body) // limited, answered 200 by the JSON API
	code, _ = get(t, base+"/a/b")
	require.Equal(t, 404, code)

	rdb := redis.NewClient(&redis.Options{Addr: p.respAddr, Protocol: 2})
	defer rdb.Close()
	ctx := context.Background()
	require.NoError(t, rdb.Do(ctx, "BUCKET.TAKE", "sue").Err())
	require.NoError(t, rdb.Do(ctx, "CL.THROTTLE", "sue", "0", "1", "60").Err())
	require.NoError(t, rdb.Do(ctx, "CL.THROTTLE", "sue", "0", "1", "60").Err())
	require.Error(t, rdb.Do(ctx, "NOSUCHCOMMAND", "x").Err())

	fams := scrape(t, p.httpAddr)
	dec := func(policy, front, outcome string) float64 {
		return metric(t, fams, "bucketd_decisions_total", "policy", policy, "front", front, "outcome", outcome)
	}
	assert.Equal(t, 3.0, dec("free", "http", "allowed"))
	assert.Equal(t, 1.0, dec("free", "http", "limited"))
	assert.Equal(t, 1.0, dec("trial", "http", "allowed"))
	assert.Equal(t, 1.0, dec("trial", "http", "shadow_limited"))
	assert.Equal(t, 1.0, dec("free", "json", "limited"))
	assert.Equal(t, 1.0, dec("free", "resp", "allowed"))
	assert.Equal(t, 1.0, dec("", "cell", "allowed"))
	assert.Equal(t, 1.0, dec("", "cell", "limited"))
	assert.Equal(t, 6.0, metric(t, fams, "bucketd_decision_duration_seconds", "front", "http"))
	assert.Equal(t, 5.0, metric(t, fams, "bucketd_http_requests_total", "route", "/:key", "method", "GET", "code", "200"))
	assert.Equal(t, 1.0, metric(t, fams, "bucketd_http_requests_total", "route", "/:key", "method", "GET", "code", "429"))
	assert.Equal(t, 1.0, metric(t, fams, "bucketd_http_requests_total", "route", "/v1/take", "code", "200"))
	assert.Equal(t, 1.0, metric(t, fams, "bucketd_http_requests_total", "route", "other", "code", "404"))
	assert.Equal(t, 1.0, metric(t, fams, "bucketd_resp_commands_total", "command", "bucket.take"))
	assert.Equal(t, 2.0, metric(t, fams, "bucketd_resp_commands_total", "command", "cl.throttle"))
	assert.Equal(t, 1.0, metric(t, fams, "bucketd_resp_commands_total", "command", "unknown"))
	assert.Equal(t, 1.0, metric(t, fams, "bucketd_resp_connected_clients"))
	assert.Equal(t, 3.0, metric(t, fams, "bucketd_keys"), "joe, ann, sue")
	assert.Equal(t, 3.0, metric(t, fams, "bucketd_keys_created_total"))
	assert.Equal(t, 1000.0, metric(t, fams, "bucketd_max_keys"))
	assert.Equal(t, 1.0, metric(t, fams, "bucketd_store_healthy"))
	assert.Equal(t, 1.0, metric(t, fams, "bucketd_build_info"))
	assert.Positive(t, metric(t, fams, "process_resident_memory_bytes"))
	assert.Positive(t, metric(t, fams, "go_goroutines"))
	for _, m := range fams["bucketd_http_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			assert.NotContains(t, l.GetValue(), "joe", "a key in a label")
		}
	}

	// SAVE writes the log and a checkpoint.
	require.NoError(t, rdb.Do(ctx, "SAVE").Err())
	fams = scrape(t, p.httpAddr)
	assert.Positive(t, metric(t, fams, "bucketd_persistence_writes_total", "kind", "log"))
	assert.Equal(t, 1.0, metric(t, fams, "bucketd_persistence_writes_total", "kind", "checkpoint"))
	assert.Positive(t, metric(t, fams, "bucketd_persistence_written_bytes_total", "kind", "checkpoint"))
	assert.Zero(t, metric(t, fams, "bucketd_persistence_errors_total", "kind", "checkpoint"))
	saved := metric(t, fams, "bucketd_persistence_last_success_timestamp_seconds")
	assert.Positive(t, saved)

	// The log's directory disappears: the next checkpoint cannot start a
	// new segment. (Removing it works as root too, where a read-only
	// directory would not stop the writes.)
	require.NoError(t, os.RemoveAll(data+".wal"))
	take(t, base+"/kim")
	require.Error(t, rdb.Do(ctx, "SAVE").Err())
	fams = scrape(t, p.httpAddr)
	assert.Equal(t, 1.0, metric(t, fams, "bucketd_persistence_errors_total", "kind", "checkpoint"))
	assert.Zero(t, metric(t, fams, "bucketd_store_healthy"))
	code, _ = get(t, base+"/readyz")
	assert.Equal(t, 503, code)
	p.log.wait(t, regexp.MustCompile(`SAVE failed`))
	_ = p.stop(t, syscall.SIGTERM) // the final flush fails too: exit 1 is expected
}

// TestBinaryINFOAgreesWithMetrics: INFO over RESP shows the numbers that
// /metrics shows.
func TestBinaryINFOAgreesWithMetrics(t *testing.T) {
	dir := t.TempDir()
	// An hour's interval: no background write moves a count between INFO
	// and the scrape.
	p := startBinary(t, "--data", filepath.Join(dir, "b.db"), "--capacity", "2", "--rate", "1/1000d", "--sync-interval", "1h")
	for range 3 {
		take(t, "http://"+p.httpAddr+"/joe")
	}
	rdb := redis.NewClient(&redis.Options{Addr: p.respAddr, Protocol: 2})
	defer rdb.Close()
	ctx := context.Background()
	require.NoError(t, rdb.Do(ctx, "BUCKET.TAKE", "joe").Err())
	require.NoError(t, rdb.Do(ctx, "SAVE").Err())
	info, err := rdb.Info(ctx, "everything").Result()
	require.NoError(t, err)
	fams := scrape(t, p.httpAddr)
	f := map[string]string{}
	for _, line := range strings.Split(info, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			f[k] = v
		}
	}
	num := func(name string, labels ...string) string {
		return model.SampleValue(metric(t, fams, name, labels...)).String()
	}
	assert.Equal(t, "allowed=2,limited=1,shadow_limited=0", f["decisions_total_http_default"])
	assert.Equal(t, "allowed=0,limited=1,shadow_limited=0", f["decisions_total_resp_default"])
	assert.Equal(t, num("bucketd_decisions_total", "front", "http", "outcome", "limited"), "1")
	assert.Equal(t, num("bucketd_keys"), f["keys"])
	assert.Equal(t, num("bucketd_keys_created_total"), f["keys_created_total"])
	assert.Equal(t, num("bucketd_evictions_total"), f["evictions_total"])
	assert.Equal(t, "checkpoint="+num("bucketd_persistence_writes_total", "kind", "checkpoint")+
		",log="+num("bucketd_persistence_writes_total", "kind", "log"), f["persistence_writes_total"])
	assert.Equal(t, "checkpoint=0,log=0", f["persistence_errors_total"])
	assert.Equal(t, num("bucketd_persistence_last_success_timestamp_seconds"), f["persistence_last_success_timestamp_seconds"])
	assert.Equal(t, num("bucketd_resp_connections_total"), f["total_connections_received"])
	assert.Equal(t, num("bucketd_resp_rejected_connections_total"), f["rejected_connections"])
	assert.Equal(t, num("bucketd_resp_connected_clients"), f["connected_clients"])
	assert.Equal(t, num("bucketd_evictions_total"), f["evicted_keys"])
	assert.Equal(t, "calls=1", f["cmdstat_bucket.take"])
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}

// TestBinaryMetricsAddr: --metrics-addr serves /metrics on a listener of its
// own, with the same counts, and nothing else there.
func TestBinaryMetricsAddr(t *testing.T) {
	p := startBinary(t, "--data", filepath.Join(t.TempDir(), "b.db"), "--metrics-addr", "127.0.0.1:0")
	addr := regexp.MustCompile(`msg="metrics listening" addr=(\S+)`).FindStringSubmatch(p.log.all())
	require.NotNil(t, addr, "no metrics line before the start line")
	take(t, "http://"+p.httpAddr+"/joe")
	fams := scrape(t, addr[1])
	assert.Equal(t, 1.0, metric(t, fams, "bucketd_decisions_total", "policy", "default", "front", "http", "outcome", "allowed"))
	code, _ := get(t, "http://"+addr[1]+"/joe")
	assert.Equal(t, 404, code, "the metrics listener takes no token")
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}
