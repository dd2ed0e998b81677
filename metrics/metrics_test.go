package metrics_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/metrics"
	"github.com/bucketd/bucketd/storage"
)

// scrape gets m's Handler and parses it with the Prometheus text parser.
func scrape(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	require.NoError(t, err)
	return fams
}

// sample returns the value of the sample of family name whose labels are
// labels (name=value pairs), and false if there is none.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
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
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, ok := sample(fams, name, labels...)
	require.True(t, ok, "no sample %s%v", name, labels)
	return v
}

func TestDecisionsByPolicyFrontAndOutcome(t *testing.T) {
	m := metrics.New(metrics.Options{})
	m.Decision(metrics.FrontHTTP, "free", true, false, time.Millisecond)
	m.Decision(metrics.FrontHTTP, "free", true, false, time.Millisecond)
	m.Decision(metrics.FrontHTTP, "free", false, false, time.Millisecond)
	m.Decision(metrics.FrontJSON, "free", false, true, time.Millisecond)
	m.Decision(metrics.FrontRESP, "paid", true, true, time.Millisecond) // allowed by the limits: not shadow_limited
	m.Decision(metrics.FrontCell, "", false, false, time.Millisecond)
	m.Decision("smtp", "free", true, false, time.Millisecond) // no such front: not counted
	fams := scrape(t, m)
	for _, c := range []struct {
		policy, front, outcome string
		want                   float64
	}{
		{"free", "http", "allowed", 2},
		{"free", "http", "limited", 1},
		{"free", "http", "shadow_limited", 0},
		{"free", "json", "shadow_limited", 1},
		{"free", "json", "limited", 0},
		{"paid", "resp", "allowed", 1},
		{"", "cell", "limited", 1},
	} {
		assert.Equal(t, c.want, value(t, fams, "bucketd_decisions_total", "policy", c.policy, "front", c.front, "outcome", c.outcome), "%+v", c)
	}
	_, ok := sample(fams, "bucketd_decisions_total", "front", "smtp")
	assert.False(t, ok)
	assert.Equal(t, 3.0, value(t, fams, "bucketd_decision_duration_seconds", "front", "http"))
	assert.Equal(t, 1.0, value(t, fams, "bucketd_decision_duration_seconds", "front", "cell"))
	for _, name := range []string{"go_goroutines", "process_start_time_seconds", "bucketd_build_info"} {
		assert.Contains(t, fams, name)
	}
}

// TestDecisionsCountAsManyDecision: a batch's Decisions counts what as many
// calls of Decision count, outcomes and durations alike.
func TestDecisionsCountAsManyDecision(t *testing.T) {
	batch, one := metrics.New(metrics.Options{}), metrics.New(metrics.Options{})
	batch.Decisions(metrics.FrontCell, "", 3, 2, time.Millisecond)
	batch.Decisions(metrics.FrontCell, "", 0, 1, time.Second)
	batch.Decisions("smtp", "", 4, 4, time.Millisecond) // no such front: not counted
	for _, allowed := range []bool{true, true, true, false, false} {
		one.Decision(metrics.FrontCell, "", allowed, false, time.Millisecond)
	}
	one.Decision(metrics.FrontCell, "", false, false, time.Second)
	got, want := scrape(t, batch), scrape(t, one)
	for _, outcome := range []string{"allowed", "limited", "shadow_limited"} {
		assert.Equal(t, value(t, want, "bucketd_decisions_total", "front", "cell", "outcome", outcome),
			value(t, got, "bucketd_decisions_total", "front", "cell", "outcome", outcome), outcome)
	}
	assert.Equal(t, 3.0, value(t, got, "bucketd_decisions_total", "front", "cell", "outcome", "allowed"))
	assert.Equal(t, 3.0, value(t, got, "bucketd_decisions_total", "front", "cell", "outcome", "limited"))
	h := func(fams map[string]*dto.MetricFamily) *dto.Histogram {
		for _, m := range fams["bucketd_decision_duration_seconds"].GetMetric() {
			if m.GetLabel()[0].GetValue() == "cell" {
				return m.GetHistogram()
			}
		}
		return nil
	}
	require.NotNil(t, h(got))
	assert.Equal(t, uint64(6), h(got).GetSampleCount())
	assert.InDelta(t, h(want).GetSampleSum(), h(got).GetSampleSum(), 1e-12)
	assert.Equal(t, h(want).GetBucket(), h(got).GetBucket())
	_, ok := sample(got, "bucketd_decisions_total", "front", "smtp")
	assert.False(t, ok)
}

func TestRequestsByRouteAndStatus(t *testing.T) {
	m := metrics.New(metrics.Options{})
	key := m.Route("GET", "/:key")
	other := m.Route("GET", metrics.RouteOther)
	key(200)
	key(200)
	key(429)
	other(404)
	key(999) // out of range: counted all the same
	fams := scrape(t, m)
	assert.Equal(t, 2.0, value(t, fams, "bucketd_http_requests_total", "route", "/:key", "method", "GET", "code", "200"))
	assert.Equal(t, 1.0, value(t, fams, "bucketd_http_requests_total", "route", "/:key", "code", "429"))
	assert.Equal(t, 1.0, value(t, fams, "bucketd_http_requests_total", "route", "/:key", "code", "999"))
	assert.Equal(t, 1.0, value(t, fams, "bucketd_http_requests_total", "route", "other", "code", "404"))
	assert.Len(t, fams["bucketd_http_requests_total"].GetMetric(), 4)
}

// TestStoreMetricsFollowTheRealStore reads a real storage.DB: takes create
// keys, a save writes the log and a checkpoint, and a save that cannot
// write (the log's directory is gone) counts an error and makes the store
// unhealthy.
func TestStoreMetricsFollowTheRealStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bucketd.db")
	db, err := storage.Open(path, storage.Options{SyncInterval: time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	m := metrics.New(metrics.Options{
		Store:   metrics.StoreFunc(func() metrics.StoreStats { return metrics.StoreStats(db.Stats()) }),
		MaxKeys: 1000,
	})
	lim := []bucket.Limit{{Capacity: 5 * bucket.Token, Rate: bucket.Every(time.Hour)}}
	for _, k := range []string{"a", "b", "a"} {
		_, err := db.Take(storage.PolicyNS("p"), k, lim, bucket.Token, nil)
		require.NoError(t, err)
	}
	fams := scrape(t, m)
	assert.Equal(t, 2.0, value(t, fams, "bucketd_keys"))
	assert.Equal(t, 1000.0, value(t, fams, "bucketd_max_keys"))
	assert.Equal(t, 2.0, value(t, fams, "bucketd_keys_created_total"))
	assert.Equal(t, 0.0, value(t, fams, "bucketd_evictions_total"))
	assert.Equal(t, 1.0, value(t, fams, "bucketd_store_healthy"))

	before := time.Now()
	require.NoError(t, db.Save())
	fams = scrape(t, m)
	assert.Equal(t, 1.0, value(t, fams, "bucketd_persistence_writes_total", "kind", "log"))
	assert.Equal(t, 1.0, value(t, fams, "bucketd_persistence_writes_total", "kind", "checkpoint"))
	assert.Positive(t, value(t, fams, "bucketd_persistence_written_bytes_total", "kind", "log"))
	assert.Positive(t, value(t, fams, "bucketd_persistence_written_bytes_total", "kind", "checkpoint"))
	assert.GreaterOrEqual(t, value(t, fams, "bucketd_persistence_last_success_timestamp_seconds"), float64(before.Unix()))
	assert.Equal(t, 0.0, value(t, fams, "bucketd_persistence_errors_total", "kind", "checkpoint"))

	require.NoError(t, os.RemoveAll(path+".wal"))
	_, err = db.Take(storage.PolicyNS("p"), "c", lim, bucket.Token, nil)
	require.NoError(t, err)
	require.Error(t, db.Save())
	fams = scrape(t, m)
	assert.Equal(t, 1.0, value(t, fams, "bucketd_persistence_errors_total", "kind", "checkpoint"))
	assert.Equal(t, 0.0, value(t, fams, "bucketd_store_healthy"))
}

func TestRESPMetrics(t *testing.T) {
	m := metrics.New(metrics.Options{RESP: metrics.RESPFunc(func() metrics.RESPStats {
		return metrics.RESPStats{Connected: 2, Accepted: 5, Rejected: 1, Commands: map[string]uint64{"get": 3, "unknown": 1}}
	})})
	fams := scrape(t, m)
	assert.Equal(t, 2.0, value(t, fams, "bucketd_resp_connected_clients"))
	assert.Equal(t, 5.0, value(t, fams, "bucketd_resp_connections_total"))
	assert.Equal(t, 1.0, value(t, fams, "bucketd_resp_rejected_connections_total"))
	assert.Equal(t, 3.0, value(t, fams, "bucketd_resp_commands_total", "command", "get"))
	assert.Equal(t, 1.0, value(t, fams, "bucketd_resp_commands_total", "command", "unknown"))
}

// TestInfoShowsWhatMetricsShows: every counter and gauge of bucketd in
// /metrics has its number in Info.
func TestInfoShowsWhatMetricsShows(t *testing.T) {
	m := metrics.New(metrics.Options{RESP: metrics.RESPFunc(func() metrics.RESPStats {
		return metrics.RESPStats{Connected: 2, Accepted: 5, Commands: map[string]uint64{"get": 3}}
	})})
	m.Decision(metrics.FrontHTTP, "free", true, false, 0)
	m.Decision(metrics.FrontHTTP, "free", false, false, 0)
	m.Decision(metrics.FrontCell, "", false, false, 0)
	info := m.Info()
	assert.Equal(t, "allowed=1,limited=1,shadow_limited=0", info["decisions_total_http_free"])
	assert.Equal(t, "allowed=0,limited=1,shadow_limited=0", info["decisions_total_cell"])
	assert.Equal(t, "2", info["resp_connected_clients"])
	assert.Equal(t, "5", info["resp_connections_total"])
	assert.Equal(t, "get=3", info["resp_commands_total"])
	assert.NotContains(t, info, "decision_duration_seconds")
}

// TestPoliciesShowAtZero: the counters of every policy exist before their
// first take, on every front, and CL.THROTTLE's too.
func TestPoliciesShowAtZero(t *testing.T) {
	m := metrics.New(metrics.Options{})
	m.Policies([]string{"free", "paid"})
	fams := scrape(t, m)
	for _, front := range []string{"http", "json", "resp"} {
		for _, p := range []string{"free", "paid"} {
			for _, o := range []string{"allowed", "limited", "shadow_limited"} {
				assert.Zero(t, value(t, fams, "bucketd_decisions_total", "policy", p, "front", front, "outcome", o))
			}
		}
	}
	assert.Zero(t, value(t, fams, "bucketd_decisions_total", "policy", "", "front", "cell", "outcome", "limited"))
	assert.Len(t, fams["bucketd_decisions_total"].GetMetric(), 3*2*3+3)
}
