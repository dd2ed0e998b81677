package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

func TestAPITakeBothOutcomesAre200(t *testing.T) {
	t.Parallel()
	_, s := newServer(t, Config{})
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
	_, s := newServer(t, Config{})
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
	e, s := newServer(t, Config{})
	do(t, s, "POST", "/v1/take", `{"key":"joe","policy":"new"}`)
	r := do(t, s, "POST", "/v1/take", `{"key":"joe","policy":"new"}`)
	assert.Equal(t, 200, r.status)
	assert.Equal(t, `{"key":"joe","policy":"new","shadow":true,"allowed":true,"limited":true,"never":false,`+
		`"cost":1,"limit":1,"remaining":0,"retry_after_ms":60000,"reset_after_ms":60000,`+
		`"limits":[{"capacity":1,"rate":"1/m","allowed":false,"remaining":0,"retry_after_ms":60000,"reset_after_ms":60000}]}`, r.body)
	info := e.lim.Policies()[2]
	require.Equal(t, "new", info.Name)
	assert.Equal(t, bucket.Counts{Allowed: 1, Denied: 1}, info.Counts)
}

func TestAPITakeSeveralLimits(t *testing.T) {
	t.Parallel()
	_, s := newServer(t, Config{})
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

// TestAPITakeArguments checks that the key, policy and cost of the body are
// what is taken: each take's bucket is read back from the store.
func TestAPITakeArguments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body string
		cost bucket.Tokens
		want []spent // nil for a peek
	}{
		{`{"key":"joe"}`, T, []spent{{"joe", "default", T}}},
		{`{"key":"joe","cost":null}`, T, []spent{{"joe", "default", T}}},
		{`{"key":"joe","cost":0}`, 0, nil}, // a peek
		{`{"key":"joe","cost":"0"}`, 0, nil},
		{`{"key":"joe","cost":0.1}`, T / 10, []spent{{"joe", "default", T / 10}}}, // exactly, not through a float
		{`{"key":"joe","cost":"0.1"}`, T / 10, []spent{{"joe", "default", T / 10}}},
		{`{"key":"joe","cost":2.50}`, 5 * T / 2, []spent{{"joe", "default", 5 * T / 2}}},
		{`{"key":"joe","cost":0.000001}`, 1, []spent{{"joe", "default", 1}}},
		{`{"key":"joe","cost":"+3"}`, 3 * T, []spent{{"joe", "default", 3 * T}}},
		{`{"key":"joe","cost":999999999999.999999}`, bucket.MaxTokens - 1, []spent{{"joe", "default", bucket.MaxTokens - 1}}},
		{`{"key":"a/b c","policy":"gold","cost":1}`, T, []spent{{"a/b c", "gold", T}}},
		{`{"key":"✓","policy":""}`, T, []spent{{"✓", "default", T}}},
		{`{"policy":"gold","key":"x"}`, T, []spent{{"x", "gold", T}}},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, bigPolicy("default"), bigPolicy("gold"))
			r := do(t, New(e.lim, Config{}), "POST", "/v1/take", tt.body)
			assert.Equal(t, 200, r.status, r.body)
			assert.Contains(t, r.body, `"cost":`+tt.cost.String()+`,`)
			assert.Equal(t, tt.want, e.spent(t))
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
		{`{"key":"joe","cost":NaN}`, 400, "", `malformed JSON at byte 20: invalid character 'N' at start of value`},
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
			e, s := newServer(t, Config{})
			r := do(t, s, "POST", "/v1/take", tt.body)
			assert.Equal(t, tt.status, r.status)
			assert.Equal(t, errorBody(tt.msg, tt.field), r.body)
			assert.Equal(t, "application/json", r.header.Get("Content-Type"))
			e.assertNoTake(t)
		})
	}
}

func TestAPITakeLimiterErrors(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("k", 32769) // more than the store holds (bbolt's largest key)
	tests := []struct {
		name      string
		maxKeyLen int
		body      string
		fault     error // injected into the limiter's answer; nil for none
		close     bool  // close the store first
		status    int
		want      string
	}{
		{"unknown policy", 0, `{"key":"joe","policy":"gold"}`, nil, false, 404,
			`{"error":"unknown policy \"gold\"","field":"policy"}`},
		{"the store refuses the key", 40000, `{"key":"` + long + `"}`, nil, false, 400,
			`{"error":"key of 32769 bytes: want 1 to 32768 bytes: invalid"}`},
		{"closed", 0, `{"key":"joe"}`, nil, true, 503, `{"error":"service is shutting down"}`},
		{"not durable", 0, `{"key":"joe"}`, errDiskFull, false, 503,
			`{"error":"the data file cannot be written: the take was made and its tokens stay spent, but it is not on disk yet"}`},
		{"internal", 0, `{"key":"joe"}`, errSecret, false, 500, `{"error":"internal server error"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if tt.close {
				require.NoError(t, e.db.Close())
			}
			s := New(faultyLimiter{e.lim, func(string) error { return tt.fault }}, Config{MaxKeyLen: tt.maxKeyLen})
			r := do(t, s, "POST", "/v1/take", tt.body)
			assert.Equal(t, tt.status, r.status)
			assert.Equal(t, tt.want, r.body)
		})
	}
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
	_, s := newServer(t, Config{})
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
	e := newEnv(t)
	var logs bytes.Buffer
	lim := faultyLimiter{e.lim, func(key string) error {
		switch key {
		case "bug":
			return errSecret
		case "disk":
			return errDiskFull
		}
		return nil
	}}
	s := New(lim, Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	r := do(t, s, "POST", "/v1/batch", `{"takes":[{"key":"bug"},{"key":"ok"},{"key":"disk"}]}`)
	require.Equal(t, 200, r.status)
	assert.Contains(t, r.body, `{"results":[{"error":"internal server error","status":500},{"key":"ok",`)
	assert.Contains(t, r.body, `},{"error":"the data file cannot be written: the take was made and its tokens stay spent, but it is not on disk yet","status":503}]}`)
	assert.NotContains(t, r.body, "secret")
	lines := logLines(t, &logs)
	require.Len(t, lines, 1, "the internal error is logged, and only it")
	assert.Equal(t, errSecret.Error(), lines[0]["error"])

	require.NoError(t, e.db.Close())
	r = do(t, s, "POST", "/v1/batch", `{"takes":[{"key":"a"},{"key":"b"}]}`)
	require.Equal(t, 200, r.status)
	assert.Equal(t, `{"results":[{"error":"service is shutting down","status":503},{"error":"service is shutting down","status":503}]}`, r.body)
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
	e, s := newServer(t, Config{})

	r := do(t, s, "POST", "/v1/batch", takes(1001))
	assert.Equal(t, 400, r.status)
	assert.Equal(t, `{"error":"a batch holds at most 1000 takes, not 1001","field":"takes"}`, r.body)
	e.assertNoTake(t)

	r = do(t, s, "POST", "/v1/batch", takes(1000))
	require.Equal(t, 200, r.status)
	var got struct {
		Results []struct {
			Key     string
			Allowed bool
		}
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &got))
	require.Len(t, got.Results, 1000)
	for i, d := range got.Results {
		require.Equal(t, "k"+strconv.Itoa(i), d.Key, "in order")
		require.True(t, d.Allowed, d.Key)
	}
	n, err := e.lim.Len()
	require.NoError(t, err)
	assert.Equal(t, 1000, n, "every take made")

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
		{`{"takes":[{"key":"a"},]}`, "", `malformed JSON at byte 21: invalid character ',' at start of value`},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			t.Parallel()
			e, s := newServer(t, Config{})
			r := do(t, s, "POST", "/v1/batch", tt.body)
			assert.Equal(t, 400, r.status)
			assert.Equal(t, errorBody(tt.msg, tt.field), r.body)
			e.assertNoTake(t)
		})
	}
}
