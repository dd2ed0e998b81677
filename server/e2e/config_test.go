package e2e_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFlagsAndEnvironment(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		want string // in the start line
	}{
		{name: "defaults reproduce the original service",
			want: "data=bucketd.db capacity=5 rate=1/3s sync=interval sync_interval=1s config=none"},
		{name: "flags", args: []string{"--capacity", "2.5", "--rate", "100/s", "--sync", "always", "--sync-interval", "250ms", "--resp-addr", ""},
			want: "resp=off data=bucketd.db capacity=2.5 rate=100/s sync=always sync_interval=250ms"},
		{name: "environment", env: []string{"BUCKETD_RATE=10/m", "BUCKETD_SYNC_INTERVAL=5s", "BUCKETD_DATA=env.db", "OTHER=x"},
			want: "data=env.db capacity=5 rate=10/m sync=interval sync_interval=5s"},
		{name: "flag beats environment", args: []string{"--rate", "1000/h"}, env: []string{"BUCKETD_RATE=10/m"},
			want: "rate=1000/h"},
		{name: "check-config is a command, not a setting", env: []string{"BUCKETD_CHECK_CONFIG=x.yaml"},
			want: "config=none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir() // the default --data is relative: bucketd.db in here
			p := startBinaryIn(t, dir, tt.env, tt.args...)
			assert.Contains(t, p.startLine, tt.want)
			assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
		})
	}
}

func TestBadFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     []string
		wantErr string
	}{
		{name: "bad rate", args: []string{"--rate", "fast"}, wantErr: "TOKENS/PERIOD"},
		{name: "bad capacity", args: []string{"--capacity", "-1"}, wantErr: "negative"},
		{name: "zero capacity", args: []string{"--capacity", "0"}, wantErr: "capacity 0 must be positive"},
		{name: "bad env", env: []string{"BUCKETD_SYNC=sometimes"}, wantErr: `BUCKETD_SYNC="sometimes"`},
		{name: "bad log level", args: []string{"--log-level", "loud"}, wantErr: "log-level"},
		{name: "stray argument", args: []string{"serve"}, wantErr: `unexpected argument "serve"`},
		{name: "not a bbolt file", args: []string{"--data", "garbage.db"}, wantErr: "garbage.db is not a bucketd database"},
		{name: "bad address", args: []string{"--http-addr", "256.0.0.1:0"}, wantErr: "bucketd: http:"},
		{name: "zero sync interval", args: []string{"--sync-interval", "0"}, wantErr: "--sync-interval 0s: want a positive duration"},
		{name: "negative sync interval", env: []string{"BUCKETD_SYNC_INTERVAL=-1s"}, wantErr: "--sync-interval -1s: want a positive duration"},
		{name: "negative maxclients", args: []string{"--maxclients", "-5"}, wantErr: "--maxclients -5: want 1 or more"},
		{name: "zero output limit", args: []string{"--client-output-limit", "0"}, wantErr: "--client-output-limit 0: want a positive number of bytes"},
		{name: "negative timeout", args: []string{"--timeout", "-1s"}, wantErr: "--timeout -1s: want 0 (never)"},
		{name: "negative shutdown timeout", args: []string{"--shutdown-timeout", "-1s"}, wantErr: "--shutdown-timeout -1s: want 0 (no wait)"},
		{name: "negative max keys", args: []string{"--max-keys", "-1"}, wantErr: "--max-keys -1: want 0 (no bound) or more"},
		{name: "zero max log bytes", args: []string{"--max-log-bytes", "0"}, wantErr: "--max-log-bytes 0: want a positive number of bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "garbage.db"), []byte(strings.Repeat("not a database ", 1000)), 0o600))
			code, stdout, stderr := runBinary(t, dir, tt.env, append([]string{"--http-addr", "127.0.0.1:0", "--resp-addr", ""}, tt.args...)...)
			assert.Equal(t, 1, code)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, tt.wantErr)
		})
	}
}

func TestHelp(t *testing.T) {
	code, _, out := runBinary(t, t.TempDir(), nil, "--help")
	assert.Equal(t, 0, code)
	for _, want := range []string{"-http-addr", "-data", "-capacity", "-rate", "-sync", "-sync-interval", "-log-level", "-resp-addr", "-requirepass", "-admin-token", "-config", "-check-config", "Example:", "BUCKETD_"} {
		assert.Contains(t, out, want)
	}
}

// Policies files for the tests below.
const (
	goodConfig = `default: free
policies:
  free:
    capacity: 5
    rate: 1/3s
  paid:
    limits:
      - {capacity: 100, rate: 10/s}
      - {capacity: 100000, rate: 100000/d}
  new-search:
    capacity: 10
    rate: 1/s
    shadow: true
`
	// badConfig has two problems: line 4, column 11, and line 7, column 20.
	badConfig = `policies:
  free:
    capacity: 5
    rate: 1/x
  paid:
    limits:
      - {capacity: 0, rate: 10/s}
`
)

// writeFile writes data to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, []byte(data), 0o600))
	return path
}

func TestCheckConfigOpensAndBindsNothing(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", goodConfig)
	data := filepath.Join(dir, "b.db")
	// Checking opens no data file and binds nothing: this address would fail.
	noServe := []string{"--data", data, "--http-addr", "256.0.0.1:0"}
	code, stdout, _ := runBinary(t, dir, nil, append([]string{"--check-config", good}, noServe...)...)
	assert.Equal(t, 0, code)
	assert.Equal(t, good+": ok, 3 policies: free, paid, new-search\n", stdout)

	code, _, stderr := runBinary(t, dir, nil, append([]string{"--check-config", filepath.Join(dir, "missing.yaml")}, noServe...)...)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "no such file or directory")
	assert.NoFileExists(t, data)
}

func TestReloadEndpoint(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "p.yaml", "default: free\npolicies:\n  free: {capacity: 1, rate: 1/h}\n  paid: {capacity: 2, rate: 1/h}\n")
	p := startBinary(t, "--resp-addr", "", "--data", filepath.Join(dir, "b.db"), "--config", cfg)
	httpAddr := p.httpAddr
	for i, want := range []int{200, 429} {
		code, policy, _ := take(t, "http://"+httpAddr+"/joe")
		assert.Equal(t, want, code, "request %d", i)
		assert.Equal(t, `"free";q=1;w=3600`, policy)
	}
	code, policy, _ := take(t, "http://"+httpAddr+"/joe?policy=paid")
	assert.Equal(t, 200, code)
	assert.Equal(t, `"paid";q=2;w=7200`, policy)

	// POST /v1/reload reloads as SIGHUP does, and answers why it failed.
	writeFile(t, dir, "p.yaml", "default: free\npolicies:\n  free: {capacity: 3, rate: 1/h}\n")
	code, body := post(t, "http://"+httpAddr+"/v1/reload")
	assert.Equal(t, 200, code, body)
	_, policy, _ = take(t, "http://"+httpAddr+"/joe")
	assert.Equal(t, `"free";q=3;w=10800`, policy)
	writeFile(t, dir, "p.yaml", "default: free\npolicies:\n  free: {capacity: 3, rate: 1/x}\n")
	code, body = post(t, "http://"+httpAddr+"/v1/reload")
	assert.Equal(t, 422, code)
	assert.Contains(t, body, ":3:29: policies.free.rate: ")
	_, policy, _ = take(t, "http://"+httpAddr+"/joe")
	assert.Equal(t, `"free";q=3;w=10800`, policy)
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}

func TestBinaryCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", goodConfig)
	bad := writeFile(t, dir, "bad.yaml", badConfig)

	cmd := exec.Command(bucketdBinary(t), "--check-config", good)
	out, err := cmd.Output()
	require.NoError(t, err)
	assert.Equal(t, good+": ok, 3 policies: free, paid, new-search\n", string(out))

	var stdout, stderr strings.Builder
	cmd = exec.Command(bucketdBinary(t), "--check-config", bad)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.Error(t, cmd.Run())
	assert.Equal(t, 1, cmd.ProcessState.ExitCode())
	assert.Empty(t, stdout.String())
	assert.Contains(t, stderr.String(), "bucketd: "+bad+": 2 problems:\n")
	assert.Contains(t, stderr.String(), "\n"+bad+`:4:11: policies.free.rate: rate "1/x"`)
	assert.Contains(t, stderr.String(), "\n"+bad+":7:20: policies.paid.limits[0].capacity: capacity 0 must be positive\n")

	// The same file given to --config stops bucketd at start, the same way.
	data := filepath.Join(dir, "b.db")
	cmd = exec.Command(bucketdBinary(t), "--config", bad, "--data", data, "--http-addr", "127.0.0.1:0", "--resp-addr", "")
	combined, err := cmd.CombinedOutput()
	require.Error(t, err)
	assert.Equal(t, 1, cmd.ProcessState.ExitCode())
	assert.Contains(t, string(combined), bad+":4:11: policies.free.rate")
	assert.NoFileExists(t, data)
}

var (
	reloadedRE     = regexp.MustCompile(`level=INFO msg="policies reloaded" .*policies=(\S+) default=(\S+)`)
	reloadFailedRE = regexp.MustCompile(`level=ERROR msg="reload failed, the old policies stay in force" .*`)
)

// TestBinarySIGHUPReloadsPolicies changes a policy under a running bucketd:
// the new limits apply at once, to existing buckets too, without resetting
// their tokens; an invalid file changes nothing.
func TestBinarySIGHUPReloadsPolicies(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "policies.yaml", "default: free\npolicies:\n  free: {capacity: 2, rate: 1/h}\n")
	p := startBinary(t, "--data", filepath.Join(dir, "bucketd.db"), "--config", cfg)
	url := "http://" + p.httpAddr
	for i, want := range []int{200, 200, 429} {
		code, policy, _ := take(t, url+"/joe")
		require.Equal(t, want, code, "take %d", i)
		assert.Equal(t, `"free";q=2;w=7200`, policy)
	}
	code, _, _ := take(t, url+"/joe?policy=beta")
	assert.Equal(t, 404, code, "no policy beta yet")

	// A larger capacity and a new shadow policy.
	writeFile(t, dir, "policies.yaml", "default: free\npolicies:\n  free: {capacity: 5, rate: 1/h}\n  beta: {capacity: 1, rate: 1/h, shadow: true}\n")
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	m := p.log.wait(t, reloadedRE)
	assert.Equal(t, "beta,free", m[1])
	assert.Equal(t, "free", m[2])

	code, policy, limit := take(t, url+"/joe")
	assert.Equal(t, 429, code, "joe's bucket keeps its 0 tokens: a reload is not a reset")
	assert.Equal(t, `"free";q=5;w=18000`, policy, "under the new capacity")
	assert.Contains(t, limit, `"free";r=0;`)
	code, policy, limit = take(t, url+"/ann")
	assert.Equal(t, 200, code)
	assert.Equal(t, `"free";q=5;w=18000`, policy)
	assert.Contains(t, limit, `"free";r=4;`, "a new bucket starts full at the new capacity")
	for i := range 2 {
		code, policy, _ = take(t, url+"/joe?policy=beta")
		assert.Equal(t, 200, code, "take %d under the shadow policy beta", i)
		assert.Equal(t, `"beta";q=1;w=3600`, policy)
	}

	// An invalid file: the error is logged with its line and field, and
	// the policies stay as they were.
	writeFile(t, dir, "policies.yaml", "default: free\npolicies:\n  free: {capacity: 9, rate: 1/x}\n")
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	m = p.log.wait(t, reloadFailedRE)
	assert.Contains(t, m[0], cfg+`:3:29: policies.free.rate: rate \"1/x\"`)
	code, policy, _ = take(t, url+"/ann")
	assert.Equal(t, 200, code)
	assert.Equal(t, `"free";q=5;w=18000`, policy, "the old policy is still in force")
	code, _, _ = take(t, url+"/ann?policy=beta")
	assert.Equal(t, 200, code, "beta is still there")

	// A file that is gone: the same.
	require.NoError(t, os.Remove(cfg))
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	m = p.log.wait(t, reloadFailedRE)
	assert.Contains(t, m[0], "no such file")
	_, policy, _ = take(t, url+"/ann")
	assert.Equal(t, `"free";q=5;w=18000`, policy)

	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}

func TestBinarySIGHUPWithoutConfig(t *testing.T) {
	p := startBinary(t, "--data", filepath.Join(t.TempDir(), "bucketd.db"), "--capacity", "1", "--rate", "1/h")
	code, _ := get(t, "http://"+p.httpAddr+"/joe")
	require.Equal(t, 200, code)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	p.log.wait(t, regexp.MustCompile(`level=WARN msg="no --config to reload"`))
	code, _ = get(t, "http://"+p.httpAddr+"/joe")
	assert.Equal(t, 429, code, "SIGHUP changed nothing, and bucketd still serves")
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}
