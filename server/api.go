package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/gofiber/fiber/v2"
)

// The JSON API under /v1: doc.go lists the routes, openapi.json describes
// every body. A handler decodes the request, calls the Limiter and encodes
// the answer; the rules are the limiter's. The handlers are by concern:
// api_take.go (takes and batches), api_buckets.go (peek, reset, set, list
// keys), api_policies.go (policies, overrides, reload). This file holds
// what they share: the wrapper of every /v1 route, the mapping of limiter
// errors to request fields, and the strict JSON decoding of bodies.

// api wraps the handler of a /v1 route: it checks the admin token when
// admin is set, turns a panic into an internal error, and logs a debug line
// for an answer that is not an error (handleError logs the errors).
func (s *Server) api(admin bool, h fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) (err error) {
		defer func() {
			if r := recover(); r != nil { // a bug, in the limiter or here: one 500, not a dead process
				err = fmt.Errorf("server: panic: %v\n%s", r, debug.Stack())
			}
		}()
		if admin {
			if err := s.admin.check(c); err != nil {
				return err
			}
		}
		logDebug := s.log.Enabled(context.Background(), s.accessLvl)
		var start time.Time
		if logDebug {
			start = time.Now()
		}
		if err = h(c); err == nil && logDebug {
			s.log.LogAttrs(context.Background(), s.accessLvl, "request",
				slog.String("method", c.Method()),
				slog.String("path", strings.Clone(c.Path())),
				slog.Int("status", c.Response().StatusCode()),
				slog.Duration("duration", time.Since(start)))
		}
		return err
	}
}

// errV1 answers GET /v1, which is not a key.
var errV1 = &inputError{status: fiber.StatusNotFound,
	msg: `/v1 is the JSON API, described at /v1/openapi.json; the key "v1" is /v%31`}

// apiRoot serves GET /v1, so that it is not taken as the key "v1".
func (s *Server) apiRoot(*fiber.Ctx) error { return errV1 }

// storeError names the request field at fault in an error from the store,
// so that handleError can say which: "policy" for an unknown policy,
// invalidField for invalid input. It passes other errors on.
func limiterError(err error, policy, invalidField string) error {
	switch {
	case errors.Is(err, bucket.ErrUnknownPolicy):
		if policy == "" {
			policy = bucket.DefaultPolicy
		}
		return &inputError{field: "policy", msg: "unknown policy " + strconv.Quote(policy), err: err}
	case errors.Is(err, bucket.ErrInvalid):
		return &inputError{field: invalidField, msg: err.Error(), err: err}
	}
	return err
}

// sendJSON answers 200 with v in JSON.
func sendJSON(c *fiber.Ctx, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("server: encode %T: %w", v, err)
	}
	resp := c.Response()
	resp.SetStatusCode(fiber.StatusOK)
	resp.Header.SetContentType(mimeJSON)
	resp.SetBodyRaw(b)
	return nil
}

// tokens is an amount of tokens in an answer: a JSON number written
// exactly, with at most six decimals ("2.5", not 2.4999999).
type tokens bucket.Tokens

func (t tokens) MarshalJSON() ([]byte, error) {
	return bucket.Tokens(t).AppendText(nil), nil
}

// amount is an amount of tokens in a request body: a JSON number or a
// string holding one ("0.1"). It keeps the text as written, for
// bucket.ParseTokens: 0.1 is exactly 100 000 micro-tokens, never a float.
// null is the same as absent.
type amount struct {
	text string
	set  bool // present and not null
}

func (a *amount) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) == 0 || string(b) == "null":
		*a = amount{}
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = amount{text: s, set: true}
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		*a = amount{text: string(b), set: true}
	default: // the decoder fills in the field
		return &json.UnmarshalTypeError{Value: jsonValueKind(b[0]), Type: reflect.TypeFor[amount]()}
	}
	return nil
}

// parse returns the amount, or a 400 naming field, the path of the amount
// in the body ("takes[3].cost").
func (a amount) parse(field string) (bucket.Tokens, error) {
	t, err := bucket.ParseTokens(a.text)
	if err != nil {
		return 0, &inputError{field: field, msg: leaf(field) + " " + err.Error(), err: err}
	}
	return t, nil
}

// decode reads the JSON object body into v, strictly: no unknown field, no
// value of the wrong type, nothing after the object. Its error is a 400
// that names the field at fault, as a path below at ("takes[3].cost").
func decode(body []byte, v any, at string) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, err := dec.Token(); err != io.EOF {
			return &inputError{status: fiber.StatusBadRequest, field: at,
				msg: "malformed JSON: more data after the object"}
		}
		return nil
	}
	bad := func(field, msg string) error {
		return &inputError{status: fiber.StatusBadRequest, field: field, msg: msg}
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case err == io.EOF:
		return bad(at, "request body is empty: want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return bad(at, "malformed JSON: unexpected end of input")
	case errors.As(err, &se):
		return bad(at, "malformed JSON at byte "+strconv.FormatInt(se.Offset, 10)+": "+se.Error())
	case errors.As(err, &te):
		field := join(at, te.Field)
		name := leaf(field)
		if name == "" {
			name = "request body"
		}
		got, _, _ := strings.Cut(te.Value, " ") // "number -5" is a number
		return bad(field, name+" must be "+jsonTypeName(te.Type)+", not "+article(got))
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if n, err := strconv.Unquote(name); err == nil {
			name = n
		}
		return bad(join(at, name), "unknown field "+strconv.Quote(name))
	}
	return bad(at, "malformed JSON: "+err.Error())
}

// join returns the field path field below at.
func join(at, field string) string {
	switch {
	case at == "":
		return field
	case field == "":
		return at
	}
	return at + "." + field
}

// leaf returns the last name of a field path: "cost" of "takes[3].cost".
func leaf(field string) string {
	if i := strings.LastIndexByte(field, '.'); i >= 0 {
		return field[i+1:]
	}
	return field
}

// jsonTypeName says which JSON values decode into t.
func jsonTypeName(t reflect.Type) string {
	if t == reflect.TypeFor[amount]() {
		return "a number or a string holding one"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a " + t.String()
}

// jsonValueKind names the kind of the JSON value that starts with c, as
// json.UnmarshalTypeError.Value does.
func jsonValueKind(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	}
	return "value"
}

// article returns a JSON kind as a noun phrase: "an array", "a string".
func article(kind string) string {
	switch kind {
	case "array", "object":
		return "an " + kind
	case "bool":
		return "a boolean"
	}
	return "a " + kind
}

// logInternal logs an internal error that is answered without going
// through handleError (a take of a batch).
func (s *Server) logInternal(c *fiber.Ctx, status int, err error) {
	s.log.LogAttrs(context.Background(), slog.LevelError, "request failed",
		slog.String("method", c.Method()),
		slog.String("path", strings.Clone(c.Path())),
		slog.Int("status", status),
		slog.Any("error", err))
}
