package server

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/gofiber/fiber/v2"
)

// maxBatch is the most takes a batch may hold.
const maxBatch = 1000

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
	logTake := s.log.Enabled(context.Background(), s.accessLvl)
	var start time.Time
	if s.metrics != nil || logTake {
		start = time.Now()
	}
	res, err := s.lim.Take(req.Key, req.Policy, cost)
	if s.metrics != nil {
		s.observe(frontJSON, cost, &res, err, start)
	}
	if err != nil {
		return nil, takeError(err, req.Policy)
	}
	if logTake { // a batch's request line names no key: each take has its line
		s.log.LogAttrs(context.Background(), s.accessLvl, "take",
			slog.String("front", frontJSON),
			slog.String("key", req.Key),
			slog.String("policy", res.Policy.Name),
			slog.String("cost", cost.String()),
			slog.String("decision", outcome(&res)),
			slog.Duration("duration", time.Since(start)))
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
		Takes []jsontext.Value `json:"takes"`
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
	case len(ls) > 0: // one limit, or a limiter that sent no per-limit decisions: the deciding one
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
