package server

import (
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
)

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
		{"readyz", "GET", "/readyz", 200, `{"status":"ok"}`, ""},
		{"no key", "GET", "/", 404, `{"error":"no key: use GET /{key}","field":"key"}`, ""},
		{"two segments", "GET", "/a/b", 404, `{"error":"not found"}`, ""},
		{"html in path is not echoed", "GET", "/a/%3Cscript%3E", 404, `{"error":"not found"}`, ""},
		{"post", "POST", "/joe", 405, `{"error":"method not allowed"}`, "GET"},
		{"delete", "DELETE", "/joe", 405, `{"error":"method not allowed"}`, "GET"},
		{"unknown method", "BREW", "/joe", 405, `{"error":"method not allowed"}`, "GET"},
		{"post readyz", "POST", "/readyz", 405, `{"error":"method not allowed"}`, "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, s := newServer(t, Config{})
			r := send(t, s, httptest.NewRequest(tt.method, tt.target, nil))
			assert.Equal(t, tt.status, r.status)
			assert.Equal(t, tt.body, r.body)
			assert.Equal(t, "application/json", r.header.Get("Content-Type"))
			assert.Equal(t, tt.allow, r.header.Get("Allow"))
			e.assertNoTake(t)
		})
	}
}

func TestReservedPaths(t *testing.T) {
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
		{"/readyz/", 200, `{"status":"ok"}`, ""},
		{"/readyz/x", 404, `{"error":"not found"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			t.Parallel()
			e, s := newServer(t, Config{})
			r := get(t, s, tt.target)
			assert.Equal(t, tt.status, r.status)
			assert.Equal(t, tt.body, r.body)
			if tt.take == "" {
				e.assertNoTake(t)
			} else {
				assert.Equal(t, []spent{{tt.take, "default", T}}, e.spent(t))
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
		{"HEAD", "/readyz", "GET"},
		{"OPTIONS", "/joe/", "GET"},
		{"POST", "/", "GET"},
		{"BREW", "/v1/take", "POST"},
		{"BREW", "/v1/buckets/joe", "GET, DELETE"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			t.Parallel()
			e, s := newServer(t, Config{})
			r := do(t, s, tt.method, tt.target, "")
			assert.Equal(t, 405, r.status)
			assert.Equal(t, tt.allow, r.header.Get("Allow"))
			if tt.method != "HEAD" {
				assert.Equal(t, `{"error":"method not allowed"}`, r.body)
			}
			e.assertNoTake(t)
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
