package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

// t0 is the memStore's clock at the start of every test.
var t0 = time.Unix(1_700_000_000, 0)

// Policies of the memStore tests, with policy10 the default.
var (
	// policyAPI is a burst and a daily quota.
	policyAPI = bucket.Policy{Name: "api", Limits: []bucket.Limit{
		{Capacity: 10 * T, Rate: bucket.PerSecond(10)},
		{Capacity: 1000 * T, Rate: bucket.Rate{Tokens: 1000 * T, Per: 24 * time.Hour}},
	}}
	// policyShadow denies all but one take a minute, but only in the counts.
	policyShadow = bucket.Policy{Name: "new", Shadow: true, Limits: []bucket.Limit{
		{Capacity: T, Rate: bucket.Every(time.Minute)},
	}}
)

// newMem returns a memStore with policy10 (the default), policyAPI and
// policyShadow, and a Server in front of it.
func newMem(cfg Config) (*memStore, *Server) {
	m := newMemStore(t0, policy10, policyAPI, policyShadow)
	return m, New(m, cfg)
}

// do sends method target with body (none when "") and the headers given
// as name, value pairs.
func do(t *testing.T, s *Server, method, target, body string, header ...string) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return send(t, s, req)
}

// decodeAny decodes a JSON body, numbers as json.Number.
func decodeAny(t *testing.T, body string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	require.NoError(t, dec.Decode(&m), body)
	return m
}

func TestAPITakeBothOutcomesAre200(t *testing.T) {
	t.Parallel()
	_, s := newMem(Config{})
	r := do(t, s, "POST", "/v1/take", `{"key":"joe","cost":2.5}`)
	assert.Equal(t, 200, r.status)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	assert.Equal(t, `{"key":"joe","policy":"default","shadow":false,"allowed":true,"limited":false,"never":false,`+
		`"cost":2.5,"limit":10,"remaining":7.5,"retry_after_ms":0,"reset_after_ms":7500,`+
		`"limits":[{"capacity":10,"rate":"1/3s","allowed":true,"remaining":7.5,"retry_after_ms":0,"reset_after_ms":7500}]}`, r.body)

	// 8 > 7.5: refused, still 200; half a token at one every 3 s is 1.5 s.
	r = do(t, s, "POST", "/v1/take", `{"key":"joe","cost":8}`)
	assert.Equal(t, 200, r.status)
	assert.Equal(t, `{"key":"joe","policy":"default","shadow":false,"allowed":false,"limited":true,"never":false,`+
		`"cost":8,"limit":10,"remaining":7.5,"retry_after_ms":1500,"reset_after_ms":7500,`+
		`"limits":[{"capacity":10,"rate":"1/3s","allowed":false,"remaining":7.5,"retry_after_ms":1500,"reset_after_ms":7500}]}`, r.body)
	assert.Empty(t, r.header.Values("Retry-After"), "no rate-limit fields: the answer is the body")
	assert.Empty(t, r.header.Values("RateLimit"))
}

func TestAPITakeNever(t *testing.T) {
	t.Parallel()
	_, s := newMem(Config{})
	r := do(t, s, "POST", "/v1/take", `{"key":"joe","cost":11}`)
	assert.Equal(t, 200, r.status, "a decision, not an error as in GET /{key}")
	m := decodeAny(t, r.body)
	assert.Equal(t, false, m["allowed"])
	assert.Equal(t, true, m["limited"])
	assert.Equal(t, true, m["never"])
	assert.Nil(t, m["retry_after_ms"])
	assert.Contains(t, r.body, `"retry_after_ms":null`)
}

func TestAPITakeShadow(t *testing.T) {
	t.Parallel()
	m, s := newMem(Config{})
	do(t, s, "POST", "/v1/take", `{"key":"joe","policy":"new"}`)
	r := do(t, s, "POST", "/v1/take", `{"key":"joe","policy":"new"}`)
	assert.Equal(t, 200, r.status)
	assert.Equal(t, `{"key":"joe","policy":"new","shadow":true,"allowed":true,"limited":true,"never":false,`+
		`"cost":1,"limit":1,"remaining":0,"retry_after_ms":60000,"reset_after_ms":60000,`+
		`"limits":[{"capacity":1,"rate":"1/m","allowed":false,"remaining":0,"retry_after_ms":60000,"reset_after_ms":60000}]}`, r.body)
	info := m.Policies()[2]
	require.Equal(t, "new", info.Name)
	assert.Equal(t, bucket.Counts{Allowed: 1, Denied: 1}, info.Counts)
}

func TestAPITakeSeveralLimits(t *testing.T) {
	t.Parallel()
	_, s := newMem(Config{})
	r := do(t, s, "POST", "/v1/take", `{"key":"joe","policy":"api","cost":4}`)
	assert.Equal(t, 200, r.status)
	// 6 of 10 at 10/s: full in 0.4 s; 996 of 1000 at 1000/d: 4 * 86.4 s.
	assert.Equal(t, `{"key":"joe","policy":"api","shadow":false,"allowed":true,"limited":false,"never":false,`+
		`"cost":4,"limit":10,"remaining":6,"retry_after_ms":0,"reset_after_ms":345600,"limits":[`+
		`{"capacity":10,"rate":"10/s","allowed":true,"remaining":6,"retry_after_ms":0,"reset_after_ms":400},`+
		`{"capacity":1000,"rate":"1000/d","allowed":true,"remaining":996,"retry_after_ms":0,"reset_after_ms":345600}]}`, r.body)

	// Above the burst but not the quota: never, from the burst's line; the
	// quota's line is a peek, since nothing was taken.
	r = do(t, s, "POST", "/v1/take", `{"key":"joe","policy":"api","cost":11}`)
	assert.Equal(t, `{"key":"joe","policy":"api","shadow":false,"allowed":false,"limited":true,"never":true,`+
		`"cost":11,"limit":10,"remaining":6,"retry_after_ms":null,"reset_after_ms":345600,"limits":[`+
		`{"capacity":10,"rate":"10/s","allowed":false,"remaining":6,"retry_after_ms":null,"reset_after_ms":400},`+
		`{"capacity":1000,"rate":"1000/d","allowed":true,"remaining":996,"retry_after_ms":0,"reset_after_ms":345600}]}`, r.body)
}

func TestAPITakeArguments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body string
		want call
	}{
		{`{"key":"joe"}`, call{"joe", "", T}},
		{`{"key":"joe","cost":null}`, call{"joe", "", T}},
		{`{"key":"joe","cost":0}`, call{"joe", "", 0}}, // a peek
		{`{"key":"joe","cost":"0"}`, call{"joe", "", 0}},
		{`{"key":"joe","cost":0.1}`, call{"joe", "", T / 10}}, // exactly, not through a float
		{`{"key":"joe","cost":"0.1"}`, call{"joe", "", T / 10}},
		{`{"key":"joe","cost":2.50}`, call{"joe", "", 5 * T / 2}},
		{`{"key":"joe","cost":0.000001}`, call{"joe", "", 1}},
		{`{"key":"joe","cost":"+3"}`, call{"joe", "", 3 * T}},
		{`{"key":"joe","cost":999999999999.999999}`, call{"joe", "", bucket.MaxTokens - 1}},
		{`{"key":"a/b c","policy":"gold","cost":1}`, call{"a/b c", "gold", T}},
		{`{"key":"✓","policy":""}`, call{"✓", "", T}},
		{`{"policy":"gold","key":"x"}`, call{"x", "gold", T}},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			t.Parallel()
			f, calls := recorder(allowed(9*T, time.Second), nil)
			r := do(t, New(f, Config{}), "POST", "/v1/take", tt.body)
			assert.Equal(t, 200, r.status, r.body)
			assert.Equal(t, []call{tt.want}, calls())
			assert.Contains(t, r.body, `"cost":`+tt.want.cost.String()+`,`)
		})
	}
}

func TestAPITakeBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body   string
		status int
		field  string
		msg    string
	}{
		{`{"key":"joe","cost":-1}`, 400, "cost", `cost "-1" is negative`},
		{`{"key":"joe","cost":"-0.5"}`, 400, "cost", `cost "-0.5" is negative`},
		{`{"key":"joe","cost":"NaN"}`, 400, "cost", `cost "NaN" is not a decimal number`},
		{`{"key":"joe","cost":"Inf"}`, 400, "cost", `cost "Inf" is not a decimal number`},
		{`{"key":"joe","cost":""}`, 400, "cost", `cost "" is not a decimal number`},
		{`{"key":"joe","cost":1e3}`, 400, "cost", `cost "1e3" is not a decimal number`},
		{`{"key":"joe","cost":1.0000001}`, 400, "cost", `cost "1.0000001" has more than 6 decimal places`},
		{`{"key":"joe","cost":1000000000001}`, 400, "cost", `cost "1000000000001" is more than the maximum of 1000000000000`},
		{`{"key":"joe","cost":true}`, 400, "cost", `cost must be a number or a string holding one, not a boolean`},
		{`{"key":"joe","cost":[1]}`, 400, "cost", `cost must be a number or a string holding one, not an array`},
		{`{"key":"joe","cost":NaN}`, 400, "", `malformed JSON at byte 21: invalid character 'N' looking for beginning of value`},
		{`{"cost":1}`, 400, "key", `key is required`},
		{`{"key":""}`, 400, "key", `key is required`},
		{`{"key":"` + strings.Repeat("k", 257) + `"}`, 400, "key", `key is longer than 256 bytes`},
		{`{"key":5}`, 400, "key", `key must be a string, not a number`},
		{`{"key":"joe","policy":["a"]}`, 400, "policy", `policy must be a string, not an array`},
		{`{"key":"joe","extra":1}`, 400, "extra", `unknown field "extra"`},
		{`{"key":"joe"} {"key":"ann"}`, 400, "", `malformed JSON: more data after the object`},
		{`{"key":"joe"}x`, 400, "", `malformed JSON: more data after the object`},
		{`{"key":"joe"`, 400, "", `malformed JSON: unexpected end of input`},
		{`["joe"]`, 400, "", `request body must be an object, not an array`},
		{`"joe"`, 400, "", `request body must be an object, not a string`},
		{``, 400, "", `request body is empty: want a JSON object`},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			t.Parallel()
			r := do(t, New(noTake(t), Config{}), "POST", "/v1/take", tt.body)
			assert.Equal(t, tt.status, r.status)
			assert.Equal(t, errorBody(tt.msg, tt.field), r.body)
			assert.Equal(t, "application/json", r.header.Get("Content-Type"))
		})
	}
}

func TestAPITakeStoreErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		body   string
		err    error
		status int
		want   string
	}{
		{"unknown policy", `{"key":"joe","policy":"gold"}`, fmt.Errorf("storage: %w", bucket.ErrUnknownPolicy), 404,
			`{"error":"unknown policy \"gold\"","field":"policy"}`},
		{"unknown default policy", `{"key":"joe"}`, bucket.ErrUnknownPolicy, 404,
			`{"error":"unknown policy \"default\"","field":"policy"}`},
		{"invalid", `{"key":"joe"}`, fmt.Errorf("cost 1 is odd: %w", bucket.ErrInvalid), 400,
			`{"error":"cost 1 is odd: invalid","field":"cost"}`},
		{"closed", `{"key":"joe"}`, bucket.ErrClosed, 503, `{"error":"service is shutting down"}`},
		{"internal", `{"key":"joe"}`, errors.New("disk on fire"), 500, `{"error":"internal server error"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, _ := recorder(bucket.Result{}, tt.err)
			r := do(t, New(f, Config{}), "POST", "/v1/take", tt.body)
			assert.Equal(t, tt.status, r.status)
			assert.Equal(t, tt.want, r.body)
		})
	}
}

func TestAPIPanicIsInternalError(t *testing.T) {
	t.Parallel()
	f := &fakeStore{take: func(string, string, bucket.Tokens) (bucket.Result, error) { panic("store bug") }}
	var logs bytes.Buffer
	s := New(f, Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	r := do(t, s, "POST", "/v1/take", `{"key":"joe"}`)
	assert.Equal(t, 500, r.status)
	assert.Equal(t, `{"error":"internal server error"}`, r.body)
	lines := logLines(t, &logs)
	require.Len(t, lines, 1)
	assert.Contains(t, lines[0]["error"], "panic: store bug")
}

func TestDecisionRounding(t *testing.T) {
	t.Parallel()
	res := bucket.Result{Policy: policy10, Decision: bucket.Decision{
		Limit: 10 * T, Remaining: T/3 + 1, RetryAfter: time.Millisecond + 1, ResetAfter: math.MaxInt64}}
	d := newDecision("k", 123456789, &res)
	b, err := json.Marshal(d)
	require.NoError(t, err)
	m := decodeAny(t, string(b))
	assert.Equal(t, json.Number("123.456789"), m["cost"])
	assert.Equal(t, json.Number("0.333334"), m["remaining"])
	assert.Equal(t, json.Number("2"), m["retry_after_ms"], "1 ms and 1 ns rounds up")
	assert.Equal(t, json.Number("9223372036855"), m["reset_after_ms"], "the longest duration, rounded up")

	assert.Equal(t, int64(0), ceilMillis(-time.Second))
	assert.Equal(t, int64(0), ceilMillis(0))
	assert.Equal(t, int64(1), ceilMillis(1))
	assert.Equal(t, int64(1), ceilMillis(time.Millisecond))
	assert.Equal(t, int64(1200), ceilMillis(1200*time.Millisecond))
}

func TestAPIBatch(t *testing.T) {
	t.Parallel()
	_, s := newMem(Config{})
	r := do(t, s, "POST", "/v1/batch", `{"takes":[
		{"key":"joe","cost":6},
		{"key":"joe","policy":"gold"},
		{"key":"joe","cost":6},
		{"key":"joe","cost":-1},
		{"key":""},
		{"key":"joe","cost":4},
		{"key":"ann","policy":"api","cost":"0.5"}
	]}`)
	require.Equal(t, 200, r.status, r.body)
	var got struct{ Results []map[string]any }
	dec := json.NewDecoder(strings.NewReader(r.body))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&got))
	require.Len(t, got.Results, 7)
	type summary struct {
		allowed any
		left    any
		status  any
		field   any
	}
	var sums []summary
	for _, res := range got.Results {
		sums = append(sums, summary{res["allowed"], res["remaining"], res["status"], res["field"]})
	}
	assert.Equal(t, []summary{
		{true, json.Number("4"), nil, nil},       // in order: 10 - 6
		{nil, nil, json.Number("404"), "policy"}, // its own error, in its slot
		{false, json.Number("4"), nil, nil},      // 6 > 4: refused
		{nil, nil, json.Number("400"), "cost"},   // a bad cost, in its slot
		{nil, nil, json.Number("400"), "key"},    // no key
		{true, json.Number("0"), nil, nil},       // the takes go on after errors
		{true, json.Number("9.5"), nil, nil},     // another key and policy
	}, sums)
	assert.Equal(t, `unknown policy "gold"`, got.Results[1]["error"])
	assert.Equal(t, `cost "-1" is negative`, got.Results[3]["error"])
	assert.Equal(t, "ann", got.Results[6]["key"])
}

func TestAPIBatchErrorsInSlots(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	f := &fakeStore{take: func(key, _ string, _ bucket.Tokens) (bucket.Result, error) {
		switch key {
		case "closed":
			return bucket.Result{}, bucket.ErrClosed
		case "bug":
			return bucket.Result{}, errors.New("secret detail")
		}
		return allowed(9*T, time.Second), nil
	}}
	s := New(f, Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	r := do(t, s, "POST", "/v1/batch", `{"takes":[{"key":"bug"},{"key":"ok"},{"key":"closed"}]}`)
	require.Equal(t, 200, r.status)
	assert.Contains(t, r.body, `{"results":[{"error":"internal server error","status":500},{"key":"ok",`)
	assert.Contains(t, r.body, `},{"error":"service is shutting down","status":503}]}`)
	assert.NotContains(t, r.body, "secret")
	lines := logLines(t, &logs)
	require.Len(t, lines, 1, "the internal error is logged")
	assert.Equal(t, "secret detail", lines[0]["error"])
}

func TestAPIBatchSize(t *testing.T) {
	t.Parallel()
	takes := func(n int) string {
		items := make([]string, n)
		for i := range items {
			items[i] = `{"key":"k` + strconv.Itoa(i) + `"}`
		}
		return `{"takes":[` + strings.Join(items, ",") + `]}`
	}
	f, calls := recorder(allowed(9*T, time.Second), nil)
	s := New(f, Config{})

	r := do(t, s, "POST", "/v1/batch", takes(1001))
	assert.Equal(t, 400, r.status)
	assert.Equal(t, `{"error":"a batch holds at most 1000 takes, not 1001","field":"takes"}`, r.body)
	assert.Empty(t, calls(), "nothing taken")

	r = do(t, s, "POST", "/v1/batch", takes(1000))
	assert.Equal(t, 200, r.status)
	c := calls()
	require.Len(t, c, 1000)
	for i, cl := range c {
		require.Equal(t, "k"+strconv.Itoa(i), cl.key, "in order")
	}

	for _, body := range []string{`{"takes":[]}`, `{}`, `{"takes":null}`} {
		r = do(t, s, "POST", "/v1/batch", body)
		assert.Equal(t, 200, r.status)
		assert.Equal(t, `{"results":[]}`, r.body)
	}
}

func TestAPIBatchMalformed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body  string
		field string
		msg   string
	}{
		{`{"takes":[{"key":"a"},{"key":"b","foo":1}]}`, "takes[1].foo", `unknown field "foo"`},
		{`{"takes":[{"key":"a"},{"key":"b"},{"key":7}]}`, "takes[2].key", `key must be a string, not a number`},
		{`{"takes":[{"key":"a","cost":{}}]}`, "takes[0].cost", `cost must be a number or a string holding one, not an object`},
		{`{"takes":[{"key":"a"},"b"]}`, "takes[1]", `takes[1] must be an object, not a string`},
		{`{"takes":{"key":"a"}}`, "takes", `takes must be an array, not an object`},
		{`{"take":[]}`, "take", `unknown field "take"`},
		{`{"takes":[{"key":"a"},]}`, "", `malformed JSON at byte 23: invalid character ']' looking for beginning of value`},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			t.Parallel()
			r := do(t, New(noTake(t), Config{}), "POST", "/v1/batch", tt.body)
			assert.Equal(t, 400, r.status)
			assert.Equal(t, errorBody(tt.msg, tt.field), r.body)
		})
	}
}

func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	// Announced by Content-Length: refused before the body is read.
	r := serveRaw(t, New(noTake(t), Config{}),
		"POST /v1/take HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(DefaultMaxBodyBytes+1)+"\r\n\r\n")
	assert.Equal(t, 413, r.status)
	assert.Equal(t, `{"error":"request body is larger than 1048576 bytes"}`, r.body)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))

	// Chunked: refused while it is read.
	body := `{"takes":[{"key":"` + strings.Repeat("k", 64) + `"}]}`
	r = serveRaw(t, New(noTake(t), Config{MaxBodyBytes: 64}),
		"POST /v1/batch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+
			strconv.FormatInt(int64(len(body)), 16)+"\r\n"+body+"\r\n0\r\n\r\n")
	assert.Equal(t, 413, r.status)
	assert.Equal(t, `{"error":"request body is larger than 64 bytes"}`, r.body)

	f, _ := recorder(allowed(9*T, time.Second), nil)
	r = do(t, New(f, Config{MaxBodyBytes: 64}), "POST", "/v1/take", `{"key":"`+strings.Repeat("k", 64-10)+`"}`)
	assert.Equal(t, 200, r.status, "exactly the limit")
}

// serveRaw has s answer the raw request on an in-memory connection. Unlike
// app.Test it reads the answer to a request that fasthttp refuses (and
// reports as an error).
func serveRaw(t *testing.T, s *Server, raw string) response {
	t.Helper()
	s.app.Handler() // builds the routes, as Serve does
	c := &memConn{r: strings.NewReader(raw)}
	_ = s.app.Server().ServeConn(c) // the refusal, once answered
	resp, err := http.ReadResponse(bufio.NewReader(&c.w), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{resp.StatusCode, resp.Header, string(body)}
}

// memConn is a net.Conn that reads r and writes to w.
type memConn struct {
	net.Conn // nil: only what fasthttp calls is implemented
	r        io.Reader
	w        bytes.Buffer
}

func (c *memConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *memConn) Write(b []byte) (int, error)      { return c.w.Write(b) }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8000} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

func TestAPIBucketsWithMemStore(t *testing.T) {
	t.Parallel()
	m, s := newMem(Config{AdminToken: "sesame"})
	auth := []string{"Authorization", "Bearer sesame"}
	peek := func(target string) map[string]any {
		t.Helper()
		r := do(t, s, "GET", target, "")
		require.Equal(t, 200, r.status, r.body)
		return decodeAny(t, r.body)
	}

	p := peek("/v1/buckets/joe")
	assert.Equal(t, json.Number("10"), p["remaining"], "no bucket is a full one")
	assert.Equal(t, json.Number("0"), p["cost"])
	assert.Equal(t, true, p["allowed"])

	do(t, s, "POST", "/v1/take", `{"key":"joe","cost":3}`)
	do(t, s, "POST", "/v1/take", `{"key":"joe","policy":"api","cost":3}`)
	assert.Equal(t, json.Number("7"), peek("/v1/buckets/joe")["remaining"])
	assert.Equal(t, json.Number("7"), peek("/v1/buckets/joe?policy=default")["remaining"])
	assert.Equal(t, json.Number("7"), peek("/v1/buckets/joe?policy=api")["remaining"])
	m.advance(1500 * time.Millisecond)
	assert.Equal(t, json.Number("7.5"), peek("/v1/buckets/joe")["remaining"], "a peek refills")

	// Set: clamped, and answered with a peek.
	r := do(t, s, "PUT", "/v1/buckets/joe/tokens", `{"tokens":"2.25"}`, auth...)
	require.Equal(t, 200, r.status, r.body)
	assert.Equal(t, json.Number("2.25"), decodeAny(t, r.body)["remaining"])
	assert.Equal(t, json.Number("23250"), decodeAny(t, r.body)["reset_after_ms"])
	r = do(t, s, "PUT", "/v1/buckets/joe/tokens?policy=api", `{"tokens":99}`, auth...)
	require.Equal(t, 200, r.status, r.body)
	assert.Equal(t, json.Number("10"), decodeAny(t, r.body)["remaining"], "clamped to the burst")

	// Reset under one policy, then every policy.
	r = do(t, s, "DELETE", "/v1/buckets/joe?policy=default", "", auth...)
	assert.Equal(t, 200, r.status)
	assert.Equal(t, `{"deleted":true}`, r.body)
	assert.Equal(t, json.Number("10"), peek("/v1/buckets/joe")["remaining"])
	r = do(t, s, "DELETE", "/v1/buckets/joe?policy=default", "", auth...)
	assert.Equal(t, `{"deleted":false}`, r.body)
	r = do(t, s, "DELETE", "/v1/buckets/joe", "", auth...)
	assert.Equal(t, `{"deleted":true}`, r.body, "the api bucket")
	r = do(t, s, "DELETE", "/v1/buckets/joe", "", auth...)
	assert.Equal(t, `{"deleted":false}`, r.body)

	// Keys are one path segment, percent-decoded.
	do(t, s, "POST", "/v1/take", `{"key":"a/b"}`)
	assert.Equal(t, json.Number("9"), peek("/v1/buckets/a%2Fb")["remaining"])
	assert.Equal(t, "a/b", peek("/v1/buckets/a%2Fb")["key"])
}

func TestAPIBucketErrors(t *testing.T) {
	t.Parallel()
	_, s := newMem(Config{})
	tests := []struct {
		method, target, body string
		status               int
		want                 string
	}{
		{"GET", "/v1/buckets/joe?policy=gold", "", 404, `{"error":"unknown policy \"gold\"","field":"policy"}`},
		{"DELETE", "/v1/buckets/joe?policy=gold", "", 404, `{"error":"unknown policy \"gold\"","field":"policy"}`},
		{"PUT", "/v1/buckets/joe/tokens?policy=gold", `{"tokens":1}`, 404, `{"error":"unknown policy \"gold\"","field":"policy"}`},
		{"PUT", "/v1/buckets/joe/tokens", `{}`, 400, `{"error":"tokens is required","field":"tokens"}`},
		{"PUT", "/v1/buckets/joe/tokens", `{"tokens":-2}`, 400, `{"error":"tokens \"-2\" is negative","field":"tokens"}`},
		{"PUT", "/v1/buckets/joe/tokens", `{"tokens":1,"policy":"api"}`, 400, `{"error":"unknown field \"policy\"","field":"policy"}`},
		{"GET", "/v1/buckets/" + strings.Repeat("k", 257), "", 414, `{"error":"key is longer than 256 bytes","field":"key"}`},
		{"GET", "/v1/buckets/a%zz", "", 400, `{"error":"key has a malformed percent-escape","field":"key"}`},
		{"GET", "/v1/buckets/a/b", "", 404, `{"error":"not found"}`},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(tt.method, "/x", strings.NewReader(tt.body))
			req.RequestURI = tt.target // as sent, even when httptest would refuse to parse it
			r := send(t, s, req)
			assert.Equal(t, tt.status, r.status)
			assert.Equal(t, tt.want, r.body)
		})
	}
}

func TestAPIKeysPagination(t *testing.T) {
	t.Parallel()
	m, s := newMem(Config{})
	var want []string
	for i := range 25 {
		key := fmt.Sprintf("user:%02d", i)
		want = append(want, key)
		_, err := m.Take(key, "", T)
		require.NoError(t, err)
		_, err = m.Take(key, "api", T) // a second bucket: still one key
		require.NoError(t, err)
	}
	for _, key := range []string{"admin", "user", "users:1", "zed"} {
		_, err := m.Take(key, "", T)
		require.NoError(t, err)
	}

	type page struct {
		Keys       []string `json:"keys"`
		NextCursor string   `json:"next_cursor"`
	}
	var got []string
	var pages int
	target := "/v1/buckets?prefix=user%3A&limit=10"
	for {
		r := do(t, s, "GET", target, "")
		require.Equal(t, 200, r.status, r.body)
		var p page
		require.NoError(t, json.Unmarshal([]byte(r.body), &p))
		got = append(got, p.Keys...)
		pages++
		require.LessOrEqual(t, pages, 10, "the walk does not end")
		if p.NextCursor == "" {
			break
		}
		assert.Len(t, p.Keys, 10)
		target = "/v1/buckets?prefix=user%3A&limit=10&cursor=" + p.NextCursor
	}
	assert.Equal(t, want, got)
	assert.Equal(t, 3, pages)

	r := do(t, s, "GET", "/v1/buckets", "")
	assert.Equal(t, 200, r.status)
	assert.True(t, strings.HasPrefix(r.body, `{"keys":["admin","user","user:00",`), r.body)
	assert.Len(t, decodeAny(t, r.body)["keys"], 29, "every key, under the default page of 100")

	r = do(t, s, "GET", "/v1/buckets?prefix=nobody", "")
	assert.Equal(t, `{"keys":[],"next_cursor":""}`, r.body)

	for _, limit := range []string{"0", "-1", "1001", "ten", "", "1.5"} {
		r := do(t, s, "GET", "/v1/buckets?limit="+limit, "")
		assert.Equal(t, 400, r.status, limit)
		assert.Equal(t, errorBody(`limit "`+limit+`" is not a whole number from 1 to 1000`, "limit"), r.body)
	}
}

func TestAPIKeysArguments(t *testing.T) {
	t.Parallel()
	type args struct {
		prefix, after string
		limit         int
	}
	var got args
	f := &fakeStore{keys: func(prefix, after string, limit int) ([]string, string, error) {
		got = args{strings.Clone(prefix), strings.Clone(after), limit}
		return []string{"b c"}, "b c", nil
	}}
	s := New(f, Config{})
	r := do(t, s, "GET", "/v1/buckets?prefix=b+&cursor=a%2Fz&limit=1000", "")
	assert.Equal(t, 200, r.status)
	assert.Equal(t, `{"keys":["b c"],"next_cursor":"b c"}`, r.body)
	assert.Equal(t, args{"b ", "a/z", 1000}, got)

	do(t, s, "GET", "/v1/buckets", "")
	assert.Equal(t, args{"", "", 100}, got)

	f.keys = func(string, string, int) ([]string, string, error) { return nil, "", bucket.ErrClosed }
	r = do(t, s, "GET", "/v1/buckets", "")
	assert.Equal(t, 503, r.status)
}

func TestAPIPolicies(t *testing.T) {
	t.Parallel()
	m, s := newMem(Config{})
	_, err := m.Take("joe", "api", 11*T)
	require.NoError(t, err)
	_, err = m.Take("joe", "", T)
	require.NoError(t, err)
	r := do(t, s, "GET", "/v1/policies", "")
	assert.Equal(t, 200, r.status)
	assert.Equal(t, `{"policies":[`+
		`{"name":"api","default":false,"shadow":false,"limits":[{"capacity":10,"rate":"10/s"},{"capacity":1000,"rate":"1000/d"}],"counts":{"allowed":0,"denied":1}},`+
		`{"name":"default","default":true,"shadow":false,"limits":[{"capacity":10,"rate":"1/3s"}],"counts":{"allowed":1,"denied":0}},`+
		`{"name":"new","default":false,"shadow":true,"limits":[{"capacity":1,"rate":"1/m"}],"counts":{"allowed":0,"denied":0}}]}`, r.body)

	s = New(&fakeStore{policies: func() []bucket.PolicyInfo { return nil }}, Config{})
	r = do(t, s, "GET", "/v1/policies", "")
	assert.Equal(t, `{"policies":[]}`, r.body)
}

func TestAPIOverrides(t *testing.T) {
	t.Parallel()
	_, s := newMem(Config{})
	r := do(t, s, "GET", "/v1/overrides", "")
	assert.Equal(t, `{"overrides":[]}`, r.body)
	r = do(t, s, "GET", "/v1/overrides/joe", "")
	assert.Equal(t, 404, r.status)
	assert.Equal(t, `{"error":"key \"joe\" has no override under policy \"default\"","field":"key"}`, r.body)

	r = do(t, s, "PUT", "/v1/overrides/joe", `{"limits":[{"capacity":100,"rate":"10/s"}]}`)
	assert.Equal(t, 200, r.status, r.body)
	assert.Equal(t, `{"key":"joe","policy":"default","limits":[{"capacity":100,"rate":"10/s"}]}`, r.body)
	r = do(t, s, "PUT", "/v1/overrides/joe?policy=api", `{"limits":[{"capacity":"0.5","rate":"1/3s"},{"capacity":2,"rate":"5000/d"}]}`)
	assert.Equal(t, 200, r.status, r.body)
	assert.Equal(t, `{"key":"joe","policy":"api","limits":[{"capacity":0.5,"rate":"1/3s"},{"capacity":2,"rate":"5000/d"}]}`, r.body)
	r = do(t, s, "PUT", "/v1/overrides/ann", `{"limits":[{"capacity":1,"rate":"1/s"}]}`)
	require.Equal(t, 200, r.status, r.body)

	// The override is what takes see.
	r = do(t, s, "POST", "/v1/take", `{"key":"joe","cost":50}`)
	assert.Contains(t, r.body, `"allowed":true,`)
	assert.Contains(t, r.body, `"limits":[{"capacity":100,"rate":"10/s",`)

	r = do(t, s, "GET", "/v1/overrides/joe?policy=api", "")
	assert.Equal(t, `{"key":"joe","policy":"api","limits":[{"capacity":0.5,"rate":"1/3s"},{"capacity":2,"rate":"5000/d"}]}`, r.body)
	r = do(t, s, "GET", "/v1/overrides", "")
	assert.Equal(t, `{"overrides":[`+
		`{"key":"ann","policy":"default","limits":[{"capacity":1,"rate":"1/s"}]},`+
		`{"key":"joe","policy":"api","limits":[{"capacity":0.5,"rate":"1/3s"},{"capacity":2,"rate":"5000/d"}]},`+
		`{"key":"joe","policy":"default","limits":[{"capacity":100,"rate":"10/s"}]}]}`, r.body)

	r = do(t, s, "DELETE", "/v1/overrides/joe", "")
	assert.Equal(t, `{"deleted":true}`, r.body)
	r = do(t, s, "DELETE", "/v1/overrides/joe", "")
	assert.Equal(t, `{"deleted":false}`, r.body)
	r = do(t, s, "GET", "/v1/overrides/joe", "")
	assert.Equal(t, 404, r.status)
	r = do(t, s, "GET", "/v1/overrides/joe?policy=api", "")
	assert.Equal(t, 200, r.status, "the other policy's override stays")
}

func TestAPIOverrideValidation(t *testing.T) {
	t.Parallel()
	many := strings.Repeat(`{"capacity":1,"rate":"1/s"},`, bucket.MaxLimits+1)
	tests := []struct {
		target string
		body   string
		status int
		field  string
		msg    string
	}{
		{"/v1/overrides/joe", `{"limits":[{"capacity":100,"rate":"10/x"}]}`, 400, "limits[0].rate",
			`rate "10/x": period "x" is not a duration such as s, m, h, d or 3s`},
		{"/v1/overrides/joe", `{"limits":[{"capacity":1,"rate":"1/s"},{"capacity":100,"rate":"ten/s"}]}`, 400, "limits[1].rate",
			`rate "ten/s": "ten" is not a decimal number`},
		{"/v1/overrides/joe", `{"limits":[{"capacity":100}]}`, 400, "limits[0].rate", `rate is required: TOKENS/PERIOD, e.g. 10/s or 1/3s`},
		{"/v1/overrides/joe", `{"limits":[{"capacity":100,"rate":10}]}`, 400, "limits[0].rate", `rate must be a string, not a number`},
		{"/v1/overrides/joe", `{"limits":[{"rate":"1/s"}]}`, 400, "limits[0].capacity", `capacity is required`},
		{"/v1/overrides/joe", `{"limits":[{"capacity":0,"rate":"1/s"}]}`, 400, "limits[0].capacity", `capacity 0 must be more than zero`},
		{"/v1/overrides/joe", `{"limits":[{"capacity":-1,"rate":"1/s"}]}`, 400, "limits[0].capacity", `capacity "-1" is negative`},
		{"/v1/overrides/joe", `{"limits":[{"capacity":"lots","rate":"1/s"}]}`, 400, "limits[0].capacity", `capacity "lots" is not a decimal number`},
		{"/v1/overrides/joe", `{"limits":[{"capacity":1,"rate":"1/s","burst":2}]}`, 400, "limits[0].burst", `unknown field "burst"`},
		{"/v1/overrides/joe", `{"limits":[]}`, 400, "limits", `limits must hold from 1 to 16 limits, not 0`},
		{"/v1/overrides/joe", `{}`, 400, "limits", `limits must hold from 1 to 16 limits, not 0`},
		{"/v1/overrides/joe", `{"limits":[` + strings.TrimSuffix(many, ",") + `]}`, 400, "limits", `limits must hold from 1 to 16 limits, not 17`},
		{"/v1/overrides/joe", `{"limits":{"capacity":1}}`, 400, "limits", `limits must be an array, not an object`},
		{"/v1/overrides/joe?policy=gold", `{"limits":[{"capacity":1,"rate":"1/s"}]}`, 404, "policy", `unknown policy "gold"`},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			t.Parallel()
			m, s := newMem(Config{})
			r := do(t, s, "PUT", tt.target, tt.body)
			assert.Equal(t, tt.status, r.status)
			assert.Equal(t, errorBody(tt.msg, tt.field), r.body)
			assert.Empty(t, m.Overrides(), "nothing stored")
		})
	}

	t.Run("the store refuses the limits", func(t *testing.T) {
		t.Parallel()
		f := &fakeStore{setOverride: func(bucket.Override) error {
			return fmt.Errorf("storage: too generous: %w", bucket.ErrInvalid)
		}}
		r := do(t, New(f, Config{}), "PUT", "/v1/overrides/joe", `{"limits":[{"capacity":1,"rate":"1/s"}]}`)
		assert.Equal(t, 400, r.status)
		assert.Equal(t, `{"error":"storage: too generous: invalid","field":"limits"}`, r.body)
	})
}

func TestAPISetOverrideArguments(t *testing.T) {
	t.Parallel()
	var got []bucket.Override
	var mu sync.Mutex
	f := &fakeStore{
		setOverride: func(o bucket.Override) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, o)
			return nil
		},
		override: func(key, policy string) (bucket.Override, bool) { return bucket.Override{}, false },
	}
	r := do(t, New(f, Config{}), "PUT", "/v1/overrides/a%2Fb?policy=gold", `{"limits":[{"capacity":0.1,"rate":"0.5/1m30s"}]}`)
	require.Equal(t, 200, r.status, r.body)
	assert.Equal(t, []bucket.Override{{Key: "a/b", Policy: "gold", Limits: []bucket.Limit{
		{Capacity: T / 10, Rate: bucket.Rate{Tokens: T / 2, Per: 90 * time.Second}}}}}, got)
	assert.Equal(t, `{"key":"a/b","policy":"gold","limits":[{"capacity":0.1,"rate":"0.5/1m30s"}]}`, r.body)
}

func TestAPIReload(t *testing.T) {
	t.Parallel()
	pols := func() []bucket.PolicyInfo {
		return []bucket.PolicyInfo{{Policy: policy10, Default: true, Counts: bucket.Counts{Allowed: 3}}}
	}
	tests := []struct {
		name   string
		reload func() error
		status int
		body   string
	}{
		{"not available", nil, 501, `{"error":"reload is not available"}`},
		{"ok", func() error { return nil }, 200,
			`{"policies":[{"name":"default","default":true,"shadow":false,"limits":[{"capacity":10,"rate":"1/3s"}],"counts":{"allowed":3,"denied":0}}]}`},
		{"bad file", func() error { return fmt.Errorf("bucketd.toml:3: rate \"x\": %w", bucket.ErrInvalid) }, 422,
			`{"error":"reload failed: bucketd.toml:3: rate \"x\": invalid"}`},
		{"unreadable", func() error { return errors.New("open /etc/bucketd.toml: permission denied") }, 422,
			`{"error":"reload failed: open /etc/bucketd.toml: permission denied"}`},
		{"closed", func() error { return bucket.ErrClosed }, 503, `{"error":"service is shutting down"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := New(&fakeStore{policies: pols}, Config{Reload: tt.reload, AdminToken: "sesame"})
			r := do(t, s, "POST", "/v1/reload", "", "Authorization", "Bearer sesame")
			assert.Equal(t, tt.status, r.status)
			assert.Equal(t, tt.body, r.body)
			r = do(t, s, "POST", "/v1/reload", "")
			assert.Equal(t, 401, r.status, "an admin route")
		})
	}
}

func TestAPIReservedPaths(t *testing.T) {
	t.Parallel()
	tests := []struct {
		target string
		status int
		body   string
		take   string // the key taken, if any
	}{
		{"/v1", 404, `{"error":"/v1 is the JSON API, described at /v1/openapi.json; the key \"v1\" is /v%31"}`, ""},
		{"/v1/", 404, `{"error":"/v1 is the JSON API, described at /v1/openapi.json; the key \"v1\" is /v%31"}`, ""},
		{"/v%31", 200, `{"detail":"OK"}`, "v1"},
		{"/V1", 200, `{"detail":"OK"}`, "V1"},
		{"/v1x", 200, `{"detail":"OK"}`, "v1x"},
		{"/v1/nothing", 404, `{"error":"not found"}`, ""},
		{"/v1/take/x", 404, `{"error":"not found"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			t.Parallel()
			f, calls := recorder(allowed(9*T, time.Second), nil)
			r := get(t, New(f, Config{}), tt.target)
			assert.Equal(t, tt.status, r.status)
			assert.Equal(t, tt.body, r.body)
			if tt.take == "" {
				assert.Empty(t, calls())
			} else {
				assert.Equal(t, []call{{tt.take, "", T}}, calls())
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		method, target, allow string
	}{
		{"GET", "/v1/take", "POST"},
		{"PUT", "/v1/batch", "POST"},
		{"POST", "/v1/buckets", "GET"},
		{"POST", "/v1/buckets/joe", "GET, DELETE"},
		{"GET", "/v1/buckets/joe/tokens", "PUT"},
		{"PATCH", "/v1/overrides/joe", "GET, PUT, DELETE"},
		{"GET", "/v1/reload", "POST"},
		{"POST", "/v1", "GET"},
		{"POST", "/v1/openapi.json", "GET"},
		{"HEAD", "/joe", "GET"},
		{"OPTIONS", "/joe/", "GET"},
		{"POST", "/", "GET"},
		{"BREW", "/v1/take", "POST"},
		{"BREW", "/v1/buckets/joe", "GET, DELETE"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			t.Parallel()
			r := do(t, New(noTake(t), Config{}), tt.method, tt.target, "")
			assert.Equal(t, 405, r.status)
			assert.Equal(t, tt.allow, r.header.Get("Allow"))
			if tt.method != "HEAD" {
				assert.Equal(t, `{"error":"method not allowed"}`, r.body)
			}
		})
	}
}

func TestMatchPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, path string
		want          bool
	}{
		{"/", "/", true},
		{"/", "//", true},
		{"/", "/a", false},
		{"/:key", "/", false},
		{"/:key", "/a", true},
		{"/:key", "/a/", true},
		{"/:key", "/a/b", false},
		{"/v1/buckets/:key", "/v1/buckets/a", true},
		{"/v1/buckets/:key", "/v1/buckets/", false},
		{"/v1/buckets/:key", "/v1/buckets", false},
		{"/v1/buckets/:key/tokens", "/v1/buckets/a/tokens", true},
		{"/v1/buckets/:key/tokens", "/v1/buckets/a/token", false},
		{"/v1/take", "/V1/take", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, matchPath(tt.pattern, tt.path), "%s %s", tt.pattern, tt.path)
	}
}
