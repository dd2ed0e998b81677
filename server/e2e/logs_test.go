package e2e_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// all returns every line logged so far.
func (l *logTail) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// The secrets of TestBinaryLogsNoSecret: each is distinctive enough that
// finding it anywhere in the log means it was logged.
const (
	secretPass  = "pw-5f3a9c1e-requirepass"
	secretToken = "tok-8b2d7e4f-admintoken"
	wrongPass   = "pw-0c6e1b9d-wrongpass"
	wrongToken  = "tok-3a7f5c2e-wrongtoken"
	headerToken = "tok-9d1b4a6c-inaheader"
)

// secretTraffic sends every secret bucketd may see: the admin token, right
// and wrong, in Authorization headers, on admin routes and the hot path;
// the RESP password, right and wrong, in AUTH, HELLO ... AUTH and CONFIG
// SET requirepass.
func secretTraffic(t *testing.T, p *proc) {
	t.Helper()
	base := "http://" + p.httpAddr
	code, body := do(t, "GET", base+"/v1/buckets", secretToken, "")
	require.Equal(t, 200, code, body)
	code, _ = do(t, "GET", base+"/v1/buckets", wrongToken, "")
	require.Equal(t, 401, code)
	code, _ = do(t, "GET", base+"/joe", headerToken, "")
	require.Equal(t, 200, code)
	code, _ = do(t, "POST", base+"/v1/take", headerToken, `{"key":"joe"}`)
	require.Equal(t, 200, code)

	ctx := context.Background()
	bad := redis.NewClient(&redis.Options{Addr: p.respAddr, Password: wrongPass, Protocol: 2, MaxRetries: -1})
	defer bad.Close()
	require.Error(t, bad.Ping(ctx).Err())
	rdb := redis.NewClient(&redis.Options{Addr: p.respAddr, Password: secretPass, Protocol: 3}) // HELLO 3 AUTH
	defer rdb.Close()
	require.NoError(t, rdb.Do(ctx, "BUCKET.TAKE", "joe").Err())
	require.Error(t, rdb.Do(ctx, "AUTH", wrongPass).Err())
	require.NoError(t, rdb.Do(ctx, "AUTH", secretPass).Err())
	_ = rdb.Do(ctx, "CONFIG", "SET", "requirepass", secretPass).Err() // refused or not, never logged
	_ = rdb.Do(ctx, "NOSUCH", secretPass).Err()                       // an unknown command's arguments
}

// TestBinaryLogsNoSecret: with --access-log at debug level, every request
// and command has its line, and no password or token appears anywhere in
// the whole log, in either format.
func TestBinaryLogsNoSecret(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"--data", filepath.Join(dir, "b.db"), "--access-log", "--log-level", "debug",
				"--log-format", format, "--requirepass", secretPass, "--admin-token", secretToken}
			p := startFormat(t, dir, format, args...)
			secretTraffic(t, p)
			// Wait for the last line before Wait closes the pipe.
			require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
			p.log.wait(t, regexp.MustCompile(`bucketd stopped`))
			require.NoError(t, p.cmd.Wait())
			log := p.log.all()
			for _, s := range []string{secretPass, secretToken, wrongPass, wrongToken, headerToken} {
				assert.NotContains(t, log, s)
			}
			if format == "text" {
				assert.Regexp(t, `level=INFO msg=take front=http key=joe policy=default .*decision=allowed status=200 duration=`, log)
				assert.Regexp(t, `level=INFO msg=request method=POST path=/v1/take status=200 duration=`, log)
				assert.Regexp(t, `level=INFO msg=take front=json key=joe policy=default cost=1 decision=allowed duration=`, log)
				assert.Regexp(t, `level=INFO msg=command front=resp addr=\S+ cmd=bucket.take key=joe decision=allowed duration=`, log)
				assert.Regexp(t, `level=INFO msg=request method=GET path=/v1/buckets status=401 error=`, log)
				return
			}
			n := 0
			for _, line := range strings.Split(log, "\n") {
				var m map[string]any
				require.NoError(t, json.Unmarshal([]byte(line), &m), "every line is JSON: %s", line)
				if m["msg"] == "command" && m["cmd"] == "bucket.take" {
					assert.Equal(t, "joe", m["key"])
					assert.Equal(t, "allowed", m["decision"])
					n++
				}
			}
			assert.Equal(t, 1, n)
		})
	}
}

// jsonStartedRE reads the addresses from the JSON start line.
var jsonStartedRE = regexp.MustCompile(`"msg":"bucketd started","http":"([^"]+)","resp":"([^"]+)"`)

// startFormat starts bucketd with args whose logs are in format (text or
// json), and waits for its start line.
func startFormat(t *testing.T, dir, format string, args ...string) *proc {
	t.Helper()
	if format == "text" {
		return startBinaryIn(t, dir, nil, args...)
	}
	cmd := exec.Command(bucketdBinary(t), append([]string{"--http-addr", "127.0.0.1:0", "--resp-addr", "127.0.0.1:0"}, args...)...)
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p := &proc{cmd: cmd, log: tailLog(stderr)}
	m := p.log.wait(t, jsonStartedRE)
	p.httpAddr, p.respAddr, p.startLine = m[1], m[2], m[0]
	return p
}
