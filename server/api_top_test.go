package server

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

func TestAPITop(t *testing.T) {
	t.Parallel()
	e, s := newServer(t, Config{})
	for range 13 { // 10 allowed, 3 refused
		e.take(t, "joe", "", T)
	}
	e.take(t, "ann", "new", T)
	e.take(t, "ann", "new", T) // a shadow refusal
	lim := bucket.Limit{Capacity: T, Rate: bucket.Every(3600e9)}
	for range 3 {
		_, err := e.lim.Throttle("bot", lim, T)
		require.NoError(t, err)
	}
	r := get(t, s, "/v1/top")
	require.Equal(t, 200, r.status, r.body)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	assert.Equal(t, `{"window_seconds":300,"span_seconds":300,"keys":[`+
		`{"key":"joe","policy":"default","cell":false,"count":3,"error":0},`+
		`{"key":"bot","policy":"cl.throttle","cell":true,"count":2,"error":0},`+
		`{"key":"ann","policy":"new","cell":false,"count":1,"error":0}]}`, r.body)

	r = get(t, s, "/v1/top?window=30s&limit=1")
	require.Equal(t, 200, r.status, r.body)
	assert.Equal(t, `{"window_seconds":30,"span_seconds":300,"keys":[`+
		`{"key":"joe","policy":"default","cell":false,"count":3,"error":0}]}`, r.body)
}

func TestAPITopEmpty(t *testing.T) {
	t.Parallel()
	_, s := newServer(t, Config{})
	r := get(t, s, "/v1/top")
	assert.Equal(t, `{"window_seconds":300,"span_seconds":300,"keys":[]}`, r.body)
}

func TestAPITopBadQuery(t *testing.T) {
	t.Parallel()
	_, s := newServer(t, Config{})
	for _, tt := range []struct{ query, field, msg string }{
		{"window=5", "window", `window "5" is not a duration above 0 and at most 5m0s ("30s", "5m")`},
		{"window=-1m", "window", `window "-1m" is not a duration above 0 and at most 5m0s ("30s", "5m")`},
		{"window=0s", "window", `window "0s" is not a duration above 0 and at most 5m0s ("30s", "5m")`},
		{"window=6m", "window", `window "6m" is not a duration above 0 and at most 5m0s ("30s", "5m")`},
		{"limit=0", "limit", `limit "0" is not a whole number from 1 to 1000`},
		{"limit=1001", "limit", `limit "1001" is not a whole number from 1 to 1000`},
		{"limit=ten", "limit", `limit "ten" is not a whole number from 1 to 1000`},
	} {
		t.Run(tt.query, func(t *testing.T) {
			r := get(t, s, "/v1/top?"+tt.query)
			assert.Equal(t, 400, r.status)
			assert.Equal(t, errorBody(tt.msg, tt.field), r.body)
		})
	}
}

func TestAPIStatus(t *testing.T) {
	t.Parallel()
	e, s := newServer(t, Config{})
	e.take(t, "joe", "", T)
	e.take(t, "ann", "api", T)
	_, err := e.lim.Throttle("bot", bucket.Limit{Capacity: T, Rate: bucket.Every(3600e9)}, 2*T)
	require.NoError(t, err)
	r := get(t, s, "/v1/status")
	require.Equal(t, 200, r.status, r.body)
	var st statusJSON
	require.NoError(t, json.Unmarshal([]byte(r.body), &st))
	assert.Equal(t, 2, st.LiveBuckets)
	assert.Zero(t, st.Evictions)
	assert.NotEmpty(t, st.Version)
	assert.NotEmpty(t, st.GoVersion)
	assert.Positive(t, st.UptimeSeconds)
	assert.Positive(t, st.Memory.HeapBytes)
	assert.GreaterOrEqual(t, st.Memory.RuntimeBytes, st.Memory.HeapBytes)
	assert.Positive(t, st.Goroutines)
	assert.True(t, st.Persistence.Healthy)
	assert.Empty(t, st.Persistence.Error)
	assert.Equal(t, uint64(1), st.CLThrottle.Denied, "a cost above the capacity is refused")

	require.NoError(t, e.db.Close()) // a closed store is not healthy
	r = get(t, s, "/v1/status")
	assert.Equal(t, 503, r.status, r.body)
}
