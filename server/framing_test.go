package server

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawExchange sends req as bytes on a new connection to addr, and returns
// every response read until the server closes the connection. It fails the
// test if the server keeps the connection open for 5 s.
func rawExchange(t *testing.T, addr, req string) []*http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = io.WriteString(conn, req)
	require.NoError(t, err)
	all, err := io.ReadAll(conn) // until the server closes
	require.NoError(t, err, "the server did not close the connection")
	var out []*http.Response
	br := bufio.NewReader(strings.NewReader(string(all)))
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		resp.Body = io.NopCloser(strings.NewReader(string(body)))
		out = append(out, resp)
	}
	return out
}

// smuggled is a request hidden after a body: if the server ever read it as
// a request, the key "victim" would lose a token.
const smuggled = "GET /victim HTTP/1.1\r\nHost: x\r\n\r\n"

// TestFramingRefused sends requests whose body length a proxy and bucketd
// could read two ways: each is answered with one 400 naming why, the
// connection is closed, and nothing is taken (neither the request's key
// nor the smuggled one).
func TestFramingRefused(t *testing.T) {
	t.Parallel()
	const take = "POST /v1/take HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	const body = `{"key":"a"}` // 11 bytes
	chunked := "b\r\n" + body + "\r\n0\r\n\r\n"
	tests := []struct {
		name, req, why string
	}{
		{"CL.CL equal", take + "Content-Length: 11\r\nContent-Length: 11\r\n\r\n" + body + smuggled,
			"more than one Content-Length header"},
		{"CL.CL different", take + "Content-Length: 11\r\nContent-Length: 0\r\n\r\n" + body + smuggled,
			"more than one Content-Length header"},
		{"CL.CL case", take + "content-length: 11\r\nCONTENT-LENGTH: 11\r\n\r\n" + body,
			"more than one Content-Length header"},
		{"CL.CL on a GET", "GET /victim HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
			"more than one Content-Length header"},
		{"CL.TE", take + "Content-Length: " + strconv.Itoa(len(chunked)) + "\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked + smuggled,
			"both Content-Length and Transfer-Encoding headers"},
		{"TE.CL", take + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" + chunked + smuggled,
			"both Content-Length and Transfer-Encoding headers"},
		{"CL.TE odd casing", take + "Content-Length: 5\r\ntRaNsFeR-eNcOdInG: cHuNkEd\r\n\r\n" + chunked,
			"both Content-Length and Transfer-Encoding headers"},
		{"CL.TE trailing space", take + "Content-Length: 5\r\nTransfer-Encoding: chunked \r\n\r\n" + chunked,
			"both Content-Length and Transfer-Encoding headers"},
		{"CL.TE tab", take + "Content-Length: 5\r\nTransfer-Encoding:\tchunked\r\n\r\n" + chunked,
			"both Content-Length and Transfer-Encoding headers"},
		{"CL.TE identity", take + "Content-Length: 11\r\nTransfer-Encoding: identity\r\n\r\n" + body,
			"both Content-Length and Transfer-Encoding headers"},
		{"TE xchunked", take + "Transfer-Encoding: xchunked\r\n\r\n" + chunked + smuggled,
			"Transfer-Encoding must be chunked, alone"},
		{"TE gzip", take + "Transfer-Encoding: gzip\r\n\r\n" + chunked,
			"Transfer-Encoding must be chunked, alone"},
		{"TE chunked twice", take + "Transfer-Encoding: chunked, chunked\r\n\r\n" + chunked,
			"Transfer-Encoding must be chunked, alone"},
		{"TE.TE", take + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked + smuggled,
			"Transfer-Encoding must be chunked, alone"},
		{"TE.TE identity", take + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n" + chunked,
			"Transfer-Encoding must be chunked, alone"},
		{"TE in HTTP/1.0", strings.Replace(take, "HTTP/1.1", "HTTP/1.0", 1) + "Transfer-Encoding: chunked\r\n\r\n" + chunked,
			"Transfer-Encoding in an HTTP/1.0 request"},
		{"TE folded", take + "Transfer-Encoding: chunked\r\n identity\r\n\r\n" + chunked,
			"obsolete line folding in a header field"},
		{"Expect with CL.CL", take + "Expect: 100-continue\r\nContent-Length: 11\r\nContent-Length: 11\r\n\r\n",
			"more than one Content-Length header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, s := newServer(t, Config{})
			addr, _ := serve(t, s)
			resps := rawExchange(t, addr, tt.req)
			require.Len(t, resps, 1, "one answer, then the connection is closed")
			assert.Equal(t, 400, resps[0].StatusCode)
			b, _ := io.ReadAll(resps[0].Body)
			assert.Equal(t, errorBody(tt.why, ""), string(b))
			assert.True(t, resps[0].Close, "Connection: close")
			e.assertNoTake(t)
		})
	}
}

// TestFramingRefusedByFasthttp lists what fasthttp refuses itself before
// the framing check runs: still one 400, and the connection closed.
func TestFramingRefusedByFasthttp(t *testing.T) {
	t.Parallel()
	const take = "POST /v1/take HTTP/1.1\r\nHost: x\r\n"
	for name, req := range map[string]string{
		"space before colon": take + "Transfer-Encoding : chunked\r\nContent-Length: 11\r\n\r\n" + `{"key":"a"}`,
		"tab before colon":   take + "Content-Length\t: 11\r\n\r\n" + `{"key":"a"}`,
		"CL list":            take + "Content-Length: 11, 11\r\n\r\n" + `{"key":"a"}`,
		"CL signed":          take + "Content-Length: +11\r\n\r\n" + `{"key":"a"}`,
		"folded CL":          take + "X: y\r\n Content-Length: 11\r\n\r\n" + `{"key":"a"}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e, s := newServer(t, Config{})
			addr, _ := serve(t, s)
			resps := rawExchange(t, addr, req)
			require.Len(t, resps, 1)
			assert.Equal(t, 400, resps[0].StatusCode)
			e.assertNoTake(t)
		})
	}
}

// TestFramingAccepted checks that well-framed requests still work, kept
// alive: one Content-Length, chunked alone in any case, and pipelining.
func TestFramingAccepted(t *testing.T) {
	t.Parallel()
	e, s := newServer(t, Config{})
	addr, _ := serve(t, s)
	const take = "POST /v1/take HTTP/1.1\r\nHost: x\r\n"
	req := take + "Content-Length: 11\r\n\r\n" + `{"key":"a"}` +
		take + "Transfer-Encoding: Chunked\r\n\r\nb\r\n" + `{"key":"b"}` + "\r\n0\r\n\r\n" +
		"GET /c HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" +
		"GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	resps := rawExchange(t, addr, req)
	require.Len(t, resps, 4)
	for i, r := range resps {
		assert.Equal(t, 200, r.StatusCode, "response %d", i)
	}
	assert.Equal(t, []spent{{"a", "default", bucket.Token}, {"b", "default", bucket.Token}, {"c", "default", bucket.Token}, {"d", "default", bucket.Token}}, e.spent(t))
}

// TestCheckFraming is the table of checkFraming itself.
func TestCheckFraming(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw    string
		http11 bool
		want   string
	}{
		{"Host: x\r\n\r\n", true, ""},
		{"Host: x\r\nContent-Length: 3\r\n\r\n", true, ""},
		{"Host: x\r\nTransfer-Encoding: chunked\r\n\r\n", true, ""},
		{"Host: x\nTransfer-Encoding: CHUNKED\n\n", true, ""},
		{"Content-Length: 3\r\nContent-Length: 3\r\n\r\n", true, "more than one Content-Length header"},
		{"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", true, "both Content-Length and Transfer-Encoding headers"},
		{"Transfer-Encoding: chunked\r\n\r\n", false, "Transfer-Encoding in an HTTP/1.0 request"},
		{"Transfer-Encoding: gzip, chunked\r\n\r\n", true, "Transfer-Encoding must be chunked, alone"},
		{"Transfer-Encoding:\r\n\r\n", true, "Transfer-Encoding must be chunked, alone"},
		{"X-Content-Length: 3\r\nContent-Length: 3\r\n\r\n", true, ""},
		{"X: a\r\n\tb\r\n\r\n", true, "obsolete line folding in a header field"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, checkFraming([]byte(tt.raw), tt.http11), "%q", tt.raw)
	}
}

// FuzzCheckFraming checks checkFraming against another parser of header
// blocks (net/textproto): whatever it accepts, textproto reads (when it can)
// as at most one length field, and a Transfer-Encoding only as "chunked".
// And it never panics.
func FuzzCheckFraming(f *testing.F) {
	for _, s := range []string{
		"Host: x\r\n\r\n", "Content-Length: 3\r\nContent-Length: 3\r\n\r\n",
		"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", "transfer-encoding:  Chunked \r\n\r\n",
		"X: a\r\n b\r\n\r\n", "Content-Length: 1\n\n", "Transfer-Encoding: gzip, chunked\r\n\r\n",
	} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, raw []byte, http11 bool) {
		why := checkFraming(raw, http11)
		if why != "" {
			return
		}
		h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw))).ReadMIMEHeader()
		if err != nil {
			return // not a header block textproto reads
		}
		cl, te := h.Values("Content-Length"), h.Values("Transfer-Encoding")
		require.LessOrEqual(t, len(cl)+len(te), 1, "%q accepted", raw)
		if len(te) == 1 {
			require.True(t, http11, "%q accepted in HTTP/1.0", raw)
			require.True(t, strings.EqualFold(strings.TrimSpace(te[0]), "chunked"), "%q accepted", raw)
		}
	})
}
