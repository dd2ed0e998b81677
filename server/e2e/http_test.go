package e2e_test

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// take gets url and returns the status and the RateLimit-Policy and
// RateLimit fields.
func take(t *testing.T, url string) (code int, policy, limit string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header.Get("RateLimit-Policy"), resp.Header.Get("RateLimit")
}

func post(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// do sends a request with an optional bearer token and JSON body.
func do(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// peek returns the remaining tokens of key's default bucket, as GET
// /v1/buckets/{key} writes them ("4", "99.5").
func peek(t *testing.T, httpAddr, key string) string {
	t.Helper()
	code, body := get(t, "http://"+httpAddr+"/v1/buckets/"+key)
	require.Equal(t, 200, code, body)
	var d struct {
		Remaining json.Number `json:"remaining"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &d), body)
	return d.Remaining.String()
}

func TestTakesOverHTTP(t *testing.T) {
	p := startBinary(t, "--data", filepath.Join(t.TempDir(), "b.db"), "--capacity", "2", "--rate", "1/h")
	for i, want := range []int{200, 200, 429} {
		code, body := get(t, "http://"+p.httpAddr+"/joe")
		assert.Equal(t, want, code, "request %d", i)
		if want == 200 {
			assert.Equal(t, `{"detail":"OK"}`, body)
		} else {
			assert.Equal(t, `{"detail":"Too Many Requests"}`, body)
		}
	}
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}

// TestReadyz: the binary wires the store's health to GET /readyz, which
// answers 200 while it serves (the 503 side needs a failing disk: see the
// server and storage tests).
func TestReadyz(t *testing.T) {
	p := startBinary(t, "--data", filepath.Join(t.TempDir(), "b.db"))
	code, body := get(t, "http://"+p.httpAddr+"/readyz")
	assert.Equal(t, 200, code)
	assert.JSONEq(t, `{"status":"ok"}`, body)
	code, _ = get(t, "http://"+p.httpAddr+"/joe")
	assert.Equal(t, 200, code)
	code, body = get(t, "http://"+p.httpAddr+"/readyz")
	assert.Equal(t, 200, code, "still ready after a take: %s", body)
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}

func TestAdminTokenAndOverridesSurviveRestart(t *testing.T) {
	args := []string{"--data", filepath.Join(t.TempDir(), "b.db"), "--capacity", "2", "--rate", "1/h", "--admin-token", "s3cret"}
	p := startBinary(t, args...)
	addr := p.httpAddr
	url := "http://" + addr + "/v1/overrides/joe"
	override := `{"limits":[{"capacity":4,"rate":"1/h"}]}`

	code, body := do(t, "PUT", url, "", override)
	assert.Equal(t, 401, code, body)
	code, body = do(t, "PUT", url, "wrong", override)
	assert.Equal(t, 401, code, body)
	code, body = do(t, "PUT", url, "s3cret", override)
	require.Equal(t, 200, code, body)

	for i := range 3 {
		code, _ := get(t, "http://"+addr+"/joe")
		assert.Equal(t, 200, code, "take %d under joe's override of capacity 4", i)
	}
	code, _ = get(t, "http://"+addr+"/ann")
	assert.Equal(t, 200, code)
	require.Equal(t, 0, p.stop(t, syscall.SIGTERM))

	p = startBinary(t, args...)
	addr = p.httpAddr
	defer func() { assert.Equal(t, 0, p.stop(t, syscall.SIGTERM)) }()
	code, body = get(t, "http://"+addr+"/v1/overrides/joe")
	assert.Equal(t, 200, code)
	assert.JSONEq(t, `{"key":"joe","policy":"default","limits":[{"capacity":4,"rate":"1/h"}]}`, body, "the override survived the restart")
	code, _ = get(t, "http://"+addr+"/joe")
	assert.Equal(t, 200, code, "the 4th token of joe's override")
	code, _ = get(t, "http://"+addr+"/joe")
	assert.Equal(t, 429, code, "joe's 3 earlier takes survived the restart too")

	code, body = do(t, "DELETE", "http://"+addr+"/v1/buckets/joe", "s3cret", "")
	assert.Equal(t, 200, code, body)
	code, _ = get(t, "http://"+addr+"/joe")
	assert.Equal(t, 200, code, "reset")
	code, body = do(t, "DELETE", "http://"+addr+"/v1/overrides/joe", "s3cret", "")
	assert.Equal(t, 200, code, body)
	code, _ = get(t, "http://"+addr+"/v1/overrides/joe")
	assert.Equal(t, 404, code, "the override is gone")
}
