package metrics

import (
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// Info returns the counters and gauges of /metrics as fields of Redis's
// INFO (its Bucketd section), from one gather of the same registry, so
// that both show the same numbers:
//
//	keys:42                                      a metric without labels
//	persistence_errors_total:checkpoint=0,log=1  one field per label value
//	decisions_total_http_free:allowed=9,limited=2,shadow_limited=0
//
// Decisions are keyed by front and policy (the policy is left off for
// CL.THROTTLE). Histograms, the Go runtime's and the process's metrics are
// left out. The "bucketd_" prefix is dropped.
func (m *Metrics) Info() map[string]string {
	fams, err := m.reg.Gather()
	out := make(map[string]string)
	if err != nil {
		out["metrics_error"] = err.Error()
	}
	lines := map[string][]string{} // a key's "label=value" fields
	for _, f := range fams {
		name, ok := strings.CutPrefix(f.GetName(), "bucketd_")
		if !ok || name == "build_info" || (f.GetType() != dto.MetricType_COUNTER && f.GetType() != dto.MetricType_GAUGE) {
			continue
		}
		for _, mt := range f.GetMetric() {
			v := value(mt)
			labels := mt.GetLabel()
			switch {
			case name == "decisions_total":
				var policy, front, outcome string
				for _, l := range labels {
					switch l.GetName() {
					case "policy":
						policy = l.GetValue()
					case "front":
						front = l.GetValue()
					case "outcome":
						outcome = l.GetValue()
					}
				}
				key := name + "_" + front
				if policy != "" {
					key += "_" + policy
				}
				lines[key] = append(lines[key], outcome+"="+v)
			case len(labels) == 0:
				out[name] = v
			default:
				vals := make([]string, len(labels))
				for i, l := range labels {
					vals[i] = l.GetValue()
				}
				lines[name] = append(lines[name], strings.Join(vals, "_")+"="+v)
			}
		}
	}
	for k, fields := range lines {
		sort.Strings(fields)
		out[k] = strings.Join(fields, ",")
	}
	return out
}

// value formats a sample's value as /metrics does for whole numbers.
func value(m *dto.Metric) string {
	var v float64
	switch {
	case m.Counter != nil:
		v = m.GetCounter().GetValue()
	case m.Gauge != nil:
		v = m.GetGauge().GetValue()
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
