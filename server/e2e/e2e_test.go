// Package e2e_test runs the real bucketd binary: built once per run, started
// on 127.0.0.1 port 0, driven over HTTP and RESP, stopped with signals. The
// tests live here because the top level of the repository holds only
// main.go; they test main.go's wiring end to end.
package e2e_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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

// startedRE reads the addresses from the start line.
var startedRE = regexp.MustCompile(`msg="bucketd started" http=(\S+) resp=(\S+).*`)

// logTail reads bucketd's log lines from a reader in the background, until
// its end, and lets a test wait for the next line that matches a pattern.
// It never blocks the writer, however many lines no one waits for.
type logTail struct {
	mu      sync.Mutex // guards the fields below
	lines   []string
	eof     bool
	changed chan struct{} // closed, and replaced, when lines or eof change
	next    int           // the first line that wait has not looked at
}

func tailLog(r io.Reader) *logTail {
	l := &logTail{changed: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, sc.Text())
			close(l.changed)
			l.changed = make(chan struct{})
			l.mu.Unlock()
		}
		l.mu.Lock()
		l.eof = true
		close(l.changed)
		l.mu.Unlock()
	}()
	return l
}

// wait returns the submatches of the first line after those already looked
// at that matches re. It fails the test if the log ends first or no such
// line comes within 30 s.
func (l *logTail) wait(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for {
		l.mu.Lock()
		for l.next < len(l.lines) {
			line := l.lines[l.next]
			l.next++
			if m := re.FindStringSubmatch(line); m != nil {
				l.mu.Unlock()
				return m
			}
		}
		eof, changed := l.eof, l.changed
		l.mu.Unlock()
		if eof {
			t.Fatalf("bucketd's log ended before a line matching %q", re)
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("no log line matching %q within 30s", re)
		}
	}
}

// started waits for the start line, and returns the HTTP and RESP
// addresses.
func (l *logTail) started(t *testing.T) (httpAddr, respAddr, line string) {
	t.Helper()
	m := l.wait(t, startedRE)
	return m[1], m[2], m[0]
}

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

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// bucketdBinary builds the real binary once per test run.
func bucketdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bucketd-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "bucketd")
		gomod, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = err
			return
		}
		build := exec.Command("go", "build", "-o", binPath, ".")
		build.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
		out, err := build.CombinedOutput()
		if err != nil {
			buildErr = err
			binPath = string(out)
		}
	})
	require.NoError(t, buildErr, binPath)
	return binPath
}

// proc is a running bucketd binary.
type proc struct {
	cmd       *exec.Cmd
	log       *logTail // its standard error
	httpAddr  string
	respAddr  string
	startLine string
}

// startBinary starts bucketd on 127.0.0.1 port 0 (HTTP and RESP) with args,
// and waits for its start line.
func startBinary(t *testing.T, args ...string) *proc {
	t.Helper()
	return startBinaryIn(t, t.TempDir(), nil, args...)
}

// startBinaryIn is startBinary in the directory dir, with env added to the
// environment.
func startBinaryIn(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bucketdBinary(t), append([]string{"--http-addr", "127.0.0.1:0", "--resp-addr", "127.0.0.1:0"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p := &proc{cmd: cmd, log: tailLog(stderr)}
	p.httpAddr, p.respAddr, p.startLine = p.log.started(t)
	return p
}

// runBinary runs bucketd in dir with args to its end (at most a minute),
// and returns its exit code and output.
func runBinary(t *testing.T, dir string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bucketdBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errOut.String()
	}
	require.NoError(t, err)
	return 0, out.String(), errOut.String()
}

// stop sends sig and returns the exit code.
func (p *proc) stop(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(sig))
	err := p.cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	require.NoError(t, err)
	return 0
}

func TestBinarySIGTERMKeepsTokens(t *testing.T) {
	data := filepath.Join(t.TempDir(), "bucketd.db")
	p := startBinary(t, "--data", data, "--capacity", "3", "--rate", "1/h")
	for range 3 {
		code, _ := get(t, "http://"+p.httpAddr+"/joe")
		require.Equal(t, 200, code)
	}
	code, _ := get(t, "http://"+p.httpAddr+"/joe")
	require.Equal(t, 429, code)
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM), "SIGTERM exits 0")

	p = startBinary(t, "--data", data, "--capacity", "3", "--rate", "1/h")
	code, body := get(t, "http://"+p.httpAddr+"/joe")
	assert.Equal(t, 429, code, "the tokens taken before the restart stay taken")
	assert.Equal(t, `{"detail":"Too Many Requests"}`, body)
	code, _ = get(t, "http://"+p.httpAddr+"/ann")
	assert.Equal(t, 200, code, "other keys are untouched")
	assert.Equal(t, 0, p.stop(t, syscall.SIGINT), "SIGINT exits 0")
}

func TestBinarySIGKILLSyncAlwaysLosesNothingAnswered(t *testing.T) {
	data := filepath.Join(t.TempDir(), "bucketd.db")
	args := []string{"--data", data, "--capacity", "10", "--rate", "1/h", "--sync", "always", "--sync-interval", "1h"}
	p := startBinary(t, args...)
	var wg sync.WaitGroup
	codes := make(chan int, 40)
	for range 4 { // concurrent takes share commits
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				resp, err := http.Get("http://" + p.httpAddr + "/joe")
				if err != nil {
					return
				}
				resp.Body.Close()
				codes <- resp.StatusCode
			}
		}()
	}
	wg.Wait()
	close(codes)
	allowed := 0
	for c := range codes {
		if c == 200 {
			allowed++
		}
	}
	require.Equal(t, 10, allowed)
	assert.Equal(t, -1, p.stop(t, syscall.SIGKILL))

	p = startBinary(t, args...)
	code, _ := get(t, "http://"+p.httpAddr+"/joe")
	assert.Equal(t, 429, code, "every answered take survived SIGKILL")
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}

func TestBinaryFileInUse(t *testing.T) {
	data := filepath.Join(t.TempDir(), "bucketd.db")
	p := startBinary(t, "--data", data)
	cmd := exec.Command(bucketdBinary(t), "--data", data, "--http-addr", "127.0.0.1:0", "--resp-addr", "")
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "bucketd.db is in use by another process")
	assert.Equal(t, 1, cmd.ProcessState.ExitCode())
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
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
