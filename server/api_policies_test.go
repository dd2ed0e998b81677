package server

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
)

func TestAPIPolicies(t *testing.T) {
	t.Parallel()
	e, s := newServer(t, Config{})
	e.take(t, "joe", "api", 11*T)
	e.take(t, "joe", "", T)
	r := do(t, s, "GET", "/v1/policies", "")
	assert.Equal(t, 200, r.status)
	assert.Equal(t, `{"policies":[`+
		`{"name":"api","default":false,"shadow":false,"limits":[{"capacity":10,"rate":"10/s"},{"capacity":1000,"rate":"1000/d"}],"counts":{"allowed":0,"denied":1}},`+
		`{"name":"default","default":true,"shadow":false,"limits":[{"capacity":10,"rate":"1/3s"}],"counts":{"allowed":1,"denied":0}},`+
		`{"name":"new","default":false,"shadow":true,"limits":[{"capacity":1,"rate":"1/m"}],"counts":{"allowed":0,"denied":0}}]}`, r.body)
}

func TestAPIOverrides(t *testing.T) {
	t.Parallel()
	_, s := newServer(t, Config{})
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
	assert.Equal(t, `{"overrides":[`+ // by policy, then key
		`{"key":"joe","policy":"api","limits":[{"capacity":0.5,"rate":"1/3s"},{"capacity":2,"rate":"5000/d"}]},`+
		`{"key":"ann","policy":"default","limits":[{"capacity":1,"rate":"1/s"}]},`+
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
			e, s := newServer(t, Config{})
			r := do(t, s, "PUT", tt.target, tt.body)
			assert.Equal(t, tt.status, r.status)
			assert.Equal(t, errorBody(tt.msg, tt.field), r.body)
			assert.Empty(t, e.lim.Overrides(), "nothing stored")
		})
	}
}

// TestAPISetOverrideArguments checks that the key, policy and limits of the
// request are what the limiter stores.
func TestAPISetOverrideArguments(t *testing.T) {
	t.Parallel()
	e := newEnv(t, policy10, bigPolicy("gold"))
	r := do(t, New(e.lim, Config{}), "PUT", "/v1/overrides/a%2Fb?policy=gold", `{"limits":[{"capacity":0.1,"rate":"0.5/1m30s"}]}`)
	require.Equal(t, 200, r.status, r.body)
	assert.Equal(t, `{"key":"a/b","policy":"gold","limits":[{"capacity":0.1,"rate":"0.5/1m30s"}]}`, r.body)
	assert.Equal(t, []bucket.Override{{Key: "a/b", Policy: "gold", Limits: []bucket.Limit{
		{Capacity: T / 10, Rate: bucket.Rate{Tokens: T / 2, Per: 90 * time.Second}}}}}, e.lim.Overrides())
}

func TestAPIReload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		reload func(e *env) func() error // nil: no Config.Reload
		status int
		body   string
	}{
		{"not available", nil, 501, `{"error":"reload is not available"}`},
		{"ok: the policies now in force", func(e *env) func() error {
			return func() error { return e.lim.SetPolicies("", []bucket.Policy{policy10}) }
		}, 200, `{"policies":[{"name":"default","default":true,"shadow":false,"limits":[{"capacity":10,"rate":"1/3s"}],"counts":{"allowed":3,"denied":0}}]}`},
		{"bad file", func(*env) func() error {
			return func() error { return fmt.Errorf("bucketd.yaml:3: rate \"x\": %w", bucket.ErrInvalid) }
		}, 422, `{"error":"reload failed: bucketd.yaml:3: rate \"x\": invalid"}`},
		{"unreadable", func(*env) func() error {
			return func() error { return errors.New("open /etc/bucketd.yaml: permission denied") }
		}, 422, `{"error":"reload failed: open /etc/bucketd.yaml: permission denied"}`},
		{"closed", func(*env) func() error {
			return func() error { return bucket.ErrClosed }
		}, 503, `{"error":"service is shutting down"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			for range 3 {
				e.take(t, "joe", "", T)
			}
			cfg := Config{AdminToken: "sesame"}
			if tt.reload != nil {
				cfg.Reload = tt.reload(e)
			}
			s := New(e.lim, cfg)
			r := do(t, s, "POST", "/v1/reload", "", "Authorization", "Bearer sesame")
			assert.Equal(t, tt.status, r.status)
			assert.Equal(t, tt.body, r.body)
			r = do(t, s, "POST", "/v1/reload", "")
			assert.Equal(t, 401, r.status, "an admin route")
		})
	}
}
