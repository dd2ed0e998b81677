package server

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

// TestRateLimitFields checks the fields of GET /{key} on real buckets: each
// case sets a bucket up through the limiter, then takes through the server.
func TestRateLimitFields(t *testing.T) {
	t.Parallel()
	// Capacity 3, one token every 1.5 s: the window is 4.5 s.
	slow := bucket.Policy{Name: "slow", Limits: []bucket.Limit{{Capacity: 3 * T, Rate: bucket.Every(1500 * time.Millisecond)}}}
	// Capacity 2.5 tokens, 5 a second: the window is 0.5 s.
	tiny := bucket.Policy{Name: "tiny", Limits: []bucket.Limit{{Capacity: 5 * T / 2, Rate: bucket.PerSecond(5)}}}
	shadow := bucket.Policy{Name: "new", Limits: policy10.Limits, Shadow: true}
	odd := bucket.Policy{Name: `a"b\c` + "\x01é", Limits: policy10.Limits}
	tests := []struct {
		name        string
		policies    []bucket.Policy // the first is the default
		setup       func(t *testing.T, e *env)
		target      string
		status      int
		policyField string
		limitField  string
		retryAfter  string // "" for none
	}{
		{"allowed whole", nil, nil, "/joe?cost=3", 200,
			`"default";q=10;w=30`, `"default";r=7;t=9`, ""},
		{"fractional remaining rounds down, reset rounds up", nil, nil, "/joe?cost=3.5", 200,
			`"default";q=10;w=30`, `"default";r=6;t=11`, ""}, // 6.5 left, full in 10.5 s
		{"refilled by the clock", nil, func(t *testing.T, e *env) {
			e.take(t, "joe", "", 10*T)
			e.clock.Advance(4500 * time.Millisecond) // 1.5 tokens back
		}, "/joe", 200, `"default";q=10;w=30`, `"default";r=0;t=29`, ""}, // 0.5 left, full in 28.5 s
		{"denied, retry 1.2s rounds up", nil, func(t *testing.T, e *env) {
			e.take(t, "joe", "", 9*T+4*T/10) // 0.6 left: 0.4 more in 1.2 s
		}, "/joe", 429, `"default";q=10;w=30`, `"default";r=0;t=29`, "2"}, // full in 28.2 s
		{"denied, retry exactly 3s", nil, func(t *testing.T, e *env) {
			e.take(t, "joe", "", 10*T)
		}, "/joe", 429, `"default";q=10;w=30`, `"default";r=0;t=30`, "3"},
		{"denied, retry sub-second", nil, func(t *testing.T, e *env) {
			e.take(t, "joe", "", 9*T+T/10) // 0.9 left: 0.1 more in 0.3 s
		}, "/joe", 429, `"default";q=10;w=30`, `"default";r=0;t=28`, "1"}, // full in 27.3 s
		{"window rounds up", []bucket.Policy{slow}, nil, "/joe", 200,
			`"slow";q=3;w=5`, `"slow";r=2;t=2`, ""},
		{"fractional capacity rounds down, window at least 1", []bucket.Policy{tiny}, nil, "/joe", 200,
			`"tiny";q=2;w=1`, `"tiny";r=1;t=1`, ""}, // 1.5 left, full in 0.2 s
		{"shadow: allowed whatever the decision, fields say the truth", []bucket.Policy{policy10, shadow}, func(t *testing.T, e *env) {
			e.take(t, "joe", "new", 10*T)
		}, "/joe?policy=new", 200, `"new";q=10;w=30`, `"new";r=0;t=30`, ""},
		{"several limits: one item each", []bucket.Policy{policy10, policyAPI}, nil, "/joe?policy=api&cost=4", 200,
			`"api-1";q=10;w=1, "api-2";q=1000;w=86400`, `"api-1";r=6;t=1, "api-2";r=996;t=346`, ""},
		{"several limits, denied by the second", []bucket.Policy{policy10, policyAPI}, func(t *testing.T, e *env) {
			_, err := e.lim.Set("joe", "api", 0)
			require.NoError(t, err)
			e.clock.Advance(86400 * time.Millisecond) // the burst is full again, the quota has 1
		}, "/joe?policy=api&cost=2", 429,
			`"api-1";q=10;w=1, "api-2";q=1000;w=86400`, `"api-1";r=10;t=0, "api-2";r=1;t=86314`, "87"},
		{"name is escaped as a String", []bucket.Policy{odd}, nil, "/joe", 200,
			`"a\"b\\c???";q=10;w=30`, `"a\"b\\c???";r=9;t=3`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tt.policies...)
			if tt.setup != nil {
				tt.setup(t, e)
			}
			r := get(t, New(e.lim, Config{}), tt.target)
			assert.Equal(t, tt.status, r.status, r.body)
			assert.Equal(t, []string{tt.policyField}, r.header.Values("RateLimit-Policy"))
			assert.Equal(t, []string{tt.limitField}, r.header.Values("RateLimit"))
			if tt.retryAfter == "" {
				assert.Empty(t, r.header.Values("Retry-After"))
			} else {
				assert.Equal(t, []string{tt.retryAfter}, r.header.Values("Retry-After"))
			}
		})
	}
}

// TestRateLimitFieldValues checks the rendering of results that no setup
// of the real limiter reaches exactly (a nanosecond to full), or that only
// another Limiter could send (no per-limit decisions, no policy name, no
// limits): the functions on values, without a server.
func TestRateLimitFieldValues(t *testing.T) {
	t.Parallel()
	multi := policyAPI
	tests := []struct {
		name        string
		res         bucket.Result
		policyField string
		limitField  string
	}{
		{"full bucket", bucket.Result{Policy: policy10, Decision: bucket.Decision{Allowed: true, Limit: 10 * T, Remaining: 10 * T}},
			`"default";q=10;w=30`, `"default";r=10;t=0`},
		{"almost one token, a nanosecond to full", bucket.Result{Policy: policy10, Decision: bucket.Decision{
			Allowed: true, Limit: 10 * T, Remaining: T - 1, ResetAfter: time.Nanosecond}},
			`"default";q=10;w=30`, `"default";r=0;t=1`},
		{"several limits without per-limit decisions: the deciding one", bucket.Result{Policy: multi,
			Decision: bucket.Decision{Allowed: true, Limit: 1000 * T, Remaining: 5 * T, ResetAfter: time.Hour}},
			`"api";q=1000;w=86400`, `"api";r=5;t=3600`},
		{"no name is the default policy", bucket.Result{Policy: bucket.Policy{Limits: policy10.Limits},
			Decision: bucket.Decision{Allowed: true, Limit: 10 * T, Remaining: 10 * T}},
			`"default";q=10;w=30`, `"default";r=10;t=0`},
		{"no limits: the capacity alone", bucket.Result{Policy: bucket.Policy{Name: "p"},
			Decision: bucket.Decision{Allowed: true, Limit: 10 * T, Remaining: 4 * T, ResetAfter: 18 * time.Second}},
			`"p";q=10`, `"p";r=4;t=18`},
		{"negative remaining is 0", bucket.Result{Policy: policy10, Decision: bucket.Decision{Limit: 10 * T, Remaining: -T, ResetAfter: 33 * time.Second}},
			`"default";q=10;w=30`, `"default";r=0;t=33`},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.policyField, string(appendPolicyField(nil, &tt.res)), tt.name)
		assert.Equal(t, tt.limitField, string(appendLimitField(nil, &tt.res)), tt.name)
	}
}

func TestCeilSeconds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		want int64
	}{
		{-time.Second, 0},
		{0, 0},
		{1, 1},
		{999 * time.Millisecond, 1},
		{time.Second, 1},
		{time.Second + 1, 2},
		{1200 * time.Millisecond, 2},
		{3 * time.Second, 3},
		{1<<63 - 1, 9223372037},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, ceilSeconds(tt.d), "ceilSeconds(%v)", tt.d)
	}
}
