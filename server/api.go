package server

import (
	"bytes"
	"context"
	stdjson "encoding/json"
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
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
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
	b, err := stdjson.Marshal(v)
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

func (a *amount) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	switch k := dec.PeekKind(); k {
	case 'n', '"', '0':
		tok, err := dec.ReadToken()
		if err != nil {
			return err
		}
		*a = amount{}
		if k != 'n' {
			*a = amount{text: tok.String(), set: true}
		}
		return nil
	case 0: // invalid JSON: let the decoder say why
		_, err := dec.ReadToken()
		return err
	default: // consume the value; the decoder fills in where
		if err := dec.SkipValue(); err != nil {
			return err
		}
		return &json.SemanticError{JSONKind: k, GoType: reflect.TypeFor[amount]()}
	}
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

// decode reads the JSON object body into v, strictly: field names match
// exactly (case-sensitive), and an unknown field, a duplicate field, a value
// of the wrong type, invalid UTF-8 or anything after the object is an
// error. Its error is a 400 that names the field at fault, as a path below
// at ("takes[3].cost"). Every /v1 body goes through it.
//
// encoding/json cannot do this (it matches names case-insensitively and
// keeps the last of duplicates); go-json-experiment/json, the encoding/json/v2
// to be, does it by default.
func decode(body []byte, v any, at string) error {
	err := json.Unmarshal(body, v, json.RejectUnknownMembers(true))
	if err == nil {
		return nil
	}
	bad := func(field, msg string) error {
		return &inputError{status: fiber.StatusBadRequest, field: field, msg: msg}
	}
	var se *json.SemanticError
	var sx *jsontext.SyntacticError
	switch {
	case len(bytes.TrimSpace(body)) == 0:
		return bad(at, "request body is empty: want a JSON object")
	case errors.As(err, &sx): // before SemanticError, which may wrap one
		field := join(at, pointerPath(sx.JSONPointer))
		switch {
		case errors.Is(sx.Err, jsontext.ErrDuplicateName):
			name := sx.JSONPointer.LastToken()
			return bad(field, "duplicate field "+strconv.Quote(name))
		case errors.Is(sx.Err, io.ErrUnexpectedEOF):
			return bad(at, "malformed JSON: unexpected end of input")
		case strings.Contains(sx.Err.Error(), "after top-level value"):
			return bad(at, "malformed JSON: more data after the object")
		}
		return bad(at, "malformed JSON at byte "+strconv.FormatInt(sx.ByteOffset, 10)+": "+
			strings.TrimPrefix(sx.Err.Error(), "jsontext: "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return bad(at, "malformed JSON: unexpected end of input")
	case errors.As(err, &se):
		field := join(at, pointerPath(se.JSONPointer))
		if errors.Is(se.Err, json.ErrUnknownName) {
			return bad(field, "unknown field "+strconv.Quote(se.JSONPointer.LastToken()))
		}
		if se.GoType != nil && se.JSONKind != 0 {
			name := leaf(field)
			if name == "" {
				name = "request body"
			}
			return bad(field, name+" must be "+jsonTypeName(se.GoType)+", not "+kindNoun(se.JSONKind))
		}
		if se.Err != nil {
			return bad(field, "malformed JSON: "+se.Err.Error())
		}
	}
	return bad(at, "malformed JSON: "+err.Error())
}

// pointerPath turns a JSON pointer ("/takes/3/cost") into a field path
// ("takes[3].cost"): a token of digits is an array index. The bodies have
// no object member named by digits that is not an unknown field, whose
// name the caller takes from the pointer itself.
func pointerPath(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if tok != "" && strings.Trim(tok, "0123456789") == "" && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
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

// kindNoun names a JSON kind as a noun phrase: "an array", "a string".
func kindNoun(k jsontext.Kind) string {
	switch k {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 'n':
		return "null"
	}
	return "a value"
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
