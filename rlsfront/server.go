// Package rlsfront is bucketd's gRPC front: Envoy's rate limit service,
// envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit, beside the
// standard gRPC health service (grpc.health.v1) and server reflection. It
// is the only importer of google.golang.org/grpc and of
// github.com/envoyproxy/go-control-plane.
//
// A handler converts the request to limiter terms, asks the Limiter, and
// renders: the overall code, a status per descriptor, and the draft-10
// RateLimit fields (and Retry-After when over the limit) in
// response_headers_to_add, which Envoy adds to the client's response.
package rlsfront

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/limiter"
)

// Limiter is what the front needs of the limiter.
type Limiter interface {
	ShouldRateLimit(limiter.RLSRequest) (limiter.RLSResult, error)
	// Ready returns nil while takes are served and reach the disk.
	Ready() error
}

// Config configures a Server. The zero value is valid.
type Config struct {
	// Logger receives errors the front answers with; nil discards.
	Logger *slog.Logger
	// Options are added to the gRPC server's (TLS credentials, keepalive).
	Options []grpc.ServerOption
	// Metrics, if not nil, counts each request that a rule applied to as a
	// decision of front "grpc" under policy "rls:DOMAIN".
	Metrics Metrics
}

// Metrics counts decisions: allowed, refused, or refused by shadow-mode
// rules only (answered OK); d is the time the limiter took.
type Metrics interface {
	Decision(front, policy string, allowed, shadow bool, d time.Duration)
}

// Server serves the rate limit service, health and reflection.
type Server struct {
	lim     Limiter
	metrics Metrics
	log     *slog.Logger
	grpc    *grpc.Server
	health  *health.Server
}

// serviceName is the rate limit service's full name, as health checks
// name it.
const serviceName = "envoy.service.ratelimit.v3.RateLimitService"

// New returns a server that answers from lim.
func New(lim Limiter, cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{lim: lim, metrics: cfg.Metrics, log: cfg.Logger, grpc: grpc.NewServer(cfg.Options...), health: health.NewServer()}
	rlsv3.RegisterRateLimitServiceServer(s.grpc, &service{s: s})
	healthpb.RegisterHealthServer(s.grpc, &healthService{Server: s.health, lim: lim})
	reflection.Register(s.grpc)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(serviceName, healthpb.HealthCheckResponse_SERVING)
	return s
}

// Serve serves on ln until Shutdown; it returns nil after a Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.grpc.Serve(ln)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Shutdown says NOT_SERVING to health checks, stops accepting, and waits
// for calls in flight to end, or for ctx: then it cuts them off and returns
// ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.health.Shutdown()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
		return ctx.Err()
	}
}

// healthService answers Check from the limiter's readiness (a closed store,
// or one whose writes fail, is NOT_SERVING), and Watch and List as
// grpc/health does.
type healthService struct {
	*health.Server
	lim Limiter
}

func (h *healthService) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	resp, err := h.Server.Check(ctx, req)
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return resp, err
	}
	if h.lim.Ready() != nil {
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING}, nil
	}
	return resp, nil
}

type service struct {
	rlsv3.UnimplementedRateLimitServiceServer
	s *Server
}

// ShouldRateLimit implements the rate limit service.
func (svc *service) ShouldRateLimit(ctx context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	start := time.Now()
	res, err := svc.s.lim.ShouldRateLimit(toRequest(req))
	if err != nil {
		return nil, svc.s.statusOf(err)
	}
	if m := svc.s.metrics; m != nil {
		ruled, shadow := false, false
		for _, st := range res.Statuses {
			ruled = ruled || (st.Rule != nil && !st.Unlimited)
			shadow = shadow || st.Shadow
		}
		if ruled {
			m.Decision("grpc", "rls:"+req.GetDomain(), !res.Over && !shadow, !res.Over && shadow, time.Since(start))
		}
	}
	return toResponse(res), nil
}

// statusOf maps a limiter error to a gRPC status: invalid input is
// InvalidArgument; a closed store, or a take not made durable, is
// Unavailable (Envoy then applies its failure_mode_deny).
func (s *Server) statusOf(err error) error {
	switch {
	case errors.Is(err, bucket.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, bucket.ErrClosed), errors.Is(err, bucket.ErrNotDurable), errors.Is(err, bucket.ErrStoreUnavailable):
		s.log.Warn("rls: answering unavailable", "err", err)
		return status.Error(codes.Unavailable, err.Error())
	}
	s.log.Error("rls: internal error", "err", err)
	return status.Error(codes.Internal, err.Error())
}
