package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// Metrics is what the server reports to (package metrics implements it;
// main.go passes it in Config). Its methods are called on the request's
// goroutine, and must be cheap and safe for concurrent use.
type Metrics interface {
	// Decision counts a take (cost > 0) that the limiter decided: through
	// front "http" (GET /{key}) or "json" (POST /v1/take, /v1/batch),
	// under policy, allowed or refused, under a shadow policy or not; d is
	// the time the limiter took. policy is valid only during the call.
	Decision(front, policy string, allowed, shadow bool, d time.Duration)
	// Route returns the function that counts the answers of one route
	// (its pattern, as Fiber spells it, and method) by status. New calls
	// it once per route, and once with the pattern "other" for requests
	// that match no route.
	Route(method, pattern string) func(status int)
	// Handler serves the metrics: GET /metrics.
	Handler() http.Handler
}

// The fronts of the HTTP server, as Metrics.Decision names them.
const (
	frontHTTP = "http"
	frontJSON = "json"
)

// routeOther is the pattern of the requests that match no route.
const routeOther = "other"

// counted wraps a route's handler to count its answers by status: it
// renders the handler's error itself (as Fiber's ErrorHandler would), so
// that the status is known.
func (s *Server) counted(h fiber.Handler, count func(status int)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := h(c); err != nil {
			_ = s.handleError(c, err) // it always returns nil
		}
		count(c.Response().StatusCode())
		return nil
	}
}

// observe reports a take to the metrics as the limiter counts it: one of
// cost > 0 that was decided, whether or not it reached the disk.
func (s *Server) observe(front string, cost bucket.Tokens, res *bucket.Result, err error, start time.Time) {
	if cost <= 0 || err != nil && !errors.Is(err, bucket.ErrNotDurable) {
		return
	}
	s.metrics.Decision(front, res.Policy.Name, res.Allowed, res.Policy.Shadow, time.Since(start))
}

// metricsHandler serves GET /metrics from Metrics.Handler. It needs no
// admin token: Prometheus scrapes it.
func (s *Server) metricsHandler() fiber.Handler {
	h := fasthttpadaptor.NewFastHTTPHandler(s.metrics.Handler())
	return func(c *fiber.Ctx) error {
		h(c.Context())
		return nil
	}
}

// unrouted is Fiber's ErrorHandler. With metrics, every route renders its
// own errors (counted), so what comes here matched no route (404, 405) or
// failed before routing (413, 431): it is counted under the route "other".
func (s *Server) unrouted(c *fiber.Ctx, err error) error {
	_ = s.handleError(c, err) // it always returns nil
	if s.other != nil {
		s.other(c.Response().StatusCode())
	}
	return nil
}

// outcome names a take's decision as the access log and the metrics do:
// allowed, limited, or shadow_limited (refused by a shadow policy's limits,
// answered as allowed).
func outcome(res *bucket.Result) string {
	switch {
	case res.Allowed:
		return "allowed"
	case res.Policy.Shadow:
		return "shadow_limited"
	}
	return "limited"
}
