package e2e_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shutdownBound is how long bucketd may take to exit once asked, with no
// request in flight: generous, so that a slow machine does not fail the
// test, and far below --shutdown-timeout (set to 20 s here), which it
// used to wait out before exiting 1.
const shutdownBound = 3 * time.Second

var shuttingDownRE = regexp.MustCompile(`msg="bucketd shutting down"`)

// rawConn connects to addr, with a deadline for the whole test.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(time.Minute)))
	return c
}

// stuckRESPClient pipelines commands with large replies on a new
// connection to addr and never reads, until its own writes block: the
// server has stopped reading it because it is blocked writing replies
// that no one reads.
func stuckRESPClient(t *testing.T, addr string) {
	t.Helper()
	c := rawConn(t, addr)
	cmd := []byte(strings.Repeat("*1\r\n$7\r\nCOMMAND\r\n", 64))
	for i := 0; ; i++ {
		require.Less(t, i, 1_000_000, "the server kept reading: never stuck")
		require.NoError(t, c.SetWriteDeadline(time.Now().Add(300*time.Millisecond)))
		if _, err := c.Write(cmd); err != nil {
			require.True(t, errors.Is(err, os.ErrDeadlineExceeded), "write: %v", err)
			return
		}
	}
}

// slowRequest sends the headers of a take of key over HTTP, with Expect:
// 100-continue, and not its body. It returns once bucketd has answered
// 100 Continue: the request is in flight (bucketd has read its headers).
// The function returned sends the body and returns the final answer.
func slowRequest(t *testing.T, addr, key string) func() *http.Response {
	t.Helper()
	c := rawConn(t, addr)
	body := `{"key":"` + key + `"}`
	_, err := io.WriteString(c, "POST /v1/take HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Expect: 100-continue\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, 100, resp.StatusCode)
	return func() *http.Response {
		_, err := io.WriteString(c, body)
		require.NoError(t, err)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		resp.Body.Close()
		resp.Body = io.NopCloser(strings.NewReader(string(b)))
		return resp
	}
}

// TestBinaryShutdownPrompt asks bucketd to stop (SIGTERM, SIGINT, or the
// RESP SHUTDOWN command) while it has a silent TCP connection on each
// port, an idle keep-alive HTTP connection, a RESP client pipelining
// without reading, and an HTTP request in flight (its headers sent, its
// body not yet). The request in flight is answered; bucketd exits 0 soon
// after it; and every take, the one in flight too, is in the data file.
func TestBinaryShutdownPrompt(t *testing.T) {
	for _, how := range []string{"SIGTERM", "SIGINT", "SHUTDOWN"} {
		t.Run(how, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "bucketd.db")
			args := []string{"--data", data, "--capacity", "3", "--rate", "1/1000d", "--shutdown-timeout", "20s"}
			p := startBinary(t, args...)
			client := &http.Client{Timeout: 10 * time.Second} // keeps its connection alive
			for range 3 {
				resp, err := client.Get("http://" + p.httpAddr + "/joe")
				require.NoError(t, err)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				require.Equal(t, 200, resp.StatusCode)
			}
			silentHTTP := rawConn(t, p.httpAddr)
			silentRESP := rawConn(t, p.respAddr)
			stuckRESPClient(t, p.respAddr)
			finish := slowRequest(t, p.httpAddr, "slow")

			exited := make(chan int, 1)
			go func() {
				err := p.cmd.Wait()
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					exited <- ee.ExitCode()
					return
				}
				exited <- 0
			}()
			switch how {
			case "SIGTERM":
				require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
			case "SIGINT":
				require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
			case "SHUTDOWN":
				_, err := io.WriteString(rawConn(t, p.respAddr), "*1\r\n$8\r\nSHUTDOWN\r\n")
				require.NoError(t, err)
			}
			p.log.wait(t, shuttingDownRE)
			// The silent connections are closed at once, while the
			// request is still in flight.
			for name, c := range map[string]net.Conn{"http": silentHTTP, "resp": silentRESP} {
				b, err := io.ReadAll(c)
				assert.NoError(t, err, "%s: closed by bucketd", name)
				assert.Empty(t, b, "%s", name)
			}
			select {
			case code := <-exited:
				t.Fatalf("exited %d with a request in flight", code)
			default:
			}
			start := time.Now()
			resp := finish()
			assert.Equal(t, 200, resp.StatusCode)
			assert.True(t, resp.Close, "Connection: close")
			select {
			case code := <-exited:
				took := time.Since(start)
				t.Logf("%s: exit %d, %s after the request in flight was sent its body", how, code, took)
				assert.Equal(t, 0, code, "exit code")
				assert.Less(t, took, shutdownBound)
			case <-time.After(30 * time.Second):
				t.Fatal("bucketd did not exit")
			}

			p = startBinary(t, args...)
			code, _ := get(t, "http://"+p.httpAddr+"/joe")
			assert.Equal(t, 429, code, "the takes before the shutdown are written")
			assert.Equal(t, "2", peek(t, p.httpAddr, "slow"), "the take in flight is written")
			assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
		})
	}
}
