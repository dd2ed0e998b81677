package rlsfront_test

import (
	"context"
	"math"
	"net"
	"path/filepath"
	"testing"
	"time"

	commonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bucketd/bucketd/limiter"
	"github.com/bucketd/bucketd/metrics"
	"github.com/bucketd/bucketd/rlsconfig"
	"github.com/bucketd/bucketd/rlsfront"
	"github.com/bucketd/bucketd/storage"
	"github.com/bucketd/bucketd/storage/storetest"
)

// start serves a front over a real store, on a fake clock, with the README
// examples, and returns a client connection, the clock and the store.
func start(t *testing.T) (*grpc.ClientConn, *storetest.Clock, *storage.DB) {
	t.Helper()
	return startWith(t, rlsfront.Config{})
}

// startWith is start with the front's configuration cfg.
func startWith(t *testing.T, fcfg rlsfront.Config) (*grpc.ClientConn, *storetest.Clock, *storage.DB) {
	t.Helper()
	c := storetest.NewClock(storetest.T0)
	db, err := storage.Open(filepath.Join(t.TempDir(), "b.db"), storage.Options{Clock: c, SyncInterval: time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	lim, err := limiter.New(db, limiter.Options{})
	require.NoError(t, err)
	cfg, err := rlsconfig.Load(filepath.Join("..", "testdata", "rls", "readme"))
	require.NoError(t, err)
	lim.SetRLSConfig(cfg)
	srv := rlsfront.New(lim, fcfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		require.NoError(t, srv.Shutdown(context.Background()))
		require.NoError(t, <-done)
	})
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn, c, db
}

func descriptor(kv ...string) *commonv3.RateLimitDescriptor {
	d := &commonv3.RateLimitDescriptor{}
	for i := 0; i+1 < len(kv); i += 2 {
		d.Entries = append(d.Entries, &commonv3.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

func headerMap(resp *rlsv3.RateLimitResponse) map[string]string {
	m := map[string]string{}
	for _, h := range resp.GetResponseHeadersToAdd() {
		m[h.GetKey()] = h.GetValue()
	}
	return m
}

func TestShouldRateLimit(t *testing.T) {
	conn, clock, _ := start(t)
	rls := rlsv3.NewRateLimitServiceClient(conn)
	ctx := context.Background()
	ask := func(ds ...*commonv3.RateLimitDescriptor) *rlsv3.RateLimitResponse {
		t.Helper()
		resp, err := rls.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "messaging", Descriptors: ds})
		require.NoError(t, err)
		return resp
	}
	resp := ask(descriptor("message_type", "marketing", "to_number", "1"), descriptor("to_number", "1"), descriptor("other", "x"))
	require.Equal(t, rlsv3.RateLimitResponse_OK, resp.GetOverallCode())
	st := resp.GetStatuses()
	require.Len(t, st, 3)
	require.Equal(t, uint32(5), st[0].GetCurrentLimit().GetRequestsPerUnit())
	require.Equal(t, rlsv3.RateLimitResponse_RateLimit_DAY, st[0].GetCurrentLimit().GetUnit())
	require.Equal(t, uint32(4), st[0].GetLimitRemaining())
	require.Equal(t, 24*time.Hour/5, st[0].GetDurationUntilReset().AsDuration())
	require.Equal(t, uint32(99), st[1].GetLimitRemaining())
	require.Nil(t, st[2].GetCurrentLimit(), "no rule")
	h := headerMap(resp)
	require.Equal(t, `"message_type_marketing.to_number-1";q=5;w=86400, "to_number-2";q=100;w=86400`, h["RateLimit-Policy"])
	require.Equal(t, `"message_type_marketing.to_number-1";r=4;t=17280, "to_number-2";r=99;t=864`, h["RateLimit"])
	require.NotContains(t, h, "Retry-After")

	for range 4 {
		require.Equal(t, rlsv3.RateLimitResponse_OK, ask(descriptor("message_type", "marketing", "to_number", "1")).GetOverallCode())
	}
	resp = ask(descriptor("message_type", "marketing", "to_number", "1"), descriptor("to_number", "1"))
	require.Equal(t, rlsv3.RateLimitResponse_OVER_LIMIT, resp.GetOverallCode())
	require.Equal(t, rlsv3.RateLimitResponse_OVER_LIMIT, resp.GetStatuses()[0].GetCode())
	require.Equal(t, rlsv3.RateLimitResponse_OK, resp.GetStatuses()[1].GetCode())
	require.Equal(t, uint32(99), resp.GetStatuses()[1].GetLimitRemaining(), "all or nothing: given back")
	require.Equal(t, "17280", headerMap(resp)["Retry-After"], "a day / 5, in seconds")

	clock.Advance(24 * time.Hour / 5)
	require.Equal(t, rlsv3.RateLimitResponse_OK, ask(descriptor("message_type", "marketing", "to_number", "1")).GetOverallCode())
}

func TestShouldRateLimitUnlimitedAndHits(t *testing.T) {
	conn, _, _ := start(t)
	rls := rlsv3.NewRateLimitServiceClient(conn)
	ctx := context.Background()
	resp, err := rls.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "internal", Descriptors: []*commonv3.RateLimitDescriptor{descriptor("ldap", "x")}})
	require.NoError(t, err)
	require.Equal(t, uint32(math.MaxUint32), resp.GetStatuses()[0].GetLimitRemaining())
	require.Empty(t, resp.GetResponseHeadersToAdd())

	resp, err = rls.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "internal", HitsAddend: 40,
		Descriptors: []*commonv3.RateLimitDescriptor{descriptor("azure", "x")}})
	require.NoError(t, err)
	require.Equal(t, uint32(60), resp.GetStatuses()[0].GetLimitRemaining())
	d := descriptor("azure", "x")
	d.HitsAddend = wrapperspb.UInt64(70)
	resp, err = rls.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "internal", Descriptors: []*commonv3.RateLimitDescriptor{d}})
	require.NoError(t, err)
	require.Equal(t, rlsv3.RateLimitResponse_OVER_LIMIT, resp.GetOverallCode())
	require.Equal(t, "6", headerMap(resp)["Retry-After"], "10 more at 100/min")

	d = descriptor("anything", "x")
	d.Limit = &commonv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 1, Unit: typev3.RateLimitUnit_HOUR}
	resp, err = rls.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "internal", Descriptors: []*commonv3.RateLimitDescriptor{d}})
	require.NoError(t, err)
	require.Equal(t, rlsv3.RateLimitResponse_RateLimit_HOUR, resp.GetStatuses()[0].GetCurrentLimit().GetUnit())
	require.Equal(t, uint32(0), resp.GetStatuses()[0].GetLimitRemaining())
}

func TestShouldRateLimitInvalid(t *testing.T) {
	conn, _, _ := start(t)
	rls := rlsv3.NewRateLimitServiceClient(conn)
	for _, req := range []*rlsv3.RateLimitRequest{
		{Descriptors: []*commonv3.RateLimitDescriptor{descriptor("a", "b")}},
		{Domain: "d"},
		{Domain: "d", Descriptors: []*commonv3.RateLimitDescriptor{{}}},
	} {
		_, err := rls.ShouldRateLimit(context.Background(), req)
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	}
}

func TestHealthAndReflection(t *testing.T) {
	conn, _, db := start(t)
	ctx := context.Background()
	hc := healthpb.NewHealthClient(conn)
	for _, svc := range []string{"", "envoy.service.ratelimit.v3.RateLimitService"} {
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		require.NoError(t, err)
		require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
	}

	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}))
	r, err := stream.Recv()
	require.NoError(t, err)
	var names []string
	for _, s := range r.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	require.Contains(t, names, "envoy.service.ratelimit.v3.RateLimitService")
	require.Contains(t, names, "grpc.health.v1.Health")
	require.NoError(t, stream.CloseSend())

	require.NoError(t, db.Close())
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, resp.GetStatus(), "a closed store is not serving")
	_, err = rlsv3.NewRateLimitServiceClient(conn).ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "internal", Descriptors: []*commonv3.RateLimitDescriptor{descriptor("azure", "x")}})
	require.Equal(t, codes.Unavailable, status.Code(err))
}

// TestShadowAnswersOKWithoutFields: a shadow-mode rule over its limit is
// answered OK, with OK status, and writes no RateLimit fields (they would
// tell clients of a limit that is not enforced).
func TestShadowAnswersOKWithoutFields(t *testing.T) {
	conn, _, _ := start(t)
	rls := rlsv3.NewRateLimitServiceClient(conn)
	var resp *rlsv3.RateLimitResponse
	for range 11 {
		var err error
		resp, err = rls.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{Domain: "example6",
			Descriptors: []*commonv3.RateLimitDescriptor{descriptor("service", "auth", "user", "user-a")}})
		require.NoError(t, err)
		require.Equal(t, rlsv3.RateLimitResponse_OK, resp.GetOverallCode())
	}
	require.Equal(t, rlsv3.RateLimitResponse_OK, resp.GetStatuses()[0].GetCode())
	require.Equal(t, uint32(0), resp.GetStatuses()[0].GetLimitRemaining(), "the 11th found the bucket empty")
	require.Empty(t, resp.GetResponseHeadersToAdd())
}

// TestMetricsCountRequests: each request a rule applied to is one decision
// of front "grpc" under policy "rls:DOMAIN": allowed, limited, or
// shadow_limited when only a shadow-mode rule refused; a request no rule
// applied to is not counted.
func TestMetricsCountRequests(t *testing.T) {
	m := metrics.New(metrics.Options{})
	conn, _, _ := startWith(t, rlsfront.Config{Metrics: m})
	rls := rlsv3.NewRateLimitServiceClient(conn)
	ask := func(domain string, ds ...*commonv3.RateLimitDescriptor) {
		t.Helper()
		_, err := rls.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{Domain: domain, Descriptors: ds})
		require.NoError(t, err)
	}
	for range 7 { // 5 a day: 5 allowed, 2 limited
		ask("messaging", descriptor("message_type", "marketing", "to_number", "1"))
	}
	ask("messaging", descriptor("other", "x")) // no rule: not counted
	got := map[string]float64{}
	mfs, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "bucketd_decisions_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range mt.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["front"] == "grpc" {
				got[l["policy"]+" "+l["outcome"]] = mt.GetCounter().GetValue()
			}
		}
	}
	assert.Equal(t, map[string]float64{"rls:messaging allowed": 5, "rls:messaging limited": 2, "rls:messaging shadow_limited": 0}, got)
}
