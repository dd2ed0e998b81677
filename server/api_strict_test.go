package server

import (
	"bytes"
	"testing"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAPIStrictJSON checks, on every /v1 route that reads a body, that
// field names match exactly (encoding/json would take "KEY" for "key"),
// that a duplicate field is a 400 naming it (encoding/json would keep the
// last), and that invalid UTF-8 is refused, each with nothing changed.
func TestAPIStrictJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		method, target string
		body           string
		field, msg     string
	}{
		{"take: upper-case name", "POST", "/v1/take", `{"KEY":"x"}`, "KEY", `unknown field "KEY"`},
		{"take: mixed-case name", "POST", "/v1/take", `{"key":"x","Cost":2}`, "Cost", `unknown field "Cost"`},
		{"take: duplicate cost", "POST", "/v1/take", `{"key":"a","cost":1,"cost":5}`, "cost", `duplicate field "cost"`},
		{"take: duplicate key", "POST", "/v1/take", `{"key":"a","key":"b"}`, "key", `duplicate field "key"`},
		{"take: duplicate by escape", "POST", "/v1/take", `{"key":"a","k\u0065y":"b"}`, "key", `duplicate field "key"`},
		{"take: duplicate null", "POST", "/v1/take", `{"key":"a","cost":null,"cost":3}`, "cost", `duplicate field "cost"`},
		{"take: invalid UTF-8", "POST", "/v1/take", "{\"key\":\"a\xff\"}", "", "malformed JSON at byte 9: invalid UTF-8"},
		{"batch: upper-case name", "POST", "/v1/batch", `{"Takes":[]}`, "Takes", `unknown field "Takes"`},
		{"batch: duplicate takes", "POST", "/v1/batch", `{"takes":[],"takes":[{"key":"a"}]}`, "takes", `duplicate field "takes"`},
		{"batch item: upper-case name", "POST", "/v1/batch", `{"takes":[{"key":"a"},{"Key":"b"}]}`, "takes[1].Key", `unknown field "Key"`},
		{"batch item: duplicate cost", "POST", "/v1/batch", `{"takes":[{"key":"a","cost":1,"cost":5}]}`, "takes[0].cost", `duplicate field "cost"`},
		{"tokens: upper-case name", "PUT", "/v1/buckets/joe/tokens", `{"TOKENS":1}`, "TOKENS", `unknown field "TOKENS"`},
		{"tokens: duplicate", "PUT", "/v1/buckets/joe/tokens", `{"tokens":1,"tokens":2}`, "tokens", `duplicate field "tokens"`},
		{"override: upper-case name", "PUT", "/v1/overrides/joe", `{"Limits":[{"capacity":1,"rate":"1/s"}]}`, "Limits", `unknown field "Limits"`},
		{"override: duplicate limits", "PUT", "/v1/overrides/joe", `{"limits":[],"limits":[{"capacity":1,"rate":"1/s"}]}`, "limits", `duplicate field "limits"`},
		{"override limit: upper-case name", "PUT", "/v1/overrides/joe", `{"limits":[{"capacity":1,"Rate":"1/s"}]}`, "limits[0].Rate", `unknown field "Rate"`},
		{"override limit: duplicate rate", "PUT", "/v1/overrides/joe", `{"limits":[{"capacity":1,"rate":"1/s","rate":"9/s"}]}`, "limits[0].rate", `duplicate field "rate"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, s := newServer(t, Config{})
			r := do(t, s, tt.method, tt.target, tt.body)
			assert.Equal(t, 400, r.status)
			assert.Equal(t, errorBody(tt.msg, tt.field), r.body)
			e.assertNoTake(t)
			assert.Empty(t, e.lim.Overrides(), "no override stored")
		})
	}
}

// FuzzDecode checks that decode never panics, that it accepts only what a
// strict decoder would (exact names, no duplicates), and that its every
// error is a 400 with a message.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"key":"a","cost":1}`, `{"key":"a","cost":"0.5","policy":"p"}`, `{"KEY":"x"}`,
		`{"key":"a","cost":1,"cost":5}`, `{"key":"a"} x`, `{"key":"a","cost":{}}`, `[]`, `null`, ``,
		`{"key":"\u00e9","cost":[1,{"a":2}]}`, "{\"key\":\"\xff\"}", `{"key":"a",}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req takeRequest
		err := decode(body, &req, "takes[0]")
		if err != nil {
			status, field, msg := describe(err)
			require.Equal(t, 400, status, "%q: %v", body, err)
			require.NotEmpty(t, msg)
			require.True(t, utf8.ValidString(field) || field == "", "field %q", field)
			return
		}
		// Accepted: then the body is valid UTF-8, and it is null or an
		// object whose names are exactly known fields, each once.
		require.True(t, utf8.Valid(body), "invalid UTF-8 accepted: %q", body)
		dec := jsontext.NewDecoder(bytes.NewReader(body), jsontext.AllowDuplicateNames(true))
		tok, err := dec.ReadToken()
		require.NoError(t, err)
		if tok.Kind() == '{' {
			seen := map[string]bool{}
			for dec.PeekKind() != '}' {
				name, err := dec.ReadToken()
				require.NoError(t, err)
				require.Contains(t, []string{"key", "policy", "cost"}, name.String(), "%q", body)
				require.False(t, seen[name.String()], "duplicate %q accepted: %q", name.String(), body)
				seen[name.String()] = true
				require.NoError(t, dec.SkipValue())
			}
		} else {
			require.Equal(t, jsontext.Kind('n'), tok.Kind(), "%q", body)
		}
		var again takeRequest
		require.NoError(t, decode(body, &again, ""))
		require.Equal(t, req, again, "decoding is deterministic")
	})
}
