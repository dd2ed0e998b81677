package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/gofiber/fiber/v2"
)

// The fixed bodies, written as they are: no encoding on the hot path. The
// first two are byte for byte those of the Python service.
var (
	bodyOK      = []byte(`{"detail":"OK"}`)
	bodyTooMany = []byte(`{"detail":"Too Many Requests"}`)
	bodyHealthy = []byte(`{"status":"ok"}`)
)

const mimeJSON = "application/json"

// Header names, as the draft and RFC 9110 spell them. They are set with
// SetCanonical, which keeps the spelling (fasthttp would otherwise write
// "Ratelimit-Policy"; field names are case-insensitive either way).
var (
	hdrRateLimitPolicy = []byte("RateLimit-Policy")
	hdrRateLimit       = []byte("RateLimit")
	hdrRetryAfter      = []byte("Retry-After")
	hdrAllow           = []byte("Allow")
	hdrWWWAuthenticate = []byte("WWW-Authenticate")
)

// take serves GET /{key}: it takes the cost from the key's bucket and
// answers 200 or 429 with the rate-limit fields.
func (s *Server) take(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil { // a bug, in the limiter or here: one 500, not a dead process
			err = fmt.Errorf("server: panic: %v\n%s", r, debug.Stack())
		}
	}()
	logDebug := s.log.Enabled(context.Background(), s.accessLvl)
	var start time.Time
	if logDebug || s.metrics != nil {
		start = time.Now()
	}

	// Fiber's strings point into the request's memory: they are passed to
	// Take, which copies what it keeps, and are not kept here.
	key, err := s.parseKey(c.Params("key"))
	if err != nil {
		return err
	}
	cost := bucket.Token
	if c.Context().QueryArgs().Has("cost") {
		if cost, err = parseCost(c.Query("cost")); err != nil {
			return err
		}
	}
	policy := c.Query("policy")

	res, err := s.lim.Take(key, policy, cost)
	if s.metrics != nil {
		s.observe(frontHTTP, cost, &res, err, start)
	}
	if err != nil {
		return takeError(err, policy)
	}

	resp := c.Response()
	var buf [256]byte // enough for the fields of a one-limit policy with a name of up to ~200 bytes
	b := appendPolicyField(buf[:0], &res)
	resp.Header.SetCanonical(hdrRateLimitPolicy, b)
	b = appendLimitField(b[:0], &res)
	resp.Header.SetCanonical(hdrRateLimit, b)

	status := fiber.StatusOK
	switch {
	case res.Allowed || res.Policy.Shadow:
		resp.SetBodyRaw(bodyOK)
	case res.RetryAfter == bucket.Never:
		return costOverCapacity(cost, &res)
	default:
		status = fiber.StatusTooManyRequests
		resp.Header.SetCanonical(hdrRetryAfter, strconv.AppendInt(b[:0], ceilSeconds(res.RetryAfter), 10))
		resp.SetBodyRaw(bodyTooMany)
	}
	resp.SetStatusCode(status)
	resp.Header.SetContentType(mimeJSON)

	if logDebug {
		s.log.LogAttrs(context.Background(), s.accessLvl, "take",
			slog.String("front", frontHTTP),
			slog.String("key", strings.Clone(key)),
			slog.String("policy", res.Policy.Name),
			slog.String("cost", cost.String()),
			slog.Bool("allowed", res.Allowed),
			slog.Bool("shadow", res.Policy.Shadow),
			slog.String("decision", outcome(&res)),
			slog.Int("status", status),
			slog.Duration("duration", time.Since(start)))
	}
	return nil
}

// parseKey percent-decodes the raw path segment and checks its length.
func (s *Server) parseKey(raw string) (string, error) {
	key := raw
	if strings.IndexByte(raw, '%') >= 0 { // only an escaped key allocates
		k, err := url.PathUnescape(raw)
		if err != nil {
			return "", &inputError{status: fiber.StatusBadRequest, field: "key",
				msg: "key has a malformed percent-escape"}
		}
		key = k
	}
	if len(key) > s.maxKeyLen {
		return "", &inputError{status: fiber.StatusRequestURITooLong, field: "key",
			msg: "key is longer than " + strconv.Itoa(s.maxKeyLen) + " bytes"}
	}
	if key == "" {
		return "", errNoKey
	}
	return key, nil
}

// parseCost parses the cost parameter: a positive decimal number of tokens.
func parseCost(s string) (bucket.Tokens, error) {
	cost, err := bucket.ParseTokens(s)
	if err != nil {
		return 0, &inputError{field: "cost", msg: "cost " + err.Error(), err: err}
	}
	if cost <= 0 {
		return 0, &inputError{field: "cost", msg: "cost " + strconv.Quote(s) + " must be more than zero",
			err: bucket.ErrInvalid}
	}
	return cost, nil
}

// takeError names the request field at fault in an error from Take, so
// that handleError can say which; it passes other errors on. The key and
// the cost have been checked before the take, so an input the limiter still
// refuses (a key longer than its store can hold, say) names no field here:
// the limiter's message says which.
func takeError(err error, policy string) error {
	return limiterError(err, policy, "")
}

// costOverCapacity is the error for a cost that no wait could allow.
func costOverCapacity(cost bucket.Tokens, res *bucket.Result) error {
	capacity := res.Decision.Limit
	if len(res.Policy.Limits) > 0 {
		capacity = res.Policy.Capacity()
	}
	return &inputError{field: "cost", err: bucket.ErrInvalid,
		msg: "cost " + cost.String() + " is more than the capacity " + capacity.String() +
			" of policy " + strconv.Quote(res.Policy.Name)}
}

// errNoKey answers GET /.
var errNoKey = &inputError{status: fiber.StatusNotFound, field: "key", msg: "no key: use GET /{key}"}

// noKey serves GET /.
func (s *Server) noKey(*fiber.Ctx) error { return errNoKey }

// readyz serves GET /readyz: 200 while the store is open and its changes
// reach the disk; 503, saying why, while writes fail or once it is closed.
// A load balancer takes the instance out of rotation meanwhile; /healthz
// (liveness) stays 200, since restarting would not mend a full disk.
func (s *Server) readyz(c *fiber.Ctx) error {
	if err := s.lim.Ready(); err != nil {
		resp := c.Response()
		resp.SetStatusCode(fiber.StatusServiceUnavailable)
		resp.Header.SetContentType(mimeJSON)
		body, _ := json.Marshal(struct {
			Status string `json:"status"`
			Error  string `json:"error"`
		}{"unavailable", err.Error()})
		resp.SetBodyRaw(body)
		return nil
	}
	return s.healthz(c)
}

// healthz serves GET /healthz.
func (s *Server) healthz(c *fiber.Ctx) error {
	resp := c.Response()
	resp.SetStatusCode(fiber.StatusOK)
	resp.Header.SetContentType(mimeJSON)
	resp.SetBodyRaw(bodyHealthy)
	return nil
}
