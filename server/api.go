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
// every body. A handler here decodes the request, calls the Store and
// encodes the answer; the rules are the store's.

const (
	// maxBatch is the most takes a batch may hold.
	maxBatch = 1000
	// defaultPage and maxPage bound the keys one GET /v1/buckets returns.
	defaultPage = 100
	maxPage     = 1000
)

// api wraps the handler of a /v1 route: it checks the admin token when
// admin is set, turns a panic into an internal error, and logs a debug line
// for an answer that is not an error (handleError logs the errors).
func (s *Server) api(admin bool, h fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) (err error) {
		defer func() {
			if r := recover(); r != nil { // a bug, in the store or here: one 500, not a dead process
				err = fmt.Errorf("server: panic: %v\n%s", r, debug.Stack())
			}
		}()
		if admin {
			if err := s.admin.check(c); err != nil {
				return err
			}
		}
		logDebug := s.log.Enabled(context.Background(), slog.LevelDebug)
		var start time.Time
		if logDebug {
			start = time.Now()
		}
		if err = h(c); err == nil && logDebug {
			s.log.LogAttrs(context.Background(), slog.LevelDebug, "request",
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

// takeRequest is one take in a request body.
type takeRequest struct {
	Key    string `json:"key"`
	Policy string `json:"policy"` // "" is the default policy
	Cost   amount `json:"cost"`   // absent is 1 token; 0 peeks
}

// apiTake serves POST /v1/take: one take, answered 200 whether it is
// allowed or not.
func (s *Server) apiTake(c *fiber.Ctx) error {
	var req takeRequest
	if err := decode(c.Request().Body(), &req, ""); err != nil {
		return err
	}
	d, err := s.takeOne(&req)
	if err != nil {
		return err
	}
	return sendJSON(c, d)
}

// takeOne checks and makes one take of a request body.
func (s *Server) takeOne(req *takeRequest) (*decision, error) {
	if err := s.checkKey(req.Key); err != nil {
		return nil, err
	}
	cost := bucket.Token
	if req.Cost.set {
		var err error
		if cost, err = req.Cost.parse("cost"); err != nil {
			return nil, err
		}
	}
	res, err := s.store.Take(req.Key, req.Policy, cost)
	if err != nil {
		return nil, storeError(err, req.Policy, "cost")
	}
	return newDecision(req.Key, cost, &res), nil
}

// checkKey checks a key given in a request body.
func (s *Server) checkKey(key string) error {
	if key == "" {
		return &inputError{status: fiber.StatusBadRequest, field: "key", msg: "key is required"}
	}
	if len(key) > s.maxKeyLen {
		return &inputError{status: fiber.StatusBadRequest, field: "key",
			msg: "key is longer than " + strconv.Itoa(s.maxKeyLen) + " bytes"}
	}
	return nil
}

// itemError is a take of a batch that failed, in its slot of the answer.
type itemError struct {
	Error  string `json:"error"`
	Field  string `json:"field,omitempty"`
	Status int    `json:"status"` // the status the take alone would have got
}

// apiBatch serves POST /v1/batch: independent takes, made and answered in
// order. A take's own error is answered in its slot and the others go on;
// only a body that is not a valid batch fails the whole request.
func (s *Server) apiBatch(c *fiber.Ctx) error {
	var req struct {
		Takes []json.RawMessage `json:"takes"`
	}
	if err := decode(c.Request().Body(), &req, ""); err != nil {
		return err
	}
	if len(req.Takes) > maxBatch {
		return &inputError{status: fiber.StatusBadRequest, field: "takes",
			msg: "a batch holds at most " + strconv.Itoa(maxBatch) + " takes, not " + strconv.Itoa(len(req.Takes))}
	}
	// Decode every take before making any: a malformed one fails the
	// batch before it has changed anything.
	takes := make([]takeRequest, len(req.Takes))
	for i, raw := range req.Takes {
		if err := decode(raw, &takes[i], "takes["+strconv.Itoa(i)+"]"); err != nil {
			return err
		}
	}
	out := struct {
		Results []any `json:"results"`
	}{make([]any, len(takes))}
	for i := range takes {
		d, err := s.takeOne(&takes[i])
		if err != nil {
			status, field, msg := describe(err)
			if status == fiber.StatusInternalServerError {
				s.logInternal(c, status, err)
			}
			out.Results[i] = itemError{Error: msg, Field: field, Status: status}
			continue
		}
		out.Results[i] = d
	}
	return sendJSON(c, &out)
}

// apiPeek serves GET /v1/buckets/{key}: a take of 0.
func (s *Server) apiPeek(c *fiber.Ctx) error {
	key, err := s.parseKey(c.Params("key"))
	if err != nil {
		return err
	}
	policy := c.Query("policy")
	res, err := s.store.Take(key, policy, 0)
	if err != nil {
		return storeError(err, policy, "")
	}
	return sendJSON(c, newDecision(key, 0, &res))
}

// deleted answers a DELETE.
type deleted struct {
	Deleted bool `json:"deleted"` // whether there was something to delete
}

// apiReset serves DELETE /v1/buckets/{key}: the bucket under the policy,
// or every bucket of the key without one, is full again.
func (s *Server) apiReset(c *fiber.Ctx) error {
	key, err := s.parseKey(c.Params("key"))
	if err != nil {
		return err
	}
	policy := c.Query("policy")
	ok, err := s.store.Reset(key, policy)
	if err != nil {
		return storeError(err, policy, "")
	}
	return sendJSON(c, deleted{ok})
}

// apiSetTokens serves PUT /v1/buckets/{key}/tokens: the bucket holds the
// given tokens now (clamped to its capacity).
func (s *Server) apiSetTokens(c *fiber.Ctx) error {
	key, err := s.parseKey(c.Params("key"))
	if err != nil {
		return err
	}
	var req struct {
		Tokens amount `json:"tokens"`
	}
	if err := decode(c.Request().Body(), &req, ""); err != nil {
		return err
	}
	if !req.Tokens.set {
		return &inputError{status: fiber.StatusBadRequest, field: "tokens", msg: "tokens is required"}
	}
	tokens, err := req.Tokens.parse("tokens")
	if err != nil {
		return err
	}
	policy := c.Query("policy")
	res, err := s.store.Set(key, policy, tokens)
	if err != nil {
		return storeError(err, policy, "tokens")
	}
	return sendJSON(c, newDecision(key, 0, &res))
}

// apiKeys serves GET /v1/buckets: a page of the keys that have a bucket.
func (s *Server) apiKeys(c *fiber.Ctx) error {
	limit := defaultPage
	if c.Context().QueryArgs().Has("limit") {
		n, err := strconv.Atoi(c.Query("limit"))
		if err != nil || n < 1 || n > maxPage {
			return &inputError{status: fiber.StatusBadRequest, field: "limit",
				msg: "limit " + strconv.Quote(c.Query("limit")) + " is not a whole number from 1 to " + strconv.Itoa(maxPage)}
		}
		limit = n
	}
	keys, next, err := s.store.Keys(c.Query("prefix"), c.Query("cursor"), limit)
	if err != nil {
		return storeError(err, "", "")
	}
	if keys == nil {
		keys = []string{}
	}
	return sendJSON(c, struct {
		Keys       []string `json:"keys"`
		NextCursor string   `json:"next_cursor"`
	}{keys, next})
}

// apiPolicies serves GET /v1/policies.
func (s *Server) apiPolicies(c *fiber.Ctx) error {
	return sendJSON(c, s.policyList())
}

// policyJSON is a policy in an answer.
type policyJSON struct {
	Name    string      `json:"name"`
	Default bool        `json:"default"`
	Shadow  bool        `json:"shadow"`
	Limits  []limitJSON `json:"limits"`
	Counts  struct {
		Allowed uint64 `json:"allowed"`
		Denied  uint64 `json:"denied"`
	} `json:"counts"`
}

// limitJSON is a limit in an answer.
type limitJSON struct {
	Capacity tokens `json:"capacity"`
	Rate     string `json:"rate"` // as bucket.ParseRate reads it: "10/s", "1/3s"
}

func limitsJSON(ls []bucket.Limit) []limitJSON {
	out := make([]limitJSON, len(ls))
	for i, l := range ls {
		out[i] = limitJSON{tokens(l.Capacity), l.Rate.String()}
	}
	return out
}

func (s *Server) policyList() any {
	infos := s.store.Policies()
	out := struct {
		Policies []policyJSON `json:"policies"`
	}{make([]policyJSON, len(infos))}
	for i, p := range infos {
		j := &out.Policies[i]
		j.Name, j.Default, j.Shadow, j.Limits = p.Name, p.Default, p.Shadow, limitsJSON(p.Limits)
		j.Counts.Allowed, j.Counts.Denied = p.Allowed, p.Denied
	}
	return &out
}

// overrideJSON is an override in an answer.
type overrideJSON struct {
	Key    string      `json:"key"`
	Policy string      `json:"policy"`
	Limits []limitJSON `json:"limits"`
}

func newOverrideJSON(o bucket.Override) overrideJSON {
	if o.Policy == "" {
		o.Policy = bucket.DefaultPolicy
	}
	return overrideJSON{o.Key, o.Policy, limitsJSON(o.Limits)}
}

// apiOverrides serves GET /v1/overrides.
func (s *Server) apiOverrides(c *fiber.Ctx) error {
	list := s.store.Overrides()
	out := struct {
		Overrides []overrideJSON `json:"overrides"`
	}{make([]overrideJSON, len(list))}
	for i, o := range list {
		out.Overrides[i] = newOverrideJSON(o)
	}
	return sendJSON(c, &out)
}

// apiOverride serves GET /v1/overrides/{key}.
func (s *Server) apiOverride(c *fiber.Ctx) error {
	key, err := s.parseKey(c.Params("key"))
	if err != nil {
		return err
	}
	policy := c.Query("policy")
	o, ok := s.store.Override(key, policy)
	if !ok {
		return errNoOverride(key, policy)
	}
	return sendJSON(c, newOverrideJSON(o))
}

func errNoOverride(key, policy string) error {
	if policy == "" {
		policy = bucket.DefaultPolicy
	}
	return &inputError{status: fiber.StatusNotFound, field: "key",
		msg: "key " + strconv.Quote(key) + " has no override under policy " + strconv.Quote(policy)}
}

// limitRequest is a limit in a request body.
type limitRequest struct {
	Capacity amount `json:"capacity"`
	Rate     string `json:"rate"`
}

// apiSetOverride serves PUT /v1/overrides/{key}: the key gets its own
// limits under the policy, replacing any it had.
func (s *Server) apiSetOverride(c *fiber.Ctx) error {
	key, err := s.parseKey(c.Params("key"))
	if err != nil {
		return err
	}
	var req struct {
		Limits []json.RawMessage `json:"limits"`
	}
	if err := decode(c.Request().Body(), &req, ""); err != nil {
		return err
	}
	if len(req.Limits) == 0 || len(req.Limits) > bucket.MaxLimits {
		return &inputError{status: fiber.StatusBadRequest, field: "limits",
			msg: "limits must hold from 1 to " + strconv.Itoa(bucket.MaxLimits) + " limits, not " + strconv.Itoa(len(req.Limits))}
	}
	limits := make([]bucket.Limit, len(req.Limits))
	for i, raw := range req.Limits {
		at := "limits[" + strconv.Itoa(i) + "]"
		if limits[i], err = parseLimit(raw, at); err != nil {
			return err
		}
	}
	policy := c.Query("policy")
	o := bucket.Override{Key: strings.Clone(key), Policy: strings.Clone(policy), Limits: limits}
	if err := s.store.SetOverride(o); err != nil {
		return storeError(err, policy, "limits")
	}
	if stored, ok := s.store.Override(key, policy); ok { // as the store names its policy
		o = stored
	}
	return sendJSON(c, newOverrideJSON(o))
}

// parseLimit decodes and checks one limit of a request body; at is its
// place ("limits[0]"), to name the field at fault.
func parseLimit(raw []byte, at string) (bucket.Limit, error) {
	var req limitRequest
	if err := decode(raw, &req, at); err != nil {
		return bucket.Limit{}, err
	}
	if !req.Capacity.set {
		return bucket.Limit{}, &inputError{status: fiber.StatusBadRequest, field: at + ".capacity", msg: "capacity is required"}
	}
	capacity, err := req.Capacity.parse(at + ".capacity")
	if err != nil {
		return bucket.Limit{}, err
	}
	if capacity <= 0 {
		return bucket.Limit{}, &inputError{field: at + ".capacity", err: bucket.ErrInvalid,
			msg: "capacity " + req.Capacity.text + " must be more than zero"}
	}
	if req.Rate == "" {
		return bucket.Limit{}, &inputError{status: fiber.StatusBadRequest, field: at + ".rate",
			msg: "rate is required: TOKENS/PERIOD, e.g. 10/s or 1/3s"}
	}
	rate, err := bucket.ParseRate(req.Rate)
	if err != nil {
		return bucket.Limit{}, &inputError{field: at + ".rate", msg: err.Error(), err: err}
	}
	l := bucket.Limit{Capacity: capacity, Rate: rate}
	if err := l.Validate(); err != nil {
		return bucket.Limit{}, &inputError{field: at, msg: err.Error(), err: err}
	}
	return l, nil
}

// apiDeleteOverride serves DELETE /v1/overrides/{key}.
func (s *Server) apiDeleteOverride(c *fiber.Ctx) error {
	key, err := s.parseKey(c.Params("key"))
	if err != nil {
		return err
	}
	policy := c.Query("policy")
	ok, err := s.store.DeleteOverride(key, policy)
	if err != nil {
		return storeError(err, policy, "")
	}
	return sendJSON(c, deleted{ok})
}

// apiReload serves POST /v1/reload: Config.Reload, then the policies now
// in force.
func (s *Server) apiReload(c *fiber.Ctx) error {
	if s.reload == nil {
		return &inputError{status: fiber.StatusNotImplemented, msg: "reload is not available"}
	}
	if err := s.reload(); err != nil {
		if errors.Is(err, bucket.ErrClosed) {
			return err
		}
		// Most likely a bad config file: the administrator's to fix, so
		// the message is shown. The old policies are still in force.
		return &inputError{status: fiber.StatusUnprocessableEntity, msg: "reload failed: " + err.Error()}
	}
	return sendJSON(c, s.policyList())
}

// storeError names the request field at fault in an error from the store,
// so that handleError can say which: "policy" for an unknown policy,
// invalidField for invalid input. It passes other errors on.
func storeError(err error, policy, invalidField string) error {
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

// decision is a take's result in an answer.
type decision struct {
	Key    string `json:"key"`
	Policy string `json:"policy"`
	Shadow bool   `json:"shadow"`
	// Allowed is what the caller should do: true when the take fit, and
	// always under a shadow policy (as GET /{key} answers 200).
	Allowed bool `json:"allowed"`
	// Limited is true when the limits refused the take (and so took
	// nothing), shadow or not.
	Limited bool `json:"limited"`
	// Never is true when the cost is more than a capacity: no wait helps.
	Never     bool   `json:"never"`
	Cost      tokens `json:"cost"`
	Limit     tokens `json:"limit"`     // capacity of the limit with the fewest tokens
	Remaining tokens `json:"remaining"` // tokens it holds after the take (before, if refused)
	// RetryAfterMS is the wait until the same cost would fit, in
	// milliseconds rounded up: 0 when it fit, null when Never.
	RetryAfterMS *int64 `json:"retry_after_ms"`
	// ResetAfterMS is the wait until every limit is full, in milliseconds
	// rounded up.
	ResetAfterMS int64           `json:"reset_after_ms"`
	Limits       []limitDecision `json:"limits"` // one per limit of the policy, in order
}

// limitDecision is one limit's own decision in an answer.
type limitDecision struct {
	Capacity     tokens `json:"capacity"`
	Rate         string `json:"rate"`
	Allowed      bool   `json:"allowed"`
	Remaining    tokens `json:"remaining"`
	RetryAfterMS *int64 `json:"retry_after_ms"`
	ResetAfterMS int64  `json:"reset_after_ms"`
}

// newDecision renders the result of taking cost from key.
func newDecision(key string, cost bucket.Tokens, r *bucket.Result) *decision {
	d := &decision{
		Key:          key,
		Policy:       r.Policy.Name,
		Shadow:       r.Policy.Shadow,
		Allowed:      r.Allowed || r.Policy.Shadow,
		Limited:      !r.Allowed,
		Never:        r.RetryAfter == bucket.Never,
		Cost:         tokens(cost),
		Limit:        tokens(r.Decision.Limit),
		Remaining:    tokens(r.Remaining),
		RetryAfterMS: retryMillis(r.RetryAfter),
		ResetAfterMS: ceilMillis(r.ResetAfter),
	}
	if d.Policy == "" {
		d.Policy = bucket.DefaultPolicy
	}
	line := func(l bucket.Limit, ld bucket.Decision) limitDecision {
		return limitDecision{
			Capacity:     tokens(l.Capacity),
			Rate:         l.Rate.String(),
			Allowed:      ld.Allowed,
			Remaining:    tokens(ld.Remaining),
			RetryAfterMS: retryMillis(ld.RetryAfter),
			ResetAfterMS: ceilMillis(ld.ResetAfter),
		}
	}
	switch ls := r.Policy.Limits; {
	case perLimit(r):
		d.Limits = make([]limitDecision, len(ls))
		for i, l := range ls {
			d.Limits[i] = line(l, r.Limits[i])
		}
	case len(ls) > 0: // one limit, or a store that sent no per-limit decisions: the deciding one
		l, _ := decidingLimit(r)
		d.Limits = []limitDecision{line(l, r.Decision)}
	default:
		d.Limits = []limitDecision{}
	}
	return d
}

// retryMillis returns a RetryAfter in milliseconds rounded up, or nil for
// bucket.Never.
func retryMillis(d time.Duration) *int64 {
	if d == bucket.Never {
		return nil
	}
	ms := ceilMillis(d)
	return &ms
}

// ceilMillis returns d in whole milliseconds rounded up (bucket.Ceil).
func ceilMillis(d time.Duration) int64 { return bucket.Ceil(d, time.Millisecond) }

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
