package server

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/bucketd/bucketd/bucket"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
)

// inputError is a request error the client can fix (or, with a status,
// any error whose message is for the client). Its message is shown to the
// client, so it says what is wrong in the client's terms.
type inputError struct {
	status int    // the status to answer; 0 to derive it from err
	field  string // the request field at fault: "key", "cost", "policy", "takes[3].cost", ...
	msg    string
	err    error // the sentinel it stands for, or nil
}

func (e *inputError) Error() string { return e.msg }
func (e *inputError) Unwrap() error { return e.err }

// handleError is Fiber's ErrorHandler: the one place where an error becomes
// a response. It answers with a body {"error":"...","field":"..."}:
//
//	*inputError with a status   that status
//	*authError                  401, with WWW-Authenticate
//	bucket.ErrInvalid           400
//	bucket.ErrUnknownPolicy     404
//	bucket.ErrClosed            503
//	bucket.ErrNotDurable        503: the take was made, but is not on disk
//	bucket.ErrStoreUnavailable  503: the shared store (Redis) did not answer in time
//	*fiber.Error                its code (404 no route, 405 no such method on the path (with
//	                            Allow), 413 body too large, 431 headers too large, ...)
//	anything else               500, with a generic message; the error is logged
//
// Only a 500 is logged at error level; every other answer is a debug line.
//
// Fiber also calls it for errors fasthttp meets before any handler runs,
// such as headers larger than the read buffer, so those answers are JSON
// too.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	status, field, msg := describe(err)
	if status == fiber.StatusRequestEntityTooLarge {
		msg = "request body is larger than " + strconv.Itoa(s.maxBody) + " bytes"
	}
	if status == fiber.StatusInternalServerError { // ours to fix: the only error-level line
		s.logInternal(c, status, err)
	} else if s.log.Enabled(context.Background(), s.accessLvl) {
		s.log.LogAttrs(context.Background(), s.accessLvl, "request",
			slog.String("method", c.Method()),
			slog.String("path", strings.Clone(c.Path())),
			slog.Int("status", status),
			slog.String("error", msg))
	}

	resp := c.Response()
	resp.SetStatusCode(status)
	resp.Header.SetContentType(mimeJSON)
	switch status {
	case fiber.StatusMethodNotAllowed:
		resp.Header.SetCanonical(hdrAllow, []byte(s.allow(c.Path()))) // RFC 9110 §15.5.6: a 405 MUST list them
	case fiber.StatusUnauthorized:
		var ae *authError
		if errors.As(err, &ae) {
			resp.Header.SetCanonical(hdrWWWAuthenticate, []byte(ae.challenge)) // RFC 9110 §15.5.2: a 401 MUST carry one
		}
	}
	resp.SetBodyRaw(appendErrorBody(make([]byte, 0, 32+len(msg)+len(field)), msg, field))
	return nil
}

// describe returns the status, the field at fault (or "") and the message
// to show for err.
func describe(err error) (status int, field, msg string) {
	var ie *inputError
	if errors.As(err, &ie) {
		field, msg = ie.field, ie.msg
		if ie.status != 0 {
			return ie.status, field, msg
		}
	}
	var fe *fiber.Error
	var ae *authError
	switch {
	case errors.As(err, &ae):
		return fiber.StatusUnauthorized, "", ae.msg
	case errors.Is(err, bucket.ErrInvalid):
		status = fiber.StatusBadRequest
		if msg == "" {
			msg = "invalid request"
		}
	case errors.Is(err, bucket.ErrUnknownPolicy):
		status = fiber.StatusNotFound
		if msg == "" {
			msg = "unknown policy"
		}
	case errors.Is(err, bucket.ErrClosed):
		return fiber.StatusServiceUnavailable, "", "service is shutting down"
	case errors.Is(err, bucket.ErrNotDurable):
		return fiber.StatusServiceUnavailable, "", "the data file cannot be written: the take was made and its tokens stay spent, but it is not on disk yet"
	case errors.Is(err, bucket.ErrStoreUnavailable):
		return fiber.StatusServiceUnavailable, "", "the store (Redis) is unreachable or slower than --store-timeout; the policy fails closed, so nothing was taken"
	case errors.Is(err, errors.ErrUnsupported):
		return fiber.StatusNotImplemented, "", "not supported by this store: " + err.Error()
	case errors.As(err, &fe):
		// Fiber's own messages may quote the request ("Cannot GET /x"):
		// answer with the status text instead.
		return fe.Code, "", statusText(fe.Code)
	default:
		return fiber.StatusInternalServerError, "", "internal server error"
	}
	return status, field, msg
}

// statusText returns the lower-case reason phrase of an HTTP status.
func statusText(code int) string {
	if t := utils.StatusMessage(code); t != "" {
		return strings.ToLower(t)
	}
	return "error"
}

// appendErrorBody appends {"error":msg,"field":field}, without field when
// it is empty.
func appendErrorBody(b []byte, msg, field string) []byte {
	b = append(b, `{"error":`...)
	b = appendJSONString(b, msg)
	if field != "" {
		b = append(b, `,"field":`...)
		b = appendJSONString(b, field)
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
