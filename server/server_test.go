package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

const T = bucket.Token

// call is one Take seen by a recordingLimiter, with its strings copied (the
// server's strings are only valid during the call).
type call struct {
	key, policy string
	cost        bucket.Tokens
}

// recorder returns a fake that answers res and err, and a function that
// returns the calls it saw.
func recorder(res bucket.Result, err error) (*fakeStore, func() []call) {
	var mu sync.Mutex
	var calls []call
	f := &fakeStore{take: func(key, policy string, cost bucket.Tokens) (bucket.Result, error) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, call{strings.Clone(key), strings.Clone(policy), cost})
		return res, err
	}}
	return f, func() []call {
		mu.Lock()
		defer mu.Unlock()
		return append([]call(nil), calls...)
	}
}

// noTake is a fake that fails the test if Take is called.
func noTake(t *testing.T) *fakeStore {
	return &fakeStore{take: func(key, _ string, _ bucket.Tokens) (bucket.Result, error) {
		t.Errorf("Take(%q) called; the request should have been refused before", key)
		return bucket.Result{}, errors.New("unexpected take")
	}}
}

// policy10 is one bucket of 10 tokens earning one every 3 s: its window is 30 s.
var policy10 = bucket.Policy{
	Name:   "default",
	Limits: []bucket.Limit{{Capacity: 10 * T, Rate: bucket.Every(3 * time.Second)}},
}

func allowed(remaining bucket.Tokens, reset time.Duration) bucket.Result {
	return bucket.Result{Policy: policy10, Decision: bucket.Decision{
		Allowed: true, Limit: 10 * T, Remaining: remaining, ResetAfter: reset}}
}

func denied(remaining bucket.Tokens, retry, reset time.Duration) bucket.Result {
	return bucket.Result{Policy: policy10, Decision: bucket.Decision{
		Limit: 10 * T, Remaining: remaining, RetryAfter: retry, ResetAfter: reset}}
}

// response is what a test checks of an answer.
type response struct {
	status int
	header http.Header
	body   string
}

// get sends GET target to s through app.Test.
func get(t *testing.T, s *Server, target string) response {
	t.Helper()
	return send(t, s, httptest.NewRequest(http.MethodGet, target, nil))
}

func send(t *testing.T, s *Server, req *http.Request) response {
	t.Helper()
	resp, err := s.app.Test(req, 5000)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{resp.StatusCode, resp.Header, string(body)}
}

func TestTakeBodies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		res    bucket.Result
		status int
		body   string
	}{
		{"allowed", allowed(9*T, 3*time.Second), 200, `{"detail":"OK"}`},
		{"denied", denied(0, time.Second, 30*time.Second), 429, `{"detail":"Too Many Requests"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, _ := recorder(tt.res, nil)
			r := get(t, New(f, Config{}), "/joe")
			assert.Equal(t, tt.status, r.status)
			assert.Equal(t, tt.body, r.body)
			assert.Equal(t, []string{"application/json"}, r.header.Values("Content-Type"))
		})
	}
}

func TestTakeArguments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		target string
		want   call
	}{
		{"/joe", call{"joe", "", T}},
		{"/joe?cost=2", call{"joe", "", 2 * T}},
		{"/joe?cost=0.25", call{"joe", "", T / 4}},
		{"/joe?cost=1.5&policy=gold", call{"joe", "gold", 3 * T / 2}},
		{"/joe?policy=", call{"joe", "", T}},
		{"/joe?cost=0.000001", call{"joe", "", 1}},
		{"/joe?cost=%2B3", call{"joe", "", 3 * T}}, // "+3"
		{"/joe/", call{"joe", "", T}},              // a trailing slash is ignored
		{"/Joe", call{"Joe", "", T}},               // keys are case-sensitive
		{"/HEALTHZ", call{"HEALTHZ", "", T}},
		// Percent-decoded, '+' kept.
		{"/a%2Fb", call{"a/b", "", T}},
		{"/a%20b", call{"a b", "", T}},
		{"/a+b", call{"a+b", "", T}},
		{"/user%3A42", call{"user:42", "", T}},
		{"/%E2%9C%93", call{"✓", "", T}},
		{"/health%7A", call{"healthz", "", T}},
		{"/%25", call{"%", "", T}},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			t.Parallel()
			f, calls := recorder(allowed(9*T, time.Second), nil)
			r := get(t, New(f, Config{}), tt.target)
			assert.Equal(t, 200, r.status, r.body)
			assert.Equal(t, []call{tt.want}, calls())
		})
	}
}

func TestRateLimitFields(t *testing.T) {
	t.Parallel()
	// Capacity 3, one token every 1.5 s: the window is 4.5 s.
	slow := bucket.Policy{Name: "slow", Limits: []bucket.Limit{{Capacity: 3 * T, Rate: bucket.Every(1500 * time.Millisecond)}}}
	// Capacity 2.5 tokens, 5 a second: the window is 0.5 s.
	tiny := bucket.Policy{Name: "tiny", Limits: []bucket.Limit{{Capacity: 5 * T / 2, Rate: bucket.PerSecond(5)}}}
	multi := bucket.Policy{Name: "api", Limits: []bucket.Limit{
		{Capacity: 10 * T, Rate: bucket.PerSecond(10)},
		{Capacity: 1000 * T, Rate: bucket.Rate{Tokens: 1000 * T, Per: 24 * time.Hour}},
	}}
	withPolicy := func(p bucket.Policy, d bucket.Decision) bucket.Result {
		return bucket.Result{Policy: p, Decision: d}
	}
	tests := []struct {
		name        string
		res         bucket.Result
		status      int
		policyField string
		limitField  string
		retryAfter  string // "" for none
	}{
		{"allowed whole", allowed(7*T, 9*time.Second), 200,
			`"default";q=10;w=30`, `"default";r=7;t=9`, ""},
		{"full bucket", allowed(10*T, 0), 200,
			`"default";q=10;w=30`, `"default";r=10;t=0`, ""},
		{"fractional remaining rounds down, reset rounds up", allowed(6*T+T/2, 10500*time.Millisecond), 200,
			`"default";q=10;w=30`, `"default";r=6;t=11`, ""},
		{"almost one token, a nanosecond to full", allowed(T-1, time.Nanosecond), 200,
			`"default";q=10;w=30`, `"default";r=0;t=1`, ""},
		{"denied, retry 1.2s rounds up", denied(T/2, 1200*time.Millisecond, 28*time.Second), 429,
			`"default";q=10;w=30`, `"default";r=0;t=28`, "2"},
		{"denied, retry exactly 3s", denied(0, 3*time.Second, 30*time.Second), 429,
			`"default";q=10;w=30`, `"default";r=0;t=30`, "3"},
		{"denied, retry sub-second", denied(T-1, 300*time.Millisecond, 27*time.Second+1), 429,
			`"default";q=10;w=30`, `"default";r=0;t=28`, "1"},
		{"denied, retry one nanosecond", denied(T-1, 1, 27*time.Second), 429,
			`"default";q=10;w=30`, `"default";r=0;t=27`, "1"},
		{"window rounds up", withPolicy(slow, bucket.Decision{Allowed: true, Limit: 3 * T, Remaining: 2 * T, ResetAfter: 1500 * time.Millisecond}), 200,
			`"slow";q=3;w=5`, `"slow";r=2;t=2`, ""},
		{"fractional capacity rounds down, window at least 1", withPolicy(tiny, bucket.Decision{Allowed: true, Limit: 5 * T / 2, Remaining: 3 * T / 2, ResetAfter: 200 * time.Millisecond}), 200,
			`"tiny";q=2;w=1`, `"tiny";r=1;t=1`, ""},
		{"shadow: allowed whatever the decision, fields say the truth", bucket.Result{
			Policy:   bucket.Policy{Name: "new", Limits: policy10.Limits, Shadow: true},
			Decision: bucket.Decision{Limit: 10 * T, Remaining: 0, RetryAfter: 2 * time.Second, ResetAfter: 30 * time.Second},
		}, 200, `"new";q=10;w=30`, `"new";r=0;t=30`, ""},
		{"several limits: one item each", bucket.Result{
			Policy:   multi,
			Decision: bucket.Decision{Allowed: true, Limit: 10 * T, Remaining: 3 * T, ResetAfter: 346 * time.Second},
			Limits: []bucket.Decision{
				{Allowed: true, Limit: 10 * T, Remaining: 3 * T, ResetAfter: 700 * time.Millisecond},
				{Allowed: true, Limit: 1000 * T, Remaining: 996 * T, ResetAfter: 345600 * time.Millisecond},
			},
		}, 200, `"api-1";q=10;w=1, "api-2";q=1000;w=86400`, `"api-1";r=3;t=1, "api-2";r=996;t=346`, ""},
		{"several limits, denied by the second", bucket.Result{
			Policy:   multi,
			Decision: bucket.Decision{Limit: 1000 * T, Remaining: 0, RetryAfter: 86400 * time.Second, ResetAfter: 86400 * time.Second},
			Limits: []bucket.Decision{
				{Allowed: true, Limit: 10 * T, Remaining: 10 * T},
				{Limit: 1000 * T, Remaining: 0, RetryAfter: 86400 * time.Second, ResetAfter: 86400 * time.Second},
			},
		}, 429, `"api-1";q=10;w=1, "api-2";q=1000;w=86400`, `"api-1";r=10;t=0, "api-2";r=0;t=86400`, "86400"},
		{"several limits without per-limit decisions: the deciding one", bucket.Result{
			Policy:   multi,
			Decision: bucket.Decision{Allowed: true, Limit: 1000 * T, Remaining: 5 * T, ResetAfter: time.Hour},
		}, 200, `"api";q=1000;w=86400`, `"api";r=5;t=3600`, ""},
		{"name is escaped as a String", withPolicy(bucket.Policy{Name: `a"b\c` + "\x01é", Limits: policy10.Limits},
			bucket.Decision{Allowed: true, Limit: 10 * T, Remaining: 10 * T}), 200,
			`"a\"b\\c???";q=10;w=30`, `"a\"b\\c???";r=10;t=0`, ""},
		{"no name is the default policy", withPolicy(bucket.Policy{Limits: policy10.Limits},
			bucket.Decision{Allowed: true, Limit: 10 * T, Remaining: 10 * T}), 200,
			`"default";q=10;w=30`, `"default";r=10;t=0`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, _ := recorder(tt.res, nil)
			r := get(t, New(f, Config{}), "/joe")
			assert.Equal(t, tt.status, r.status)
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
			r := get(t, New(noTake(t), Config{}), "/joe?"+tt.query)
			assert.Equal(t, 400, r.status)
			assert.Equal(t, errorBody(tt.msg, "cost"), r.body)
			assert.Equal(t, "application/json", r.header.Get("Content-Type"))
			assert.Empty(t, r.header.Values("RateLimit"))
		})
	}
}

// errorBody is the JSON error body, made with encoding/json so that the
// server's own encoder is checked against it.
func errorBody(msg, field string) string {
	v := struct {
		Error string `json:"error"`
		Field string `json:"field,omitempty"`
	}{msg, field}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func TestCostOverCapacity(t *testing.T) {
	t.Parallel()
	never := denied(10*T, bucket.Never, 0)
	f, calls := recorder(never, nil)
	r := get(t, New(f, Config{}), "/joe?cost=10.5")
	require.Equal(t, []call{{"joe", "", 10*T + T/2}}, calls())
	assert.Equal(t, 400, r.status)
	assert.Equal(t, `{"error":"cost 10.5 is more than the capacity 10 of policy \"default\"","field":"cost"}`, r.body)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	assert.Equal(t, `"default";q=10;w=30`, r.header.Get("RateLimit-Policy"))
	assert.Equal(t, `"default";r=10;t=0`, r.header.Get("RateLimit"))
	assert.Empty(t, r.header.Values("Retry-After"))

	t.Run("shadow", func(t *testing.T) {
		t.Parallel()
		shadow := never
		shadow.Policy.Shadow = true
		f, _ := recorder(shadow, nil)
		r := get(t, New(f, Config{}), "/joe?cost=11")
		assert.Equal(t, 200, r.status)
		assert.Equal(t, `{"detail":"OK"}`, r.body)
	})
}

func TestTakeErrors(t *testing.T) {
	t.Parallel()
	secret := errors.New("bbolt: disk on fire at /var/lib/secret")
	tests := []struct {
		name   string
		target string
		err    error
		status int
		body   string
	}{
		{"unknown policy", "/joe?policy=gold", fmt.Errorf("storage: take: %w", bucket.ErrUnknownPolicy), 404,
			`{"error":"unknown policy \"gold\"","field":"policy"}`},
		{"no default policy", "/joe", bucket.ErrUnknownPolicy, 404,
			`{"error":"unknown policy \"default\"","field":"policy"}`},
		{"store refuses the cost", "/joe?cost=2", fmt.Errorf("cost 2 is odd: %w", bucket.ErrInvalid), 400,
			`{"error":"cost 2 is odd: invalid","field":"cost"}`},
		{"closed", "/joe", fmt.Errorf("storage: take: %w", bucket.ErrClosed), 503,
			`{"error":"service is shutting down"}`},
		{"internal", "/joe", secret, 500, `{"error":"internal server error"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, _ := recorder(bucket.Result{}, tt.err)
			var logs bytes.Buffer
			s := New(f, Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
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
			assert.Equal(t, secret.Error(), lines[0]["error"])
			assert.Equal(t, "/joe", lines[0]["path"])
		})
	}
}

func TestPanicIsInternalError(t *testing.T) {
	t.Parallel()
	f := &fakeStore{take: func(string, string, bucket.Tokens) (bucket.Result, error) {
		panic("store bug")
	}}
	var logs bytes.Buffer
	s := New(f, Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	r := get(t, s, "/joe")
	assert.Equal(t, 500, r.status)
	assert.Equal(t, `{"error":"internal server error"}`, r.body)
	lines := logLines(t, &logs)
	require.Len(t, lines, 1)
	assert.Contains(t, lines[0]["error"], "panic: store bug")

	// The server still serves.
	r = get(t, s, "/healthz")
	assert.Equal(t, 200, r.status)
}

func logLines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	dec := json.NewDecoder(b)
	for dec.More() {
		var m map[string]any
		require.NoError(t, dec.Decode(&m))
		lines = append(lines, m)
	}
	return lines
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
			f, _ := recorder(allowed(T, time.Second), nil)
			if tt.status != 200 {
				f = noTake(t)
			}
			r := get(t, New(f, Config{MaxKeyLen: tt.max}), tt.target)
			assert.Equal(t, tt.status, r.status)
			assert.Equal(t, tt.body, r.body)
			assert.Equal(t, "application/json", r.header.Get("Content-Type"))
		})
	}
}

func TestMalformedKey(t *testing.T) {
	t.Parallel()
	req := httptest.NewRequest(http.MethodGet, "/x", nil)
	req.RequestURI = "/a%zzb" // what is sent; httptest refuses to parse it
	r := send(t, New(noTake(t), Config{}), req)
	assert.Equal(t, 400, r.status)
	assert.Equal(t, `{"error":"key has a malformed percent-escape","field":"key"}`, r.body)
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		method string
		target string
		status int
		body   string
		allow  string
	}{
		{"healthz", "GET", "/healthz", 200, `{"status":"ok"}`, ""},
		{"no key", "GET", "/", 404, `{"error":"no key: use GET /{key}","field":"key"}`, ""},
		{"two segments", "GET", "/a/b", 404, `{"error":"not found"}`, ""},
		{"html in path is not echoed", "GET", "/a/%3Cscript%3E", 404, `{"error":"not found"}`, ""},
		{"post", "POST", "/joe", 405, `{"error":"method not allowed"}`, "GET"},
		{"delete", "DELETE", "/joe", 405, `{"error":"method not allowed"}`, "GET"},
		{"unknown method", "BREW", "/joe", 405, `{"error":"method not allowed"}`, "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := send(t, New(noTake(t), Config{}), httptest.NewRequest(tt.method, tt.target, nil))
			assert.Equal(t, tt.status, r.status)
			assert.Equal(t, tt.body, r.body)
			assert.Equal(t, "application/json", r.header.Get("Content-Type"))
			assert.Equal(t, tt.allow, r.header.Get("Allow"))
		})
	}
}

func TestDebugLog(t *testing.T) {
	t.Parallel()
	f, _ := recorder(denied(0, time.Second, 10*time.Second), nil)
	var logs bytes.Buffer
	s := New(f, Config{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	get(t, s, "/joe?cost=0.5")
	get(t, s, "/joe?cost=zero")

	lines := logLines(t, &logs)
	require.Len(t, lines, 2)
	take := lines[0]
	assert.Equal(t, "DEBUG", take["level"])
	assert.Equal(t, "take", take["msg"])
	assert.Equal(t, "joe", take["key"])
	assert.Equal(t, "0.5", take["cost"])
	assert.Equal(t, false, take["allowed"])
	assert.Equal(t, float64(429), take["status"])
	assert.Contains(t, take, "duration")

	bad := lines[1]
	assert.Equal(t, "DEBUG", bad["level"])
	assert.Equal(t, float64(400), bad["status"])
	assert.Equal(t, `cost "zero" is not a decimal number`, bad["error"])
}

func TestAppendJSONString(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", `q"b\s`, "tab\tnl\ncr\r", "\x00\x01\x1f\x7f", "é✓𝄞", "bad\xffutf8", "<&>"} {
		want, err := json.Marshal(s)
		require.NoError(t, err)
		var got, decoded string
		got = string(appendJSONString(nil, s))
		require.NoError(t, json.Unmarshal([]byte(got), &decoded), got)
		assert.Equal(t, strings.ToValidUTF8(s, "\uFFFD"), decoded, "round trip of %q", s)
		var fromStd string
		require.NoError(t, json.Unmarshal(want, &fromStd))
		assert.Equal(t, fromStd, decoded, "same as encoding/json for %q", s)
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
