package server

import (
	"crypto/sha256"
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// routeRequest returns a request for r that passes every check but the
// admin token: a key in the path, a valid body.
func routeRequest(r route) (method, target, body string) {
	target = strings.ReplaceAll(r.path, ":key", "joe")
	target = strings.ReplaceAll(target, ":asset", "app.js")
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
	routes := New(newEnv(t).lim, Config{}).routes
	for _, r := range routes {
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
		"GET /v1/overrides", "PUT /v1/overrides/:key", "DELETE /v1/overrides/:key", "POST /v1/reload", "GET /v1/backup",
		"GET /v1/top", "GET /v1/status",
	}, admin)
	assert.Equal(t, []string{
		"GET /healthz", "GET /readyz", "GET /", "GET /v1", "GET /v1/openapi.json", "POST /v1/take", "POST /v1/batch",
		"GET /v1/buckets/:key", "GET /v1/policies", "GET /v1/overrides/:key",
		"GET /ui", "GET /ui/:asset", "GET /:key",
	}, open)

	for _, r := range routes {
		method, target, body := routeRequest(r)
		t.Run(method+" "+r.path, func(t *testing.T) {
			t.Parallel()
			_, s := newServer(t, Config{AdminToken: "sesame", Reload: func() error { return nil }})
			_, noToken := newServer(t, Config{Reload: func() error { return nil }})
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

// TestAdminTokenRefusedChangesNothing: a request refused for its token
// changes no bucket, override or policy.
func TestAdminTokenRefusedChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.take(t, "joe", "", 3*T)
	before := e.spent(t)
	reloaded := false
	s := New(e.lim, Config{AdminToken: "sesame", Reload: func() error { reloaded = true; return nil }})
	for _, r := range s.routes {
		if !r.admin {
			continue
		}
		method, target, body := routeRequest(r)
		resp := do(t, s, method, target, body, "Authorization", "Bearer nope")
		assert.Equal(t, 401, resp.status, "%s %s: %s", method, target, resp.body)
	}
	assert.Equal(t, before, e.spent(t), "no bucket reset or set")
	assert.Empty(t, e.lim.Overrides(), "no override stored")
	assert.False(t, reloaded)
}

// TestAdminTokenOtherLengthsAndPrefixes: only the token itself passes; a
// prefix of it, a token that extends it, one of the same length, and
// tokens of every other length are refused alike. The server keeps the
// token's SHA-256 digest, not the token.
func TestAdminTokenOtherLengthsAndPrefixes(t *testing.T) {
	t.Parallel()
	const secret = "sesame"
	assert.Equal(t, sha256.Sum256([]byte(secret)), newAdminAuth(secret).want)

	_, s := newServer(t, Config{AdminToken: secret})
	tests := []struct {
		name, token string
		status      int
	}{
		{"the token", secret, 200},
		{"a prefix", "sesam", 401},
		{"one byte", "s", 401},
		{"extended", "sesame2", 401},
		{"twice", secret + secret, 401},
		{"NUL after it", secret + "\x00", 401},
		{"same length", "sesamf", 401},
		{"other case", "SESAME", 401},
		{"its digest", string(func() []byte { d := sha256.Sum256([]byte(secret)); return d[:] }()), 401},
		{"long", strings.Repeat("s", 4096), 401},
	}
	for _, tt := range tests {
		r := do(t, s, "GET", "/v1/buckets", "", "Authorization", "Bearer "+tt.token)
		assert.Equal(t, tt.status, r.status, tt.name)
		if tt.status == 401 {
			assert.Equal(t, `{"error":"the admin token is wrong"}`, r.body, tt.name)
		}
	}
}

// TestAdminTokenCheckUsesSubtleOnDigests pins how adminAuth.check compares,
// in its source: subtle.ConstantTimeCompare on the SHA-256 digest of the
// token sent and the stored digest, both of fixed length, and no other
// comparison of either. A timing leak cannot be measured reliably in a
// test; this catches the change that would bring one back (a == on the
// tokens, bytes.Equal, a compare of the raw tokens).
func TestAdminTokenCheckUsesSubtleOnDigests(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), "auth.go", nil, 0)
	require.NoError(t, err)
	var check *ast.FuncDecl
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == "check" && fd.Recv != nil {
			check = fd
		}
	}
	require.NotNil(t, check, "adminAuth.check not found in auth.go")

	// sel returns "pkg.Name" for a call of a package function, else "".
	sel := func(e ast.Expr) string {
		call, ok := e.(*ast.CallExpr)
		if !ok {
			return ""
		}
		s, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return ""
		}
		pkg, ok := s.X.(*ast.Ident)
		if !ok {
			return ""
		}
		return pkg.Name + "." + s.Sel.Name
	}
	// names returns the identifiers in e, "a.want" for a selector.
	names := func(e ast.Node) []string {
		var out []string
		ast.Inspect(e, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok {
					out = append(out, x.Name+"."+n.Sel.Name)
				}
				return false
			case *ast.Ident:
				out = append(out, n.Name)
			}
			return true
		})
		return out
	}
	var compares [][]string // the arguments of each ConstantTimeCompare
	digests := map[string]bool{}
	ast.Inspect(check.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			if len(n.Lhs) == 1 && len(n.Rhs) == 1 && sel(n.Rhs[0]) == "sha256.Sum256" {
				digests[n.Lhs[0].(*ast.Ident).Name] = true
			}
		case *ast.CallExpr:
			switch sel(n) {
			case "subtle.ConstantTimeCompare":
				var args []string
				for _, a := range n.Args {
					args = append(args, strings.Join(names(a), ""))
				}
				compares = append(compares, args)
			case "bytes.Equal", "reflect.DeepEqual", "strings.Compare", "bytes.Compare":
				t.Errorf("check compares with %s", sel(n))
			}
		case *ast.BinaryExpr:
			if (n.Op == token.EQL || n.Op == token.NEQ) && sel(n.X) != "subtle.ConstantTimeCompare" {
				for _, name := range names(n) {
					assert.NotContains(t, []string{"token", "a.want", "got"}, name, "check compares the token with %s", n.Op)
				}
			}
		}
		return true
	})
	require.Len(t, compares, 1, "one subtle.ConstantTimeCompare")
	require.Len(t, compares[0], 2)
	var got string
	for name := range digests {
		got = name
	}
	require.Len(t, digests, 1, "the token sent is hashed with sha256.Sum256")
	assert.ElementsMatch(t, []string{got, "a.want"}, compares[0], "compared: the digest of the token sent and the stored digest")
}
