package server

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

func TestTakeBodies(t *testing.T) {
	t.Parallel()
	e, s := newServer(t, Config{})
	e.take(t, "joe", "", 9*T)
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"allowed: the last token", 200, `{"detail":"OK"}`},
		{"denied: none left", 429, `{"detail":"Too Many Requests"}`},
	}
	for _, tt := range tests { // in order: each takes from the same bucket
		r := get(t, s, "/joe")
		assert.Equal(t, tt.status, r.status, tt.name)
		assert.Equal(t, tt.body, r.body, tt.name)
		assert.Equal(t, []string{"application/json"}, r.header.Values("Content-Type"), tt.name)
	}
}

// bigPolicy holds more than any cost a test takes and refills too slowly to
// be seen: what a take removed is still missing when the test looks.
func bigPolicy(name string) bucket.Policy {
	return bucket.Policy{Name: name, Limits: []bucket.Limit{{Capacity: bucket.MaxTokens, Rate: bucket.Every(time.Hour)}}}
}

// TestTakeArguments checks that the key, cost and policy of the request are
// what is taken: each request's bucket is read back from the store.
func TestTakeArguments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		target string
		want   spent
	}{
		{"/joe", spent{"joe", "default", T}},
		{"/joe?cost=2", spent{"joe", "default", 2 * T}},
		{"/joe?cost=0.25", spent{"joe", "default", T / 4}},
		{"/joe?cost=1.5&policy=gold", spent{"joe", "gold", 3 * T / 2}},
		{"/joe?policy=", spent{"joe", "default", T}},
		{"/joe?cost=0.000001", spent{"joe", "default", 1}},
		{"/joe?cost=%2B3", spent{"joe", "default", 3 * T}}, // "+3"
		{"/joe/", spent{"joe", "default", T}},              // a trailing slash is ignored
		{"/Joe", spent{"Joe", "default", T}},               // keys are case-sensitive
		{"/HEALTHZ", spent{"HEALTHZ", "default", T}},
		{"/READYZ", spent{"READYZ", "default", T}},
		// Percent-decoded, '+' kept.
		{"/a%2Fb", spent{"a/b", "default", T}},
		{"/a%20b", spent{"a b", "default", T}},
		{"/a+b", spent{"a+b", "default", T}},
		{"/user%3A42", spent{"user:42", "default", T}},
		{"/%E2%9C%93", spent{"✓", "default", T}},
		{"/health%7A", spent{"healthz", "default", T}},
		{"/ready%7A", spent{"readyz", "default", T}},
		{"/%25", spent{"%", "default", T}},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, bigPolicy("default"), bigPolicy("gold"))
			r := get(t, New(e.lim, Config{}), tt.target)
			assert.Equal(t, 200, r.status, r.body)
			assert.Equal(t, []spent{tt.want}, e.spent(t))
		})
	}
}

func TestBadCost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query string
		msg   string
	}{
		{"cost=0", `cost "0" must be more than zero`},
		{"cost=0.000", `cost "0.000" must be more than zero`},
		{"cost=-1", `cost "-1" is negative`},
		{"cost=NaN", `cost "NaN" is not a decimal number`},
		{"cost=Inf", `cost "Inf" is not a decimal number`},
		{"cost=%2BInf", `cost "+Inf" is not a decimal number`},
		{"cost=-Inf", `cost "-Inf" is negative`},
		{"cost=abc", `cost "abc" is not a decimal number`},
		{"cost=1e3", `cost "1e3" is not a decimal number`},
		{"cost=0x10", `cost "0x10" is not a decimal number`},
		{"cost=1,5", `cost "1,5" is not a decimal number`},
		{"cost=+1", `cost " 1" is not a decimal number`}, // '+' is a space in a query
		{"cost=", `cost "" is not a decimal number`},
		{"cost", `cost "" is not a decimal number`},
		{"cost=1.0000001", `cost "1.0000001" has more than 6 decimal places`},
		{"cost=10000000000001", `cost "10000000000001" is more than the maximum of 1000000000000`},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			e, s := newServer(t, Config{})
			r := get(t, s, "/joe?"+tt.query)
			assert.Equal(t, 400, r.status)
			assert.Equal(t, errorBody(tt.msg, "cost"), r.body)
			assert.Equal(t, "application/json", r.header.Get("Content-Type"))
			assert.Empty(t, r.header.Values("RateLimit"))
			e.assertNoTake(t)
		})
	}
}

func TestCostOverCapacity(t *testing.T) {
	t.Parallel()
	e, s := newServer(t, Config{})
	r := get(t, s, "/joe?cost=10.5")
	assert.Equal(t, 400, r.status)
	assert.Equal(t, `{"error":"cost 10.5 is more than the capacity 10 of policy \"default\"","field":"cost"}`, r.body)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	assert.Equal(t, `"default";q=10;w=30`, r.header.Get("RateLimit-Policy"))
	assert.Equal(t, `"default";r=10;t=0`, r.header.Get("RateLimit"))
	assert.Empty(t, r.header.Values("Retry-After"))
	assert.Empty(t, e.spent(t), "nothing taken")
	assert.Equal(t, bucket.Counts{Denied: 1}, e.lim.Policies()[1].Counts, "counted as a denial")

	t.Run("shadow", func(t *testing.T) {
		t.Parallel()
		_, s := newServer(t, Config{})
		r := get(t, s, "/joe?cost=2&policy=new") // capacity 1
		assert.Equal(t, 200, r.status)
		assert.Equal(t, `{"detail":"OK"}`, r.body)
		assert.Equal(t, `"new";r=1;t=0`, r.header.Get("RateLimit"), "the fields tell the truth")
	})
}

func TestTakeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		target string
		fault  error // injected into the limiter's answer; nil for none
		close  bool  // close the store first
		status int
		body   string
	}{
		{"unknown policy", "/joe?policy=gold", nil, false, 404,
			`{"error":"unknown policy \"gold\"","field":"policy"}`},
		{"closed", "/joe", nil, true, 503, `{"error":"service is shutting down"}`},
		{"not durable", "/joe", errDiskFull, false, 503,
			`{"error":"the data file cannot be written: the take was made and its tokens stay spent, but it is not on disk yet"}`},
		{"internal", "/joe", errSecret, false, 500, `{"error":"internal server error"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if tt.close {
				require.NoError(t, e.db.Close())
			}
			var logs bytes.Buffer
			s := New(faultyLimiter{e.lim, func(string) error { return tt.fault }},
				Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			r := get(t, s, tt.target)
			assert.Equal(t, tt.status, r.status)
			assert.Equal(t, tt.body, r.body)
			assert.Equal(t, "application/json", r.header.Get("Content-Type"))
			lines := logLines(t, &logs)
			if tt.status != 500 {
				assert.Empty(t, lines, "only internal errors are logged at info and above")
				return
			}
			assert.NotContains(t, r.body, "secret")
			require.Len(t, lines, 1, "logged once")
			assert.Equal(t, "ERROR", lines[0]["level"])
			assert.Equal(t, errSecret.Error(), lines[0]["error"])
			assert.Equal(t, "/joe", lines[0]["path"])
		})
	}
}

// TestTakeNotDurable: under --sync always, a take whose commit failed is
// answered 503 by every take route, and its tokens stay spent (README,
// Durability). The failed commit is injected (faultyLimiter: the store's
// disk can only be made to fail from inside package storage); the take
// itself is the real one.
func TestTakeNotDurable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := New(faultyLimiter{e.lim, func(string) error { return errDiskFull }}, Config{})
	const msg = `the data file cannot be written: the take was made and its tokens stay spent, but it is not on disk yet`

	r := get(t, s, "/joe?cost=2")
	assert.Equal(t, 503, r.status)
	assert.Equal(t, errorBody(msg, ""), r.body)
	assert.Empty(t, r.header.Values("RateLimit"), "no decision to report")

	r = do(t, s, "POST", "/v1/take", `{"key":"joe","cost":3}`)
	assert.Equal(t, 503, r.status)
	assert.Equal(t, errorBody(msg, ""), r.body)

	r = do(t, s, "POST", "/v1/batch", `{"takes":[{"key":"joe"}]}`)
	assert.Equal(t, 200, r.status)
	assert.Equal(t, `{"results":[{"error":"`+msg+`","status":503}]}`, r.body)

	assert.Equal(t, []spent{{"joe", "default", 6 * T}}, e.spent(t), "every take stays spent")
	assert.Equal(t, bucket.Counts{Allowed: 3}, e.lim.Policies()[1].Counts, "and counted")
}

func TestPanicIsInternalError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lim := faultyLimiter{e.lim, func(string) error { panic("limiter bug") }}
	var logs bytes.Buffer
	s := New(lim, Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	for _, req := range []*http.Request{
		httptest.NewRequest("GET", "/joe", nil),
		httptest.NewRequest("POST", "/v1/take", strings.NewReader(`{"key":"joe"}`)),
	} {
		r := send(t, s, req)
		assert.Equal(t, 500, r.status, req.URL.Path)
		assert.Equal(t, `{"error":"internal server error"}`, r.body, req.URL.Path)
	}
	lines := logLines(t, &logs)
	require.Len(t, lines, 2)
	for _, l := range lines {
		assert.Contains(t, l["error"], "panic: limiter bug")
	}

	// The server still serves.
	assert.Equal(t, 200, get(t, s, "/healthz").status)
}

func TestKeyLength(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		max    int
		target string
		status int
		body   string
	}{
		{"default max", 0, "/" + strings.Repeat("k", 256), 200, `{"detail":"OK"}`},
		{"over default max", 0, "/" + strings.Repeat("k", 257), 414,
			`{"error":"key is longer than 256 bytes","field":"key"}`},
		{"negative is the default", -1, "/" + strings.Repeat("k", 257), 414,
			`{"error":"key is longer than 256 bytes","field":"key"}`},
		{"configured max", 4, "/abcd", 200, `{"detail":"OK"}`},
		{"over configured max", 4, "/abcde", 414, `{"error":"key is longer than 4 bytes","field":"key"}`},
		{"counted decoded", 4, "/%61%62%63%64", 200, `{"detail":"OK"}`},
		{"counted decoded, over", 4, "/%61%62%63%64%65", 414, `{"error":"key is longer than 4 bytes","field":"key"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			r := get(t, New(e.lim, Config{MaxKeyLen: tt.max}), tt.target)
			assert.Equal(t, tt.status, r.status)
			assert.Equal(t, tt.body, r.body)
			assert.Equal(t, "application/json", r.header.Get("Content-Type"))
			if tt.status != 200 {
				e.assertNoTake(t)
			}
		})
	}
}

func TestMalformedKey(t *testing.T) {
	t.Parallel()
	e, s := newServer(t, Config{})
	req := httptest.NewRequest(http.MethodGet, "/x", nil)
	req.RequestURI = "/a%zzb" // what is sent; httptest refuses to parse it
	r := send(t, s, req)
	assert.Equal(t, 400, r.status)
	assert.Equal(t, `{"error":"key has a malformed percent-escape","field":"key"}`, r.body)
	e.assertNoTake(t)
}

func TestDebugLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.take(t, "joe", "", 10*T) // not through the server: not logged
	var logs bytes.Buffer
	s := New(e.lim, Config{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	get(t, s, "/joe?cost=0.5")
	get(t, s, "/joe?cost=zero")

	lines := logLines(t, &logs)
	require.Len(t, lines, 2)
	take := lines[0]
	assert.Equal(t, "DEBUG", take["level"])
	assert.Equal(t, "take", take["msg"])
	assert.Equal(t, "joe", take["key"])
	assert.Equal(t, "default", take["policy"])
	assert.Equal(t, "0.5", take["cost"])
	assert.Equal(t, false, take["allowed"])
	assert.Equal(t, float64(429), take["status"])
	assert.Contains(t, take, "duration")

	bad := lines[1]
	assert.Equal(t, "DEBUG", bad["level"])
	assert.Equal(t, float64(400), bad["status"])
	assert.Equal(t, `cost "zero" is not a decimal number`, bad["error"])
}

// TestReadyz: /readyz is readiness (503 once the store is closed), /healthz
// liveness (200 throughout).
func TestReadyz(t *testing.T) {
	t.Parallel()
	e, s := newServer(t, Config{AdminToken: "sesame"}) // both open without the token
	check := func(target string, status int, body string) {
		t.Helper()
		r := get(t, s, target)
		assert.Equal(t, status, r.status, target)
		assert.Equal(t, body, r.body, target)
		assert.Equal(t, "application/json", r.header.Get("Content-Type"), target)
	}
	check("/readyz", 200, `{"status":"ok"}`)
	check("/healthz", 200, `{"status":"ok"}`)

	require.NoError(t, e.db.Close())
	check("/readyz", 503, `{"status":"unavailable","error":"store is closed"}`)
	check("/healthz", 200, `{"status":"ok"}`)
}
