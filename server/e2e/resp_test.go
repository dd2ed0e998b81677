package e2e_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// needRedisCLI returns the path of redis-cli. Without it the test is
// skipped, except in CI (CI=true), where it fails: CI installs it
// (apt-get install -y redis-tools).
func needRedisCLI(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("redis-cli")
	if err != nil {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatalf("redis-cli is required in CI: %v (apt-get install -y redis-tools)", err)
		}
		t.Skipf("redis-cli is not installed (apt-get install -y redis-tools): %v", err)
	}
	return path
}

// redisCLI returns a function that runs the redis-cli at path against the
// RESP address addr, and returns its output (one reply element a line),
// trimmed.
func redisCLI(t *testing.T, path, addr string) func(args ...string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	return func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, path, append([]string{"-h", host, "-p", port}, args...)...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "redis-cli %s: %s", strings.Join(args, " "), out)
		return strings.TrimSpace(string(out))
	}
}

// lines joins a reply of several elements, as redis-cli prints it.
func lines(elems ...string) string { return strings.Join(elems, "\n") }

// TestCLThrottleAndHTTPTakesDoNotShareABucket: CL.THROTTLE keeps its own
// bucket per key, so a GET /k between two CL.THROTTLE k neither rewrites
// its limits nor takes from it; HGET shows the policy's bucket, as GET
// /v1/buckets/k does.
func TestCLThrottleAndHTTPTakesDoNotShareABucket(t *testing.T) {
	// At 1/1000d a bucket refills less than a micro-token during the
	// test: tokens stay whole numbers.
	rcli := needRedisCLI(t)
	p := startBinary(t, "--data", filepath.Join(t.TempDir(), "b.db"), "--capacity", "5", "--rate", "1/1000d")
	cli := redisCLI(t, rcli, p.respAddr)

	// capacity 100 (max_burst 99 + 1), 1 token per 60 s, take 50.
	assert.Equal(t, lines("0", "100", "50", "-1", "3000"), cli("CL.THROTTLE", "k", "99", "1", "60", "50"))
	code, body := get(t, "http://"+p.httpAddr+"/k")
	require.Equal(t, 200, code, body)
	assert.Equal(t, lines("0", "100", "50", "-1", "3000"), cli("CL.THROTTLE", "k", "99", "1", "60", "0"),
		"the take of GET /k is not in CL.THROTTLE's bucket")

	assert.Equal(t, "4", cli("HGET", "k", "tokens"), "HGET shows the default policy's bucket: 5 - 1")
	assert.Equal(t, "4", peek(t, p.httpAddr, "k"), "GET /v1/buckets/k reads the same bucket as HGET")
	assert.Equal(t, "5", cli("HGET", "k", "capacity"))
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}

// TestDBSIZECountsNoFullBucket: a bucket that has refilled does not exist,
// for DBSIZE too, at once, not only after the flusher's sweep (every 5 s).
// This test runs on real time: it polls until the bucket is full.
func TestDBSIZECountsNoFullBucket(t *testing.T) {
	rcli := needRedisCLI(t)
	p := startBinary(t, "--data", filepath.Join(t.TempDir(), "b.db"), "--capacity", "1", "--rate", "100/s")
	cli := redisCLI(t, rcli, p.respAddr)

	code, body := get(t, "http://"+p.httpAddr+"/a")
	require.Equal(t, 200, code, body)
	// A CL.THROTTLE bucket that stays empty for an hour: DBSIZE counts
	// what exists.
	assert.Equal(t, lines("0", "1", "0", "-1", "3600"), cli("CL.THROTTLE", "b", "0", "1", "3600", "1"))

	full := false
	// a refills in 10 ms; poll for at most 10 s.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if peek(t, p.httpAddr, "a") == "1" {
			full = true
			break
		}
	}
	require.True(t, full, "a never refilled")
	assert.Equal(t, "1", cli("DBSIZE"), "a is full: only b counts")
	assert.Equal(t, "0", cli("EXISTS", "a"))
	assert.Equal(t, "1", cli("EXISTS", "b"))
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}
