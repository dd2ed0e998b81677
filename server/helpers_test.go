package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/limiter"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

// The server's tests run it in front of the real limiter over the real
// embedded store, as main.go wires them, on a fake clock: what they check
// is what a client of bucketd sees, not what an imitation of the store
// would answer.

// T is one whole token.
const T = bucket.Token

// The policies of most tests; newEnv gives them, policy10 the default.
var (
	// policy10 is one bucket of 10 tokens earning one every 3 s: its
	// window is 30 s.
	policy10 = bucket.Policy{Name: bucket.DefaultPolicy, Limits: []bucket.Limit{
		{Capacity: 10 * T, Rate: bucket.Every(3 * time.Second)},
	}}
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

// env is what a Server runs in front of in a test: the real limiter over
// the real embedded store, in the test's temporary directory, on a clock
// that moves only when the test says.
type env struct {
	lim   *limiter.Limiter
	db    *storage.DB
	clock *storetest.Clock
}

// newEnv returns an env with policies, the first of them the default; with
// none, policy10 (the default), policyAPI and policyShadow. The store is
// closed at the end of the test.
func newEnv(tb testing.TB, policies ...bucket.Policy) *env {
	tb.Helper()
	if len(policies) == 0 {
		policies = []bucket.Policy{policy10, policyAPI, policyShadow}
	}
	clock := storetest.NewClock(storetest.T0)
	db, err := storage.Open(filepath.Join(tb.TempDir(), "bucketd.db"), storage.Options{Clock: clock})
	require.NoError(tb, err)
	tb.Cleanup(func() { assert.NoError(tb, db.Close()) })
	lim, err := limiter.New(db, limiter.Options{})
	require.NoError(tb, err)
	require.NoError(tb, lim.SetPolicies(policies[0].Name, policies))
	return &env{lim: lim, db: db, clock: clock}
}

// newServer returns a Server with cfg in front of a newEnv with the
// policies of most tests.
func newServer(t *testing.T, cfg Config) (*env, *Server) {
	t.Helper()
	e := newEnv(t)
	return e, New(e.lim, cfg)
}

// take takes cost from key's bucket under policy directly, not through the
// server, and fails the test on an error.
func (e *env) take(t *testing.T, key, policy string, cost bucket.Tokens) bucket.Result {
	t.Helper()
	res, err := e.lim.Take(key, policy, cost)
	require.NoError(t, err)
	return res
}

// spent is what is missing from one bucket: the tokens that key's bucket
// under policy lacks of the policy's capacity.
type spent struct {
	key, policy string
	tokens      bucket.Tokens
}

// spent reads every bucket back through the limiter: for each key that has
// a bucket, each policy under which it lacks tokens, and how many. With the
// clock not moved since the takes, that is what they took.
func (e *env) spent(t *testing.T) []spent {
	t.Helper()
	keys, _, err := e.lim.Keys("", "", 10_000)
	require.NoError(t, err)
	var out []spent
	for _, key := range keys {
		for _, p := range e.lim.Policies() {
			res := e.take(t, key, p.Name, 0)
			if res.Remaining < p.Capacity() {
				out = append(out, spent{key, p.Name, p.Capacity() - res.Remaining})
			}
		}
	}
	return out
}

// assertNoTake checks that no request reached a take: no key has a bucket,
// and no policy has counted a decision (a refused take leaves no bucket).
func (e *env) assertNoTake(t *testing.T) {
	t.Helper()
	n, err := e.lim.Len()
	require.NoError(t, err)
	assert.Zero(t, n, "a bucket was taken from")
	for _, p := range e.lim.Policies() {
		assert.Zero(t, p.Counts, "policy %q counted a take", p.Name)
	}
}

// faultyLimiter is the real limiter with one fault injected into Take, for
// the failures that the real store cannot be made to show from outside
// package storage: a commit that failed under --sync always
// (bucket.ErrNotDurable), an internal error, a panic. Take makes the real
// take first, so the bucket and the counts change exactly as they would;
// then fault, when it returns an error for the key, is returned with the
// real result, as the real limiter returns a take whose commit failed.
// Every other method is the real limiter's, unchanged: this is not an
// imitation of the store that could drift from it.
type faultyLimiter struct {
	*limiter.Limiter
	fault func(key string) error // nil for a key that takes as usual
}

func (f faultyLimiter) Take(key, policy string, cost bucket.Tokens) (bucket.Result, error) {
	res, err := f.Limiter.Take(key, policy, cost)
	if err == nil {
		err = f.fault(key)
	}
	return res, err
}

// errDiskFull is a failed commit, wrapped as the store wraps it.
var errDiskFull = fmt.Errorf("%w: storage: flush: write bucketd.db: no space left on device", bucket.ErrNotDurable)

// errSecret is an internal error whose text must not reach a client.
var errSecret = errors.New("bbolt: disk on fire at /var/lib/secret")

// response is what a test checks of an answer.
type response struct {
	status int
	header http.Header
	body   string
}

// get sends GET target to s through app.Test.
func get(t *testing.T, s *Server, target string) response {
	t.Helper()
	return send(t, s, httptest.NewRequest(http.MethodGet, target, nil))
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

func send(t *testing.T, s *Server, req *http.Request) response {
	t.Helper()
	resp, err := s.app.Test(req, 5000)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{resp.StatusCode, resp.Header, string(body)}
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

// errorBody is the JSON error body, made with encoding/json so that the
// server's own encoder is checked against it.
func errorBody(msg, field string) string {
	v := struct {
		Error string `json:"error"`
		Field string `json:"field,omitempty"`
	}{msg, field}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// logLines decodes the lines of a JSON log.
func logLines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	dec := json.NewDecoder(b)
	for dec.More() {
		var m map[string]any
		require.NoError(t, dec.Decode(&m))
		lines = append(lines, m)
	}
	return lines
}
