package server

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// openAPIDocument is what the tests read of openapi.json.
type openAPIDocument struct {
	OpenAPI string                                `json:"openapi"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
}

// openAPIOperation is what the tests read of one operation.
type openAPIOperation struct {
	OperationID string                     `json:"operationId"`
	Security    []map[string][]string      `json:"security"`
	Parameters  []map[string]any           `json:"parameters"`
	Responses   map[string]json.RawMessage `json:"responses"`
	RequestBody map[string]json.RawMessage `json:"requestBody"`
}

var httpMethods = []string{"get", "head", "post", "put", "delete", "connect", "options", "trace", "patch"}

func readOpenAPI(t *testing.T) (openAPIDocument, map[string]any) {
	t.Helper()
	var doc openAPIDocument
	require.NoError(t, json.Unmarshal(openAPIDoc, &doc))
	var raw map[string]any
	require.NoError(t, json.Unmarshal(openAPIDoc, &raw))
	return doc, raw
}

// fiberParam matches a Fiber path parameter, ":key".
var fiberParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// TestOpenAPIMatchesRoutes checks the document against the routes the
// server registers, both ways: every route is documented, and every
// documented operation is a route.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	_, s := newServer(t, Config{})
	doc, _ := readOpenAPI(t)
	assert.Equal(t, "3.1.0", doc.OpenAPI)

	var registered []string
	for _, r := range s.app.GetRoutes(true) {
		registered = append(registered, r.Method+" "+fiberParam.ReplaceAllString(r.Path, "{$1}"))
	}
	var documented []string
	for path, item := range doc.Paths {
		for key := range item {
			if slices.Contains(httpMethods, key) {
				documented = append(documented, strings.ToUpper(key)+" "+path)
			}
		}
	}
	slices.Sort(registered)
	slices.Sort(documented)
	assert.Equal(t, registered, documented)
	assert.NotContains(t, registered, "HEAD /{key}", "a HEAD must not take a token")
}

// TestOpenAPIOperations checks each operation: an id, responses, its path
// parameters declared, and the admin token required exactly on the admin
// routes.
func TestOpenAPIOperations(t *testing.T) {
	t.Parallel()
	_, s := newServer(t, Config{})
	doc, raw := readOpenAPI(t)
	ids := map[string]bool{}
	for _, r := range s.routes {
		path := fiberParam.ReplaceAllString(r.path, "{$1}")
		name := r.method + " " + path
		item, ok := doc.Paths[path]
		require.True(t, ok, "%s is not documented", name)
		var op openAPIOperation
		require.NoError(t, json.Unmarshal(item[strings.ToLower(r.method)], &op), name)

		assert.NotEmpty(t, op.OperationID, "%s has no operationId", name)
		assert.False(t, ids[op.OperationID], "operationId %q used twice", op.OperationID)
		ids[op.OperationID] = true
		assert.NotEmpty(t, op.Responses, "%s has no responses", name)

		wantSecurity := []map[string][]string(nil)
		if r.admin {
			wantSecurity = []map[string][]string{{"adminToken": {}}}
			assert.Contains(t, op.Responses, "401", "%s: an admin route can answer 401", name)
		}
		assert.Equal(t, wantSecurity, op.Security, "%s: security", name)

		// Every {param} of the path is declared, on the path or the operation.
		var pathLevel struct {
			Parameters []map[string]any `json:"parameters"`
		}
		pathItem, err := json.Marshal(item)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(pathItem, &pathLevel))
		declared := map[string]bool{}
		for _, p := range append(pathLevel.Parameters, op.Parameters...) {
			p = resolve(t, raw, p)
			if p["in"] == "path" {
				declared[p["name"].(string)] = true
				assert.Equal(t, true, p["required"], "%s: path parameter %v", name, p["name"])
			}
		}
		for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(path, -1) {
			assert.True(t, declared[m[1]], "%s: path parameter %q is not declared", name, m[1])
		}
		switch r.method {
		case "POST", "PUT":
			if r.path != "/v1/reload" {
				assert.NotEmpty(t, op.RequestBody, "%s has no requestBody", name)
			}
		}
	}
}

// resolve follows a local $ref.
func resolve(t *testing.T, doc map[string]any, v map[string]any) map[string]any {
	t.Helper()
	ref, ok := v["$ref"].(string)
	if !ok {
		return v
	}
	var cur any = doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := cur.(map[string]any)
		require.True(t, ok, "$ref %s", ref)
		cur, ok = m[part]
		require.True(t, ok, "$ref %s does not resolve", ref)
	}
	return cur.(map[string]any)
}

// TestOpenAPIRefs checks that every $ref in the document resolves, and
// every component is used.
func TestOpenAPIRefs(t *testing.T) {
	t.Parallel()
	_, raw := readOpenAPI(t)
	used := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				require.True(t, strings.HasPrefix(ref, "#/components/"), "$ref %s", ref)
				resolve(t, raw, v)
				used[ref] = true
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(raw)
	components := raw["components"].(map[string]any)
	for kind, c := range components {
		if kind == "securitySchemes" {
			continue
		}
		for name := range c.(map[string]any) {
			assert.True(t, used["#/components/"+kind+"/"+name], "component %s/%s is never used", kind, name)
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	file, err := os.ReadFile("openapi.json")
	require.NoError(t, err)
	_, s := newServer(t, Config{AdminToken: "sesame"})
	r := get(t, s, "/v1/openapi.json")
	assert.Equal(t, 200, r.status, "open without the token")
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	assert.Equal(t, string(file), r.body)
}
