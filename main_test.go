package main

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
	for _, want := range []string{"-http-addr", "-data", "-capacity", "-rate", "-sync", "-sync-interval", "-log-level", "-resp-addr", "-requirepass", "Example:", "BUCKETD_"} {
		assert.Contains(t, out.String(), want)
	}
}

// startedRE reads the addresses from the start line.
var startedRE = regexp.MustCompile(`msg="bucketd started" http=(\S+) resp=(\S+)`)

// waitStarted reads log lines from r until the start line, and returns the
// HTTP and RESP addresses. The rest of r is drained in the background.
func waitStarted(t *testing.T, r io.Reader) (httpAddr, respAddr string) {
	t.Helper()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(r)
		found := false
		for sc.Scan() {
			if !found {
				if m := startedRE.FindStringSubmatch(sc.Text()); m != nil {
					found = true
					lines <- sc.Text()
				}
			}
		}
		close(lines)
	}()
	select {
	case line, ok := <-lines:
		require.True(t, ok, "bucketd exited before starting")
		m := startedRE.FindStringSubmatch(line)
		return m[1], m[2]
	case <-time.After(30 * time.Second):
		t.Fatal("bucketd did not start within 30s")
	}
	return "", ""
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
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--http-addr", "127.0.0.1:0", "--resp-addr", "127.0.0.1:0", "--data", filepath.Join(dir, "b.db"), "--capacity", "2", "--rate", "1/h"}, nil, io.Discard, pw)
		pw.Close()
	}()
	httpAddr, _ := waitStarted(t, pr)
	for i, want := range []int{200, 200, 429} {
		code, body := get(t, "http://"+httpAddr+"/joe")
		assert.Equal(t, want, code, "request %d", i)
		if want == 200 {
			assert.Equal(t, `{"detail":"OK"}`, body)
		} else {
			assert.Equal(t, `{"detail":"Too Many Requests"}`, body)
		}
	}
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
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
	p := &proc{cmd: cmd}
	p.httpAddr, p.respAddr = waitStarted(t, stderr)
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
