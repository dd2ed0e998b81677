package server

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// Strict message framing (RFC 9112 §6): a request whose body length could
// be read two ways is refused, since a proxy in front may have read it the
// other way, and the bytes it took for a body would be our next request
// (request smuggling).
//
// fasthttp reads such requests one way, silently: of two Content-Length
// fields the last wins, Transfer-Encoding wins over Content-Length, and
// any Transfer-Encoding other than "identity" ("gzip", "xchunked") is read
// as chunked. By the time a handler runs, the duplicates are gone from
// the parsed header. What is left of them is the raw header block, which
// fasthttp keeps and has already split from the request line and the
// body; and fasthttp's Server.HeaderReceived hook, which runs after the
// headers and before the body is read. So checkFraming scans the field
// names of that block (only those two fields), and the hook marks a bad
// request, sets its body length to 0 so that no body is read, and drops
// any Expect: 100-continue. The handler then answers the mark with 400
// and closes the connection, so that whatever followed is never read as
// a request.

// hdrBadFraming marks a request whose framing checkFraming refused; its
// value is why. A client cannot send it: fasthttp refuses a field name
// with a space.
const hdrBadFraming = "Bucketd Bad-Framing"

// headerReceived is fasthttp's Server.HeaderReceived: it marks a request
// with bad framing. The zero RequestConfig keeps the server's settings.
func headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	h.Del(hdrBadFraming)
	if why := checkFraming(h.RawHeaders(), h.IsHTTP11()); why != "" {
		h.Set(hdrBadFraming, why)
		h.SetContentLength(0) // read no body: it may be the next request
		h.Del(fasthttp.HeaderExpect)
	}
	return fasthttp.RequestConfig{}
}

// badFraming answers a request marked by headerReceived, and reports
// whether it did.
func (s *Server) badFraming(ctx *fasthttp.RequestCtx) bool {
	why := ctx.Request.Header.Peek(hdrBadFraming)
	if len(why) == 0 {
		return false
	}
	ctx.SetConnectionClose()
	c := s.app.AcquireCtx(ctx)
	defer s.app.ReleaseCtx(c)
	_ = s.handleError(c, &inputError{status: fasthttp.StatusBadRequest, msg: string(why)}) // it always returns nil
	return true
}

// checkFraming returns why the header block raw (the field lines after the
// request line, as fasthttp keeps them) frames the body ambiguously, or ""
// when it does not. http11 is false for an HTTP/1.0 request.
func checkFraming(raw []byte, http11 bool) string {
	var lengths, encodings int
	var encoding []byte
	for len(raw) > 0 {
		var line []byte
		line, raw, _ = bytes.Cut(raw, []byte{'\n'})
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			// A folded line would continue a value that a proxy may
			// read differently (RFC 9112 §5.2 allows refusing it).
			return "obsolete line folding in a header field"
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue // fasthttp refuses it before the hook runs
		}
		switch {
		case bytes.EqualFold(name, []byte(fasthttp.HeaderContentLength)):
			lengths++
		case bytes.EqualFold(name, []byte(fasthttp.HeaderTransferEncoding)):
			encodings++
			encoding = bytes.Trim(value, " \t")
		}
	}
	switch {
	case lengths > 1:
		return "more than one Content-Length header"
	case encodings == 0:
		return ""
	case lengths > 0:
		return "both Content-Length and Transfer-Encoding headers"
	case !http11:
		return "Transfer-Encoding in an HTTP/1.0 request"
	case encodings > 1 || !bytes.EqualFold(encoding, []byte("chunked")):
		return "Transfer-Encoding must be chunked, alone"
	}
	return ""
}
