package main

import (
	"bufio"
	"context"
	"io"
	"io/fs"
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

	"github.com/bucketd/bucketd/bucket"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     []string
		check   func(t *testing.T, c config)
		wantErr string
	}{
		{name: "defaults reproduce the original service", check: func(t *testing.T, c config) {
			assert.Equal(t, "127.0.0.1:8000", c.httpAddr)
			assert.Equal(t, "127.0.0.1:6379", c.respAddr)
			assert.Equal(t, "bucketd.db", c.data)
			assert.Equal(t, "5", c.capacity.String())
			assert.Equal(t, "1/3s", c.rate.String())
			assert.Equal(t, "interval", c.sync.String())
			assert.Equal(t, time.Second, c.syncInterval)
		}},
		{name: "flags", args: []string{"--capacity", "2.5", "--rate", "100/s", "--sync", "always", "--sync-interval", "250ms", "--http-addr", ":9000", "--resp-addr", "", "--log-level", "debug"},
			check: func(t *testing.T, c config) {
				assert.Equal(t, "2.5", c.capacity.String())
				assert.Equal(t, "100/s", c.rate.String())
				assert.Equal(t, "always", c.sync.String())
				assert.Equal(t, 250*time.Millisecond, c.syncInterval)
				assert.Equal(t, ":9000", c.httpAddr)
				assert.Empty(t, c.respAddr)
				assert.Equal(t, "DEBUG", c.logLevel.String())
			}},
		{name: "environment", env: []string{"BUCKETD_RATE=10/m", "BUCKETD_HTTP_ADDR=127.0.0.1:1", "BUCKETD_SYNC_INTERVAL=5s", "OTHER=x"},
			check: func(t *testing.T, c config) {
				assert.Equal(t, "10/m", c.rate.String())
				assert.Equal(t, "127.0.0.1:1", c.httpAddr)
				assert.Equal(t, 5*time.Second, c.syncInterval)
			}},
		{name: "flag beats environment", args: []string{"--rate", "1000/h"}, env: []string{"BUCKETD_RATE=10/m"},
			check: func(t *testing.T, c config) { assert.Equal(t, "1000/h", c.rate.String()) }},
		{name: "config file", args: []string{"--config", "p.yaml"}, check: func(t *testing.T, c config) {
			assert.Equal(t, "p.yaml", c.configFile)
			assert.Empty(t, c.checkConfig)
		}},
		{name: "config file from the environment; check-config is a command, not a setting",
			env: []string{"BUCKETD_CONFIG=/etc/bucketd.yaml", "BUCKETD_CHECK_CONFIG=x.yaml"},
			check: func(t *testing.T, c config) {
				assert.Equal(t, "/etc/bucketd.yaml", c.configFile)
				assert.Empty(t, c.checkConfig)
			}},
		{name: "bad rate", args: []string{"--rate", "fast"}, wantErr: "TOKENS/PERIOD"},
		{name: "bad capacity", args: []string{"--capacity", "-1"}, wantErr: "negative"},
		{name: "zero capacity", args: []string{"--capacity", "0"}, wantErr: "capacity 0 must be positive"},
		{name: "bad env", env: []string{"BUCKETD_SYNC=sometimes"}, wantErr: `BUCKETD_SYNC="sometimes"`},
		{name: "bad log level", args: []string{"--log-level", "loud"}, wantErr: "log-level"},
		{name: "stray argument", args: []string{"serve"}, wantErr: `unexpected argument "serve"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, tt.env, io.Discard)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			tt.check(t, c)
		})
	}
}

func TestHelp(t *testing.T) {
	var out strings.Builder
	err := run(context.Background(), []string{"--help"}, nil, io.Discard, &out)
	require.NoError(t, err)
	for _, want := range []string{"-http-addr", "-data", "-capacity", "-rate", "-sync", "-sync-interval", "-log-level", "-resp-addr", "-requirepass", "-config", "-check-config", "Example:", "BUCKETD_"} {
		assert.Contains(t, out.String(), want)
	}
}

// startedRE reads the addresses from the start line.
var startedRE = regexp.MustCompile(`msg="bucketd started" http=(\S+) resp=(\S+)`)

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
func (l *logTail) started(t *testing.T) (httpAddr, respAddr string) {
	t.Helper()
	m := l.wait(t, startedRE)
	return m[1], m[2]
}

// waitStarted reads log lines from r until the start line, and returns the
// HTTP and RESP addresses. The rest of r is drained in the background.
func waitStarted(t *testing.T, r io.Reader) (httpAddr, respAddr string) {
	t.Helper()
	return tailLog(r).started(t)
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

func TestRunInProcess(t *testing.T) {
	httpAddr, stop := startRun(t, "--data", filepath.Join(t.TempDir(), "b.db"), "--capacity", "2", "--rate", "1/h")
	for i, want := range []int{200, 200, 429} {
		code, body := get(t, "http://"+httpAddr+"/joe")
		assert.Equal(t, want, code, "request %d", i)
		if want == 200 {
			assert.Equal(t, `{"detail":"OK"}`, body)
		} else {
			assert.Equal(t, `{"detail":"Too Many Requests"}`, body)
		}
	}
	stop()
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "garbage.db")
	require.NoError(t, os.WriteFile(bad, []byte(strings.Repeat("not a database ", 1000)), 0o600))
	err := run(context.Background(), []string{"--data", bad, "--http-addr", "127.0.0.1:0", "--resp-addr", ""}, nil, io.Discard, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a bucketd database")

	err = run(context.Background(), []string{"--data", filepath.Join(dir, "ok.db"), "--http-addr", "256.0.0.1:0"}, nil, io.Discard, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "http:")
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
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
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
	cmd      *exec.Cmd
	log      *logTail // its standard error
	httpAddr string
	respAddr string
}

func startBinary(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bucketdBinary(t), append([]string{"--http-addr", "127.0.0.1:0", "--resp-addr", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p := &proc{cmd: cmd, log: tailLog(stderr)}
	p.httpAddr, p.respAddr = p.log.started(t)
	return p
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

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", goodConfig)
	bad := writeFile(t, dir, "bad.yaml", badConfig)
	data := filepath.Join(dir, "b.db")
	// Checking opens no data file and binds nothing: this address would fail.
	noServe := []string{"--data", data, "--http-addr", "256.0.0.1:0"}

	var out strings.Builder
	err := run(context.Background(), append([]string{"--check-config", good}, noServe...), nil, &out, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, good+": ok, 3 policies: free, paid, new-search\n", out.String())

	out.Reset()
	err = run(context.Background(), append([]string{"--check-config", bad}, noServe...), nil, &out, io.Discard)
	require.Error(t, err)
	assert.ErrorIs(t, err, bucket.ErrInvalid)
	assert.Equal(t, bad+": 2 problems:\n"+
		bad+`:4:11: policies.free.rate: rate "1/x": period "x" is not a duration such as s, m, h, d or 3s`+"\n"+
		bad+":7:20: policies.paid.limits[0].capacity: capacity 0 must be positive", err.Error())
	assert.Empty(t, out.String())

	err = run(context.Background(), append([]string{"--check-config", filepath.Join(dir, "missing.yaml")}, noServe...), nil, &out, io.Discard)
	require.Error(t, err)
	assert.ErrorIs(t, err, fs.ErrNotExist)

	assert.NoFileExists(t, data)
}

func TestRunBadConfig(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", badConfig)
	data := filepath.Join(dir, "b.db")
	err := run(context.Background(), []string{"--config", bad, "--data", data, "--http-addr", "127.0.0.1:0", "--resp-addr", ""}, nil, io.Discard, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), bad+":4:11: policies.free.rate: ")
	assert.NoFileExists(t, data, "an invalid config stops bucketd before it opens the data file")
}

func TestRunWithConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "p.yaml", "default: free\npolicies:\n  free: {capacity: 1, rate: 1/h}\n  paid: {capacity: 2, rate: 1/h}\n")
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--http-addr", "127.0.0.1:0", "--resp-addr", "", "--data", filepath.Join(dir, "b.db"), "--config", cfg}, nil, io.Discard, pw)
		pw.Close()
	}()
	httpAddr, _ := waitStarted(t, pr)
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
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
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

// startRun runs bucketd in-process and returns its HTTP address and a
// function that stops it and checks it stopped cleanly.
func startRun(t *testing.T, args ...string) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"--http-addr", "127.0.0.1:0", "--resp-addr", "127.0.0.1:0"}, args...), nil, io.Discard, pw)
		pw.Close()
	}()
	httpAddr, _ := waitStarted(t, pr)
	return httpAddr, func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("run did not return after cancel")
		}
	}
}

func TestRunAdminTokenAndOverridesSurviveRestart(t *testing.T) {
	args := []string{"--data", filepath.Join(t.TempDir(), "b.db"), "--capacity", "2", "--rate", "1/h", "--admin-token", "s3cret"}
	addr, stop := startRun(t, args...)
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
	stop()

	addr, stop = startRun(t, args...)
	defer stop()
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
