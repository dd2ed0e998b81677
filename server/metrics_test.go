package server

import (
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/metrics"
)

// scrape gets /metrics from s and parses it with the Prometheus parser.
func scrape(t *testing.T, s *Server) map[string]*dto.MetricFamily {
	t.Helper()
	r := get(t, s, "/metrics")
	require.Equal(t, 200, r.status, r.body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(r.body))
	require.NoError(t, err)
	return fams
}

// counter returns the value of the counter name whose labels include
// labels (name, value pairs); 0 when there is none.
func counter(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
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
		return m.GetCounter().GetValue()
	}
	return 0
}

func TestMetricsCountTakesAndRequests(t *testing.T) {
	_, s := newServer(t, Config{Metrics: metrics.New(metrics.Options{})})
	for range 10 {
		require.Equal(t, 200, get(t, s, "/joe").status)
	}
	require.Equal(t, 429, get(t, s, "/joe").status)
	require.Equal(t, 200, get(t, s, "/ann?policy=new").status)
	require.Equal(t, 200, get(t, s, "/ann?policy=new").status) // refused by the shadow policy, allowed
	require.Equal(t, 404, get(t, s, "/bob?policy=nope").status)
	r := do(t, s, "POST", "/v1/take", `{"key":"joe","policy":"api"}`)
	require.Equal(t, 200, r.status, r.body)
	require.Equal(t, 404, get(t, s, "/a/b/c").status)
	require.Equal(t, 405, do(t, s, "BREW", "/joe", "").status)

	fams := scrape(t, s)
	dec := func(policy, front, outcome string) float64 {
		return counter(fams, "bucketd_decisions_total", "policy", policy, "front", front, "outcome", outcome)
	}
	assert.Equal(t, 10.0, dec("default", "http", "allowed"))
	assert.Equal(t, 1.0, dec("default", "http", "limited"))
	assert.Equal(t, 1.0, dec("new", "http", "allowed"))
	assert.Equal(t, 1.0, dec("new", "http", "shadow_limited"))
	assert.Equal(t, 0.0, dec("new", "http", "limited"))
	assert.Equal(t, 1.0, dec("api", "json", "allowed"))
	assert.Equal(t, 0.0, dec("nope", "http", "allowed"))

	req := func(route, method, code string) float64 {
		return counter(fams, "bucketd_http_requests_total", "route", route, "method", method, "code", code)
	}
	assert.Equal(t, 12.0, req("/:key", "GET", "200"))
	assert.Equal(t, 1.0, req("/:key", "GET", "429"))
	assert.Equal(t, 1.0, req("/:key", "GET", "404"))
	assert.Equal(t, 1.0, req("/v1/take", "POST", "200"))
	assert.Equal(t, 1.0, req("other", "", "404"))
	assert.Equal(t, 1.0, req("other", "", "405"))
	for _, m := range fams["bucketd_http_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			assert.NotContains(t, []string{"/joe", "/ann", "/a/b/c"}, l.GetValue(), "a key in a label")
		}
	}
	// A scrape is counted once answered: the next one shows it.
	assert.Equal(t, 1.0, counter(scrape(t, s), "bucketd_http_requests_total", "route", "/metrics", "code", "200"))
}

func TestMetricsOffLeavesTheKeyMetrics(t *testing.T) {
	_, s := newServer(t, Config{})
	r := get(t, s, "/metrics")
	assert.Equal(t, 200, r.status)
	assert.Equal(t, `{"detail":"OK"}`, r.body, "without metrics, /metrics is a take of the key metrics")
}

// BenchmarkTakeWithMetrics is BenchmarkTake with the metrics of main.go:
// its difference from BenchmarkTake is what they cost a take.
func BenchmarkTakeWithMetrics(b *testing.B) {
	e := newEnv(b, plenty)
	s := New(e.lim, Config{Metrics: metrics.New(metrics.Options{})})
	benchHandler(b, handler(s), "/joe", 200)
}
