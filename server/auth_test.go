package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// routeRequest returns a request for r that passes every check but the
// admin token: a key in the path, a valid body.
func routeRequest(r route) (method, target, body string) {
	target = strings.ReplaceAll(r.path, ":key", "joe")
	switch r.path {
	case "/v1/take":
		body = `{"key":"joe"}`
	case "/v1/batch":
		body = `{"takes":[{"key":"joe"}]}`
	case "/v1/buckets/:key/tokens":
		body = `{"tokens":1}`
	case "/v1/overrides/:key":
		if r.method == "PUT" {
			body = `{"limits":[{"capacity":1,"rate":"1/s"}]}`
		}
	}
	return r.method, target, body
}

func TestAdminToken(t *testing.T) {
	t.Parallel()
	var admin, open []string
	for _, r := range New(noTake(t), Config{}).routes {
		if r.admin {
			admin = append(admin, r.method+" "+r.path)
		} else {
			open = append(open, r.method+" "+r.path)
		}
	}
	// The documented split (doc.go, README): what changes state other than
	// by a take, or lists keys, needs the token.
	assert.Equal(t, []string{
		"GET /v1/buckets", "DELETE /v1/buckets/:key", "PUT /v1/buckets/:key/tokens",
		"GET /v1/overrides", "PUT /v1/overrides/:key", "DELETE /v1/overrides/:key", "POST /v1/reload",
	}, admin)
	assert.Equal(t, []string{
		"GET /healthz", "GET /", "GET /v1", "GET /v1/openapi.json", "POST /v1/take", "POST /v1/batch",
		"GET /v1/buckets/:key", "GET /v1/policies", "GET /v1/overrides/:key", "GET /:key",
	}, open)

	for _, r := range New(noTake(t), Config{}).routes {
		method, target, body := routeRequest(r)
		t.Run(method+" "+r.path, func(t *testing.T) {
			t.Parallel()
			_, s := newMem(Config{AdminToken: "sesame", Reload: func() error { return nil }})
			_, noToken := newMem(Config{Reload: func() error { return nil }})
			tests := []struct {
				name      string
				s         *Server
				header    []string
				refused   bool
				challenge string
			}{
				{"no header", s, nil, r.admin, `Bearer realm="bucketd"`},
				{"other scheme", s, []string{"Authorization", "Basic c2VzYW1lOg=="}, r.admin, `Bearer realm="bucketd"`},
				{"no token", s, []string{"Authorization", "Bearer"}, r.admin, `Bearer realm="bucketd"`},
				{"empty token", s, []string{"Authorization", "Bearer "}, r.admin, `Bearer realm="bucketd"`}, // trailing space is trimmed: no token
				{"wrong token", s, []string{"Authorization", "Bearer sesamE"}, r.admin, `Bearer realm="bucketd", error="invalid_token"`},
				{"longer token", s, []string{"Authorization", "Bearer sesame2"}, r.admin, `Bearer realm="bucketd", error="invalid_token"`},
				{"prefix of the token", s, []string{"Authorization", "Bearer sesam"}, r.admin, `Bearer realm="bucketd", error="invalid_token"`},
				{"token", s, []string{"Authorization", "Bearer sesame"}, false, ""},
				{"scheme in lower case", s, []string{"Authorization", "bearer sesame"}, false, ""},
				{"no token configured", noToken, nil, false, ""},
			}
			for _, tt := range tests {
				resp := do(t, tt.s, method, target, body, tt.header...)
				if !tt.refused {
					assert.NotEqual(t, 401, resp.status, "%s: %s", tt.name, resp.body)
					assert.Less(t, resp.status, 500, "%s: %s", tt.name, resp.body)
					assert.Empty(t, resp.header.Values("WWW-Authenticate"), tt.name)
					continue
				}
				assert.Equal(t, 401, resp.status, tt.name)
				assert.Equal(t, "application/json", resp.header.Get("Content-Type"), tt.name)
				assert.Equal(t, []string{tt.challenge}, resp.header.Values("WWW-Authenticate"), tt.name)
				if strings.Contains(tt.challenge, "invalid_token") {
					assert.Equal(t, `{"error":"the admin token is wrong"}`, resp.body, tt.name)
				} else {
					assert.Equal(t, `{"error":"this route needs the admin token: Authorization: Bearer <token>"}`, resp.body, tt.name)
				}
			}
		})
	}
}

// TestAdminTokenRefusedChangesNothing: a refused request reaches no store
// method.
func TestAdminTokenRefusedChangesNothing(t *testing.T) {
	t.Parallel()
	reloaded := false
	s := New(&fakeStore{}, Config{AdminToken: "sesame", Reload: func() error { reloaded = true; return nil }})
	for _, r := range s.routes {
		if !r.admin {
			continue
		}
		method, target, body := routeRequest(r)
		resp := do(t, s, method, target, body, "Authorization", "Bearer nope")
		assert.Equal(t, 401, resp.status, "%s %s: %s", method, target, resp.body) // fakeStore would answer 500
	}
	assert.False(t, reloaded)
}

// TestAdminTokenConstantTime checks that the token is decided by
// subtle.ConstantTimeCompare on digests of equal length, whatever the
// length of the token sent.
func TestAdminTokenConstantTime(t *testing.T) {
	t.Parallel()
	_, s := newMem(Config{AdminToken: "sesame"})
	type compare struct {
		x, y   []byte
		result int
	}
	var mu sync.Mutex
	var calls []compare
	s.admin.equal = func(x, y []byte) int {
		r := subtle.ConstantTimeCompare(x, y)
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, compare{x, y, r})
		return r
	}
	want := sha256.Sum256([]byte("sesame"))
	for _, tok := range []string{"sesame", "x", "sesame-and-much-longer", "sesame"} {
		r := do(t, s, "GET", "/v1/buckets", "", "Authorization", "Bearer "+tok)
		if tok == "sesame" {
			assert.Equal(t, 200, r.status)
		} else {
			assert.Equal(t, 401, r.status)
		}
	}
	require.Len(t, calls, 4, "every token is compared")
	for i, c := range calls {
		assert.Len(t, c.x, sha256.Size, "call %d", i)
		assert.Equal(t, want[:], c.y, "call %d", i)
	}
	assert.Equal(t, []int{1, 0, 0, 1}, []int{calls[0].result, calls[1].result, calls[2].result, calls[3].result})

	// The compare decides: one that says yes lets a wrong token in.
	s.admin.equal = func(x, y []byte) int { return 1 }
	assert.Equal(t, 200, do(t, s, "GET", "/v1/buckets", "", "Authorization", "Bearer wrong").status)
}
