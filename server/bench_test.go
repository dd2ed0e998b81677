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

// handler returns the handler s serves connections with: Fiber's app
// behind the check of the method, as Serve runs it.
func handler(s *Server) fasthttp.RequestHandler {
	s.app.Handler() // builds the routes
	return s.app.Server().Handler
}

// benchServer returns a Server in front of the real limiter over a real
// store whose default policy is p, and the env.
func benchServer(b *testing.B, p bucket.Policy) (*env, *Server) {
	e := newEnv(b, p)
	return e, New(e.lim, Config{})
}

// plenty is a default policy that no benchmark empties: every take is
// allowed, however many the benchmark makes.
var plenty = bucket.Policy{Name: bucket.DefaultPolicy, Limits: []bucket.Limit{
	{Capacity: bucket.MaxTokens, Rate: bucket.Every(3 * time.Second)},
}}

// BenchmarkTake is the hot path: a take that is allowed, with both
// rate-limit fields.
func BenchmarkTake(b *testing.B) {
	_, s := benchServer(b, plenty)
	benchHandler(b, handler(s), "/joe", 200)
}

// BenchmarkTakeCost adds the query parameters.
func BenchmarkTakeCost(b *testing.B) {
	_, s := benchServer(b, plenty)
	benchHandler(b, handler(s), "/joe?cost=0.5&policy=default", 200)
}

// BenchmarkTakeDenied is a 429, with Retry-After: the bucket is empty, and
// the clock does not move.
func BenchmarkTakeDenied(b *testing.B) {
	e, s := benchServer(b, policy10)
	if _, err := e.lim.Take("joe", "", 10*T); err != nil {
		b.Fatal(err)
	}
	benchHandler(b, handler(s), "/joe", 429)
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

// BenchmarkAPITake is POST /v1/take: the decision service, in JSON.
func BenchmarkAPITake(b *testing.B) {
	_, s := benchServer(b, plenty)
	h := handler(s)
	var ctx fasthttp.RequestCtx
	body := []byte(`{"key":"joe","policy":"default","cost":0.5}`)
	ctx.Request.Header.SetMethod(fasthttp.MethodPost)
	ctx.Request.SetRequestURI("/v1/take")
	ctx.Request.SetBody(body)
	h(&ctx)
	if got := ctx.Response.StatusCode(); got != 200 {
		b.Fatalf("status %d: %s", got, ctx.Response.Body())
	}
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		h(&ctx)
	}
}
