package e2e_test

import (
	"bufio"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBinarySmuggling sends the request-smuggling classics to the real
// binary: each is one 400 and the connection closed, and the request
// hidden in its body (a take of "victim") is never made.
func TestBinarySmuggling(t *testing.T) {
	p := startBinary(t, "--data", filepath.Join(t.TempDir(), "b.db"), "--capacity", "5", "--rate", "1/1000d")
	const hidden = "GET /victim HTTP/1.1\r\nHost: x\r\n\r\n"
	const head = "POST /v1/take HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	body := `{"key":"a"}`
	chunked := "b\r\n" + body + "\r\n0\r\n\r\n"
	for name, req := range map[string]string{
		"CL.CL":  head + "Content-Length: 11\r\nContent-Length: 11\r\n\r\n" + body + hidden,
		"CL.TE":  head + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked + hidden,
		"TE.CL":  head + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" + chunked + hidden,
		"TE.TE":  head + "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n" + chunked + hidden,
		"TE odd": head + "Content-Length: 4\r\nTransfer-Encoding:  CHUNKED \r\n\r\n" + chunked + hidden,
	} {
		t.Run(name, func(t *testing.T) {
			c := rawConn(t, p.httpAddr)
			_, err := io.WriteString(c, req)
			require.NoError(t, err)
			all, err := io.ReadAll(c) // until bucketd closes
			require.NoError(t, err)
			br := bufio.NewReader(strings.NewReader(string(all)))
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			assert.Equal(t, 400, resp.StatusCode, "%s", b)
			assert.True(t, resp.Close)
			_, err = http.ReadResponse(br, nil)
			assert.Error(t, err, "one answer only")
		})
	}
	assert.Equal(t, "5", peek(t, p.httpAddr, "victim"), "the hidden request was never made")
	assert.Equal(t, "5", peek(t, p.httpAddr, "a"))
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}
