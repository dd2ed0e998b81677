package server

import (
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/bucketd/bucketd/bucket"
)

// benchHandler runs h on a GET of target b.N times, in memory: no network,
// no HTTP parsing of the request line, only what Fiber and the handler do.
func benchHandler(b *testing.B, h fasthttp.RequestHandler, target string, wantStatus int) {
	b.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(fasthttp.MethodGet)
	ctx.Request.SetRequestURI(target)
	h(&ctx)
	if got := ctx.Response.StatusCode(); got != wantStatus {
		b.Fatalf("status %d, want %d: %s", got, wantStatus, ctx.Response.Body())
	}
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		h(&ctx)
	}
}

func constLimiter(res bucket.Result) *fakeLimiter {
	return &fakeLimiter{take: func(string, string, bucket.Tokens) (bucket.Result, error) { return res, nil }}
}

// BenchmarkTake is the hot path: a take that is allowed, with both
// rate-limit fields.
func BenchmarkTake(b *testing.B) {
	s := New(constLimiter(allowed(7*T, 9*time.Second)), Config{})
	benchHandler(b, s.app.Handler(), "/joe", 200)
}

// BenchmarkTakeCost adds the query parameters.
func BenchmarkTakeCost(b *testing.B) {
	s := New(constLimiter(allowed(7*T, 9*time.Second)), Config{})
	benchHandler(b, s.app.Handler(), "/joe?cost=0.5&policy=default", 200)
}

// BenchmarkTakeDenied is a 429, with Retry-After.
func BenchmarkTakeDenied(b *testing.B) {
	s := New(constLimiter(denied(0, 1200*time.Millisecond, 30*time.Second)), Config{})
	benchHandler(b, s.app.Handler(), "/joe", 429)
}

// BenchmarkBareFiber is the baseline: a Fiber app that only answers
// {"detail":"OK"}.
func BenchmarkBareFiber(b *testing.B) {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/:key", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.SendString(`{"detail":"OK"}`)
	})
	benchHandler(b, app.Handler(), "/joe", 200)
}
