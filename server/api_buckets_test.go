package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/limiter"
	"github.com/bucketd/bucketd/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAPIBuckets(t *testing.T) {
	t.Parallel()
	e, s := newServer(t, Config{AdminToken: "sesame"})
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
	e.clock.Advance(1500 * time.Millisecond)
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
	_, s := newServer(t, Config{})
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
	e, s := newServer(t, Config{})
	var want []string
	for i := range 25 {
		key := fmt.Sprintf("user:%02d", i)
		want = append(want, key)
		_, err := e.lim.Take(key, "", T)
		require.NoError(t, err)
		_, err = e.lim.Take(key, "api", T) // a second bucket: still one key
		require.NoError(t, err)
	}
	for _, key := range []string{"admin", "user", "users:1", "zed"} {
		_, err := e.lim.Take(key, "", T)
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

// TestAPIKeysArguments checks that the prefix, cursor and limit of the
// query reach the listing, decoded.
func TestAPIKeysArguments(t *testing.T) {
	t.Parallel()
	e, s := newServer(t, Config{})
	for _, key := range []string{"a/z", "b", "b c", "b d", "bc"} {
		e.take(t, key, "", T)
	}
	tests := []struct {
		target string
		want   string
	}{
		{"/v1/buckets?prefix=b+&cursor=a%2Fz&limit=1", `{"keys":["b c"],"next_cursor":"b c"}`},
		{"/v1/buckets?prefix=b+&cursor=b+c&limit=1", `{"keys":["b d"],"next_cursor":""}`},
		{"/v1/buckets?prefix=b+&cursor=b+d", `{"keys":[],"next_cursor":""}`},
		{"/v1/buckets?cursor=a%2Fz", `{"keys":["b","b c","b d","bc"],"next_cursor":""}`},
		{"/v1/buckets?prefix=a%2F", `{"keys":["a/z"],"next_cursor":""}`},
	}
	for _, tt := range tests {
		r := do(t, s, "GET", tt.target, "")
		assert.Equal(t, 200, r.status, tt.target)
		assert.Equal(t, tt.want, r.body, tt.target)
	}

	// The default page is 100 keys, the largest 1000.
	for i := range 1000 {
		e.take(t, fmt.Sprintf("k%04d", i), "", T)
	}
	page := func(target string) (n int, next string) {
		t.Helper()
		r := do(t, s, "GET", target, "")
		require.Equal(t, 200, r.status, r.body)
		var p struct {
			Keys       []string `json:"keys"`
			NextCursor string   `json:"next_cursor"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.body), &p))
		return len(p.Keys), p.NextCursor
	}
	n, next := page("/v1/buckets?prefix=k")
	assert.Equal(t, 100, n)
	assert.Equal(t, "k0099", next)
	n, next = page("/v1/buckets?limit=1000")
	assert.Equal(t, 1000, n)
	assert.Equal(t, "k0994", next, "1005 keys: a page of 1000 then more")

	require.NoError(t, e.db.Close())
	r := do(t, s, "GET", "/v1/buckets", "")
	assert.Equal(t, 503, r.status)
	assert.Equal(t, `{"error":"service is shutting down"}`, r.body)
}

// TestBackupRestores downloads GET /v1/backup while the server serves, and
// starts a store on the file: every bucket and override is there, as of
// the download, and takes made after it are not.
func TestBackupRestores(t *testing.T) {
	e, s := newServer(t, Config{AdminToken: "s3cret"})
	e.take(t, "joe", "", 3*bucket.Token)
	e.take(t, "ann", "api", bucket.Token)
	_, err := e.lim.Throttle("cell", bucket.Limit{Capacity: 10 * bucket.Token, Rate: bucket.Every(time.Hour)}, 4*bucket.Token)
	require.NoError(t, err)
	require.NoError(t, e.lim.SetOverride(bucket.Override{Key: "vip", Policy: "api", Limits: policy10.Limits}))

	assert.Equal(t, http.StatusUnauthorized, get(t, s, "/v1/backup").status, "admin only")
	r := do(t, s, http.MethodGet, "/v1/backup", "", "Authorization", "Bearer s3cret")
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, "application/octet-stream", r.header.Get("Content-Type"))
	assert.Contains(t, r.header.Get("Content-Disposition"), "bucketd.db")
	e.take(t, "joe", "", bucket.Token) // after the backup: not in it

	path := filepath.Join(t.TempDir(), "restored.db")
	require.NoError(t, os.WriteFile(path, []byte(r.body), 0o600))
	db, err := storage.Open(path, storage.Options{Clock: e.clock})
	require.NoError(t, err)
	defer db.Close()
	lim, err := limiter.New(db, limiter.Options{})
	require.NoError(t, err)
	require.NoError(t, lim.SetPolicies(policy10.Name, []bucket.Policy{policy10, policyAPI, policyShadow}))
	want := map[string]bucket.Tokens{"joe": e.take(t, "joe", "", 0).Remaining + bucket.Token}
	got, err := lim.Take("joe", "", 0)
	require.NoError(t, err)
	assert.Equal(t, want["joe"], got.Remaining, "joe as of the backup")
	api, err := e.lim.Take("ann", "api", 0)
	require.NoError(t, err)
	got, err = lim.Take("ann", "api", 0)
	require.NoError(t, err)
	assert.Equal(t, api.Remaining, got.Remaining, "ann under api")
	d, err := lim.Throttle("cell", bucket.Limit{Capacity: 10 * bucket.Token, Rate: bucket.Every(time.Hour)}, 0)
	require.NoError(t, err)
	assert.Equal(t, 6*bucket.Token, d.Remaining, "the CL.THROTTLE bucket")
	_, ok := lim.Override("vip", "api")
	assert.True(t, ok, "the override")
}

// TestBackupOfAClosedStore is 503: nothing to copy from.
func TestBackupOfAClosedStore(t *testing.T) {
	e, s := newServer(t, Config{})
	require.NoError(t, e.db.Close())
	assert.Equal(t, http.StatusServiceUnavailable, get(t, s, "/v1/backup").status)
}

// noFileStore is the embedded store seen only through storage.Store, as
// the Redis store is: it keeps no data file that Backup could copy.
type noFileStore struct{ storage.Store }

// TestBackupOfAStoreWithoutAFile is 501 with a JSON error, before any body
// is sent: not a 200 with an empty file.
func TestBackupOfAStoreWithoutAFile(t *testing.T) {
	e := newEnv(t)
	lim, err := limiter.New(noFileStore{e.db}, limiter.Options{})
	require.NoError(t, err)
	r := get(t, New(lim, Config{}), "/v1/backup")
	assert.Equal(t, http.StatusNotImplemented, r.status)
	assert.Contains(t, r.body, "keeps no data file")
	assert.Contains(t, r.body, `"error"`)
}
